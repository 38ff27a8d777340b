package record

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// FuzzValidate feeds arbitrary encoded incidents to Validate: it must never
// panic, and whatever it accepts must carry the two required markings and
// fit the size limit.
func FuzzValidate(f *testing.F) {
	seeds := []*irxv1.Incident{
		fullIncident(),
		stored(),
		{Tlp: irxv1.Tlp_TLP_CLEAR, Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}},
		{Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}},
		{Tlp: irxv1.Tlp_TLP_RED, Taxonomy: &irxv1.Taxonomy{Class: "fraud", Type: "spam"}},
		{Tlp: 77, Status: 9, VictimHosts: []*irxv1.Host{{Restriction: 99, Addresses: []string{"x"}}}},
		{Tlp: irxv1.Tlp_TLP_AMBER, Taxonomy: &irxv1.Taxonomy{Class: "other", Type: "other"},
			StartTime: timestamppb.New(t0), EndTime: &timestamppb.Timestamp{Seconds: 1, Nanos: -5},
			Indicators: []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV6, Value: "::ffff:1.2.3.4", Confidence: 200}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x38, 0x63}) // tlp = 99
	f.Fuzz(func(t *testing.T, data []byte) {
		inc := &irxv1.Incident{}
		if err := proto.Unmarshal(data, inc); err != nil {
			t.Skip()
		}
		before := proto.Clone(inc)
		err := Validate(inc, "incident")
		if !proto.Equal(before, inc) {
			t.Fatalf("Validate modified its input")
		}
		if err != nil {
			fields := violationFields(t, err)
			for _, f := range fields {
				if f != "incident" && !strings.HasPrefix(f, "incident.") {
					t.Fatalf("violation field %q is not under the prefix", f)
				}
			}
			// Deterministic: the same input gives the same answer.
			if again := Validate(inc, "incident"); again == nil || again.Error() != err.Error() {
				t.Fatalf("Validate is not deterministic: %v then %v", err, again)
			}
			return
		}
		if inc.GetTlp() == irxv1.Tlp_TLP_UNSPECIFIED {
			t.Fatalf("accepted an incident without tlp")
		}
		if irxv1.Tlp_name[int32(inc.GetTlp())] == "" {
			t.Fatalf("accepted undefined tlp %d", inc.GetTlp())
		}
		if !ValidTaxonomy(inc.GetTaxonomy().GetClass(), inc.GetTaxonomy().GetType()) {
			t.Fatalf("accepted taxonomy %v", inc.GetTaxonomy())
		}
		for _, tax := range inc.GetAdditionalTaxonomies() {
			if !ValidTaxonomy(tax.GetClass(), tax.GetType()) {
				t.Fatalf("accepted additional taxonomy %v", tax)
			}
		}
		if n := proto.Size(inc); n > MaxIncidentBytes {
			t.Fatalf("accepted %d bytes", n)
		}
		for _, ts := range []*timestamppb.Timestamp{inc.DetectTime, inc.StartTime, inc.EndTime, inc.RecoveryTime, inc.ReportTime} {
			if ts != nil && !ts.IsValid() {
				t.Fatalf("accepted invalid time %v", ts)
			}
		}
	})
}
