package policy

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestPlanCoversTheSchema: the plan has one entry per field of every
// message reachable from Incident, with the class the schema resolves to
// (its own option, else the enclosing field's). A field the plan misses
// would be silently dropped; a wrong class would leak.
func TestPlanCoversTheSchema(t *testing.T) {
	c, err := Compile(&irxv1.DisclosurePolicy{PeerTeamId: "cert-b", RecipientClass: 1, TlpCeiling: 1}, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(mp *msgPlan, md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, path string)
	walk = func(mp *msgPlan, md protoreflect.MessageDescriptor, inherited irxv1.InfoClass, path string) {
		fds := md.Fields()
		if len(mp.fields) != fds.Len() {
			t.Fatalf("%s: plan has %d fields, schema %d", md.FullName(), len(mp.fields), fds.Len())
		}
		for i := 0; i < fds.Len(); i++ {
			fd, f := fds.Get(i), &mp.fields[i]
			n++
			want := ownClass(fd)
			if want == 0 {
				want = inherited
			}
			if f.name != string(fd.Name()) || f.class != want || f.class == 0 {
				t.Errorf("%s.%s: plan %q class %v, want class %v", path, fd.Name(), f.name, f.class, want)
			}
			if f.class != irxv1.InfoClass_INFO_CLASS_HANDLING && f.action != irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP {
				t.Errorf("%s.%s: %v under a policy with no rules", path, fd.Name(), f.action)
			}
			if f.msg != nil {
				walk(f.msg, fd.Message(), f.class, path+"."+string(fd.Name()))
			}
		}
	}
	walk(c.root, (&irxv1.Incident{}).ProtoReflect().Descriptor(), 0, "Incident")
	if n < 150 {
		t.Fatalf("walked %d fields", n)
	}
}

// TestNamedFieldsExist: the field names the engine treats specially (formats,
// consent gates, placeholders, codes) must exist, or a rename would quietly
// turn an address into free text or ungate a consent column.
func TestNamedFieldsExist(t *testing.T) {
	file := (&irxv1.Incident{}).ProtoReflect().Descriptor().ParentFile()
	for _, name := range []protoreflect.FullName{
		"irx.v1.Host.addresses", "irx.v1.Indicator.value", "irx.v1.Indicator.kind", "irx.v1.Host.hostname", "irx.v1.Host.domain",
		"irx.v1.ReportingSite.domain", "irx.v1.ReportingSite.name", "irx.v1.Contact.constituency_domain", "irx.v1.Contact.email",
		"irx.v1.Evidence.sha256", "irx.v1.RelatedActivity.incident_ids", "irx.v1.Description.lang", "irx.v1.LogExcerpt.media_type",
		"irx.v1.MonetaryImpact.currency", "irx.v1.Taxonomy.class", "irx.v1.Taxonomy.type", "irx.v1.Incident.contacts",
		"irx.v1.Incident.victim_hosts", "irx.v1.Incident.taxonomy", "irx.v1.Host.asn",
		"irx.v1.AlternativeId.team_id", "irx.v1.AlternativeId.ticket",
	} {
		parent, field := name.Parent(), name.Name()
		md := file.Messages().ByName(parent.Name())
		if md == nil || md.Fields().ByName(field) == nil {
			t.Errorf("%s does not exist in the schema", name)
		}
	}
}

func TestFloorDayAndNames(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{{0, 0}, {86399, 0}, {86400, 86400}, {-1, -86400}, {-86400, -86400}, {-86401, -172800}} {
		if got := floorDay(tc.in); got != tc.want {
			t.Errorf("floorDay(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"https://user@cdn.evil.example:8443/a?b#c", "cdn.evil.example"},
		{"http://[2001:db8::1]:80/x", "2001:db8::1"},
		{"evil.example/path", "evil.example"},
		{"evil.example:8080", "evil.example"},
		{"2001:db8::1", "2001:db8::1"},
	} {
		if got := urlHost(tc.in); got != tc.want {
			t.Errorf("urlHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSlabMakers: every message type the walker may rebuild has a typed
// allocator (the reflect fallback is correct but slower).
func TestSlabMakers(t *testing.T) {
	c, err := Compile(&irxv1.DisclosurePolicy{PeerTeamId: "cert-b", RecipientClass: 1, TlpCeiling: 1}, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(mp *msgPlan)
	walk = func(mp *msgPlan) {
		for i := range mp.fields {
			if m := mp.fields[i].msg; m != nil {
				if reflect.ValueOf(m.makeSlab).Pointer() == reflect.ValueOf(slabMaker(reflect.TypeFor[struct{ x int }]())).Pointer() {
					t.Errorf("%v has no typed slab maker; add it to slabMaker", m.typ)
				}
				p := m.makeSlab(3)
				if p == nil {
					t.Errorf("%v: nil slab", m.typ)
				}
				walk(m)
			}
		}
	}
	walk(c.root)
}

// TestNumbersClassified: every number of the schema is one generalise knows
// what to do with (an identifier, a magnitude, a code), and one it does not
// know stops Compile rather than being kept as it is.
func TestNumbersClassified(t *testing.T) {
	want := map[protoreflect.FullName]leafKind{
		"irx.v1.Host.asn":                           kindASN,
		"irx.v1.MonetaryImpact.amount_minor":        kindMagnitude,
		"irx.v1.Evidence.size_bytes":                kindMagnitude,
		"irx.v1.Compromise.sniffer_sessions_logged": kindMagnitude,
		"irx.v1.Counter.value":                      kindMagnitude,
		"irx.v1.Service.port":                       kindScalar,
		"irx.v1.Service.ip_protocol":                kindScalar,
		"irx.v1.Indicator.confidence":               kindScalar,
		"irx.v1.Assessment.confidence":              kindScalar,
		"irx.v1.Incident.version":                   kindScalar,
		"irx.v1.ReshareTerms.hops_left":             kindScalar,
		"irx.v1.Transfer.policy_version":            kindScalar,
		"irx.v1.Provenance.terms_version":           kindScalar,
	}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		fds := md.Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			switch {
			case isNumber(fd.Kind()):
				got, err := numberKind(fd)
				if err != nil || got != want[fd.FullName()] {
					t.Errorf("%s: kind %v, %v; want %v", fd.FullName(), got, err, want[fd.FullName()])
				}
				seen[fd.FullName()] = true
			case fd.Message() != nil && fd.Message().ParentFile().Package() == "irx.v1" && !seen[fd.Message().FullName()]:
				seen[fd.Message().FullName()] = true
				walk(fd.Message())
			}
		}
	}
	walk((&irxv1.Incident{}).ProtoReflect().Descriptor())
	for name := range want {
		if !seen[name] {
			t.Errorf("%s is not a number of the schema any more", name)
		}
	}
	other := (&irxv1.DisclosurePolicy{}).ProtoReflect().Descriptor().Fields().ByName("max_hops")
	if _, err := numberKind(other); err == nil || !strings.Contains(err.Error(), "irx.v1.DisclosurePolicy.max_hops") {
		t.Errorf("an unclassified number: %v", err)
	}
}

func TestFirstDigit(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 0}, {7, 7}, {10, 10}, {47, 40}, {99, 90}, {100, 100}, {1250000, 1000000}, {1 << 30, 1000000000},
		{-1, -1}, {-47, -40}, {-156000, -100000},
		{math.MaxInt64, 9000000000000000000}, {math.MinInt64, -9000000000000000000},
	} {
		if got := cutSigned(tc.in); got != tc.want {
			t.Errorf("cutSigned(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
	if got := firstDigit(math.MaxUint64); got != 10000000000000000000 {
		t.Errorf("firstDigit(MaxUint64) = %d", got)
	}
	if got := firstDigit(math.MaxUint32); got != 4000000000 {
		t.Errorf("firstDigit(MaxUint32) = %d", got)
	}
}
