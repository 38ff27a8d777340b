package record

import "strings"

// ValidMediaType reports whether s is a media type "type/subtype" whose two
// names follow RFC 6838 section 4.2 (restricted-name: a letter or digit,
// then up to 126 letters, digits and ! # $ & - ^ _ . +), e.g. "text/plain",
// "application/vnd.tcpdump.pcap". Parameters ("; charset=utf-8") are not
// part of the vocabulary: their values are free text, which a code field
// must not carry (the disclosure engine keeps codes as they are).
func ValidMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

func restrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 || !isAlnum(s[:1], 1, 1) {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c|0x20 >= 'a' && c|0x20 <= 'z':
		case strings.IndexByte("!#$&-^_.+", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidHostName reports whether s is a host or domain name in the
// letters-digits-hyphen syntax of RFC 952 and RFC 1123 section 2.1:
// dot-separated labels of 1 to 63 letters, digits and hyphens, no hyphen
// first or last, at most 253 characters, with an optional final dot. The
// last label may not be all digits (RFC 3696 section 2), so an IPv4 address
// is not a host name. Internationalised names are written in their A-label
// form ("xn--...").
func ValidHostName(s string) bool {
	name := strings.TrimSuffix(s, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for {
		label, rest, more := strings.Cut(name, ".")
		if !ldhLabel(label) {
			return false
		}
		if !more {
			return !isDigits(label, len(label))
		}
		name = rest
	}
}

func ldhLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; c != '-' && !(c >= '0' && c <= '9') && (c|0x20 < 'a' || c|0x20 > 'z') {
			return false
		}
	}
	return true
}

// pseudonymPrefix starts the tokens the disclosure engine puts in place of
// names it pseudonymises: "pseud:" and 26 lower-case base32 digits (128
// bits of a keyed MAC). A peer's view carries them where a name was, so a
// name field accepts one (and nothing else that is not a host name): the
// shape is fixed, so it cannot carry text.
const pseudonymPrefix = "pseud:"

func isNameToken(s string) bool {
	tok, ok := strings.CutPrefix(s, pseudonymPrefix)
	if !ok || len(tok) != 26 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
