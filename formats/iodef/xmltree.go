package iodef

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The namespaces a document may use. Elements of others are never mapped,
// only listed.
const (
	iodefV2NS   = "urn:ietf:params:xml:ns:iodef-2.0"
	iodefV1NS   = "urn:ietf:params:xml:ns:iodef-1.0"
	iodefEnumNS = "urn:ietf:params:xml:ns:iodef-enum-1.0" // RFC 7495
	iodefSciNS  = "urn:ietf:params:xml:ns:iodef-sci-1.0"  // RFC 7203
	xmldsigNS   = "http://www.w3.org/2000/09/xmldsig#"
	xmlNS       = "http://www.w3.org/XML/1998/namespace"
	xsiNS       = "http://www.w3.org/2001/XMLSchema-instance"
)

// An element is an XML element with its position, kept so that the mapping
// can say where a problem is and list, at the end, what it did not use.
type element struct {
	name      xml.Name
	raw       xml.Name // the name as written, with its prefix
	scope     int      // the namespace declarations in scope before it
	attrs     []*attribute
	children  []*element
	parent    *element
	text      []byte
	line, col int
	used      bool
	why       string // why the mapping left it out, when that is not obvious
}

type attribute struct {
	name  xml.Name
	value string
	used  bool
}

// readTree reads the element tree of data, bounded by MaxDepth and
// MaxElements (the caller bounds the size).
//
// Entities are safe by construction: encoding/xml, in its default strict
// mode, expands only XML's five predefined entities and character
// references, and a DTD (one Directive token) is refused outright,
// whatever it declares (parameter entities, an exponential "billion
// laughs" expansion, an external entity naming a file or a URL).
//
// A document written plainly is read by fastTree; readTree reads the others
// and refuses what is wrong, with its place.
//
// It reads raw tokens and resolves namespaces and matches end tags itself,
// as Decoder.Token would: that spares Token's per-element bookkeeping, the
// larger part of the decoding cost after the tokenizer itself.
func readTree(name string, data []byte) (*element, error) {
	if root, ok := fastTree(data); ok {
		return root, nil
	}
	return decodeTree(name, data)
}

// decodeTree is readTree by encoding/xml.
func decodeTree(name string, data []byte) (*element, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		root  *element
		stack []*element
		count int
		ns    namespaces
		elems []element   // the current slab of elements
		attrs []attribute // and of attributes
	)
	where := func() string {
		if len(stack) == 0 {
			return "IODEF-Document"
		}
		parts := make([]string, len(stack))
		for i, n := range stack {
			parts[i] = n.name.Local
		}
		return strings.Join(parts, "/")
	}
	fail := func(line, col int, path, format string, args ...any) error {
		return &Error{Name: name, Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	for {
		line, col := dec.InputPos()
		off := dec.InputOffset()
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			if root == nil {
				return nil, fail(line, col, "IODEF-Document", "no XML element: not an IODEF document")
			}
			if len(stack) > 0 {
				l, c := position(data, dec.InputOffset())
				return nil, fail(l, c, where(), "XML syntax error: unexpected EOF")
			}
			return root, nil
		}
		if err != nil {
			l, c := position(data, dec.InputOffset())
			msg := err.Error()
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				msg = "XML syntax error: " + se.Msg
			}
			return nil, fail(l, c, where(), "%s", strings.TrimPrefix(msg, "xml: "))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fail(line, col, t.Name.Local, "a second top-level element; an IODEF document has one IODEF-Document")
			}
			if len(stack) >= MaxDepth {
				return nil, fail(line, col, where()+"/"+t.Name.Local, "elements nested more than %d deep", MaxDepth)
			}
			if count++; count > MaxElements {
				return nil, fail(line, col, where()+"/"+t.Name.Local, "more than %d elements", MaxElements)
			}
			if len(elems) == cap(elems) {
				// Slabs that double, from one a small document fills.
				elems = make([]element, 0, min(max(16, 2*cap(elems)), 1024))
			}
			elems = append(elems, element{raw: t.Name, line: line, col: col, scope: len(ns)})
			n := &elems[len(elems)-1]
			// The declarations of an element apply to its own name and
			// attributes: they are bound first.
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					ns = append(ns, binding{a.Name.Local, a.Value})
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					ns = append(ns, binding{"", a.Value})
				}
			}
			n.name = ns.translate(t.Name, true)
			if len(t.Attr) > 0 {
				if len(attrs)+len(t.Attr) > cap(attrs) {
					attrs = make([]attribute, 0, max(min(max(16, 2*cap(attrs)), 1024), len(t.Attr)))
				}
				n.attrs = make([]*attribute, len(t.Attr))
				for i, a := range t.Attr {
					attrs = append(attrs, attribute{name: ns.translate(a.Name, false), value: a.Value})
					n.attrs[i] = &attrs[len(attrs)-1]
				}
			}
			if len(stack) == 0 {
				root = n
			} else {
				n.parent = stack[len(stack)-1]
				n.parent.children = append(n.parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			// What Decoder.Token checks, in its words, at the end tag.
			syntax := func(msg string) error { return fail(line, col, where(), "XML syntax error: %s", msg) }
			if len(stack) == 0 {
				return nil, syntax("unexpected end element </" + t.Name.Local + ">")
			}
			top := stack[len(stack)-1]
			switch {
			case top.raw.Local != t.Name.Local:
				return nil, syntax("element <" + top.raw.Local + "> closed by </" + t.Name.Local + ">")
			case top.raw.Space != t.Name.Space:
				space := t.Name.Space
				if space == "" {
					space = `""`
				}
				return nil, syntax("element <" + top.raw.Local + "> in space " + top.raw.Space + " closed by </" + t.Name.Local + "> in space " + space)
			}
			ns = ns[:top.scope]
			stack = stack[:len(stack)-1]
		case xml.Directive:
			// A DTD can declare entities (external ones naming files or
			// URLs, parameter entities, exponential expansions); IODEF
			// needs none, so any DTD is refused rather than skipped.
			word := "" // "<! >" is a directive too
			if f := bytes.Fields(t); len(f) > 0 {
				word = string(f[0])
			}
			return nil, fail(line, col, where(), "a DTD (<!%s…>) is not allowed in an IODEF document: remove the DOCTYPE", oneLine(word, 20))
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, fail(line, col, "IODEF-Document", "text outside the document element")
				}
				continue
			}
			top := stack[len(stack)-1]
			// Text as written (no reference, no CDATA section, no carriage
			// return) is the document's own bytes: the element refers to
			// them rather than copying them. Capped, so that an append
			// never writes into data.
			if raw := data[off:dec.InputOffset():dec.InputOffset()]; top.text == nil && bytes.Equal(raw, t) {
				top.text = raw
			} else {
				top.text = append(top.text[:len(top.text):len(top.text)], t...)
			}
		}
		// Comments and processing instructions carry no incident data.
	}
}

