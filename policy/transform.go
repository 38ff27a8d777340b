package policy

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Pseudonyms. Every token is HMAC-SHA256(peer key, class || value), with
// class one byte (the InfoClass number) and value the field's string as
// stored: the same value of the same class gives the same token for one
// peer, and unrelated tokens for another peer or another class. The token
// keeps the field's format, so the view passes the record validator:
//
//   - text, names, e-mail: "pseud:" and the first 128 bits in lowercase
//     base32 (26 characters);
//   - IPv4 addresses and prefixes: an address in 240.0.0.0/4 (reserved,
//     never routed) carrying 28 bits of the MAC. 28 bits collide: among n
//     distinct IPv4 values of one class, two share a token with probability
//     about n²/2²⁹ (1% at n ≈ 2,300). Correlation is a hint, not a proof;
//   - IPv6 addresses and prefixes: an address in 100::/64 (RFC 6666
//     discard-only) carrying 64 bits of the MAC;
//   - hex digests (Evidence.sha256, file-hash indicators): the whole MAC in
//     hex, 64 digits. Indistinguishable from a digest by its look: the
//     explanation says it is a pseudonym;
//   - incident ids: "pseud:<ticket>", a valid id of the reserved team name
//     "pseud" with 62 bits of the MAC as the ticket;
//   - ASNs: a private-use ASN (RFC 6996, 4200000000 to 4294967294).
//
// Prefix inputs lose their length: a pseudonym is a point, not a range.
const pseudPrefix = "pseud:"

type tokenFormat uint8

const (
	fmtText tokenFormat = iota
	fmtAddr
	fmtHex
	fmtID
)

// tokenKey memoises pseudonyms within one call: a record repeats values
// (the victims' domain, a service name), and the MAC is most of the cost.
// The memo is a short list searched linearly: cheaper than hashing for the
// few dozen pseudonyms of a record, and bounded for pathological ones.
type tokenKey struct {
	class  irxv1.InfoClass
	format tokenFormat
	value  string
}

type cachedToken struct {
	key   tokenKey
	token string
}

const maxCached = 64

// transform applies a pseudonymise or generalise action to one string
// value. ok false means the action has no representation for it: the value
// is removed.
func (w *walker) transform(f *fieldPlan, src unsafe.Pointer, in string) (string, bool) {
	var ik irxv1.IndicatorKind
	if f.kind == kindIndicatorValue {
		ik = *at[irxv1.IndicatorKind](src, f.siblingOff)
	}
	switch f.action {
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD:
		return in, true
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE:
		fm := fmtText
		switch f.kind {
		case kindAddress:
			fm = fmtAddr
		case kindHexDigest:
			fm = fmtHex
		case kindIncidentID:
			fm = fmtID
		case kindIndicatorValue:
			switch ik {
			case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
				fm = fmtAddr
			case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
				fm = fmtHex
			}
		}
		return w.pseudonym(f.class, fm, in), true
	case irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE:
		switch f.kind {
		case kindAddress:
			return w.genAddress(in, f.v4bits, f.v6bits)
		case kindDomain:
			return genName(in)
		case kindEmail:
			return w.genEmail(in)
		case kindIndicatorValue:
			switch ik {
			case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
				return w.genAddress(in, f.v4bits, f.v6bits)
			case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
				return genName(in)
			case irxv1.IndicatorKind_INDICATOR_KIND_URL:
				host := urlHost(in)
				if _, ok := parseAddrOrPrefix(host); ok {
					return w.genAddress(host, f.v4bits, f.v6bits)
				}
				return genName(host)
			case irxv1.IndicatorKind_INDICATOR_KIND_EMAIL:
				return w.genEmail(in)
			}
			// ASNs name a network and have no coarser form; file names,
			// hashes and other values are text.
		}
	}
	return "", false
}

// mac computes HMAC-SHA256(key, class || value) into the walker's scratch.
func (w *walker) macOf(class irxv1.InfoClass, value string) []byte {
	w.in = append(w.in[:0], byte(class))
	w.in = append(w.in, value...)
	w.mac.Reset()
	w.mac.Write(w.in)
	w.sum = w.mac.Sum(w.sum[:0])
	return w.sum
}

