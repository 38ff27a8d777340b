package iodef

import (
	"bufio"
	"encoding/xml"
	"maps"
	"strings"
)

// The writing of an element tree as XML: deterministic (attributes in the
// order they were set, children in tree order, two spaces of indent for
// elements that hold elements), with the namespace declarations each
// element needs.

// knownPrefixes are the prefixes the writer uses for the namespaces it
// knows; any other namespace is written as a default namespace.
var knownPrefixes = []struct{ prefix, space string }{
	{"enum", iodefEnumNS},
	{"sci", iodefSciNS},
	{"ds", xmldsigNS},
}

func prefixOf(space string) string {
	for _, k := range knownPrefixes {
		if k.space == space {
			return k.prefix
		}
	}
	return ""
}

// nsScope is what is declared where an element is written.
type nsScope struct {
	def      string
	prefixes map[string]string // prefix -> namespace
}

// writeElement writes n and its descendants; def is the default namespace
// in scope ("" at the top of a document or fragment).
func writeElement(w *bufio.Writer, n *element, def string, depth int) {
	writeScoped(w, n, nsScope{def: def, prefixes: map[string]string{}}, depth, true)
}

func writeScoped(w *bufio.Writer, n *element, scope nsScope, depth int, top bool) {
	indent := func(d int) {
		w.WriteByte('\n')
		for range d {
			w.WriteString("  ")
		}
	}
	var decls [][2]string // attribute name, value
	inner := nsScope{def: scope.def, prefixes: scope.prefixes}
	copied := false
	declare := func(prefix, space string) {
		if inner.prefixes[prefix] == space {
			return
		}
		if !copied {
			inner.prefixes = maps.Clone(scope.prefixes)
			copied = true
		}
		inner.prefixes[prefix] = space
		decls = append(decls, [2]string{"xmlns:" + prefix, space})
	}
	if top {
		// Declare at the top every known prefix the tree uses, once.
		used := map[string]bool{}
		walkTree(n, func(e *element) {
			if p := prefixOf(e.name.Space); p != "" {
				used[p] = true
			}
		})
		for _, k := range knownPrefixes {
			if used[k.prefix] && n.name.Space != k.space {
				declare(k.prefix, k.space)
			}
		}
	}
	name := n.name.Local
	if p := prefixOf(n.name.Space); p != "" && n.name.Space != inner.def {
		declare(p, n.name.Space)
		name = p + ":" + n.name.Local
	} else if n.name.Space != inner.def {
		inner.def = n.name.Space
		decls = append([][2]string{{"xmlns", n.name.Space}}, decls...)
	}
	var attrs [][2]string
	for i, a := range n.attrs {
		if ignorableNSDecl(a.name) {
			continue
		}
		an := a.name.Local
		switch a.name.Space {
		case "":
		case xmlNS, "xml":
			an = "xml:" + an
		default:
			p := prefixOf(a.name.Space)
			if p == "" {
				p = "a" + string(rune('0'+i%10))
			}
			declare(p, a.name.Space)
			an = p + ":" + an
		}
		attrs = append(attrs, [2]string{an, a.value})
	}
	w.WriteByte('<')
	w.WriteString(name)
	for _, a := range append(decls, attrs...) {
		w.WriteByte(' ')
		w.WriteString(a[0])
		w.WriteString(`="`)
		xml.EscapeText(w, []byte(a[1]))
		w.WriteByte('"')
	}
	text := strings.TrimSpace(string(n.text))
	if len(n.children) == 0 && text == "" {
		w.WriteString("/>")
		return
	}
	w.WriteByte('>')
	if text != "" {
		xml.EscapeText(w, []byte(text))
	}
	for _, k := range n.children {
		indent(depth + 1)
		writeScoped(w, k, inner, depth+1, false)
	}
	if len(n.children) > 0 {
		indent(depth)
	}
	w.WriteString("</")
	w.WriteString(name)
	w.WriteByte('>')
}

// ignorableNSDecl reports whether an attribute read from a document is a
// namespace declaration, which the writer makes itself.
func ignorableNSDecl(name xml.Name) bool {
	return name.Space == "xmlns" || name.Space == "" && name.Local == "xmlns"
}

func walkTree(n *element, f func(*element)) {
	f(n)
	for _, k := range n.children {
		walkTree(k, f)
	}
}

// fragment writes n as a standalone XML fragment, declaring the
// namespaces it uses: how an element the record has no field for is kept.
func fragment(n *element) string {
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	writeElement(w, n, "", 0)
	w.Flush()
	return sb.String()
}
