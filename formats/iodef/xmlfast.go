package iodef

import (
	"bytes"
	"encoding/xml"
	"regexp"
	"unicode"
	"unicode/utf8"
)

// fastTree reads the element tree of a document written plainly, as IODEF
// writers write it: UTF-8 without carriage returns, an XML declaration of
// version 1.0 in UTF-8 or none, elements, attributes, comments, and text
// whose only references are XML's five predefined entities. Such a
// document is most of what a team receives, and reading it here costs a
// fraction of encoding/xml's byte-at-a-time tokenizer.
//
// It gives up (ok false) at the first thing it does not read exactly as
// encoding/xml would: a DTD or any other declaration, a CDATA section, a
// processing instruction, a character reference, a name outside ASCII, a
// character XML does not allow, a syntax error, a limit reached. readTree
// then reads the document with encoding/xml, which refuses what is wrong
// and says where. So fastTree never refuses a document, and what it
// accepts encoding/xml accepts with the same tree (FuzzFastTree compares
// the two).
func fastTree(data []byte) (root *element, ok bool) {
	if !plainText(data) {
		return nil, false
	}
	p := fastParser{data: data, line: 1}
	if m := xmlDeclPattern.FindIndex(data); m != nil {
		p.pos = m[1]
	}
	return p.document()
}

// xmlDeclPattern is the XML declarations fastTree reads: those encoding/xml
// accepts without a CharsetReader, in the forms writers use.
var xmlDeclPattern = regexp.MustCompile(`^<\?xml\s+version\s*=\s*("1\.0"|'1\.0')(\s+encoding\s*=\s*("(?i:utf-8)"|'(?i:utf-8)'))?(\s+standalone\s*=\s*("yes"|"no"|'yes'|'no'))?\s*\?>`)

