package policy_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/policy"
)

// BenchmarkDisclose measures one disclosure of a realistic incident (about
// 2 KiB, 20 hosts, 30 indicators) under a realistic response-team policy.
// Targets: under 10 µs and 50 allocations per call on a 2-core machine.
func BenchmarkDisclose(b *testing.B) {
	inc := realisticIncident()
	c := mustCompile(b, realisticPolicy())
	if view, _ := policy.Disclose(inc, c); view == nil {
		b.Fatal("nothing disclosed")
	}
	b.ReportAllocs()
	for b.Loop() {
		policy.Disclose(inc, c)
	}
	b.ReportMetric(float64(proto.Size(inc)), "record-bytes")
}
