package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// IODEF (RFC 7970, and RFC 5070 where the element names coincide) read
// into irx.v1.Incident, which maps class for class to the IODEF v2
// Incident. Every element and attribute the mapping does not use is
// listed in one warning; nothing is dropped silently, except what irx
// assigns itself (GenerationTime: each version gets its own).

const (
	iodefV2NS   = "urn:ietf:params:xml:ns:iodef-2.0"
	iodefV1NS   = "urn:ietf:params:xml:ns:iodef-1.0"
	iodefEnumNS = "urn:ietf:params:xml:ns:iodef-enum-1.0" // RFC 7495
	iodefSciNS  = "urn:ietf:params:xml:ns:iodef-sci-1.0"  // RFC 7203
	xmldsigNS   = "http://www.w3.org/2000/09/xmldsig#"
	xmlNS       = "http://www.w3.org/XML/1998/namespace"
	xsiNS       = "http://www.w3.org/2001/XMLSchema-instance"

	// maxIODEFBytes bounds a document. One incident record is at most
	// record.MaxIncidentBytes (256 KiB); a document may hold several.
	maxIODEFBytes = 4 << 20
	// maxIODEFDepth bounds nesting. The deepest IODEF paths (EventData
	// within EventData, Contact within Contact, IndicatorExpression) stay
	// well below it in real reports.
	maxIODEFDepth = 48
	// maxIODEFElements bounds the tree kept in memory.
	maxIODEFElements = 200_000
)

// iodefOptions supply what an IODEF document may not say.
type iodefOptions struct {
	// tlp is for incidents whose restriction is not a TLP colour
	// (white, green, amber, red). 0: none given.
	tlp irxv1.Tlp
	// taxonomy is for incidents from which no Reference Security Incident
	// Taxonomy entry can be derived. nil: none given.
	taxonomy *irxv1.Taxonomy
}

// iodefDoc is a document read into irx incidents.
type iodefDoc struct {
	incidents []iodefIncident
	// ignored lists, in document order, the elements and attributes not
	// mapped; lossy the values mapped with a loss. One warning line says
	// both.
	ignored, lossy []string
}

// iodefIncident is one Incident element of a document.
type iodefIncident struct {
	index int // 1-based, among the document's Incident elements
	line  int // where the element starts
	inc   *irxv1.Incident
	err   error // *iodefError: this Incident could not be mapped
}

// warning is the one line that lists what was not mapped and what was
// mapped with a loss, or "".
func (d *iodefDoc) warning(file string) string {
	var parts []string
	if len(d.ignored) > 0 {
		parts = append(parts, "not mapped to irx.v1.Incident, ignored: "+countedList(d.ignored))
	}
	if len(d.lossy) > 0 {
		parts = append(parts, "mapped with a loss: "+countedList(d.lossy))
	}
	if len(parts) == 0 {
		return ""
	}
	return file + ": IODEF " + strings.Join(parts, "; ")
}

// countedList joins items in order of first appearance, each once, with
// its count when it recurs.
func countedList(items []string) string {
	count := map[string]int{}
	var order []string
	for _, s := range items {
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	for i, s := range order {
		if n := count[s]; n > 1 {
			order[i] = fmt.Sprintf("%s (%d)", s, n)
		}
	}
	return strings.Join(order, ", ")
}

// iodefError names the file, the position and the element (or attribute)
// of a problem.
type iodefError struct {
	file      string
	line, col int
	elem      string
	msg       string
}

func (e *iodefError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.file, e.line, e.col, e.elem, e.msg)
}

// withoutFile is the message for a place that already names the file.
func (e *iodefError) withoutFile() string {
	return fmt.Sprintf("line %d:%d: %s: %s", e.line, e.col, e.elem, e.msg)
}

// looksLikeXML decides by extension, and by content when there is none
// that says otherwise (stdin).
func looksLikeXML(path string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".xml":
		return true
	case ".json", ".jsonl", ".ndjson", ".yaml", ".yml":
		return false
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '<'
}

// readLimited reads r up to maxIODEFBytes, and fails beyond it without
// reading the rest.
func readLimited(name string, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxIODEFBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxIODEFBytes {
		return nil, tooBig(name, -1)
	}
	return data, nil
}

func tooBig(name string, n int) error {
	size := "more than 4 MiB"
	if n >= 0 {
		size = fmt.Sprintf("%d bytes", n)
	}
	return &iodefError{file: name, line: 1, col: 1, elem: "IODEF-Document",
		msg: fmt.Sprintf("the document is %s; the limit is %d bytes (4 MiB): split it into several files", size, maxIODEFBytes)}
}

// parseIODEF reads an IODEF document. A problem with the document as a
// whole (not XML, not IODEF, too large or too deep) is the error; a problem
// with one Incident element is that incident's err, so the others can
// still be used.
func parseIODEF(name string, data []byte, opts iodefOptions) (*iodefDoc, error) {
	if len(data) > maxIODEFBytes {
		return nil, tooBig(name, len(data))
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	root, err := readXMLTree(name, data)
	if err != nil {
		return nil, err
	}
	if root.name.Local != "IODEF-Document" {
		return nil, &iodefError{file: name, line: root.line, col: root.col, elem: root.name.Local,
			msg: "not an IODEF document: the root element must be IODEF-Document (RFC 7970)"}
	}
	ns := root.name.Space
	if ns != iodefV2NS && ns != iodefV1NS {
		got := "no namespace"
		if ns != "" {
			got = fmt.Sprintf("namespace %q", ns)
		}
		return nil, &iodefError{file: name, line: root.line, col: root.col, elem: "IODEF-Document",
			msg: fmt.Sprintf("%s is not IODEF: want %s (IODEF v2, RFC 7970) or %s (v1, RFC 5070)", got, iodefV2NS, iodefV1NS)}
	}
	root.used = true
	root.attr("version") // fixed by the namespace
	docLang := root.lang()

	var incidents []*xnode
	for _, k := range root.kids {
		if k.name.Space == ns && k.name.Local == "Incident" {
			incidents = append(incidents, k)
		}
	}
	if len(incidents) == 0 {
		return nil, &iodefError{file: name, line: root.line, col: root.col, elem: "IODEF-Document",
			msg: "holds no Incident element (in namespace " + ns + ")"}
	}
	doc := &iodefDoc{}
	for i, n := range incidents {
		n.used = true
		m := &iodefMapper{file: name, ns: ns, v1: ns == iodefV1NS, lang: docLang, incident: n}
		if len(incidents) > 1 {
			m.label = fmt.Sprintf("Incident[%d]", i+1)
		} else {
			m.label = "Incident"
		}
		inc := m.mapIncident(n, opts)
		out := iodefIncident{index: i + 1, line: n.line}
		if len(m.errs) > 0 {
			out.err = m.errs[0]
			if len(m.errs) > 1 {
				errs := make([]error, len(m.errs))
				for j, e := range m.errs {
					errs[j] = e
				}
				out.err = &iodefMultiError{errs: errs}
			}
		} else {
			out.inc = inc
			m.collectIgnored(n, &doc.ignored)
			doc.lossy = append(doc.lossy, m.notes...)
		}
		doc.incidents = append(doc.incidents, out)
	}
	// What the document says besides its incidents.
	dm := &iodefMapper{file: name, ns: ns, label: "IODEF-Document"}
	for _, a := range root.attrs {
		if !a.used && !ignorableAttr(a.name) {
			doc.ignored = append(doc.ignored, "IODEF-Document"+attrLabel(a))
		}
	}
	for _, k := range root.kids {
		if !k.used {
			doc.ignored = append(doc.ignored, dm.path(k))
		}
	}
	return doc, nil
}

// iodefMultiError is every problem of one Incident element.
type iodefMultiError struct{ errs []error }

func (e *iodefMultiError) Error() string {
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "\n")
}

func (e *iodefMultiError) Unwrap() []error { return e.errs }

// withoutFile lists the problems for a place that already names the file.
func (e *iodefMultiError) withoutFile() string {
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
		var ie *iodefError
		if errors.As(err, &ie) {
			parts[i] = ie.withoutFile()
		}
	}
	return strings.Join(parts, "; ")
}

// describeIODEFError is err without the file name when it is an IODEF
// error (for the import summary, which names the file already).
func describeIODEFError(err error) (string, bool) {
	var me *iodefMultiError
	if errors.As(err, &me) {
		return me.withoutFile(), true
	}
	var ie *iodefError
	if errors.As(err, &ie) {
		return ie.withoutFile(), true
	}
	return "", false
}

// xnode is an XML element with its position and whether the mapping used
// it.
type xnode struct {
	name      xml.Name
	attrs     []*xattr
	kids      []*xnode
	parent    *xnode
	text      []byte
	line, col int
	used      bool
	why       string // why the mapping left it out, when that is not obvious
}

type xattr struct {
	name  xml.Name
	value string
	used  bool
}