// plainText reports whether data is valid UTF-8 holding only characters
// XML allows, no carriage return (XML's line-end normalisation is
// encoding/xml's to do) and no "]]>" (which text may not hold).
func plainText(data []byte) bool {
	for i := 0; i < len(data); {
		b := data[i]
		if b < utf8.RuneSelf {
			if b < 0x20 && b != '\t' && b != '\n' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return !bytes.Contains(data, []byte("]]>"))
}

type fastParser struct {
	data []byte
	pos  int
	// line is the line of lineAt; a position's line counts the line
	// breaks from there.
	line, lineAt, lineStart int

	root  *element
	stack []*element
	ns    namespaces
	count int
	elems []element
	attrs []attribute
}

// position is the line and column of offset off, which is never before
// the last one asked for; the column counts bytes, as encoding/xml does.
func (p *fastParser) position(off int) (line, col int) {
	for {
		i := bytes.IndexByte(p.data[p.lineAt:off], '\n')
		if i < 0 {
			break
		}
		p.line++
		p.lineAt += i + 1
		p.lineStart = p.lineAt
	}
	p.lineAt = off
	return p.line, off - p.lineStart + 1
}

func (p *fastParser) document() (*element, bool) {
	for p.pos < len(p.data) {
		if p.data[p.pos] != '<' {
			end := len(p.data)
			if i := bytes.IndexByte(p.data[p.pos:], '<'); i >= 0 {
				end = p.pos + i
			}
			if !p.text(p.pos, end) {
				return nil, false
			}
			p.pos = end
			continue
		}
		rest := p.data[p.pos:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			// A "--" in a comment must end it.
			i := bytes.Index(rest[4:], []byte("--"))
			if i < 0 || len(rest) < 4+i+3 || rest[4+i+2] != '>' {
				return nil, false
			}
			p.pos += 4 + i + 3
		case bytes.HasPrefix(rest, []byte("</")):
			if !p.endTag() {
				return nil, false
			}
		case len(rest) > 1 && rest[1] != '!' && rest[1] != '?':
			if !p.startTag() {
				return nil, false
			}
		default:
			return nil, false // a declaration, a CDATA section, an instruction
		}
	}
	if p.root == nil || len(p.stack) > 0 {
		return nil, false
	}
	return p.root, true
}

// text takes the text between start and end: outside the root white space
// only, inside it the element's text.
func (p *fastParser) text(start, end int) bool {
	raw := p.data[start:end]
	if len(p.stack) == 0 {
		return len(bytes.TrimLeft(raw, " \t\n")) == 0
	}
	top := p.stack[len(p.stack)-1]
	if bytes.IndexByte(raw, '&') < 0 {
		if top.text == nil {
			top.text = raw[:len(raw):len(raw)] // capped: an append copies
		} else {
			top.text = append(top.text[:len(top.text):len(top.text)], raw...)
		}
		return true
	}
	decoded, ok := unescape(raw)
	if !ok {
		return false
	}
	top.text = append(top.text[:len(top.text):len(top.text)], decoded...)
	return true
}

// unescape replaces XML's five predefined entities and character
// references, as encoding/xml does; any other reference, and a character
// XML does not allow, is for encoding/xml to refuse.
func unescape(raw []byte) ([]byte, bool) {
	out := make([]byte, 0, len(raw))
	for {
		i := bytes.IndexByte(raw, '&')
		if i < 0 {
			out = append(out, raw...)
			return out, allowedText(out)
		}
		out = append(out, raw[:i]...)
		raw = raw[i:]
		var c byte
		switch {
		case bytes.HasPrefix(raw, []byte("&lt;")):
			c, raw = '<', raw[4:]
		case bytes.HasPrefix(raw, []byte("&gt;")):
			c, raw = '>', raw[4:]
		case bytes.HasPrefix(raw, []byte("&amp;")):
			c, raw = '&', raw[5:]
		case bytes.HasPrefix(raw, []byte("&apos;")):
			c, raw = '\'', raw[6:]
		case bytes.HasPrefix(raw, []byte("&quot;")):
			c, raw = '"', raw[6:]
		case bytes.HasPrefix(raw, []byte("&#")):
			r, n, ok := charRef(raw)
			if !ok {
				return nil, false
			}
			out, raw = utf8.AppendRune(out, r), raw[n:]
			continue
		default:
			return nil, false
		}
		out = append(out, c)
	}
}

// charRef reads the character reference at the start of raw ("&#65;",
// "&#x41;") and returns its character and length.
func charRef(raw []byte) (r rune, n int, ok bool) {
	base, i := 10, 2
	if len(raw) > i && raw[i] == 'x' {
		base, i = 16, 3
	}
	start := i
	var v uint64
	for ; i < len(raw); i++ {
		var d byte
		switch b := raw[i]; {
		case '0' <= b && b <= '9':
			d = b - '0'
		case base == 16 && 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case base == 16 && 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			d = 0xff
		}
		if d == 0xff {
			break
		}
		if v = v*uint64(base) + uint64(d); v > unicode.MaxRune {
			return 0, 0, false
		}
	}
	if i == start || i >= len(raw) || raw[i] != ';' {
		return 0, 0, false
	}
	return rune(v), i + 1, true
}

// allowedText reports whether text is UTF-8 of characters XML allows (a
// reference may name one it does not).
func allowedText(text []byte) bool {
	for len(text) > 0 {
		r, size := utf8.DecodeRune(text)
		if r == utf8.RuneError && size == 1 || !inCharacterRange(r) {
			return false
		}
		text = text[size:]
	}
	return true
}

// inCharacterRange is XML's Char production, as encoding/xml checks it.
func inCharacterRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' }

func (p *fastParser) skipSpace() {
	for p.pos < len(p.data) && isSpace(p.data[p.pos]) {
		p.pos++
	}
}

// name reads a name of ASCII letters, digits and ".-_:", not starting with
// a digit, ".", or "-", split at its colon as encoding/xml splits it.
func (p *fastParser) name() (xml.Name, bool) {
	start := p.pos
	for p.pos < len(p.data) {
		b := p.data[p.pos]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '_' || b == ':' ||
			p.pos > start && ('0' <= b && b <= '9' || b == '.' || b == '-') {
			p.pos++
			continue
		}
		if b >= utf8.RuneSelf {
			return xml.Name{}, false // a name outside ASCII: encoding/xml's to check
		}
		break
	}
	s := string(p.data[start:p.pos])
	if s == "" || bytes.Count(p.data[start:p.pos], []byte(":")) > 1 {
		return xml.Name{}, false
	}
	if i := bytes.IndexByte(p.data[start:p.pos], ':'); i > 0 && i < len(s)-1 {
		return xml.Name{Space: s[:i], Local: s[i+1:]}, true
	}
	return xml.Name{Local: s}, true
}

func (p *fastParser) startTag() bool {
	if p.root != nil && len(p.stack) == 0 {
		return false // a second top-level element
	}
	line, col := p.position(p.pos)
	p.pos++ // "<"
	raw, ok := p.name()
	if !ok || len(p.stack) >= MaxDepth {
		return false
	}
	if p.count++; p.count > MaxElements {
		return false
	}
	var attrs []xml.Attr
	empty := false
	for {
		p.skipSpace()
		if p.pos >= len(p.data) {
			return false
		}
		if b := p.data[p.pos]; b == '>' {
			p.pos++
			break
		} else if b == '/' {
			if p.pos+1 >= len(p.data) || p.data[p.pos+1] != '>' {
				return false
			}
			p.pos += 2
			empty = true
			break
		}
		name, ok := p.name()
		if !ok {
			return false
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '=' {
			return false
		}
		p.pos++
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' && p.data[p.pos] != '\'' {
			return false
		}
		quote := p.data[p.pos]
		end := bytes.IndexByte(p.data[p.pos+1:], quote)
		if end < 0 {
			return false
		}
		value := p.data[p.pos+1 : p.pos+1+end]
		p.pos += end + 2
		if bytes.IndexByte(value, '<') >= 0 {
			return false
		}
		if bytes.IndexByte(value, '&') >= 0 {
			if value, ok = unescape(value); !ok {
				return false
			}
		}
		attrs = append(attrs, xml.Attr{Name: name, Value: string(value)})
	}

	if len(p.elems) == cap(p.elems) {
		p.elems = make([]element, 0, min(max(16, 2*cap(p.elems)), 1024))
	}
	p.elems = append(p.elems, element{raw: raw, line: line, col: col, scope: len(p.ns)})
	n := &p.elems[len(p.elems)-1]
	for _, a := range attrs {
		switch {
		case a.Name.Space == "xmlns":
			p.ns = append(p.ns, binding{a.Name.Local, a.Value})
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			p.ns = append(p.ns, binding{"", a.Value})
		}
	}
	n.name = p.ns.translate(raw, true)
	if len(attrs) > 0 {
		if len(p.attrs)+len(attrs) > cap(p.attrs) {
			p.attrs = make([]attribute, 0, max(min(max(16, 2*cap(p.attrs)), 1024), len(attrs)))
		}
		n.attrs = make([]*attribute, len(attrs))
		for i, a := range attrs {
			p.attrs = append(p.attrs, attribute{name: p.ns.translate(a.Name, false), value: a.Value})
			n.attrs[i] = &p.attrs[len(p.attrs)-1]
		}
	}
	if len(p.stack) > 0 {
		n.parent = p.stack[len(p.stack)-1]
		n.parent.children = append(n.parent.children, n)
	} else {
		p.root = n
	}
	if empty {
		p.ns = p.ns[:n.scope]
		return true
	}
	p.stack = append(p.stack, n)
	return true
}

func (p *fastParser) endTag() bool {
	p.pos += 2 // "</"
	name, ok := p.name()
	if !ok {
		return false
	}
	p.skipSpace()
	if p.pos >= len(p.data) || p.data[p.pos] != '>' || len(p.stack) == 0 {
		return false
	}
	p.pos++
	top := p.stack[len(p.stack)-1]
	if top.raw != name {
		return false
	}
	p.ns = p.ns[:top.scope]
	p.stack = p.stack[:len(p.stack)-1]
	return true
}
