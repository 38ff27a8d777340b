package node

import (
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// BenchmarkFirstUnknown: the operator API's walk for unknown fields over a
// create request of a record with hosts, indicators and descriptions.
func BenchmarkFirstUnknown(b *testing.B) {
	inc := &irxv1.Incident{
		Tlp:            irxv1.Tlp_TLP_AMBER,
		Taxonomy:       &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
		Descriptions:   []*irxv1.Description{{Lang: "en", Text: "beaconing"}, {Lang: "de", Text: "Beaconing"}},
		Contacts:       []*irxv1.Contact{{Name: "Alex Doe", Email: "soc@example.edu"}},
		VictimHosts:    []*irxv1.Host{{Hostname: "ws17.example.edu", Addresses: []string{"192.0.2.17"}}, {Addresses: []string{"192.0.2.18"}}},
		AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}, Services: []*irxv1.Service{{IpProtocol: 6, Port: 443}}}},
		Indicators: []*irxv1.Indicator{
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2.bad.example"},
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7"},
		},
	}
	req := &irxv1.CreateIncidentRequest{Incident: inc, RequestId: "r"}
	for _, typed := range []bool{true, false} {
		b.Run(map[bool]string{true: "written-out", false: "reflective"}[typed], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				found := false
				if typed {
					_, found = requestUnknown(req)
				} else {
					var path []step
					_, found = firstUnknown(req.ProtoReflect(), &path)
				}
				if found {
					b.Fatal("found an unknown field")
				}
			}
		})
	}
}