// readXMLTree reads the element tree of data, bounded in depth and size.
func readXMLTree(name string, data []byte) (*xnode, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		root  *xnode
		stack []*xnode
		count int
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
	fail := func(line, col int, elem, format string, args ...any) error {
		return &iodefError{file: name, line: line, col: col, elem: elem, msg: fmt.Sprintf(format, args...)}
	}
	for {
		line, col := dec.InputPos()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if root == nil {
				return nil, fail(line, col, "IODEF-Document", "no XML element: not an IODEF document")
			}
			if len(stack) > 0 {
				return nil, fail(line, col, where(), "the document ends before </%s>", stack[len(stack)-1].name.Local)
			}
			return root, nil
		}
		if err != nil {
			l, c := dec.InputPos()
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
			if len(stack) >= maxIODEFDepth {
				return nil, fail(line, col, where()+"/"+t.Name.Local, "elements nested more than %d deep", maxIODEFDepth)
			}
			if count++; count > maxIODEFElements {
				return nil, fail(line, col, where()+"/"+t.Name.Local, "more than %d elements", maxIODEFElements)
			}
			n := &xnode{name: t.Name, line: line, col: col}
			for _, a := range t.Attr {
				n.attrs = append(n.attrs, &xattr{name: a.Name, value: a.Value})
			}
			if len(stack) == 0 {
				root = n
			} else {
				n.parent = stack[len(stack)-1]
				n.parent.kids = append(n.parent.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, fail(line, col, "IODEF-Document", "text outside the document element")
				}
				continue
			}
			top := stack[len(stack)-1]
			top.text = append(top.text, t...)
		}
		// Comments, processing instructions and directives carry no
		// incident data. The decoder expands no entity a DTD declares.
	}
}

// attr returns the unqualified attribute local and marks it used.
func (n *xnode) attr(local string) (string, bool) {
	a := n.attrRef(local)
	if a == nil {
		return "", false
	}
	a.used = true
	return strings.TrimSpace(a.value), true
}

func (n *xnode) attrRef(local string) *xattr {
	for _, a := range n.attrs {
		if a.name.Space == "" && a.name.Local == local {
			return a
		}
	}
	return nil
}

// lang is the element's xml:lang (IODEF v2) or lang (v1) attribute.
func (n *xnode) lang() string {
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
func (n *xnode) textValue() string {
	n.used = true
	return strings.TrimSpace(string(n.text))
}

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

func attrLabel(a *xattr) string {
	v := oneLineText(a.value, 40)
	name := a.name.Local
	if p := nsPrefix(a.name.Space); p != "" {
		name = p + ":" + name
	}
	return "@" + name + "=" + v
}

// nsPrefix is the customary prefix of a namespace other than IODEF's.
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
	return "{" + space + "}"
}

// iodefMapper maps one Incident element.
type iodefMapper struct {
	file     string
	ns       string // the document's IODEF namespace
	v1       bool
	lang     string // the document's language, for descriptions without one
	incident *xnode
	label    string // "Incident", or "Incident[2]" in a document of several

	inc      *irxv1.Incident
	incRestr irxv1.Restriction // what the incident's parts inherit in irx
	taxa     []*irxv1.Taxonomy // derived from the document, in order
	notes    []string          // values mapped with a loss
	errs     []*iodefError
}

