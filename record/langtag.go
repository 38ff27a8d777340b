package record

import "strings"

// ValidLanguageTag reports whether s is a well-formed BCP 47 language tag:
// one that matches the ABNF of RFC 5646 section 2.1 (case-insensitively),
// e.g. "en", "de-CH", "zh-Hant-TW", "sr-Latn-RS", "x-private", "i-klingon".
//
// Well-formed, not valid: whether each subtag is in the IANA Language
// Subtag Registry is not checked. The grammar never changes, while the
// registry grows, and records are validated inside the replicated state
// machine, where an answer that changed with a library upgrade would make
// nodes disagree. The grammar is what keeps free text out: subtags are
// letters and digits, at most eight, separated by hyphens.
func ValidLanguageTag(s string) bool {
	// The grammar first: the irregular tags are rare, and a list search.
	return wellFormed(s) || irregularGrandfathered(s)
}

// wellFormed matches s against RFC 5646's langtag and privateuse
// productions.
func wellFormed(s string) bool {
	t := subtags{s: s}
	first, ok := t.next()
	switch {
	case !ok:
		return false
	case isSingleton(first, 'x'):
		return t.privateUse()
	case isAlpha(first, 2, 3):
		// Up to three extended language subtags.
		for i := 0; i < 3 && t.peekIs(func(p string) bool { return isAlpha(p, 3, 3) }); i++ {
			t.next()
		}
	case isAlpha(first, 4, 8):
	default:
		return false
	}
	if t.peekIs(func(p string) bool { return isAlpha(p, 4, 4) }) { // script
		t.next()
	}
	if t.peekIs(func(p string) bool { return isAlpha(p, 2, 2) || isDigits(p, 3) }) { // region
		t.next()
	}
	for t.peekIs(isVariant) {
		t.next()
	}
	for {
		p, ok := t.next()
		switch {
		case !ok:
			return !t.bad
		case isSingleton(p, 'x'):
			return t.privateUse()
		case len(p) == 1 && isAlnum(p, 1, 1):
			// An extension: its singleton and one or more subtags of 2
			// to 8 characters.
			n := 0
			for t.peekIs(func(p string) bool { return isAlnum(p, 2, 8) }) {
				t.next()
				n++
			}
			if n == 0 {
				return false
			}
		default:
			return false
		}
	}
}

// subtags walks the hyphen-separated subtags of a tag without allocating.
type subtags struct {
	s   string
	pos int
	bad bool // an empty subtag was met: nothing after it is well-formed
}

// next returns the next subtag; ok is false at the end of the tag or at an
// empty subtag ("en--US", "en-").
func (t *subtags) next() (string, bool) {
	if t.bad || t.pos > len(t.s) {
		return "", false
	}
	rest := t.s[t.pos:]
	p, _, found := strings.Cut(rest, "-")
	if p == "" {
		t.bad = true
		return "", false
	}
	t.pos += len(p) + 1
	if !found {
		t.pos = len(t.s) + 1
	}
	return p, true
}

// peekIs reports whether the next subtag exists and satisfies pred.
func (t *subtags) peekIs(pred func(string) bool) bool {
	save := *t
	p, ok := t.next()
	*t = save
	return ok && pred(p)
}

// privateUse consumes the rest of the tag after an "x" singleton: one or
// more subtags of 1 to 8 letters or digits, and nothing else.
func (t *subtags) privateUse() bool {
	n := 0
	for {
		p, ok := t.next()
		if !ok {
			return n > 0 && !t.bad
		}
		if !isAlnum(p, 1, 8) {
			return false
		}
		n++
	}
}

func isSingleton(p string, c byte) bool { return len(p) == 1 && p[0]|0x20 == c }

// isVariant: 5 to 8 letters or digits, or a digit and three letters or
// digits.
func isVariant(p string) bool {
	return isAlnum(p, 5, 8) || len(p) == 4 && p[0] >= '0' && p[0] <= '9' && isAlnum(p, 4, 4)
}

func isAlpha(p string, min, max int) bool {
	if len(p) < min || len(p) > max {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func isAlnum(p string, min, max int) bool {
	if len(p) < min || len(p) > max {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= '0' && c <= '9') && (c|0x20 < 'a' || c|0x20 > 'z') {
			return false
		}
	}
	return true
}

func isDigits(p string, n int) bool {
	if len(p) != n {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// irregularGrandfathered reports whether s is one of the tags RFC 5646
// keeps from RFC 3066 that its grammar does not describe (the "irregular"
// production). The list is closed: RFC 5646 section 2.2.8 allows no
// additions. (The "regular" grandfathered tags match the langtag grammar.)
func irregularGrandfathered(s string) bool {
	for _, g := range [...]string{
		"en-GB-oed", "i-ami", "i-bnn", "i-default", "i-enochian", "i-hak", "i-klingon", "i-lux", "i-mingo",
		"i-navajo", "i-pwn", "i-tao", "i-tay", "i-tsu", "sgn-BE-FR", "sgn-BE-NL", "sgn-CH-DE",
	} {
		if strings.EqualFold(s, g) {
			return true
		}
	}
	return false
}
