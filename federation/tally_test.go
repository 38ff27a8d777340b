package federation

import (
	"maps"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestTallyCountsEachOutcome: the outcome metrics tell a view sent as
// encoded for its digest, a replacement that carries one, an erasure (a
// replacement without a view), a withdrawal and statistics apart.
func TestTallyCountsEachOutcome(t *testing.T) {
	view, err := proto.Marshal(&irxv1.Incident{Id: "cert-a:1", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	disclosed := &irxv1.FeedItem{Sequence: 1}
	wire.SetEncoded(disclosed, wire.FeedItemIncident, view)
	replacement := &irxv1.IncidentReplacement{IncidentId: "cert-a:1", Version: 1}
	wire.SetEncoded(replacement, wire.ReplacementIncident, view)
	outs := []outcome{
		{item: disclosed, ledger: &irxv1.LedgerEntry{IncidentId: "cert-a:1", Version: 1}},
		{item: &irxv1.FeedItem{Kind: &irxv1.FeedItem_Replacement{Replacement: replacement}}, ledger: &irxv1.LedgerEntry{IncidentId: "cert-a:1", Version: 1}},
		{item: &irxv1.FeedItem{Kind: &irxv1.FeedItem_Replacement{Replacement: &irxv1.IncidentReplacement{IncidentId: "cert-a:2", Version: 1}}},
			ledger: &irxv1.LedgerEntry{IncidentId: "cert-a:2", Version: 1, Erased: true}},
		{item: &irxv1.FeedItem{Kind: &irxv1.FeedItem_Withdrawal{Withdrawal: &irxv1.IncidentWithdrawal{IncidentId: "cert-a:3"}}}},
		{item: &irxv1.FeedItem{Kind: &irxv1.FeedItem_Statistics{Statistics: &irxv1.SharedStatistics{}}}},
	}
	tl := newTally()
	tl.add(outs, true)
	want := map[string]int{"withheld": 1, "disclosed": 1, "replaced": 1, "erased": 1, "withdrawn": 1, "statistics": 1}
	if !maps.Equal(tl.outcomes, want) {
		t.Fatalf("outcomes %v, want %v", tl.outcomes, want)
	}
}
