package iodef

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// The JSON binding of IODEF v2 (RFC 8727) is read and written by
// transcoding it to and from the element tree the XML reader makes
// (xmltree.go): the mapping of the record (mapper.go) and the encoder
// (encodeTree) then serve both bindings, so a document means the same in
// either. The transcoding follows RFC 8727 section 3.2 and its CDDL
// (section 6):
//
//   - an element's attributes and its child elements are both members of
//     its JSON object; xml:lang is "lang";
//   - an element's text is a member: "id" of IncidentID and IndicatorID,
//     "handle" of RegistryHandle, "value" of the others (Address,
//     Counter, an ML_STRING with a lang, every EXTENSION, ...); an element
//     of text only (a time, a URL, an ML_STRING without lang) is a JSON
//     string, an INTEGER or REAL a JSON number;
//   - an element that may occur more than once is an array;
//   - the container classes Flow, Record, IndicatorData, ApplicationHeader
//     and SignatureData are left out (their children go to their parent),
//     ObservableReference is its "uid-ref", and Assessment's impacts are
//     the "Impact" array of one-member objects.

// DecodeJSON reads one IODEF document in the JSON binding of RFC 8727 from
// r and maps it as Decode maps an XML document, under the same limits
// (MaxDocumentBytes, MaxDepth, MaxElements). Errors name the line and
// column of the JSON and the element path, as Decode's do.
func DecodeJSON(r io.Reader, name string, opts Options) (*Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentBytes {
		return nil, &Error{Name: name, Line: 1, Column: 1, Path: "IODEF-Document",
			Msg: fmt.Sprintf("the document is more than 4 MiB; the limit is %d bytes (4 MiB): split it into several files", MaxDocumentBytes)}
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	root, err := readJSONTree(name, data)
	if err != nil {
		return nil, err
	}
	return mapDocument(name, root, opts)
}

// EncodeJSON writes incidents as one IODEF v2 document in the JSON
// binding of RFC 8727: the document Encode writes, in JSON. The output
// depends only on the records and opts.
func EncodeJSON(w io.Writer, incidents []*irxv1.Incident, opts EncodeOptions) error {
	root, err := encodeTree(incidents, opts)
	if err != nil {
		return err
	}
	return writeJSONTree(w, root)
}

// A jvalue is a JSON value with the byte offset it starts at.
type jvalue struct {
	off     int64
	kind    byte // '{', '[', 's' string, 'n' number, 'b' boolean, '0' null
	str     string
	members []jmember
	items   []*jvalue
}

type jmember struct {
	key string
	off int64
	val *jvalue
}

// jreader reads a JSON document into jvalues, bounded in depth and size.
type jreader struct {
	name  string
	data  []byte
	dec   *json.Decoder
	count int
}

// readJSONTree reads data as RFC 8727 JSON into the element tree of the
// equivalent XML document.
func readJSONTree(name string, data []byte) (*element, error) {
	jr := &jreader{name: name, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	jr.dec.UseNumber()
	if !utf8.Valid(data) {
		off := int64(0)
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				off = int64(i)
				break
			}
			i += n
		}
		return nil, jr.fail(off, "IODEF-Document", "the document is not UTF-8 (RFC 8259 section 8.1)")
	}
	v, err := jr.value("IODEF-Document", 0)
	if err != nil {
		return nil, err
	}
	if _, err := jr.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, jr.fail(jr.dec.InputOffset(), "IODEF-Document", "text after the document's object")
	}
	if v.kind != '{' {
		return nil, jr.fail(v.off, "IODEF-Document", "the document must be a JSON object (RFC 8727 section 6: iodef)")
	}
	c := &jconv{jr: jr}
	root := c.newElement(nil, iodefV2NS, "IODEF-Document", v.off)
	if err := c.fill(root, v, "IODEF-Document"); err != nil {
		return nil, err
	}
	return root, nil
}

