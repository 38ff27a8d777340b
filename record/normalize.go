package record

import (
	"net/netip"
	"net/url"
	"strings"
)

// ValueKind is the kind of a normalised value (Normalize).
type ValueKind uint8

// The kinds of normalised values. The kind is read from the value itself,
// not from the indicator kind a record gives it: teams label the same value
// differently, and an attacking host's address has no label at all.
const (
	ValueIP        ValueKind = iota + 1 // one address
	ValueNet                            // a prefix wider than one address
	ValueDomain                         // a host or domain name
	ValueURL                            // an absolute URL
	ValueHash                           // a hex digest
	ValueEmail                          // an e-mail address
	ValuePseudonym                      // a token a peer made of a value (policy's pseudonymise)
)

// Normalized is a value in the one form correlation compares.
type Normalized struct {
	Kind ValueKind
	// Text is the canonical form with its kind, e.g. "ip:192.0.2.7",
	// "net:192.0.2.0/24", "domain:c2.evil.example", "hash:<lower hex>",
	// "pseudonym:<peer>:<token>". Two values are the same value exactly
	// when their Text is the same.
	Text string
	// Prefix is the address or prefix of ValueIP and ValueNet (an IPv4
	// address is never IPv4-mapped IPv6).
	Prefix netip.Prefix
	// Domain is the name of ValueDomain, lower case, no final dot.
	Domain string
}

// Normalize reads a value of a record the way correlation compares it:
// addresses unmapped and prefixes masked, names and e-mail addresses
// case-folded without a final dot, URLs with the scheme and host in lower
// case and the default port, the fragment and an empty path made uniform,
// hex digests in lower case. ok is false for what is none of these (free
// text, file names, numbers): such values are not compared.
//
// sender is the team a record was received from, empty for the team's own
// records. A peer's pseudonyms (policy's pseudonymise: "pseud:" tokens,
// IPv4 addresses in 240.0.0.0/4, IPv6 addresses in 100::/64) are HMACs
// under a key that peer keeps for us: they equal only that peer's token of
// the same value, so they are kinded ValuePseudonym and scoped to the
// sender, and never match a value in clear or another peer's token. A
// pseudonymised hex digest cannot be told from a digest by its look; it
// matches a digest in clear only if HMAC-SHA256 collides with the digest,
// which does not happen.
func Normalize(v, sender string) (Normalized, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 2048 {
		return Normalized{}, false
	}
	if strings.HasPrefix(v, "pseud:") {
		if sender == "" {
			return Normalized{}, false
		}
		return Normalized{Kind: ValuePseudonym, Text: "pseudonym:" + sender + ":" + v}, true
	}
	if p, ok := parsePrefix(v); ok {
		if sender != "" && isPseudonymAddr(p.Addr()) {
			return Normalized{Kind: ValuePseudonym, Text: "pseudonym:" + sender + ":" + p.Addr().String()}, true
		}
		if p.IsSingleIP() {
			return Normalized{Kind: ValueIP, Text: "ip:" + p.Addr().String(), Prefix: p}, true
		}
		return Normalized{Kind: ValueNet, Text: "net:" + p.String(), Prefix: p}, true
	}
	if strings.Contains(v, "://") {
		if u, ok := normalURL(v); ok {
			return Normalized{Kind: ValueURL, Text: "url:" + u}, true
		}
		return Normalized{}, false
	}
	if isHexDigest(v) {
		return Normalized{Kind: ValueHash, Text: "hash:" + strings.ToLower(v)}, true
	}
	if local, domain, ok := strings.Cut(v, "@"); ok {
		d, dok := normalDomain(domain)
		if local == "" || !dok || strings.ContainsAny(local, " \t\r\n@") {
			return Normalized{}, false
		}
		return Normalized{Kind: ValueEmail, Text: "email:" + strings.ToLower(local) + "@" + d}, true
	}
	if d, ok := normalDomain(v); ok {
		return Normalized{Kind: ValueDomain, Text: "domain:" + d, Domain: d}, true
	}
	return Normalized{}, false
}

// parsePrefix reads an address or a prefix, masked, IPv4-mapped addresses
// as IPv4; zones are refused (they name a link of one machine).
func parsePrefix(v string) (netip.Prefix, bool) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, false
	}
	a := p.Addr()
	bits := p.Bits()
	if a.Is4In6() {
		a = a.Unmap()
		bits -= 96
		if bits < 0 {
			return netip.Prefix{}, false
		}
	}
	q, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return q, true
}

// isPseudonymAddr: policy's pseudonymise puts IPv4 tokens in 240.0.0.0/4
// (reserved, never routed) and IPv6 tokens in 100::/64 (discard-only).
func isPseudonymAddr(a netip.Addr) bool {
	if a.Is4() {
		return a.As4()[0]&0xf0 == 0xf0
	}
	b := a.As16()
	return b[0] == 0x01 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0
}

func isHexDigest(v string) bool {
	switch len(v) {
	case 32, 40, 56, 64, 96, 128: // MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512
	default:
		return false
	}
	for i := range len(v) {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// normalDomain case-folds a DNS name and drops a final dot. A name has at
// least two labels of letters, digits, hyphens and underscores, 1 to 63
// each, 253 characters at most, and a top-level label that is not all
// digits (so a dotted number is not a name).
func normalDomain(v string) (string, bool) {
	v = strings.TrimSuffix(strings.ToLower(v), ".")
	if len(v) == 0 || len(v) > 253 {
		return "", false
	}
	labels := strings.Split(v, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 {
			return "", false
		}
		for i := range len(l) {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	digits := true
	for i := range len(labels[len(labels)-1]) {
		c := labels[len(labels)-1][i]
		digits = digits && '0' <= c && c <= '9'
	}
	return v, !digits
}

// normalURL: scheme and host in lower case, the default port of http and
// https dropped, an empty path as "/", no fragment. Path and query stay as
// they are: servers read them case-sensitively.
func normalURL(v string) (string, bool) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return "", false
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := u.Hostname(), u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
		if a.Unmap().Is6() {
			host = "[" + host + "]"
		}
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	u.Fragment, u.RawFragment = "", ""
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	return u.String(), true
}

// ParentDomains lists the names above d, nearest first, down to (and
// including) a name of two labels: "a.b.evil.example" gives
// "b.evil.example", "evil.example".
func ParentDomains(d string) []string {
	var out []string
	for {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return out
		}
		d = d[i+1:]
		if !strings.Contains(d, ".") {
			return out
		}
		out = append(out, d)
	}
}