// A binding is a namespace declaration in scope.
type binding struct{ prefix, uri string }

// namespaces are the declarations in scope, innermost last.
type namespaces []binding

// translate resolves a raw name's prefix as Decoder.Token does: the
// default namespace applies to elements only; xml is XML's own; an
// undeclared prefix stays as it is.
func (ns namespaces) translate(n xml.Name, element bool) xml.Name {
	switch {
	case n.Space == "xmlns":
		return n
	case n.Space == "" && !element:
		return n
	case n.Space == "xml":
		n.Space = xmlNS
		return n
	case n.Space == "" && n.Local == "xmlns":
		return n
	}
	for i := len(ns) - 1; i >= 0; i-- {
		if ns[i].prefix == n.Space {
			n.Space = ns[i].uri
			return n
		}
	}
	return n
}

// position is the line and column (from 1, counted in bytes as
// encoding/xml counts them) of byte offset off of data. The decoder's own
// InputPos says column 0 after it has stepped back over a line break, as
// it does when a line break ends an entity reference.
func position(data []byte, off int64) (line, col int) {
	before := data[:min(max(off, 0), int64(len(data)))]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// attr returns the unqualified attribute local, trimmed, and marks it
// used.
func (n *element) attr(local string) (string, bool) {
	a := n.findAttr(local)
	if a == nil {
		return "", false
	}
	a.used = true
	return strings.TrimSpace(a.value), true
}

// findAttr returns the unqualified attribute local without marking it
// used: the caller decides whether the mapping keeps it.
func (n *element) findAttr(local string) *attribute {
	for _, a := range n.attrs {
		if a.name.Space == "" && a.name.Local == local {
			return a
		}
	}
	return nil
}

// lang is the element's xml:lang (IODEF v2) or lang (v1) attribute.
func (n *element) lang() string {
	for _, a := range n.attrs {
		if a.name.Local == "lang" && (a.name.Space == xmlNS || a.name.Space == "xml" || a.name.Space == "") {
			a.used = true
			return strings.TrimSpace(a.value)
		}
	}
	return ""
}

// textValue is the element's own text, trimmed; reading it uses the
// element.
func (n *element) textValue() string {
	n.used = true
	return strings.TrimSpace(string(n.text))
}

// anyUsed reports whether the mapping used any of ns.
func anyUsed(ns []*element) bool {
	for _, n := range ns {
		if n.used {
			return true
		}
	}
	return false
}

// ignorableAttr reports whether an attribute is XML's or XML Schema's
// bookkeeping, which carries no incident data and is not worth a warning.
func ignorableAttr(name xml.Name) bool {
	switch {
	case name.Space == "xmlns", name.Space == "" && name.Local == "xmlns":
		return true // namespace declarations
	case name.Space == xsiNS:
		return true // schema location hints
	case name.Local == "lang" && (name.Space == xmlNS || name.Space == "xml"):
		return true // the language of a text irx keeps without one
	}
	return false
}

// attrLabel is "@name=value" as the warning lists an attribute, its value
// on one line and cut short: the warning is one line per document (XML
// allows line breaks in a value, written or as "&#10;").
func attrLabel(a *attribute) string {
	name := a.name.Local
	if p := nsPrefix(a.name.Space); p != "" {
		name = p + ":" + name
	}
	return "@" + name + "=" + oneLine(a.value, 40)
}

// oneLine is s with its runs of white space made single spaces, cut to at
// most n runes.
func oneLine(s string, n int) string {
	s = singleSpaced(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func singleSpaced(s string) string { return strings.Join(strings.Fields(s), " ") }

// nsPrefix is the customary prefix of a namespace other than IODEF's, for
// paths in messages; another namespace is named in full, on one line.
func nsPrefix(space string) string {
	switch space {
	case "", iodefV2NS, iodefV1NS:
		return ""
	case iodefEnumNS:
		return "enum"
	case iodefSciNS:
		return "sci"
	case xmldsigNS:
		return "ds"
	case xmlNS:
		return "xml"
	}
	return "{" + singleSpaced(space) + "}"
}
