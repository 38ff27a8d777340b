package policytest

import (
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// format is the shape a string field's values have, which its pseudonym
// keeps and its generalisation depends on.
type format int

const (
	text format = iota
	name
	email
	address
	hexDigest
	incidentID
)

// formatOf is the format of field fd of message m (an indicator's value
// takes the format of its kind).
func formatOf(m protoreflect.Message, fd protoreflect.FieldDescriptor) format {
	switch fd.FullName() {
	case "irx.v1.Host.hostname", "irx.v1.Host.domain", "irx.v1.ReportingSite.domain", "irx.v1.Contact.constituency_domain":
		return name
	case "irx.v1.Contact.email":
		return email
	case "irx.v1.Host.addresses":
		return address
	case "irx.v1.Evidence.sha256":
		return hexDigest
	case "irx.v1.RelatedActivity.incident_ids":
		return incidentID
	case "irx.v1.Indicator.value":
		switch indicatorKind(m) {
		case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
			return address
		case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
			return hexDigest
		}
	}
	return text
}

func indicatorKind(m protoreflect.Message) irxv1.IndicatorKind {
	return irxv1.IndicatorKind(m.Get(m.Descriptor().Fields().ByName("kind")).Enum())
}

// vocabularyOf is how to tell whether a value of a code field is a code
// (what the record validator accepts there); nil for other fields.
func vocabularyOf(fd protoreflect.FieldDescriptor) func(m protoreflect.Message, v string) bool {
	switch fd.FullName() {
	case "irx.v1.Description.lang":
		return func(_ protoreflect.Message, v string) bool { return record.ValidLanguageTag(v) }
	case "irx.v1.LogExcerpt.media_type":
		return func(_ protoreflect.Message, v string) bool { return record.ValidMediaType(v) }
	case "irx.v1.MonetaryImpact.currency":
		return func(_ protoreflect.Message, v string) bool { return record.ValidCurrency(v) }
	case "irx.v1.ReportingSite.country":
		return func(_ protoreflect.Message, v string) bool { return record.ValidCountry(v) }
	case "irx.v1.Taxonomy.class":
		return func(_ protoreflect.Message, v string) bool { return len(record.TaxonomyTypes(v)) > 0 }
	case "irx.v1.Taxonomy.type":
		return func(m protoreflect.Message, v string) bool {
			return record.ValidTaxonomy(m.Get(m.Descriptor().Fields().ByName("class")).String(), v)
		}
	}
	return nil
}

// holdsAddresses reports whether a class owns a field with addresses or
// names somewhere in the schema, the classes whose rules may set prefix
// lengths.
func holdsAddresses(class irxv1.InfoClass) bool {
	var walk func(md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, depth int) bool
	walk = func(md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, depth int) bool {
		fields := md.Fields()
		for i := 0; i < fields.Len() && depth < 8; i++ {
			fd := fields.Get(i)
			c := ownClass(fd)
			if c == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
				c = inherited
			}
			switch {
			case fd.Kind() == protoreflect.StringKind:
				switch fd.FullName() {
				case "irx.v1.Host.addresses", "irx.v1.Indicator.value", "irx.v1.Host.hostname", "irx.v1.Host.domain",
					"irx.v1.ReportingSite.domain", "irx.v1.Contact.constituency_domain":
					if c == class {
						return true
					}
				}
			case fd.Message() != nil && fd.Message().ParentFile().Package() == "irx.v1":
				if walk(fd.Message(), c, depth+1) {
					return true
				}
			}
		}
		return false
	}
	return walk((&irxv1.Incident{}).ProtoReflect().Descriptor(), irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, 0)
}

// --- pseudonyms ---

// macOf is HMAC-SHA256(key, class || value).
func (r *run) macOf(class irxv1.InfoClass, value string) []byte {
	r.mac.Reset()
	r.mac.Write([]byte{byte(class)})
	r.mac.Write([]byte(value))
	return r.mac.Sum(nil)
}