// path names n from its Incident (or the document) down, as messages show
// it.
func (m *iodefMapper) path(n *xnode) string {
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
func (m *iodefMapper) errf(n *xnode, attr, format string, args ...any) {
	if len(m.errs) >= 20 {
		return
	}
	elem := m.path(n)
	if attr != "" {
		elem += "@" + attr
	}
	m.errs = append(m.errs, &iodefError{file: m.file, line: n.line, col: n.col, elem: elem, msg: fmt.Sprintf(format, args...)})
}

// note records a value mapped with a loss.
func (m *iodefMapper) note(n *xnode, attr, value, format string, args ...any) {
	s := m.path(n)
	if attr != "" {
		s += "@" + attr + "=" + value
	}
	m.notes = append(m.notes, s+" ("+fmt.Sprintf(format, args...)+")")
}

// kids returns n's IODEF children named local, marking them used.
func (m *iodefMapper) kids(n *xnode, local string) []*xnode {
	return m.kidsNS(n, m.ns, local)
}

func (m *iodefMapper) kidsNS(n *xnode, space, local string) []*xnode {
	var out []*xnode
	for _, k := range n.kids {
		if k.name.Space == space && k.name.Local == local {
			k.used = true
			out = append(out, k)
		}
	}
	return out
}

// kid returns n's first IODEF child named local, marking it used; further
// ones stay unused, so the warning lists them: irx keeps one.
func (m *iodefMapper) kid(n *xnode, local string) *xnode {
	for _, k := range n.kids {
		if k.name.Space == m.ns && k.name.Local == local {
			k.used = true
			return k
		}
	}
	return nil
}

// collectIgnored appends the path of every unused element (not its
// descendants: the whole element was ignored) and unused attribute.
func (m *iodefMapper) collectIgnored(n *xnode, out *[]string) {
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
	for _, k := range n.kids {
		m.collectIgnored(k, out)
	}
}

// --- enumerated attributes ---

// iodefEnum is an IODEF enumerated attribute: every value IODEF defines,
// in the RFC's order, and the irx value of those irx has.
type iodefEnum[T any] struct {
	what   string
	values []string
	to     map[string]T
}

// enumAttr reads attribute attr of n. ok is true when it is present and irx
// has its value. A value irx has no equivalent for stays unused, so the
// warning lists it (with its ext-* attribute); a value IODEF does not
// define is an error.
func enumAttr[T any](m *iodefMapper, n *xnode, attr string, e iodefEnum[T]) (v T, raw string, ok bool) {
	a := n.attrRef(attr)
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

var (
	purposeEnum = iodefEnum[irxv1.Purpose]{
		what:   "purpose",
		values: []string{"traceback", "mitigation", "reporting", "watch", "other", "ext-value"},
		to: map[string]irxv1.Purpose{
			"traceback": irxv1.Purpose_PURPOSE_TRACEBACK, "mitigation": irxv1.Purpose_PURPOSE_MITIGATION,
			"reporting": irxv1.Purpose_PURPOSE_REPORTING, "watch": irxv1.Purpose_PURPOSE_WATCH,
			// An extended purpose is "something else"; its name is listed.
			"other": irxv1.Purpose_PURPOSE_OTHER, "ext-value": irxv1.Purpose_PURPOSE_OTHER,
		},
	}
	statusEnum = iodefEnum[irxv1.Status]{
		what:   "status",
		values: []string{"new", "in-progress", "forwarded", "resolved", "future", "ext-value"},
		to: map[string]irxv1.Status{
			"new": irxv1.Status_STATUS_NEW, "in-progress": irxv1.Status_STATUS_IN_PROGRESS,
			"forwarded": irxv1.Status_STATUS_FORWARDED, "resolved": irxv1.Status_STATUS_RESOLVED,
			"future": irxv1.Status_STATUS_FUTURE,
		},
	}
	contactRoleEnum = iodefEnum[irxv1.ContactRole]{
		what: "contact role",
		values: []string{"creator", "reporter", "admin", "tech", "provider", "user", "billing", "legal", "abuse", "irt",
			"cc", "cc-irt", "leo", "vendor", "vendor-support", "victim", "victim-notified", "ext-value"},
		to: map[string]irxv1.ContactRole{
			"creator": irxv1.ContactRole_CONTACT_ROLE_CREATOR, "reporter": irxv1.ContactRole_CONTACT_ROLE_REPORTER,
			"admin": irxv1.ContactRole_CONTACT_ROLE_ADMIN, "tech": irxv1.ContactRole_CONTACT_ROLE_TECH,
			"provider": irxv1.ContactRole_CONTACT_ROLE_PROVIDER, "user": irxv1.ContactRole_CONTACT_ROLE_USER,
			"billing": irxv1.ContactRole_CONTACT_ROLE_BILLING, "legal": irxv1.ContactRole_CONTACT_ROLE_LEGAL,
			"irt": irxv1.ContactRole_CONTACT_ROLE_IRT,
			// RFC 7970: "a CSIRT ... coordinating activity"; irx: "A CSIRT
			// coordinating the incident".
			"cc-irt": irxv1.ContactRole_CONTACT_ROLE_CERT,
			"leo":    irxv1.ContactRole_CONTACT_ROLE_LEO, "vendor": irxv1.ContactRole_CONTACT_ROLE_VENDOR,
			"vendor-support": irxv1.ContactRole_CONTACT_ROLE_VENDOR_SUPPORT, "victim": irxv1.ContactRole_CONTACT_ROLE_VICTIM,
			"victim-notified": irxv1.ContactRole_CONTACT_ROLE_VICTIM_NOTIFIED,
		},
	}
	contactTypeEnum = iodefEnum[irxv1.ContactType]{
		what:   "contact type",
		values: []string{"person", "organization", "ext-value"},
		to: map[string]irxv1.ContactType{
			"person": irxv1.ContactType_CONTACT_TYPE_PERSON, "organization": irxv1.ContactType_CONTACT_TYPE_ORGANIZATION,
		},
	}
	telephoneTypeEnum = iodefEnum[string]{
		what:   "telephone type",
		values: []string{"wired", "mobile", "fax", "hotline", "ext-value"},
		to:     map[string]string{"fax": "fax"},
	}
	emailTypeEnum = iodefEnum[string]{
		what:   "email type",
		values: []string{"direct", "hotline", "ext-value"},
		to:     map[string]string{},
	}
	discoverySourceEnum = discoverySources("discovery source", []string{"nidps", "hips", "siem", "av", "third-party-monitoring", "incident", "os-log", "application-log",
		"device-log", "network-flow", "passive-dns", "investigation", "audit", "internal-notification",
		"external-notification", "leo", "partner", "actor", "unknown", "ext-value"})
	occurrenceEnum = iodefEnum[irxv1.Occurrence]{
		what:   "occurrence",
		values: []string{"actual", "potential"},
		to:     map[string]irxv1.Occurrence{"actual": irxv1.Occurrence_OCCURRENCE_ACTUAL, "potential": irxv1.Occurrence_OCCURRENCE_POTENTIAL},
	}
	severityEnum = iodefEnum[irxv1.Severity]{
		what:   "severity",
		values: []string{"low", "medium", "high"},
		to:     map[string]irxv1.Severity{"low": irxv1.Severity_SEVERITY_LOW, "medium": irxv1.Severity_SEVERITY_MEDIUM, "high": irxv1.Severity_SEVERITY_HIGH},
	}
	businessSeverityEnum = iodefEnum[irxv1.Severity]{
		what:   "business impact severity",
		values: []string{"none", "low", "medium", "high", "unknown", "ext-value"},
		to: map[string]irxv1.Severity{
			"low": irxv1.Severity_SEVERITY_LOW, "medium": irxv1.Severity_SEVERITY_MEDIUM, "high": irxv1.Severity_SEVERITY_HIGH,
			"unknown": irxv1.Severity_SEVERITY_UNSPECIFIED, // what unset means
		},
	}
	completionEnum = iodefEnum[bool]{
		what:   "completion",
		values: []string{"failed", "succeeded"},
		to:     map[string]bool{"failed": false, "succeeded": true},
	}
	systemImpactTypeEnum = keptEnum("system impact type", []string{"takeover-account", "takeover-service", "takeover-system", "cps-manipulation", "cps-damage",
		"availability-data", "availability-account", "availability-service", "availability-system", "damaged-system",
		"damaged-data", "breach-proprietary", "breach-privacy", "breach-credential", "breach-configuration",
		"integrity-data", "integrity-configuration", "integrity-hardware", "traffic-redirection", "monitoring-traffic",
		"monitoring-host", "policy", "unknown", "ext-value"})
	businessImpactTypeEnum = keptEnum("business impact type", []string{"breach-proprietary", "breach-privacy", "breach-credential", "loss-of-integrity", "loss-of-service",
		"theft-financial", "theft-service", "degraded-reputation", "asset-damage", "asset-manipulation", "legal",
		"extortion", "unknown", "ext-value"})
	systemCategoryEnum = iodefEnum[string]{
		what:   "system category",
		values: []string{"source", "target", "intermediate", "sensor", "infrastructure", "ext-value"},
		to: map[string]string{"source": "source", "target": "target", "intermediate": "intermediate",
			"sensor": "sensor", "infrastructure": "infrastructure"},
	}
	// ipv6-net-mask is RFC 5070's; RFC 7970 has ipv6-net-masked.
	addressCategoryEnum = keptEnum("address category", []string{"asn", "atm", "e-mail", "mac", "ipv4-addr", "ipv4-net", "ipv4-net-masked", "ipv4-net-mask",
		"ipv6-addr", "ipv6-net", "ipv6-net-masked", "ipv6-net-mask", "site-uri", "ext-value"})
	nodeRoleEnum = keptEnum("node role category", []string{"client", "client-enterprise", "client-partner", "client-remote", "client-kiosk", "client-mobile",
		"server-internal", "server-public", "www", "mail", "webmail", "messaging", "streaming", "voice", "file", "ftp",
		"p2p", "name", "directory", "credential", "print", "application", "database", "backup", "dhcp", "assessment",
		"source-control", "config-management", "monitoring", "infra", "infra-firewall", "infra-router",
		"infra-switch", "camera", "proxy", "remote-access", "log", "virtualization", "pos", "scada",
		"scada-supervisory", "sinkhole", "honeypot", "anonymization", "c2-server", "malware-distribution",
		"drop-server", "hop-point", "reflector", "phishing-site", "spear-phishing-site", "recruiting-site",
		"fraudulent-site", "ext-value"})
	historyActionEnum = iodefEnum[irxv1.HistoryAction]{
		what: "action",
		values: []string{"nothing", "contact-source-site", "contact-target-site", "contact-sender", "investigate",
			"block-host", "block-network", "block-port", "rate-limit-host", "rate-limit-network", "rate-limit-port",
			"redirect-traffic", "honeypot", "upgrade-software", "rebuild-asset", "harden-asset", "remediate-other",
			"status-triage", "status-new-info", "watch-and-report", "training", "defined-coa", "other", "ext-value"},
		to: map[string]irxv1.HistoryAction{
			"nothing": irxv1.HistoryAction_HISTORY_ACTION_NOTHING, "contact-source-site": irxv1.HistoryAction_HISTORY_ACTION_CONTACT_SOURCE_SITE,
			"contact-target-site": irxv1.HistoryAction_HISTORY_ACTION_CONTACT_TARGET_SITE, "contact-sender": irxv1.HistoryAction_HISTORY_ACTION_CONTACT_SENDER,
			"investigate": irxv1.HistoryAction_HISTORY_ACTION_INVESTIGATE, "block-host": irxv1.HistoryAction_HISTORY_ACTION_BLOCK_HOST,
			"block-network": irxv1.HistoryAction_HISTORY_ACTION_BLOCK_NETWORK, "block-port": irxv1.HistoryAction_HISTORY_ACTION_BLOCK_PORT,
			"rate-limit-host": irxv1.HistoryAction_HISTORY_ACTION_RATE_LIMIT_HOST, "remediate-other": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"status-triage": irxv1.HistoryAction_HISTORY_ACTION_STATUS_TRIAGE, "status-new-info": irxv1.HistoryAction_HISTORY_ACTION_STATUS_NEW_INFO,
			"watch-and-report": irxv1.HistoryAction_HISTORY_ACTION_WATCH_AND_REPORT, "other": irxv1.HistoryAction_HISTORY_ACTION_OTHER,
			// Remediations irx has no value of its own for are "another
			// remediation"; the rest "something else". Both are noted.
			"rate-limit-network": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER, "rate-limit-port": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"redirect-traffic": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER, "honeypot": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"upgrade-software": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER, "rebuild-asset": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"harden-asset": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"training":     irxv1.HistoryAction_HISTORY_ACTION_OTHER, "defined-coa": irxv1.HistoryAction_HISTORY_ACTION_OTHER,
			"ext-value": irxv1.HistoryAction_HISTORY_ACTION_OTHER,
		},
	}
	confidenceRatingEnum = iodefEnum[string]{
		what:   "confidence rating",
		values: []string{"low", "medium", "high", "numeric", "unknown", "ext-value"},
		to:     map[string]string{"low": "low", "medium": "medium", "high": "high", "numeric": "numeric", "unknown": "unknown"},
	}
	recordDtypeEnum = iodefEnum[string]{
		what: "dtype",
		values: []string{"boolean", "byte", "bytes", "character", "date-time", "integer", "ntpstamp", "portlist", "real",
			"string", "file", "path", "frame", "packet", "ipv4-packet", "ipv6-packet", "url", "csv", "winreg", "xml",
			"json", "ext-value"},
		// Log lines are text; binary and structured items are not.
		to: map[string]string{"string": "text/plain", "csv": "text/csv", "json": "application/json"},
	}
	hashScopeEnum = iodefEnum[string]{
		what: "hash scope",
		values: []string{"file-contents", "file-pe-section", "file-pe-iat", "file-pe-resource", "file-pdf-object",
			"email-hash", "email-headers-hash", "email-body-hash", "ext-value"},
		to: map[string]string{"file-contents": "file-contents"},
	}
	bulkObservableTypeEnum = iodefEnum[irxv1.IndicatorKind]{
		what: "bulk observable type",
		values: []string{"asn", "atm", "e-mail", "ipv4-addr", "ipv4-net", "ipv4-net-mask", "ipv6-addr", "ipv6-net",
			"ipv6-net-mask", "mac", "site-uri", "domain-name", "domain-to-ipv4", "domain-to-ipv6",
			"domain-to-ipv4-timestamp", "domain-to-ipv6-timestamp", "ipv4-port", "ipv6-port", "windows-reg-key",
			"file-hash", "email-x-mailer", "email-subject", "http-user-agent", "http-request-uri", "mutex", "file-path",
			"user-name", "ext-value"},
		to: map[string]irxv1.IndicatorKind{
			"asn": irxv1.IndicatorKind_INDICATOR_KIND_ASN, "e-mail": irxv1.IndicatorKind_INDICATOR_KIND_EMAIL,
			"ipv4-addr": irxv1.IndicatorKind_INDICATOR_KIND_IPV4, "ipv4-net": irxv1.IndicatorKind_INDICATOR_KIND_IPV4,
			"ipv6-addr": irxv1.IndicatorKind_INDICATOR_KIND_IPV6, "ipv6-net": irxv1.IndicatorKind_INDICATOR_KIND_IPV6,
			"site-uri": irxv1.IndicatorKind_INDICATOR_KIND_URL, "domain-name": irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN,
			"file-hash": irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, "file-path": irxv1.IndicatorKind_INDICATOR_KIND_FILE_NAME,
		},
	}
)

// keptEnum is an IODEF enumeration whose values irx keeps as IODEF's
// strings.
func keptEnum(what string, values []string) iodefEnum[string] {
	return iodefEnum[string]{what: what, values: values, to: identity(values)}
}

// discoverySources maps RFC 7970's discovery sources to irx's values of
// the same name.
func discoverySources(what string, values []string) iodefEnum[irxv1.DiscoverySource] {
	to := make(map[string]irxv1.DiscoverySource, len(values))
	for _, v := range values {
		if v == "ext-value" {
			continue
		}
		name := "DISCOVERY_SOURCE_" + strings.ToUpper(strings.ReplaceAll(v, "-", "_"))
		to[v] = irxv1.DiscoverySource(irxv1.DiscoverySource_value[name])
	}
	return iodefEnum[irxv1.DiscoverySource]{what: what, values: values, to: to}
}

func identity(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for _, v := range values {
		m[v] = v
	}
	return m
}

// --- restrictions ---

// restrictionRank orders restrictions from the least to the most strict.
func restrictionRank(r irxv1.Restriction) int {
	switch r {
	case irxv1.Restriction_RESTRICTION_PUBLIC:
		return 1
	case irxv1.Restriction_RESTRICTION_PARTNER:
		return 2
	case irxv1.Restriction_RESTRICTION_NEED_TO_KNOW:
		return 3
	}
	return 4 // private, and unspecified, which defaults to private
}

// restriction reads n's restriction attribute and returns what n's content
// is restricted to, given what it inherits; tlp is set when the value is a
// TLP colour. RFC 7970 section 3.3.1: white, green, amber and red are the
// same as public, partner, need-to-know and private; "default" (the
// parties' own agreement) keeps what is inherited.
func (m *iodefMapper) restriction(n *xnode, inherited irxv1.Restriction) (r irxv1.Restriction, tlp irxv1.Tlp) {
	a := n.attrRef("restriction")
	if a == nil {
		return inherited, 0
	}
	a.used = true
	v := strings.TrimSpace(a.value)
	switch v {
	case "default":
		return inherited, 0
	case "public":
		return irxv1.Restriction_RESTRICTION_PUBLIC, 0
	case "partner":
		return irxv1.Restriction_RESTRICTION_PARTNER, 0
	case "need-to-know":
		return irxv1.Restriction_RESTRICTION_NEED_TO_KNOW, 0
	case "private":
		return irxv1.Restriction_RESTRICTION_PRIVATE, 0
	// irx.v1.Tlp: IODEF's "white" is TLP_CLEAR and its "amber" is
	// TLP_AMBER_STRICT.
	case "white":
		return irxv1.Restriction_RESTRICTION_PUBLIC, irxv1.Tlp_TLP_CLEAR
	case "green":
		return irxv1.Restriction_RESTRICTION_PARTNER, irxv1.Tlp_TLP_GREEN
	case "amber":
		return irxv1.Restriction_RESTRICTION_NEED_TO_KNOW, irxv1.Tlp_TLP_AMBER_STRICT
	case "red":
		return irxv1.Restriction_RESTRICTION_PRIVATE, irxv1.Tlp_TLP_RED
	case "ext-value":
		// An extended restriction irx cannot know: the strictest.
		ext, _ := n.attr("ext-restriction")
		m.note(n, "restriction", "ext-value", "ext-restriction %q kept as private", ext)
		return irxv1.Restriction_RESTRICTION_PRIVATE, 0
	}
	m.errf(n, "restriction", "%q is not an IODEF restriction; one of default, public, partner, need-to-know, private, white, green, amber, red, ext-value", v)
	return inherited, 0
}

// part is the restriction an irx part gets: unspecified when it would
// inherit the same from the incident.
func (m *iodefMapper) part(r irxv1.Restriction) irxv1.Restriction {
	if r == m.incRestr {
		return irxv1.Restriction_RESTRICTION_UNSPECIFIED
	}
	return r
}

// unrestrictable reports whether a part with restriction r cannot be kept
// in an irx part that has no restriction of its own (it would inherit the
// incident's, which is less strict); such a part is left out.
func (m *iodefMapper) unrestrictable(n *xnode, r irxv1.Restriction) bool {
	if restrictionRank(r) <= restrictionRank(m.incRestr) {
		return false
	}
	n.used = false
	n.why = "its restriction is stricter than the incident's and irx keeps none here"
	return true
}

// --- values ---

func (m *iodefMapper) timestamp(n *xnode) *timestamppb.Timestamp {
	s := n.textValue()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		m.errf(n, "", "%q is not a date and time with a time zone (RFC 3339, e.g. 2026-03-01T12:00:00Z)", s)
		return nil
	}
	ts := timestamppb.New(t)
	if err := ts.CheckValid(); err != nil {
		m.errf(n, "", "%q is out of range (years 1 to 9999)", s)
		return nil
	}
	return ts
}

// confidence converts an IODEF Confidence to irx's 0 to 100. The ratings
// low, medium and high take the values of the STIX 2.1 "None/Low/Med/High"
// scale (15, 50, 85); a numeric value from 0 to 1 is a fraction, above 1 a
// percentage.
func (m *iodefMapper) confidence(n *xnode) (uint32, bool) {
	rating, raw, ok := enumAttr(m, n, "rating", confidenceRatingEnum)
	switch {
	case raw == "":
		rating = "numeric" // the rating is required; a number says which
	case !ok:
		n.used = false // ext-value, or not IODEF (an error already)
		return 0, false
	}
	n.used = true
	switch rating {
	case "low":
		return 15, true
	case "medium":
		return 50, true
	case "high":
		return 85, true
	case "unknown":
		return 0, false
	}
	s := n.textValue()
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(f):
		m.errf(n, "", "%q is not a number", s)
		return 0, false
	case f < 0 || f > 100:
		m.errf(n, "", "%s is outside 0 to 1 (a fraction) and 0 to 100 (a percentage)", s)
		return 0, false
	case f <= 1:
		f *= 100
	}
	return uint32(math.Round(f)), true
}

