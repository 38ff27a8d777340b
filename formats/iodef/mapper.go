package iodef

import (
	"fmt"
	"slices"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// maxErrorsPerIncident bounds an ErrorList: past it, a broken document
// would only repeat itself.
const maxErrorsPerIncident = 20

// mapDocument maps every Incident element under root and lists what the
// document says besides them.
func mapDocument(name string, root *element, opts Options) (*Document, error) {
	if root.name.Local != "IODEF-Document" {
		return nil, &Error{Name: name, Line: root.line, Column: root.col, Path: root.name.Local,
			Msg: "not an IODEF document: the root element must be IODEF-Document (RFC 7970)"}
	}
	ns := root.name.Space
	if ns != iodefV2NS && ns != iodefV1NS {
		got := "no namespace"
		if ns != "" {
			got = fmt.Sprintf("namespace %q", ns)
		}
		return nil, &Error{Name: name, Line: root.line, Column: root.col, Path: "IODEF-Document",
			Msg: fmt.Sprintf("%s is not IODEF: want %s (IODEF v2, RFC 7970) or %s (v1, RFC 5070)", got, iodefV2NS, iodefV1NS)}
	}
	root.used = true
	root.attr("version") // fixed by the namespace
	docLang := root.lang()

	var incidents []*element
	for _, k := range root.children {
		if k.name.Space == ns && k.name.Local == "Incident" {
			incidents = append(incidents, k)
		}
	}
	if len(incidents) == 0 {
		return nil, &Error{Name: name, Line: root.line, Column: root.col, Path: "IODEF-Document",
			Msg: "holds no Incident element (in namespace " + ns + ")"}
	}
	doc := &Document{Name: name}
	for _, n := range incidents {
		n.used = true
	}
	for i, n := range incidents {
		m := &mapper{name: name, ns: ns, v1: ns == iodefV1NS, lang: docLang, opts: opts, incident: n, label: "Incident"}
		if len(incidents) > 1 {
			m.label = fmt.Sprintf("Incident[%d]", i+1)
		}
		inc := m.mapIncident(n)
		out := Decoded{Index: i + 1, Line: n.line, Derived: m.derived, Defaulted: m.defaulted}
		if len(m.errs) > 0 {
			out.Err = m.errs
		} else {
			out.Incident = inc
			if i == 0 {
				// What the document says besides its incidents goes
				// with the first.
				for _, k := range root.children {
					if !k.used {
						m.keepExtra(k, "IODEF-Document/"+k.name.Local, fragment(k))
						k.used = true
						doc.Kept = append(doc.Kept, atLine("IODEF-Document/"+k.name.Local, k.line))
					}
				}
			}
			m.keepUnused(n, &doc.Kept)
			// The kept parts count too: the record must stay one the
			// team accepts (its size, the characters of its texts).
			if err := record.Validate(inc, "incident"); err != nil {
				m.errf(n, "", "the incident made from it, with the parts irx keeps verbatim, is invalid: %v", err)
				out.Incident, out.Err = nil, m.errs
			}
			doc.Lossy = append(doc.Lossy, m.notes...)
		}
		doc.Incidents = append(doc.Incidents, out)
	}
	// What the document says besides its incidents.
	dm := &mapper{name: name, ns: ns, label: "IODEF-Document"}
	for _, a := range root.attrs {
		if !a.used && !ignorableAttr(a.name) {
			doc.Ignored = append(doc.Ignored, "IODEF-Document"+attrLabel(a))
		}
	}
	for _, k := range root.children {
		if !k.used {
			doc.Ignored = append(doc.Ignored, dm.path(k))
		}
	}
	return doc, nil
}

// A mapper maps one Incident element. Reading an element or attribute
// marks it used; what stays unused at the end is what the warning lists.
type mapper struct {
	name     string // the document's
	ns       string // the document's IODEF namespace
	v1       bool
	lang     string // the document's language, for descriptions without one
	opts     Options
	incident *element
	label    string // "Incident", or "Incident[2]" in a document of several

	inc      *irxv1.Incident
	incRestr irxv1.Restriction // what the incident's parts inherit in irx
	taxa     []*irxv1.Taxonomy // named by the document, in order
	// implied by its impacts and methods (derivation.go), in order
	impliedTaxa []*irxv1.Taxonomy
	// the values derived from the document and those taken from Options
	derived, defaulted []string
	notes              []string // values mapped with a loss
	errs               ErrorList
}

// path names n from its Incident (or the document) down, as messages show
// it.
func (m *mapper) path(n *element) string {
	var parts []string
	for ; n != nil; n = n.parent {
		if n == m.incident {
			parts = append(parts, m.label)
			break
		}
		if n.parent == nil && n.name.Local == "IODEF-Document" && m.incident == nil {
			parts = append(parts, "IODEF-Document")
			break
		}
		local := n.name.Local
		if p := nsPrefix(n.name.Space); p != "" {
			local = p + ":" + local
		}
		parts = append(parts, local)
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/")
}

// errf records a problem with n, or with its attribute attr when attr is
// not "".
func (m *mapper) errf(n *element, attr, format string, args ...any) {
	m.fail(n, attr, nil, format, args...)
}

// fail records a problem with n (or its attribute attr) whose cause is
// err, for callers that act on it.
func (m *mapper) fail(n *element, attr string, err error, format string, args ...any) {
	if len(m.errs) >= maxErrorsPerIncident {
		return
	}
	path := m.path(n)
	if attr != "" {
		path += "@" + attr
	}
	m.errs = append(m.errs, &Error{Name: m.name, Line: n.line, Column: n.col, Path: path, Msg: fmt.Sprintf(format, args...), Err: err})
}

// note records a value mapped with a loss.
func (m *mapper) note(n *element, attr, value, format string, args ...any) {
	s := m.path(n)
	if attr != "" {
		s += "@" + attr + "=" + oneLine(value, 40)
	}
	m.notes = append(m.notes, atLine(s+" ("+fmt.Sprintf(format, args...)+")", n.line))
}

// children returns n's IODEF children named local, marking them used.
func (m *mapper) children(n *element, local string) []*element {
	return m.childrenNS(n, m.ns, local)
}

func (m *mapper) childrenNS(n *element, space, local string) []*element {
	var out []*element
	for _, k := range n.children {
		if k.name.Space == space && k.name.Local == local {
			k.used = true
			out = append(out, k)
		}
	}
	return out
}

// child returns n's first IODEF child named local, marking it used;
// further ones stay unused, so the warning lists them: irx keeps one.
func (m *mapper) child(n *element, local string) *element {
	for _, k := range n.children {
		if k.name.Space == m.ns && k.name.Local == local {
			k.used = true
			return k
		}
	}
	return nil
}

// firstText is the text of n's first IODEF child named local ("" if none);
// further ones are listed as ignored.
func (m *mapper) firstText(n *element, local string) string {
	if k := m.child(n, local); k != nil {
		return k.textValue()
	}
	return ""
}

// collectIgnored appends the path of every unused element (not its
// descendants: the whole element was ignored) and unused attribute.
func (m *mapper) collectIgnored(n *element, out *[]string) {
	if !n.used {
		p := m.path(n)
		if n.why != "" {
			p += " (" + n.why + ")"
		}
		*out = append(*out, p)
		return
	}
	for _, a := range n.attrs {
		if !a.used && !ignorableAttr(a.name) {
			*out = append(*out, m.path(n)+attrLabel(a))
		}
	}
	for _, k := range n.children {
		m.collectIgnored(k, out)
	}
}

// enumAttr reads attribute attr of n. ok is true when it is present and irx
// has its value. A value irx has no equivalent for stays unused, so the
// warning lists it (with its ext-* attribute); a value IODEF does not
// define is an error.
func enumAttr[T any](m *mapper, n *element, attr string, e enumeration[T]) (v T, raw string, ok bool) {
	a := n.findAttr(attr)
	if a == nil {
		return v, "", false
	}
	raw = strings.TrimSpace(a.value)
	if t, found := e.to[raw]; found {
		a.used = true
		return t, raw, true
	}
	if slices.Contains(e.values, raw) {
		return v, raw, false
	}
	a.used = true
	m.errf(n, attr, "%q is not an IODEF %s; one of %s", raw, e.what, strings.Join(e.values, ", "))
	return v, raw, false
}

// restriction reads n's restriction attribute and returns what n's content
// is restricted to, given what it inherits; tlp is set when the value is a
// TLP colour.
func (m *mapper) restriction(n *element, inherited irxv1.Restriction) (r irxv1.Restriction, tlp irxv1.Tlp) {
	a := n.findAttr("restriction")
	if a == nil {
		return inherited, 0
	}
	a.used = true
	switch v := strings.TrimSpace(a.value); v {
	case "default":
		// The parties' own agreement: irx knows it as what is inherited.
		return inherited, 0
	case "ext-value":
		// An extended restriction irx cannot know: the strictest.
		ext, _ := n.attr("ext-restriction")
		m.note(n, "restriction", "ext-value", "ext-restriction %q kept as private", ext)
		return irxv1.Restriction_RESTRICTION_PRIVATE, 0
	}
	mk, _, ok := enumAttr(m, n, "restriction", restrictionEnum)
	if !ok {
		return inherited, 0
	}
	return mk.restriction, mk.tlp
}

// part is the restriction an irx part gets: unspecified when it would
// inherit the same from the incident.
func (m *mapper) part(r irxv1.Restriction) irxv1.Restriction {
	if r == m.incRestr {
		return irxv1.Restriction_RESTRICTION_UNSPECIFIED
	}
	return r
}

// unrestrictable reports whether a part with restriction r cannot be kept
// in an irx part that has no restriction of its own (it would inherit the
// incident's, which is less strict); such a part is left out.
func (m *mapper) unrestrictable(n *element, r irxv1.Restriction) bool {
	if restrictionRank(r) <= restrictionRank(m.incRestr) {
		return false
	}
	n.used = false
	n.why = "its restriction is stricter than the incident's and irx keeps none here"
	return true
}