func (w *walker) pseudonym(class irxv1.InfoClass, fm tokenFormat, v string) string {
	k := tokenKey{class, fm, v}
	for i := range w.cache {
		if c := &w.cache[i]; c.key == k {
			return c.token
		}
	}
	var p netip.Prefix
	if fm == fmtAddr {
		var ok bool
		if p, ok = parseAddrOrPrefix(v); !ok {
			fm = fmtText // not an address: the record is invalid anyway
		}
	}
	sum := w.macOf(class, v)
	w.grow(72)
	start := len(w.arena)
	switch fm {
	case fmtAddr:
		var a netip.Addr
		if p.Addr().Is4() {
			a = netip.AddrFrom4([4]byte{0xf0 | sum[0]&0x0f, sum[1], sum[2], sum[3]})
		} else {
			var b [16]byte
			b[0] = 0x01 // 100::/64
			copy(b[8:], sum[:8])
			a = netip.AddrFrom16(b)
		}
		w.arena = a.AppendTo(w.arena)
	case fmtHex:
		w.arena = hex.AppendEncode(w.arena, sum)
	case fmtID:
		w.arena = append(w.arena, pseudPrefix...)
		w.arena = strconv.AppendUint(w.arena, binary.BigEndian.Uint64(sum)>>2|1<<62, 10)
	default:
		w.arena = append(w.arena, pseudPrefix...)
		w.arena = w.c.b32.AppendEncode(w.arena, sum[:16])
	}
	t := w.since(start)
	if len(w.cache) < maxCached {
		w.cache = append(w.cache, cachedToken{k, t})
	}
	return t
}

// asnToken maps an ASN to a private-use ASN (RFC 6996).
func (w *walker) asnToken(class irxv1.InfoClass, asn uint32) uint32 {
	var b [10]byte
	sum := w.macOf(class, string(strconv.AppendUint(b[:0], uint64(asn), 10)))
	const first, n = 4200000000, 4294967294 - 4200000000 + 1
	return first + binary.BigEndian.Uint32(sum)%n
}

// genAddress cuts an address or prefix to the class's prefix length (or
// keeps a shorter prefix it already is), masked: "192.0.2.17" at /24 is
// "192.0.2.0/24". IPv4-mapped IPv6 addresses are treated as IPv4.
func (w *walker) genAddress(v string, v4bits, v6bits int) (string, bool) {
	p, ok := parseAddrOrPrefix(v)
	if !ok {
		return "", false
	}
	bits := v6bits
	if p.Addr().Is4() {
		bits = v4bits
	}
	bits = min(bits, p.Bits())
	q, err := p.Addr().Prefix(bits)
	if err != nil {
		return "", false
	}
	w.grow(64)
	start := len(w.arena)
	w.arena = q.AppendTo(w.arena)
	return w.since(start), true
}

// genName keeps the last two labels of a host or domain name:
// "mail.corp.example.org" -> "example.org". Without the public suffix list
// this is coarser than the registered domain under multi-label suffixes
// ("www.example.co.uk" -> "co.uk"): it errs towards revealing less. What is
// kept must itself be a host name (record.ValidHostName): two labels of
// letters, digits and hyphens, the last not all digits. Anything else in
// the value ("x.example owner=secret", "192.0.2.241:22", a path) would be
// in the kept part, so such a value is removed, as is a single label.
func genName(v string) (string, bool) {
	name := strings.TrimSuffix(v, ".")
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return "", false // one label, or an empty last one
	}
	kept := name[strings.LastIndexByte(name[:i], '.')+1:]
	if !record.ValidHostName(kept) {
		return "", false
	}
	return kept, true
}

// genEmail keeps "@domain" of an e-mail address, the domain being
// everything after the last "@" when that is a host name. An address
// literal ("user@[192.0.2.1]") or anything after the domain is not, and
// the value is removed.
func (w *walker) genEmail(v string) (string, bool) {
	at := strings.LastIndexByte(v, '@')
	if at < 0 || !record.ValidHostName(v[at+1:]) {
		return "", false
	}
	d := v[at+1:]
	w.grow(len(d) + 1)
	start := len(w.arena)
	w.arena = append(w.arena, '@')
	w.arena = append(w.arena, d...)
	return w.since(start), true
}