func (m *iodefMapper) uintText(n *xnode, what string, max uint64) (uint64, bool) {
	s := n.textValue()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		m.errf(n, "", "%q is not a %s (0 to %d)", s, what, max)
		return 0, false
	}
	return v, true
}

func parseASN(s string) (uint32, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "AS"), "as")
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// ipValue checks s against an address category: "ipv4-addr" wants an IPv4
// address, "ipv4-net" an IPv4 CIDR prefix, and likewise for IPv6; "" takes
// either. It returns the value as irx stores it and whether it is IPv4.
func ipValue(category, s string) (string, bool, error) {
	var (
		addr     netip.Addr
		isPrefix bool
	)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		addr = a
	} else if p, err := netip.ParsePrefix(s); err == nil {
		addr, isPrefix = p.Addr(), true
	} else {
		return "", false, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	v4 := addr.Is4()
	v6 := addr.Is6() && !addr.Is4In6()
	switch category {
	case "ipv4-addr":
		if !v4 || isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv4 address", s)
		}
	case "ipv4-net":
		if !v4 || !isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv4 CIDR prefix", s)
		}
	case "ipv6-addr":
		if !v6 || isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv6 address", s)
		}
	case "ipv6-net":
		if !v6 || !isPrefix {
			return "", false, fmt.Errorf("%q is not an IPv6 CIDR prefix", s)
		}
	default:
		if !v4 && !v6 {
			return "", false, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 address", s)
		}
	}
	return s, v4, nil
}