// pseudonym is the token for a value of a class, in the value's format.
func (r *run) pseudonym(class irxv1.InfoClass, f format, v string) string {
	sum := r.macOf(class, v)
	switch f {
	case address:
		p, ok := addressOrPrefix(v)
		if !ok {
			break // not an address: a text token
		}
		if p.Addr().Is4() {
			// 240.0.0.0/4, reserved: 28 bits of the MAC.
			return netip.AddrFrom4([4]byte{0xf0 | sum[0]&0x0f, sum[1], sum[2], sum[3]}).String()
		}
		// 100::/64, discard-only: 64 bits of the MAC.
		var b [16]byte
		b[0] = 0x01
		copy(b[8:], sum[:8])
		return netip.AddrFrom16(b).String()
	case hexDigest:
		return hex.EncodeToString(sum)
	case incidentID:
		return "pseud:" + strconv.FormatUint(binary.BigEndian.Uint64(sum)>>2|1<<62, 10)
	}
	b32 := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	return "pseud:" + b32.EncodeToString(sum[:16])
}

// asnToken is a private-use ASN (RFC 6996, 4200000000 to 4294967294).
func (r *run) asnToken(class irxv1.InfoClass, asn uint32) uint32 {
	sum := r.macOf(class, strconv.FormatUint(uint64(asn), 10))
	return 4200000000 + binary.BigEndian.Uint32(sum)%(4294967294-4200000000+1)
}

// --- generalisation ---

// generalised is the coarser form of a string; ok is false when it has none.
func (r *run) generalised(m protoreflect.Message, fd protoreflect.FieldDescriptor, v string, class irxv1.InfoClass) (string, bool) {
	v4, v6 := r.prefixLengths(class)
	switch formatOf(m, fd) {
	case name:
		return lastTwoLabels(v)
	case email:
		return atDomain(v)
	case address:
		return prefixOf(v, v4, v6)
	}
	if fd.FullName() != "irx.v1.Indicator.value" {
		return "", false
	}
	switch indicatorKind(m) {
	case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
		return lastTwoLabels(v)
	case irxv1.IndicatorKind_INDICATOR_KIND_EMAIL:
		return atDomain(v)
	case irxv1.IndicatorKind_INDICATOR_KIND_URL:
		host := urlHost(v)
		if _, ok := addressOrPrefix(host); ok {
			return prefixOf(host, v4, v6)
		}
		return lastTwoLabels(host)
	}
	return "", false
}

// prefixOf is an address or prefix cut to the class's prefix length (a
// shorter prefix stays as it is), host bits cleared.
func prefixOf(v string, v4, v6 int) (string, bool) {
	p, ok := addressOrPrefix(v)
	if !ok {
		return "", false
	}
	bits := v6
	if p.Addr().Is4() {
		bits = v4
	}
	q, err := p.Addr().Prefix(min(bits, p.Bits()))
	if err != nil {
		return "", false
	}
	return q.String(), true
}

// lastTwoLabels keeps the last two labels of a name (a final dot aside)
// when each is a label of letters, digits and hyphens (1 to 63, no hyphen
// at either end) and the last is not all digits.
func lastTwoLabels(v string) (string, bool) {
	labels := strings.Split(strings.TrimSuffix(v, "."), ".")
	if len(labels) < 2 {
		return "", false
	}
	a, b := labels[len(labels)-2], labels[len(labels)-1]
	if !ldh(a) || !ldh(b) || strings.Trim(b, "0123456789") == "" {
		return "", false
	}
	return a + "." + b, true
}

// atDomain keeps "@" and the domain of an e-mail address, when everything
// after the last "@" is a host name.
func atDomain(v string) (string, bool) {
	i := strings.LastIndex(v, "@")
	if i < 0 {
		return "", false
	}
	d := v[i+1:]
	labels := strings.Split(strings.TrimSuffix(d, "."), ".")
	if len(strings.TrimSuffix(d, ".")) > 253 || strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", false
	}
	for _, l := range labels {
		if !ldh(l) {
			return "", false
		}
	}
	return "@" + d, true
}

func ldh(label string) bool {
	if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
		return false
	}
	for _, c := range label {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// urlHost is the host of a URL: after "scheme://" (when there is one), up
// to the first "/", "?" or "#", without "userinfo@", without the brackets
// of an IPv6 literal, without a ":port".
func urlHost(s string) string {
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = s[i+1:]
	}
	if strings.HasPrefix(s, "[") {
		if end := strings.Index(s, "]"); end > 0 {
			return s[1:end]
		}
		return s
	}
	if strings.Count(s, ":") == 1 {
		s, _, _ = strings.Cut(s, ":")
	}
	return s
}
