package fsm

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/node/record"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func TestBatchEntryGivesEachCommandItsResult(t *testing.T) {
	h := newHarness(t)
	bad := newIncident()
	bad.Tlp = 0
	inner := &irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{}}}
	entry := h.command(&irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: []*irxv1.Command{
		createCmd(newIncident(), "r1"),
		createCmd(bad, ""),
		inner,
		createCmd(newIncident(), "r1"), // a retry inside the same entry
		createCmd(newIncident(), ""),
	}}}})
	res := h.apply(entry)
	if res.Err != nil || len(res.Batch) != 5 {
		t.Fatalf("batch: %v", res)
	}
	var verr *record.ValidationError
	switch {
	case res.Batch[0].Incident.GetId() != idOf(1):
		t.Errorf("first: %v", res.Batch[0])
	case !errors.As(res.Batch[1].Err, &verr):
		t.Errorf("invalid create: %v", res.Batch[1].Err)
	case !errors.Is(res.Batch[2].Err, ErrInvalidCommand):
		t.Errorf("nested batch: %v", res.Batch[2].Err)
	case res.Batch[3].Incident.GetId() != idOf(1):
		t.Errorf("retry in the same entry: %v", res.Batch[3])
	case res.Batch[4].Incident.GetId() != idOf(2):
		t.Errorf("last: %v (tickets must stay gap-free)", res.Batch[4])
	}
	// Every command took the entry's propose time.
	if !res.Batch[4].Incident.GetCreateTime().AsTime().Equal(res.Batch[0].Incident.GetCreateTime().AsTime()) {
		t.Error("commands of one entry got different times")
	}
	before := contentDigest(t, h.f)
	if again := h.f.ApplyBatch([]*raft.Log{entry})[0]; again != nil {
		t.Errorf("replayed batch entry returned %v", again)
	}
	if contentDigest(t, h.f) != before || h.f.LastTicket() != 2 {
		t.Error("replaying a batch entry changed the state")
	}
}

// A node-generated request id is stored on its first, "fresh" proposal
// without a lookup; a retry (not fresh) finds it and creates nothing.
func TestFreshRequestIDIsStoredAndRetriesDeduplicate(t *testing.T) {
	h := newHarness(t)
	first := createCmd(newIncident(), "irx-node-made")
	first.GetCreateIncident().FreshRequestId = true
	r1 := h.apply(h.command(first))
	retry := createCmd(newIncident(), "irx-node-made")
	r2 := h.apply(h.command(retry))
	if r1.Err != nil || r2.Err != nil || r1.Incident.GetId() != r2.Incident.GetId() || h.f.LastTicket() != 1 {
		t.Fatalf("first %v, retry %v, last ticket %d", r1, r2, h.f.LastTicket())
	}
}
