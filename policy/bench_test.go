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

// TestDiscloseAllocations holds Disclose of the benchmark's record to its
// allocation budget: a node discloses every version to every peer, and
// garbage is much of what that costs.
func TestDiscloseAllocations(t *testing.T) {
	inc := realisticIncident()
	c := mustCompile(t, realisticPolicy())
	if view, _ := policy.Disclose(inc, c); view == nil {
		t.Fatal("nothing disclosed: the budget would be the withheld path's")
	}
	const budget = 50
	n := testing.AllocsPerRun(200, func() { policy.Disclose(inc, c) })
	if n > budget {
		t.Errorf("Disclose of the realistic record makes %.0f allocations per call; the budget is %d", n, budget)
	}
	t.Logf("%.0f allocations per call (budget %d)", n, budget)
}