// firstText is the text of n's first IODEF child named local ("" if none);
// further ones are listed as ignored.
func (m *iodefMapper) firstText(n *xnode, local string) string {
	if k := m.kid(n, local); k != nil {
		return k.textValue()
	}
	return ""
}

// --- the Incident ---

func (m *iodefMapper) mapIncident(n *xnode, opts iodefOptions) *irxv1.Incident {
	inc := &irxv1.Incident{}
	m.inc = inc
	if v, _, ok := enumAttr(m, n, "purpose", purposeEnum); ok {
		inc.Purpose = v
	}
	if v, _, ok := enumAttr(m, n, "status", statusEnum); ok {
		inc.Status = v
	}
	if l := n.lang(); l != "" {
		m.lang = l
	}
	r, docTLP := m.restriction(n, irxv1.Restriction_RESTRICTION_UNSPECIFIED)
	inc.Restriction = r
	m.incRestr = r
	if r == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		m.incRestr = irxv1.Restriction_RESTRICTION_PRIVATE // the default the team applies
	}

	// Our team assigns the ticket; the sender's IncidentID is its
	// alternative id, its name the sender's team.
	if id := m.kid(n, "IncidentID"); id != nil {
		if alt := m.incidentID(id, m.incRestr); alt != nil {
			inc.AlternativeIds = append(inc.AlternativeIds, alt)
		}
	} else {
		m.errf(n, "", "has no IncidentID (RFC 7970 requires one)")
	}
	for _, a := range m.kids(n, "AlternativeID") {
		ar, _ := m.restriction(a, m.incRestr)
		for _, id := range m.kids(a, "IncidentID") {
			if alt := m.incidentID(id, ar); alt != nil {
				inc.AlternativeIds = append(inc.AlternativeIds, alt)
			}
		}
	}
	for _, ra := range m.kids(n, "RelatedActivity") {
		m.relatedActivity(ra, m.incRestr)
	}

	times := []struct {
		name string
		dst  **timestamppb.Timestamp
	}{
		{"DetectTime", &inc.DetectTime}, {"StartTime", &inc.StartTime}, {"EndTime", &inc.EndTime},
		{"RecoveryTime", &inc.RecoveryTime}, {"ReportTime", &inc.ReportTime},
	}
	for _, t := range times {
		if k := m.kid(n, t.name); k != nil {
			*t.dst = m.timestamp(k)
		}
	}
	m.kid(n, "GenerationTime") // output only in irx: each version gets its own

	m.descriptions(n, m.incRestr)
	for _, k := range m.kids(n, "Discovery") {
		m.discovery(k, m.incRestr)
	}
	for _, k := range m.kids(n, "Assessment") {
		m.assessment(k, m.incRestr)
	}
	for _, k := range m.kids(n, "Method") {
		m.method(k, m.incRestr)
	}
	for _, k := range m.kids(n, "Contact") {
		m.contact(k, m.incRestr, "")
	}
	for _, k := range m.kids(n, "EventData") {
		m.eventData(k, m.incRestr)
	}
	for _, k := range m.kids(n, "IndicatorData") {
		for _, ind := range m.kids(k, "Indicator") {
			m.indicator(ind, m.incRestr)
		}
	}
	for _, k := range m.kids(n, "History") {
		hr, _ := m.restriction(k, m.incRestr)
		for _, item := range m.kids(k, "HistoryItem") {
			m.historyItem(item, hr)
		}
	}

	if inc.StartTime != nil && inc.EndTime != nil && inc.EndTime.AsTime().Before(inc.StartTime.AsTime()) {
		m.errf(m.kid(n, "EndTime"), "", "is before StartTime")
	}

	// TLP: the document's own marking wins; --tlp fills in.
	switch {
	case docTLP != 0:
		inc.Tlp = docTLP
		if opts.tlp != 0 && opts.tlp != docTLP {
			m.note(n, "restriction", n.attrRef("restriction").value, "%s kept over --tlp %s", tlpLabel(docTLP), tlpLabel(opts.tlp))
		}
	case opts.tlp != 0:
		inc.Tlp = opts.tlp
	default:
		m.errf(n, "", "IODEF has no TLP: pass --tlp (the Incident's restriction is not white, green, amber or red)")
	}
	// Taxonomy: derived from the document, else --taxonomy.
	switch {
	case len(m.taxa) > 0:
		inc.Taxonomy = m.taxa[0]
		inc.AdditionalTaxonomies = m.taxa[1:]
	case opts.taxonomy != nil:
		inc.Taxonomy = proto.Clone(opts.taxonomy).(*irxv1.Taxonomy)
	default:
		m.errf(n, "", "no Reference Security Incident Taxonomy entry can be derived from the document "+
			"(Assessment/IncidentCategory or a Method/Reference such as rsit:class=\"type\"): pass --taxonomy CLASS/TYPE")
	}
	if len(m.errs) > 0 {
		return nil
	}
	// What the team would refuse is refused here, naming the element: the
	// checks above cover the record's rules; this is the backstop (and the
	// size limit).
	if err := record.Validate(inc, "incident"); err != nil {
		m.errf(n, "", "the incident made from it is invalid: %v", err)
		return nil
	}
	if _, err := proto.Marshal(inc); err != nil {
		m.errf(n, "", "the incident made from it cannot be encoded: %v", err)
		return nil
	}
	return inc
}

// incidentID maps an IncidentID to an alternative id: name is the team
// that issued the ticket.
func (m *iodefMapper) incidentID(n *xnode, inherited irxv1.Restriction) *irxv1.AlternativeId {
	team, ok := n.attr("name")
	ticket := n.textValue()
	switch {
	case !ok || team == "":
		m.errf(n, "name", "is required: the team (CSIRT) that issued the id")
		return nil
	case ticket == "":
		m.errf(n, "", "is empty: want the ticket")
		return nil
	}
	r, _ := m.restriction(n, inherited)
	return &irxv1.AlternativeId{
		TeamId: team, Ticket: ticket,
		// RFC 7970: IncidentID and AlternativeID are CSIRTs' tracking numbers.
		Kind:        irxv1.AlternativeIdKind_ALTERNATIVE_ID_KIND_RESPONSE_TEAM,
		Restriction: m.part(r),
	}
}

func (m *iodefMapper) relatedActivity(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	if m.unrestrictable(n, r) {
		return
	}
	ra := m.inc.RelatedActivity
	if ra == nil {
		ra = &irxv1.RelatedActivity{}
	}
	for _, id := range m.kids(n, "IncidentID") {
		team, _ := id.attr("name")
		full := team + ":" + id.textValue()
		if _, err := record.ParseID(full); err != nil {
			// irx relates incidents by "<team-id>:<ticket>" only.
			id.used = false
			continue
		}
		if _, ok := id.attr("restriction"); ok {
			if ir, _ := m.restriction(id, r); m.unrestrictable(id, ir) {
				continue
			}
		}
		ra.IncidentIds = append(ra.IncidentIds, full)
	}
	named := func(kind, idName string, dst *[]string) {
		for _, k := range m.kids(n, kind) {
			kr, _ := m.restriction(k, r)
			if m.unrestrictable(k, kr) {
				continue
			}
			ids := m.kids(k, idName)
			var names []string
			for _, id := range ids {
				if s := id.textValue(); s != "" {
					names = append(names, s)
				}
			}
			if len(names) == 0 {
				// No identifier: the description names it.
				if d := m.kid(k, "Description"); d != nil {
					if s := d.textValue(); s != "" {
						names = append(names, s)
					}
				}
			}
			if len(names) == 0 {
				k.used = false
				continue
			}
			*dst = append(*dst, names...)
		}
	}
	named("ThreatActor", "ThreatActorID", &ra.ThreatActors)
	named("Campaign", "CampaignID", &ra.Campaigns)
	if len(ra.IncidentIds)+len(ra.ThreatActors)+len(ra.Campaigns) > 0 {
		m.inc.RelatedActivity = ra
	}
}

// descriptions maps n's Description children to the incident's.
func (m *iodefMapper) descriptions(n *xnode, r irxv1.Restriction) {
	for _, d := range m.kids(n, "Description") {
		lang := d.lang()
		if lang == "" {
			lang = m.lang
		}
		if lang != "" && !record.ValidLanguageTag(lang) {
			// xml:lang is free text to XML; irx keeps only BCP 47 tags,
			// the text is worth keeping without one.
			m.note(d, "xml:lang", lang, "not a BCP 47 language tag: the text is kept without a language")
			lang = ""
		}
		if text := d.textValue(); text != "" {
			m.inc.Descriptions = append(m.inc.Descriptions, &irxv1.Description{Lang: lang, Text: text, Restriction: m.part(r)})
		}
	}
}

