package policy_test

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// TestSharesStatisticsFollowsTheStatisticalClass: a team's aggregate
// counts go to a peer exactly when its policy discloses the statistical
// class; and where they do not, no disclosed view of any record carries a
// statistical field (status, taxonomy, priority, the times, the reporting
// site's sector and country) either, so the
// aggregates never tell a peer what its records would not.
func TestSharesStatisticsFollowsTheStatisticalClass(t *testing.T) {
	if (*policy.Compiled)(nil).SharesStatistics() {
		t.Fatal("no policy shares statistics")
	}
	rapid.Check(t, func(t *rapid.T) {
		g := &recordGen{t: t}
		inc := g.record()
		if err := record.Validate(inc, "incident"); err != nil {
			t.Fatalf("generator made an invalid record: %v", err)
		}
		gp := drawPolicy(t, g, inc)
		c, err := policy.Compile(gp.p, keyFor("cert-b"))
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		want := gp.action(irxv1.InfoClass_INFO_CLASS_STATISTICAL) != strip
		if got := c.SharesStatistics(); got != want {
			t.Fatalf("SharesStatistics = %v, the policy's statistical action is %v", got, gp.action(irxv1.InfoClass_INFO_CLASS_STATISTICAL))
		}
		if want {
			return
		}
		view, _ := policy.Disclose(inc, c)
		if view == nil {
			return
		}
		// A stripped taxonomy becomes other/undetermined, which claims nothing.
		tax := view.GetTaxonomy()
		if view.GetStatus() != 0 || tax != nil && (tax.GetClass() != "other" || tax.GetType() != "undetermined") || view.GetPriority() != 0 || view.GetReportTime() != nil || view.GetDetectTime() != nil ||
			view.GetReportingSite().GetSector() != 0 || view.GetReportingSite().GetCountry() != "" {
			t.Fatalf("a policy that shares no statistics disclosed statistical fields: %v", view)
		}
	})
}