func (jr *jreader) fail(off int64, path, format string, args ...any) error {
	line, col := position(jr.data, off)
	return &Error{Name: jr.name, Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// start is the offset of the next token: past white space and the
// separators the decoder has not consumed yet.
func (jr *jreader) start() int64 {
	off := jr.dec.InputOffset()
	for off < int64(len(jr.data)) {
		switch jr.data[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
			continue
		}
		break
	}
	return off
}

// value reads one JSON value; depth counts the objects and arrays around
// it.
func (jr *jreader) value(path string, depth int) (*jvalue, error) {
	off := jr.start()
	tok, err := jr.dec.Token()
	if err != nil {
		return nil, jr.syntax(err, path)
	}
	v := &jvalue{off: off}
	switch t := tok.(type) {
	case json.Delim:
		// Objects and arrays alternate in IODEF JSON: an element is at
		// most two levels, so the XML bound applies at twice the depth.
		if depth >= 2*MaxDepth {
			return nil, jr.fail(off, path, "elements nested more than %d deep", MaxDepth)
		}
		if jr.count++; jr.count > MaxElements {
			return nil, jr.fail(off, path, "more than %d elements", MaxElements)
		}
		switch t {
		case '{':
			v.kind = '{'
			seen := map[string]bool{}
			for jr.dec.More() {
				koff := jr.start()
				ktok, err := jr.dec.Token()
				if err != nil {
					return nil, jr.syntax(err, path)
				}
				key := ktok.(string) // the decoder allows only strings as keys
				if seen[key] {
					return nil, jr.fail(koff, path+"/"+key, "the member %q appears twice", key)
				}
				seen[key] = true
				mv, err := jr.value(path+"/"+key, depth+1)
				if err != nil {
					return nil, err
				}
				v.members = append(v.members, jmember{key: key, off: koff, val: mv})
			}
		case '[':
			v.kind = '['
			for jr.dec.More() {
				item, err := jr.value(path, depth+1)
				if err != nil {
					return nil, err
				}
				v.items = append(v.items, item)
			}
		}
		if _, err := jr.dec.Token(); err != nil { // the closing delimiter
			return nil, jr.syntax(err, path)
		}
	case string:
		v.kind, v.str = 's', t
	case json.Number:
		v.kind, v.str = 'n', t.String()
	case bool:
		v.kind, v.str = 'b', fmt.Sprint(t)
	case nil:
		v.kind = '0'
	}
	return v, nil
}

func (jr *jreader) syntax(err error, path string) error {
	off := jr.dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return jr.fail(int64(len(jr.data)), path, "the document ends before its JSON is complete")
	}
	return jr.fail(off, path, "JSON syntax error: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jconv turns jvalues into elements.
type jconv struct {
	jr *jreader
}

func (c *jconv) newElement(parent *element, space, local string, off int64) *element {
	line, col := position(c.jr.data, off)
	e := &element{name: xml.Name{Space: space, Local: local}, parent: parent, line: line, col: col}
	if parent != nil {
		parent.children = append(parent.children, e)
	}
	return e
}

// fill makes the members of object v the attributes, text and children of
// e.
func (c *jconv) fill(e *element, v *jvalue, path string) error {
	local := e.name.Local
	for _, m := range v.members {
		mpath := path + "/" + m.key
		if w, ok := jsonWrappers[local+"/"+m.key]; ok {
			parent := c.newElement(e, iodefV2NS, w.container, m.off)
			if err := c.children(parent, m, mpath, w.space); err != nil {
				return err
			}
			continue
		}
		switch {
		case m.key == "lang":
			s, err := c.scalar(m.val, mpath)
			if err != nil {
				return err
			}
			e.attrs = append(e.attrs, &attribute{name: xml.Name{Space: xmlNS, Local: "lang"}, value: s})
		case m.key == textMember(local):
			s, err := c.scalar(m.val, mpath)
			if err != nil {
				return err
			}
			e.text = []byte(s)
		case m.key == "uid-ref" && (local == "Indicator" || local == "IndicatorExpression"):
			// ObservableReference, an element of one attribute in XML.
			vals := []*jvalue{m.val}
			if m.val.kind == '[' {
				vals = m.val.items
			}
			for _, item := range vals {
				s, err := c.scalar(item, mpath)
				if err != nil {
					return err
				}
				ref := c.newElement(e, iodefV2NS, "ObservableReference", item.off)
				ref.attrs = append(ref.attrs, &attribute{name: xml.Name{Local: "uid-ref"}, value: s})
			}
		case local == "Assessment" && m.key == "Impact":
			if err := c.impacts(e, m, mpath); err != nil {
				return err
			}
		case isJSONAttribute(e, m.key):
			if !validElementName(m.key) {
				return c.jr.fail(m.off, mpath, "%q is not an IODEF attribute name", m.key)
			}
			s, err := c.scalar(m.val, mpath)
			if err != nil {
				return err
			}
			e.attrs = append(e.attrs, &attribute{name: xml.Name{Local: xmlAttrName(e, m.key)}, value: s})
		default:
			if err := c.children(e, m, mpath, childSpace(e, m.key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// children makes the child elements named m.key of e from m's value: one,
// or one per item of an array.
func (c *jconv) children(e *element, m jmember, path, space string) error {
	vals := []*jvalue{m.val}
	if m.val.kind == '[' {
		vals = m.val.items
		if len(vals) == 0 {
			return c.jr.fail(m.val.off, path, "an empty array: leave the member out")
		}
	}
	for _, item := range vals {
		if err := c.child(e, space, m.key, item, path); err != nil {
			return err
		}
	}
	return nil
}

// child makes one child element of e from v: an object's members, or a
// scalar as its text.
func (c *jconv) child(e *element, space, local string, v *jvalue, path string) error {
	if !validElementName(local) {
		return c.jr.fail(v.off, path, "%q is not an IODEF element name", local)
	}
	k := c.newElement(e, space, local, v.off)
	switch v.kind {
	case '{':
		return c.fill(k, v, path)
	case '[':
		return c.jr.fail(v.off, path, "an array within an array: IODEF JSON has none")
	}
	s, err := c.scalar(v, path)
	if err != nil {
		return err
	}
	if isAlgorithm(k) {
		k.attrs = append(k.attrs, &attribute{name: xml.Name{Local: "Algorithm"}, value: s})
		return nil
	}
	k.text = []byte(s)
	return nil
}

// isAlgorithm reports whether e is an XML Signature element whose JSON
// string is its Algorithm attribute.
func isAlgorithm(e *element) bool {
	return e.name.Space == xmldsigNS && (e.name.Local == "DigestMethod" || e.name.Local == "CanonicalizationMethod")
}

// impacts makes Assessment's impact elements of its "Impact" array, whose
// items are objects of one member each: {"SystemImpact": {...}}.
func (c *jconv) impacts(e *element, m jmember, path string) error {
	vals := []*jvalue{m.val}
	if m.val.kind == '[' {
		vals = m.val.items
	}
	for _, item := range vals {
		if item.kind != '{' || len(item.members) != 1 {
			return c.jr.fail(item.off, path, "each Impact is an object of one member: SystemImpact, BusinessImpact, TimeImpact, MonetaryImpact or IntendedImpact")
		}
		im := item.members[0]
		switch im.key {
		case "SystemImpact", "BusinessImpact", "TimeImpact", "MonetaryImpact", "IntendedImpact":
		default:
			return c.jr.fail(im.off, path+"/"+im.key, "%q is not an Impact: SystemImpact, BusinessImpact, TimeImpact, MonetaryImpact or IntendedImpact", im.key)
		}
		if err := c.child(e, iodefV2NS, im.key, im.val, path+"/"+im.key); err != nil {
			return err
		}
	}
	return nil
}

// scalar is the text of a string, number or boolean.
func (c *jconv) scalar(v *jvalue, path string) (string, error) {
	switch v.kind {
	case 's', 'n', 'b':
		return v.str, nil
	case '0':
		return "", c.jr.fail(v.off, path, "null: leave the member out")
	}
	return "", c.jr.fail(v.off, path, "want a string or a number, not an %s", map[byte]string{'{': "object", '[': "array"}[v.kind])
}

// jsonWrapper is a container class RFC 8727 leaves out: the member of its
// parent holds the container's children.
type jsonWrapper struct {
	container string // the XML element that holds the children
	space     string // the children's namespace
}

// jsonWrappers is keyed by "Parent/member".
var jsonWrappers = map[string]jsonWrapper{
	"Incident/Indicator":             {"IndicatorData", iodefV2NS},
	"EventData/System":               {"Flow", iodefV2NS},
	"EventData/RecordData":           {"Record", iodefV2NS},
	"Service/ApplicationHeaderField": {"ApplicationHeader", iodefV2NS},
	"EmailData/Signature":            {"SignatureData", xmldsigNS},
	"File/Signature":                 {"SignatureData", xmldsigNS},
}

// textMember is the member that holds the text of element local.
func textMember(local string) string {
	switch local {
	case "IncidentID", "IndicatorID":
		return "id"
	case "RegistryHandle":
		return "handle"
	}
	return "value"
}

// sciElements are the RFC 7203 structured references of a Method, and the
// parts they hold.
var sciElements = map[string]bool{"AttackPattern": true, "Vulnerability": true, "Weakness": true, "Platform": true, "Scoring": true}

// isJSONAttribute reports whether member key of e is an XML attribute: the
// attributes of IODEF are lower case, but the structured references' SpecID
// and ContentID (RFC 7203's ID).
func isJSONAttribute(e *element, key string) bool {
	if e.name.Space == iodefSciNS && (key == "SpecID" || key == "ContentID") {
		return true
	}
	r, _ := utf8.DecodeRuneInString(key)
	return unicode.IsLower(r)
}

// xmlAttrName is the XML attribute of JSON member key.
func xmlAttrName(e *element, key string) string {
	if e.name.Space == iodefSciNS && key == "ContentID" {
		return "ID"
	}
	return key
}

// childSpace is the namespace of the child element local of e.
func childSpace(e *element, local string) string {
	switch {
	case local == "ReferenceName" || e.name.Space == iodefEnumNS:
		return iodefEnumNS // RFC 7495
	case e.name.Local == "Method" && sciElements[local], e.name.Space == iodefSciNS && local != "Reference":
		return iodefSciNS
	case local == "DigestMethod" || local == "DigestValue" || local == "CanonicalizationMethod" || local == "X509Data":
		return xmldsigNS
	}
	return iodefV2NS
}

// validElementName reports whether s can name an XML element, so that a
// member the binding does not define still reaches the warning as an
// element, and nothing else does.
func validElementName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return true
}

// writeJSONTree writes the element tree of an IODEF document as RFC 8727
// JSON, indented by two spaces, with a final line break.
func writeJSONTree(w io.Writer, root *element) error {
	var b bytes.Buffer
	jw := &jwriter{b: &b}
	jw.object(root)
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

type jwriter struct {
	b     *bytes.Buffer
	depth int // of the value being written, for the indent
}

// nl starts a line at the current depth, two spaces a level (the layout
// of json.Indent with "  ").
func (jw *jwriter) nl() {
	jw.b.WriteByte('\n')
	for range jw.depth {
		jw.b.WriteString("  ")
	}
}

// open and shut write a bracket and its contents' indent; shut writes the
// closing one on a line of its own after contents.
func (jw *jwriter) open(c byte) {
	jw.b.WriteByte(c)
	jw.depth++
}

func (jw *jwriter) shut(c byte, contents bool) {
	jw.depth--
	if contents {
		jw.nl()
	}
	jw.b.WriteByte(c)
}

// str writes s as a JSON string (RFC 8259 section 7): quotation mark,
// reverse solidus and control characters escaped, invalid UTF-8 as
// U+FFFD, and U+2028 and U+2029 escaped for JavaScript readers; <, > and &
// stay as they are (the output is not HTML).
func (jw *jwriter) str(s string) {
	const hex = "0123456789abcdef"
	b := jw.b
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			b.WriteString(s[start:i])
			b.WriteString(`\u202`)
			b.WriteByte(hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// scalar writes s as a JSON number when number and s is one, else as a
// string.
func (jw *jwriter) scalar(s string, number bool) {
	if number && isJSONNumber(s) {
		jw.b.WriteString(s)
		return
	}
	jw.str(s)
}

func isJSONNumber(s string) bool {
	return s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9') && json.Valid([]byte(s))
}

// value writes element e: a string or number when it is text only and its
// class is not an object, else an object.
func (jw *jwriter) value(e *element) {
	if isAlgorithm(e) {
		for _, a := range e.attrs {
			if a.name.Local == "Algorithm" {
				jw.str(a.value)
				return
			}
		}
	}
	if len(e.children) == 0 && !hasJSONAttrs(e) && !objectClasses[e.name.Local] {
		jw.scalar(strings.TrimSpace(string(e.text)), numberElements[e.name.Local])
		return
	}
	jw.object(e)
}

func hasJSONAttrs(e *element) bool {
	for _, a := range e.attrs {
		if !isNamespaceAttr(a.name) {
			return true
		}
	}
	return false
}

// isNamespaceAttr reports whether an attribute is XML's bookkeeping,
// which JSON has no place for.
func isNamespaceAttr(n xml.Name) bool {
	return n.Space == "xmlns" || n.Space == "" && n.Local == "xmlns" || n.Space == xsiNS
}

// object writes e as a JSON object: its attributes, its text, then its
// children grouped by member in order of first appearance.
func (jw *jwriter) object(e *element) {
	local := e.name.Local
	jw.open('{')
	first := true
	member := func(key string) {
		if !first {
			jw.b.WriteByte(',')
		}
		first = false
		jw.nl()
		jw.str(key)
		jw.b.WriteString(": ")
	}
	for _, a := range e.attrs {
		switch {
		case isNamespaceAttr(a.name):
			continue
		case a.name.Local == "lang" && (a.name.Space == xmlNS || a.name.Space == "xml"):
			member("lang")
		case e.name.Space == iodefSciNS && a.name.Local == "ID":
			member("ContentID")
		default:
			member(a.name.Local)
		}
		jw.scalar(a.value, numberAttrs[a.name.Local] && (a.name.Local != "instance" || local == "RecordPattern"))
	}
	if extensionClasses[local] && len(e.children) > 0 {
		// An EXTENSION of dtype xml may hold XML elements; JSON holds
		// them as text (which reads back as the element's text, as irx
		// writes its own).
		var sb strings.Builder
		for _, k := range e.children {
			sb.WriteString(fragment(k))
		}
		member("value")
		jw.str(sb.String())
		jw.shut('}', true)
		return
	}
	if text := strings.TrimSpace(string(e.text)); text != "" || objectClasses[local] && len(e.children) == 0 {
		member(textMember(local))
		jw.scalar(text, local == "Confidence" || local == "Counter" || local == "TimeImpact" || local == "MonetaryImpact")
	}

	// The members the children make, in order of first appearance.
	type group struct {
		key   string
		elems []*element
		kind  byte // 'e' elements, 'u' uid-refs, 'i' impacts
	}
	var groups []*group
	byKey := map[string]*group{}
	add := func(key string, kind byte, elems ...*element) {
		g := byKey[key]
		if g == nil {
			g = &group{key: key, kind: kind}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.elems = append(g.elems, elems...)
	}
	for _, k := range e.children {
		kl := k.name.Local
		switch {
		case isContainer(local, kl):
			add(containedMember(kl), 'e', inheritAttrs(k)...)
		case kl == "ObservableReference" && (local == "Indicator" || local == "IndicatorExpression"):
			add("uid-ref", 'u', k)
		case local == "Assessment" && isImpact(kl):
			add("Impact", 'i', k)
		default:
			add(kl, 'e', k)
		}
	}
	for _, g := range groups {
		member(g.key)
		single := jsonSingle(local, g.key) && len(g.elems) == 1
		if !single {
			jw.open('[')
		}
		for i, k := range g.elems {
			if i > 0 {
				jw.b.WriteByte(',')
			}
			if !single {
				jw.nl()
			}
			switch g.kind {
			case 'u':
				v, _ := k.findAttrValue("uid-ref")
				jw.str(v)
			case 'i':
				jw.open('{')
				jw.nl()
				jw.str(k.name.Local)
				jw.b.WriteString(": ")
				jw.value(k)
				jw.shut('}', true)
			default:
				jw.value(k)
			}
		}
		if !single {
			jw.shut(']', len(g.elems) > 0)
		}
	}
	jw.shut('}', !first)
}

func (n *element) findAttrValue(local string) (string, bool) {
	if a := n.findAttr(local); a != nil {
		return a.value, true
	}
	return "", false
}

// inheritAttrs is the children of a container RFC 8727 leaves out, each
// with the container's restriction unless it has its own: the restriction
// a child inherits in XML is said on the child in JSON.
func inheritAttrs(container *element) []*element {
	var inherit []*attribute
	for _, a := range container.attrs {
		if a.name.Space == "" && (a.name.Local == "restriction" || a.name.Local == "ext-restriction") {
			inherit = append(inherit, a)
		}
	}
	if len(inherit) == 0 {
		return container.children
	}
	out := make([]*element, len(container.children))
	for i, k := range container.children {
		c := *k
		out[i] = &c
		if k.findAttr("restriction") != nil {
			continue
		}
		c.attrs = append(slices.Clone(inherit), k.attrs...)
	}
	return out
}

func isImpact(local string) bool {
	switch local {
	case "SystemImpact", "BusinessImpact", "TimeImpact", "MonetaryImpact", "IntendedImpact":
		return true
	}
	return false
}

// isContainer reports whether child of parent is a container class RFC
// 8727 leaves out.
func isContainer(parent, child string) bool {
	for key, w := range jsonWrappers {
		if w.container == child && strings.HasPrefix(key, parent+"/") {
			return true
		}
	}
	return false
}

// containedMember is the member that holds a container's children.
func containedMember(container string) string {
	for key, w := range jsonWrappers {
		if w.container == container {
			_, member, _ := strings.Cut(key, "/")
			return member
		}
	}
	return container
}

// extensionClasses are the elements of EXTENSION type (RFC 7970 section
// 2.16): their dtype says what their value holds.
var extensionClasses = map[string]bool{
	"AdditionalData": true, "RecordItem": true, "RelatedDNS": true, "ApplicationHeaderField": true,
	"EmailHeaderField": true, "FileProperties": true, "FuzzyHashValue": true,
}

// objectClasses are the classes whose JSON is an object even when the XML
// element is text only: their text is a member ("value", "id", "handle").
var objectClasses = map[string]bool{
	"IncidentID": true, "IndicatorID": true, "RegistryHandle": true, "Address": true,
	"SoftwareReference": true, "RecordPattern": true, "TimeImpact": true, "MonetaryImpact": true,
	"Confidence": true, "Counter": true,
	// EXTENSION (ExtensionType)
	"AdditionalData": true, "RecordItem": true, "RelatedDNS": true, "ApplicationHeaderField": true,
	"EmailHeaderField": true, "FileProperties": true, "FuzzyHashValue": true,
}

// numberElements are the elements of INTEGER type.
var numberElements = map[string]bool{"Port": true, "ProtoCode": true, "ProtoType": true, "ProtoField": true, "FileSize": true}

// numberAttrs are the attributes of INTEGER type ("instance" only of
// RecordPattern: IncidentID's is a string).
var numberAttrs = map[string]bool{"specIndex": true, "vlan-num": true, "ip-protocol": true, "offset": true, "instance": true}

// jsonSingle reports whether member key of class parent holds one value
// rather than an array (RFC 8727 section 6).
func jsonSingle(parent, key string) bool {
	if parent == "Observable" {
		return key != "AdditionalData"
	}
	return jsonSingles[parent+"/"+key]
}

var jsonSingles = func() map[string]bool {
	m := map[string]bool{}
	for parent, keys := range map[string]string{
		"Incident":             "IncidentID AlternativeID DetectTime StartTime EndTime RecoveryTime ReportTime GenerationTime History",
		"OperatingSystem":      "SoftwareReference",
		"Application":          "SoftwareReference",
		"AssociatedSoftware":   "SoftwareReference",
		"RelatedActivity":      "Confidence",
		"Contact":              "Timezone",
		"PostalAddress":        "PAddress",
		"Email":                "EmailTo",
		"Telephone":            "TelephoneNumber",
		"DetectionPattern":     "Application",
		"Reference":            "ReferenceName",
		"ReferenceName":        "ID",
		"Assessment":           "Confidence",
		"HistoryItem":          "DateTime IncidentID Contact",
		"EventData":            "DetectTime StartTime EndTime RecoveryTime ReportTime Assessment",
		"Expectation":          "StartTime EndTime Contact",
		"System":               "Node",
		"Node":                 "PostalAddress",
		"DomainData":           "Name DateDomainWasChecked RegistrationDate ExpirationDate DomainContacts",
		"NameServers":          "Server",
		"DomainContacts":       "SameDomainContact",
		"Service":              "ServiceName Port Portlist ProtoCode ProtoType ProtoField EmailData Application",
		"ServiceName":          "IANAService",
		"EmailData":            "EmailFrom EmailSubject EmailX-Mailer EmailHeaders EmailBody EmailMessage",
		"RecordData":           "DateTime Application",
		"Key":                  "KeyName KeyValue",
		"Certificate":          "X509Data",
		"File":                 "FileName FileSize FileType HashData AssociatedSoftware",
		"HashData":             "HashTargetID",
		"Hash":                 "DigestMethod DigestValue CanonicalizationMethod Application",
		"FuzzyHash":            "Application",
		"Indicator":            "IndicatorID StartTime EndTime Confidence Observable uid-ref IndicatorExpression IndicatorReference",
		"BulkObservable":       "BulkObservableFormat BulkObservableList",
		"BulkObservableFormat": "Hash",
		"IndicatorExpression":  "Confidence",
		"AttackPattern":        "ContentID",
	} {
		for _, k := range strings.Fields(keys) {
			m[parent+"/"+k] = true
		}
	}
	return m
}()