func (m *iodefMapper) discovery(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	if m.unrestrictable(n, r) {
		return
	}
	d := &irxv1.Discovery{}
	if v, _, ok := enumAttr(m, n, "source", discoverySourceEnum); ok {
		d.Source = v
	}
	d.Description = m.firstText(n, "Description")
	m.inc.Discoveries = append(m.inc.Discoveries, d)
}

func (m *iodefMapper) assessment(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	a := &irxv1.Assessment{Restriction: m.part(r)}
	if v, _, ok := enumAttr(m, n, "occurrence", occurrenceEnum); ok {
		a.Occurrence = v
	}
	for _, c := range m.kids(n, "IncidentCategory") {
		if t, ok := rsitEntry(c.textValue(), true); ok {
			m.addTaxonomy(t)
		} else {
			c.used = false
		}
	}
	for _, k := range m.kids(n, "SystemImpact") {
		si := &irxv1.SystemImpact{}
		if v, _, ok := enumAttr(m, k, "severity", severityEnum); ok {
			si.Severity = v
		}
		if v, _, ok := enumAttr(m, k, "completion", completionEnum); ok {
			si.Successful = v
		}
		si.Type = m.impactType(k, systemImpactTypeEnum)
		si.Description = m.firstText(k, "Description")
		a.SystemImpacts = append(a.SystemImpacts, si)
	}
	for _, k := range m.kids(n, "BusinessImpact") {
		bi := &irxv1.BusinessImpact{}
		if v, _, ok := enumAttr(m, k, "severity", businessSeverityEnum); ok {
			bi.Severity = v
		}
		bi.Type = m.impactType(k, businessImpactTypeEnum)
		bi.Description = m.firstText(k, "Description")
		a.BusinessImpacts = append(a.BusinessImpacts, bi)
	}
	for _, k := range m.kids(n, "MonetaryImpact") {
		if a.MonetaryImpact != nil {
			k.used = false // irx keeps one
			continue
		}
		a.MonetaryImpact = m.monetaryImpact(k)
	}
	if c := m.kid(n, "Confidence"); c != nil {
		a.Confidence, _ = m.confidence(c)
	}
	if a.Occurrence != 0 || len(a.SystemImpacts)+len(a.BusinessImpacts) > 0 || a.MonetaryImpact != nil || a.Confidence != 0 {
		m.inc.Assessments = append(m.inc.Assessments, a)
	}
}

// impactType is the type attribute of an impact, as IODEF names it (irx
// keeps the string); an extended type is kept by its ext-type name.
func (m *iodefMapper) impactType(n *xnode, e iodefEnum[string]) string {
	v, raw, ok := enumAttr(m, n, "type", e)
	if !ok {
		return ""
	}
	if raw == "ext-value" {
		if ext, ok := n.attr("ext-type"); ok && ext != "" {
			return ext
		}
	}
	return v
}

func (m *iodefMapper) monetaryImpact(n *xnode) *irxv1.MonetaryImpact {
	cur, ok := n.attr("currency")
	if !ok {
		// An amount in no currency says nothing irx can keep.
		n.used = false
		return nil
	}
	cur = strings.ToUpper(cur)
	if !record.ValidCurrency(cur) {
		m.errf(n, "currency", "%q is not a current ISO 4217 currency code", cur)
		return nil
	}
	s := n.textValue()
	f, err := strconv.ParseFloat(s, 64)
	exp, ok := record.CurrencyMinorUnits(cur)
	if !ok {
		exp = 2 // the list gives none (gold, units of account): cents, as before
	}
	minor := f * math.Pow10(exp)
	if err != nil || math.IsNaN(f) || f < 0 || minor > 9e18 {
		m.errf(n, "", "%q is not an amount of money", s)
		return nil
	}
	return &irxv1.MonetaryImpact{Currency: cur, AmountMinor: int64(math.Round(minor))}
}

var (
	cvePattern   = regexp.MustCompile(`^(?i)CVE-\d{4}-\d{4,}$`)
	cwePattern   = regexp.MustCompile(`^(?i)CWE-\d+$`)
	capecPattern = regexp.MustCompile(`^(?i)CAPEC-\d+$`)
)

func (m *iodefMapper) method(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	mt := &irxv1.Method{Restriction: m.part(r)}
	for _, ref := range m.kids(n, "Reference") {
		m.reference(ref, mt)
	}
	mt.Description = m.firstText(n, "Description")
	// RFC 7203 structured references: the enumeration id is the ID
	// attribute.
	for _, k := range m.kidsNS(n, iodefSciNS, "AttackPattern") {
		k.attr("SpecID")
		if id, ok := k.attr("ID"); ok && id != "" {
			mt.AttackPatterns = append(mt.AttackPatterns, strings.ToUpper(id))
		} else {
			k.used = false
		}
	}
	for _, k := range m.kidsNS(n, iodefSciNS, "Weakness") {
		k.attr("SpecID")
		if id, ok := k.attr("ID"); ok && id != "" {
			mt.Weaknesses = append(mt.Weaknesses, strings.ToUpper(id))
		} else {
			k.used = false
		}
	}
	for _, k := range m.kidsNS(n, iodefSciNS, "Vulnerability") {
		k.attr("SpecID")
		if id, ok := k.attr("ID"); ok && cvePattern.MatchString(id) {
			mt.Vulnerabilities = append(mt.Vulnerabilities, &irxv1.Vulnerability{Cve: strings.ToUpper(id)})
		} else {
			k.used = false
		}
	}
	if mt.Description != "" || len(mt.References)+len(mt.Vulnerabilities)+len(mt.Weaknesses)+len(mt.AttackPatterns) > 0 {
		m.inc.Methods = append(m.inc.Methods, mt)
	} else if len(n.kids) > 0 && !anyUsed(n.kids) {
		n.used = false
	}
}

func anyUsed(ns []*xnode) bool {
	for _, n := range ns {
		if n.used {
			return true
		}
	}
	return false
}

// reference maps a Reference: a CVE, CWE or CAPEC id goes where irx keeps
// those, an RSIT entry becomes the taxonomy, anything else and every URL a
// reference.
func (m *iodefMapper) reference(n *xnode, mt *irxv1.Method) {
	var name string
	if rn := m.kid(n, "ReferenceName"); rn != nil { // RFC 5070
		name = rn.textValue()
	}
	for _, rn := range m.kidsNS(n, iodefEnumNS, "ReferenceName") { // RFC 7970, RFC 7495
		if name != "" {
			rn.used = false
			continue
		}
		rn.attr("specIndex")
		if id := m.kidsNS(rn, iodefEnumNS, "ID"); len(id) > 0 {
			name = id[0].textValue()
		} else {
			name = rn.textValue()
		}
	}
	desc := m.firstText(n, "Description")
	descUsed := false
	switch {
	case name == "":
	case cvePattern.MatchString(name):
		mt.Vulnerabilities = append(mt.Vulnerabilities, &irxv1.Vulnerability{Cve: strings.ToUpper(name), Description: desc})
		descUsed = true
	case cwePattern.MatchString(name):
		mt.Weaknesses = append(mt.Weaknesses, strings.ToUpper(name))
	case capecPattern.MatchString(name):
		mt.AttackPatterns = append(mt.AttackPatterns, strings.ToUpper(name))
	default:
		if t, ok := rsitEntry(name, false); ok {
			m.addTaxonomy(t)
		} else {
			mt.References = append(mt.References, name)
		}
	}
	urls := m.kids(n, "URL")
	for _, u := range urls {
		if s := u.textValue(); s != "" {
			mt.References = append(mt.References, s)
		}
	}
	if desc != "" && !descUsed {
		if name == "" && len(urls) == 0 {
			mt.References = append(mt.References, desc) // a reference described in words
		} else if d := m.kid(n, "Description"); d != nil {
			d.used = false // irx keeps no description of a reference
		}
	}
}

func (m *iodefMapper) addTaxonomy(t *irxv1.Taxonomy) {
	for _, have := range m.taxa {
		if proto.Equal(have, t) {
			return
		}
	}
	m.taxa = append(m.taxa, t)
}

// rsitEntry reads a Reference Security Incident Taxonomy entry from a text:
// "class/type", "class:type" or the MISP machine tag rsit:class="type";
// with typeAlone, also a type by itself (each type belongs to one class).
func rsitEntry(s string, typeAlone bool) (*irxv1.Taxonomy, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	tagged := false
	if rest, ok := strings.CutPrefix(s, "rsit:"); ok {
		s, tagged = rest, true
	}
	var class, typ string
	switch {
	case strings.Contains(s, "="):
		class, typ, _ = strings.Cut(s, "=")
		typ = strings.Trim(typ, `"`)
	case strings.Contains(s, "/"):
		class, typ, _ = strings.Cut(s, "/")
	case strings.Contains(s, ":"):
		class, typ, _ = strings.Cut(s, ":")
	case typeAlone || tagged:
		typ = s
		for _, c := range record.TaxonomyClasses() {
			if slices.Contains(record.TaxonomyTypes(c), typ) {
				if class != "" {
					return nil, false // ambiguous
				}
				class = c
			}
		}
	}
	class, typ = strings.TrimSpace(class), strings.TrimSpace(typ)
	if !record.ValidTaxonomy(class, typ) {
		return nil, false
	}
	return &irxv1.Taxonomy{Class: class, Type: typ}, true
}

// contact maps a Contact and the contacts within it; org is the name of
// the organisation it belongs to, for a person within one.
func (m *iodefMapper) contact(n *xnode, inherited irxv1.Restriction, org string) {
	r, _ := m.restriction(n, inherited)
	c := &irxv1.Contact{Restriction: m.part(r), Organization: org}
	if v, _, ok := enumAttr(m, n, "role", contactRoleEnum); ok {
		c.Role = v
	}
	if v, _, ok := enumAttr(m, n, "type", contactTypeEnum); ok {
		c.Type = v
	}
	name := m.firstText(n, "ContactName")
	if c.Type == irxv1.ContactType_CONTACT_TYPE_ORGANIZATION {
		c.Organization = name
	} else {
		c.Name = name
	}
	if e := m.kid(n, "Email"); e != nil {
		enumAttr(m, e, "type", emailTypeEnum)
		if to := m.kid(e, "EmailTo"); to != nil {
			c.Email = to.textValue()
		} else if m.v1 {
			c.Email = e.textValue() // RFC 5070: the address is the content
		}
	}
	for _, t := range m.kids(n, "Telephone") {
		_, raw, _ := enumAttr(m, t, "type", telephoneTypeEnum)
		dst := &c.Telephone
		if raw == "fax" {
			dst = &c.Fax
		}
		if *dst != "" {
			t.used = false // irx keeps one of each
			continue
		}
		if num := m.kid(t, "TelephoneNumber"); num != nil {
			*dst = num.textValue()
		} else if m.v1 {
			*dst = t.textValue()
		}
	}
	if m.v1 {
		if f := m.kid(n, "Fax"); f != nil && c.Fax == "" {
			c.Fax = f.textValue()
		}
	}
	m.inc.Contacts = append(m.inc.Contacts, c)
	within := org
	if c.Type == irxv1.ContactType_CONTACT_TYPE_ORGANIZATION && c.Organization != "" {
		within = c.Organization
	}
	for _, k := range m.kids(n, "Contact") {
		m.contact(k, r, within)
	}
}

// eventData folds an EventData into the incident: irx keeps its parts at
// the incident, each with the restriction it had in the event.
func (m *iodefMapper) eventData(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	m.descriptions(n, r)
	for _, k := range m.kids(n, "Contact") {
		m.contact(k, r, "")
	}
	for _, k := range m.kids(n, "Discovery") {
		m.discovery(k, r)
	}
	for _, k := range m.kids(n, "Assessment") {
		m.assessment(k, r)
	}
	for _, k := range m.kids(n, "Method") {
		m.method(k, r)
	}
	for _, flow := range m.kids(n, "Flow") {
		for _, sys := range m.kids(flow, "System") {
			m.system(sys, r)
		}
		if !anyUsed(flow.kids) {
			flow.used = false
		}
	}
	for _, rec := range m.kids(n, "Record") {
		rr, _ := m.restriction(rec, r)
		for _, rd := range m.kids(rec, "RecordData") {
			m.recordData(rd, rr)
		}
	}
	for _, k := range m.kids(n, "EventData") {
		m.eventData(k, r)
	}
}

// system maps a System to a victim host (category target or sensor) or an
// attacking host (source, intermediate, infrastructure).
func (m *iodefMapper) system(n *xnode, inherited irxv1.Restriction) {
	cat, _, ok := enumAttr(m, n, "category", systemCategoryEnum)
	if !ok {
		// Without a category (or with an extended one) irx cannot tell a
		// victim from an attacker.
		n.used = false
		return
	}
	r, _ := m.restriction(n, inherited)
	h := &irxv1.Host{Restriction: m.part(r)}
	dst := &m.inc.AttackingHosts
	switch cat {
	case "target":
	case "sensor":
		h.Category = irxv1.SystemCategory_SYSTEM_CATEGORY_SENSOR
	case "intermediate":
		h.Category = irxv1.SystemCategory_SYSTEM_CATEGORY_INTERMEDIATE
	case "infrastructure":
		h.Category = irxv1.SystemCategory_SYSTEM_CATEGORY_INFRASTRUCTURE
	}
	if cat == "target" || cat == "sensor" {
		dst = &m.inc.VictimHosts
	}
	if node := m.kid(n, "Node"); node != nil {
		m.node(node, h)
	}
	for _, role := range m.kids(n, "NodeRole") {
		v, raw, ok := enumAttr(m, role, "category", nodeRoleEnum)
		if ok && raw == "ext-value" {
			v, _ = role.attr("ext-category")
		}
		if ok && v != "" {
			h.Functions = append(h.Functions, v)
		} else {
			role.used = false
		}
	}
	for _, svc := range m.kids(n, "Service") {
		if s := m.service(svc); s != nil {
			h.Services = append(h.Services, s)
		}
	}
	if h.Hostname == "" && len(h.Addresses) == 0 && h.Asn == 0 {
		// irx needs a name, an address or an ASN to know the host.
		n.used = false
		return
	}
	*dst = append(*dst, h)
}

// node maps a Node's names and addresses onto h. A name that is not a host
// name (RFC 5070's NodeName is free text) is left out and listed in the
// warning: the host is still known by its other names and addresses.
func (m *iodefMapper) node(n *xnode, h *irxv1.Host) {
	if nn := m.kid(n, "NodeName"); nn != nil { // RFC 5070
		if name := nn.textValue(); record.ValidHostName(name) {
			h.Hostname = name
		} else {
			nn.used, nn.why = false, "not a host name"
		}
	}
	for _, dd := range m.kids(n, "DomainData") {
		name := m.firstText(dd, "Name")
		switch {
		case h.Hostname != "" || name == "":
			dd.used = false // irx keeps one name per host
		case !record.ValidHostName(name):
			dd.used, dd.why = false, "not a host name"
		default:
			h.Hostname = name
		}
	}
	for _, a := range m.kids(n, "Address") {
		cat := m.addressCategory(a)
		v := a.textValue()
		switch cat {
		case "asn":
			asn, ok := parseASN(v)
			if !ok {
				m.errf(a, "", "%q is not an autonomous system number", v)
				continue
			}
			if h.Asn != 0 {
				a.used = false
				continue
			}
			h.Asn = asn
		case "", "ipv4-addr", "ipv4-net", "ipv6-addr", "ipv6-net":
			ip, _, err := ipValue(cat, v)
			if err != nil {
				m.errf(a, "", "%v", err)
				continue
			}
			h.Addresses = append(h.Addresses, ip)
		default:
			a.used = false // e-mail, MAC, URI...: not a host address in irx
		}
	}
}

// addressCategory is the category of an Address, "" when the document
// leaves it to the default (then either IP family is taken).
func (m *iodefMapper) addressCategory(a *xnode) string {
	v, raw, ok := enumAttr(m, a, "category", addressCategoryEnum)
	if raw == "" {
		return ""
	}
	if !ok {
		return "invalid"
	}
	return v
}

func (m *iodefMapper) service(n *xnode) *irxv1.Service {
	s := &irxv1.Service{}
	mapped := false
	for _, attr := range []string{"ip-protocol", "ip_protocol"} { // RFC 7970, RFC 5070
		if v, ok := n.attr(attr); ok {
			p, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				m.errf(n, attr, "%q is not an IANA protocol number (0 to 255)", v)
				return nil
			}
			s.IpProtocol, mapped = uint32(p), true
		}
	}
	if p := m.kid(n, "Port"); p != nil {
		if v, ok := m.uintText(p, "port", 65535); ok {
			s.Port, mapped = uint32(v), true
		}
	}
	if sn := m.kid(n, "ServiceName"); sn != nil {
		if app := m.firstText(sn, "IANAService"); app != "" {
			s.Application, mapped = app, true
		} else {
			sn.used = false
		}
	}
	if !mapped {
		n.used = false
		return nil
	}
	return s
}

func (m *iodefMapper) recordData(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	le := &irxv1.LogExcerpt{Restriction: m.part(r)}
	if dt := m.kid(n, "DateTime"); dt != nil {
		le.Time = m.timestamp(dt)
	}
	le.Source = m.firstText(n, "Description")
	var lines []string
	for _, item := range m.kids(n, "RecordItem") {
		mt, _, ok := enumAttr(m, item, "dtype", recordDtypeEnum)
		if !ok || len(item.kids) > 0 {
			item.used = false
			continue
		}
		text := item.textValue()
		if text == "" {
			continue
		}
		if le.Source == "" {
			le.Source, _ = item.attr("meaning")
		}
		switch {
		case le.MediaType == "":
			le.MediaType = mt
		case le.MediaType != mt:
			le.MediaType = "text/plain"
		}
		lines = append(lines, text)
	}
	if len(lines) == 0 {
		n.used = false
		return
	}
	le.Content = strings.Join(lines, "\n")
	m.inc.LogExcerpts = append(m.inc.LogExcerpts, le)
}

func (m *iodefMapper) historyItem(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	h := &irxv1.HistoryItem{Restriction: m.part(r)}
	v, raw, ok := enumAttr(m, n, "action", historyActionEnum)
	if ok {
		h.Action = v
		if want := strings.ToUpper(strings.ReplaceAll(raw, "-", "_")); raw != "ext-value" && "HISTORY_ACTION_"+want != v.String() {
			m.note(n, "action", raw, "as %s", enumLabel(v, "HISTORY_ACTION_"))
		}
	}
	if dt := m.kid(n, "DateTime"); dt != nil {
		h.Time = m.timestamp(dt)
	}
	h.Description = m.firstText(n, "Description")
	m.inc.History = append(m.inc.History, h)
}

// indicator maps an Indicator: every value its Observable holds becomes an
// irx indicator with the Indicator's description, times and confidence.
func (m *iodefMapper) indicator(n *xnode, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	var values []indicatorValue
	if obs := m.kid(n, "Observable"); obs != nil {
		r, _ = m.restriction(obs, r)
		values = m.observable(obs, r)
		if len(values) == 0 {
			obs.used = false
		}
	}
	if len(values) == 0 {
		n.used = false
		return
	}
	base := &irxv1.Indicator{Restriction: m.part(r)}
	base.Description = m.firstText(n, "Description")
	if k := m.kid(n, "StartTime"); k != nil {
		base.FirstSeenTime = m.timestamp(k)
	}
	if k := m.kid(n, "EndTime"); k != nil {
		base.LastSeenTime = m.timestamp(k)
	}
	if k := m.kid(n, "Confidence"); k != nil {
		base.Confidence, _ = m.confidence(k)
	}
	for _, v := range values {
		ind := proto.Clone(base).(*irxv1.Indicator)
		ind.Kind, ind.Value, ind.Restriction = v.kind, v.value, m.part(v.restriction)
		m.inc.Indicators = append(m.inc.Indicators, ind)
	}
}

type indicatorValue struct {
	kind        irxv1.IndicatorKind
	value       string
	restriction irxv1.Restriction
}

// observable returns the values of an Observable (restricted to r) that
// irx has an indicator kind for.
func (m *iodefMapper) observable(n *xnode, r irxv1.Restriction) []indicatorValue {
	var out []indicatorValue
	add := func(k irxv1.IndicatorKind, v string) { out = append(out, indicatorValue{k, v, r}) }
	for _, a := range m.kids(n, "Address") {
		if v, ok := m.addressIndicator(a); ok {
			add(v.kind, v.value)
		}
	}
	domain := func(dd *xnode) {
		name := m.firstText(dd, "Name")
		if name == "" {
			dd.used = false
			return
		}
		if v, ok := m.checkIndicatorValue(dd, irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, name); ok {
			add(irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, v)
		}
	}
	for _, dd := range m.kids(n, "DomainData") {
		domain(dd)
	}
	for _, sys := range m.kids(n, "System") {
		before := len(out)
		if node := m.kid(sys, "Node"); node != nil {
			for _, a := range m.kids(node, "Address") {
				if v, ok := m.addressIndicator(a); ok {
					add(v.kind, v.value)
				}
			}
			for _, dd := range m.kids(node, "DomainData") {
				domain(dd)
			}
		}
		if len(out) == before {
			sys.used = false
		}
	}
	for _, ed := range m.kids(n, "EmailData") {
		if from := m.firstText(ed, "EmailFrom"); from != "" {
			add(irxv1.IndicatorKind_INDICATOR_KIND_EMAIL, from)
		} else {
			ed.used = false
		}
	}
	for _, fd := range m.kids(n, "FileData") {
		before := len(out)
		fr, _ := m.restriction(fd, r)
		add := func(k irxv1.IndicatorKind, v string) { out = append(out, indicatorValue{k, v, fr}) }
		for _, f := range m.kids(fd, "File") {
			start := len(out)
			if name := m.firstText(f, "FileName"); name != "" {
				add(irxv1.IndicatorKind_INDICATOR_KIND_FILE_NAME, name)
			}
			for _, hd := range m.kids(f, "HashData") {
				if _, _, ok := enumAttr(m, hd, "scope", hashScopeEnum); !ok {
					hd.used = false
					continue
				}
				for _, h := range m.kids(hd, "Hash") {
					if v, ok := m.hash(h); ok {
						add(irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, v)
					}
				}
			}
			if len(out) == start {
				f.used = false
			}
		}
		if len(out) == before {
			fd.used = false
		}
	}
	for _, b := range m.kids(n, "BulkObservable") {
		kind, raw, ok := enumAttr(m, b, "type", bulkObservableTypeEnum)
		if !ok && raw == "ext-value" {
			// RFC 7970 section 7.2 lists C2 domains as ext-type "fqdn".
			if ext := b.attrRef("ext-type"); ext != nil && slices.Contains([]string{"fqdn", "domain"}, strings.ToLower(strings.TrimSpace(ext.value))) {
				ext.used, b.attrRef("type").used = true, true
				kind, ok = irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, true
			}
		}
		list := m.kid(b, "BulkObservableList")
		if !ok || list == nil {
			b.used = false
			continue
		}
		for _, v := range strings.Fields(list.textValue()) {
			if val, ok := m.checkIndicatorValue(list, kind, v); ok {
				add(kind, val)
			}
		}
	}
	return out
}

func (m *iodefMapper) addressIndicator(a *xnode) (indicatorValue, bool) {
	cat := m.addressCategory(a)
	v := a.textValue()
	var kind irxv1.IndicatorKind
	switch cat {
	case "", "ipv4-addr", "ipv4-net", "ipv6-addr", "ipv6-net":
		ip, v4, err := ipValue(cat, v)
		if err != nil {
			m.errf(a, "", "%v", err)
			return indicatorValue{}, false
		}
		kind = irxv1.IndicatorKind_INDICATOR_KIND_IPV6
		if v4 {
			kind = irxv1.IndicatorKind_INDICATOR_KIND_IPV4
		}
		return indicatorValue{kind: kind, value: ip}, true
	case "site-uri":
		kind = irxv1.IndicatorKind_INDICATOR_KIND_URL
	case "e-mail":
		kind = irxv1.IndicatorKind_INDICATOR_KIND_EMAIL
	case "asn":
		kind = irxv1.IndicatorKind_INDICATOR_KIND_ASN
	default:
		a.used = false
		return indicatorValue{}, false
	}
	val, ok := m.checkIndicatorValue(a, kind, v)
	return indicatorValue{kind: kind, value: val}, ok
}

// checkIndicatorValue checks v as irx checks an indicator of kind.
func (m *iodefMapper) checkIndicatorValue(n *xnode, kind irxv1.IndicatorKind, v string) (string, bool) {
	var err error
	switch kind {
	case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
		want4 := kind == irxv1.IndicatorKind_INDICATOR_KIND_IPV4
		var v4 bool
		if v, v4, err = ipValue("", v); err == nil && v4 != want4 {
			family := "IPv6"
			if want4 {
				family = "IPv4"
			}
			err = fmt.Errorf("%q is not an %s address or prefix", v, family)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_ASN:
		if _, ok := parseASN(v); !ok {
			err = fmt.Errorf("%q is not an autonomous system number", v)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
		if _, herr := hex.DecodeString(v); herr != nil || v == "" {
			err = fmt.Errorf("%q is not a hex digest", v)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
		if !record.ValidHostName(v) {
			err = fmt.Errorf("%q is not a domain name (letters, digits and hyphens in dot-separated labels)", v)
		}
	}
	if err == nil && strings.TrimSpace(v) == "" {
		err = errors.New("is empty")
	}
	if err != nil {
		m.errf(n, "", "%v", err)
		return "", false
	}
	return v, true
}

// hash reads an XML Signature digest (base64) as the hex irx keeps.
func (m *iodefMapper) hash(n *xnode) (string, bool) {
	if dm := m.kidsNS(n, xmldsigNS, "DigestMethod"); len(dm) > 0 {
		dm[0].attr("Algorithm")
	}
	dv := m.kidsNS(n, xmldsigNS, "DigestValue")
	if len(dv) == 0 {
		n.used = false
		return "", false
	}
	s := dv[0].textValue()
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil || len(raw) == 0 {
		m.errf(dv[0], "", "%q is not a base64 digest", s)
		return "", false
	}
	return hex.EncodeToString(raw), true
}
