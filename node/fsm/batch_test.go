package fsm

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
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

// A retry that lands in the same apply as the fresh create it repeats, in
// one batch entry or in the next entry, finds the request id the fresh one
// stored: the commands read each other's writes.
func TestRetryBesideItsFreshCreateDeduplicates(t *testing.T) {
	fresh := func() *irxv1.Command {
		c := createCmd(newIncident(), "irx-node-made")
		c.GetCreateIncident().FreshRequestId = true
		return c
	}
	t.Run("one entry", func(t *testing.T) {
		h := newHarness(t)
		res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: []*irxv1.Command{
			fresh(), createCmd(newIncident(), "irx-node-made"),
		}}}}))
		if res.Err != nil || len(res.Batch) != 2 || res.Batch[1].Incident.GetId() != idOf(1) || h.f.LastTicket() != 1 {
			t.Fatalf("batch %v, last ticket %d", res, h.f.LastTicket())
		}
	})
	t.Run("next entry", func(t *testing.T) {
		h := newHarness(t)
		results := h.f.ApplyBatch([]*raft.Log{h.command(fresh()), h.command(createCmd(newIncident(), "irx-node-made"))})
		second := results[1].(*Result)
		if second.Err != nil || second.Incident.GetId() != idOf(1) || h.f.LastTicket() != 1 {
			t.Fatalf("retry %v, last ticket %d", second, h.f.LastTicket())
		}
	})
}

// Only commands known to read nothing may be applied without an indexed
// batch; every other kind of the Command oneof, present or future, reads.
func TestReadsState(t *testing.T) {
	fresh := createCmd(newIncident(), "irx-node-made")
	fresh.GetCreateIncident().FreshRequestId = true
	batchOf := func(cmds ...*irxv1.Command) *irxv1.Command {
		return &irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}}
	}
	noop := &irxv1.Command{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}
	for name, c := range map[string]struct {
		cmd  *irxv1.Command
		want bool
	}{
		"fresh create":                {fresh, false},
		"create without a request id": {createCmd(newIncident(), ""), false},
		"create with a client's id":   {createCmd(newIncident(), "client-1"), true},
		"leader no-op":                {noop, false},
		"batch of fresh creates":      {batchOf(fresh, fresh, noop), false},
		"batch with one retry":        {batchOf(fresh, createCmd(newIncident(), "irx-node-made")), true},
		"batch with an update":        {batchOf(fresh, updateCmd(&irxv1.Incident{Id: idOf(1)}, 1, "tlp")), true},
		"command without a kind":      {&irxv1.Command{}, true},
	} {
		if got := readsState(c.cmd); got != c.want {
			t.Errorf("%s: readsState = %v, want %v", name, got, c.want)
		}
	}
	// Every other kind reads, whatever it holds.
	kinds := (&irxv1.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	for i := range kinds.Len() {
		f := kinds.Get(i)
		switch f.Name() {
		case "create_incident", "leader_noop", "batch":
			continue
		}
		cmd := &irxv1.Command{}
		m := cmd.ProtoReflect()
		m.Set(f, protoreflect.ValueOfMessage(m.NewField(f).Message()))
		if !readsState(cmd) {
			t.Errorf("%s: readsState = false; only creates with fresh request ids and no-ops read nothing", f.Name())
		}
	}
}

// TestOneBatchLeavesWhatEntryByEntryWould: any sequence of entries that
// read what the ones before them wrote (a peer's views, withdrawals and
// new versions of one record, feed commands chained by their cursors,
// some broken; creates with request ids and updates of our own records;
// new alert settings, which the entries after them correlate with),
// applied as one batch, whose writes are held back and added in key order,
// gives each entry the result and leaves the store exactly as applying
// them one entry at a time does.
func TestOneBatchLeavesWhatEntryByEntryWould(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		batched, single := newHarness(t), newHarness(t)
		defer batched.f.Close()
		defer single.f.Close()
		for _, h := range []*harness{batched, single} {
			h.addPeer("cert-b")
		}
		drawIndicators := func() []*irxv1.Indicator {
			var out []*irxv1.Indicator
			for _, i := range rapid.SliceOfNDistinct(rapid.IntRange(0, len(correlationPool)-1), 0, 3, rapid.ID).Draw(rt, "indicators") {
				out = append(out, &irxv1.Indicator{Kind: correlationPool[i].GetKind(), Value: correlationPool[i].GetValue()})
			}
			return out
		}
		var logs []*raft.Log
		cursor, owned := uint64(0), 0
		for range rapid.IntRange(1, 12).Draw(rt, "entries") {
			var cmd *irxv1.Command
			switch rapid.IntRange(0, 4).Draw(rt, "kind") {
			case 0, 1:
				var items []*irxv1.FeedItem
				from := cursor
				if rapid.IntRange(0, 5).Draw(rt, "break the chain") == 0 {
					from += 2
				}
				seq := from
				for range rapid.IntRange(1, 4).Draw(rt, "items") {
					seq++
					ticket := uint64(rapid.IntRange(1, 3).Draw(rt, "ticket"))
					if rapid.IntRange(0, 3).Draw(rt, "withdraw") == 0 {
						items = append(items, withdrawalItem(seq, fmt.Sprintf("cert-b:%d", ticket), int64(rapid.IntRange(1, 3).Draw(rt, "withdrawn version")), irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN))
						continue
					}
					v := foreignView("cert-b", ticket, int64(rapid.IntRange(1, 3).Draw(rt, "version")))
					v.Indicators = drawIndicators()
					v.ReportTime = timestamppb.New(t0.Add(time.Duration(rapid.IntRange(0, 30).Draw(rt, "report day")) * 24 * time.Hour))
					items = append(items, viewItem(seq, v))
				}
				if from == cursor {
					cursor = seq
				}
				cmd = &irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
					PeerTeamId: "cert-b", FromCursor: from, Cursor: seq, Items: items, Head: seq,
				}}}
			case 2:
				inc := newIncident()
				inc.Indicators = drawIndicators()
				cmd = createCmd(inc, fmt.Sprintf("r%d", rapid.IntRange(1, 3).Draw(rt, "request id")))
			case 3:
				window := time.Duration(rapid.IntRange(1, 20).Draw(rt, "window days")) * 24 * time.Hour
				cmd = &irxv1.Command{Kind: &irxv1.Command_UpdateAlertSettings{UpdateAlertSettings: &irxv1.UpdateAlertSettingsCommand{
					Settings: &irxv1.AlertSettings{Window: durationpb.New(window)},
				}}}
			default:
				if owned == 0 {
					owned++
				}
				cmd = &irxv1.Command{Kind: &irxv1.Command_UpdateIncident{UpdateIncident: &irxv1.UpdateIncidentCommand{
					Incident:   &irxv1.Incident{Id: idOf(uint64(owned)), Indicators: drawIndicators(), Status: irxv1.Status_STATUS_IN_PROGRESS},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"indicators", "status"}},
				}}}
			}
			if cmd.GetCreateIncident() != nil {
				owned = max(owned, 1)
			}
			logs = append(logs, batched.command(cmd))
			single.index, single.clock = batched.index, batched.clock
		}
		all := batched.f.ApplyBatch(logs)
		for i, l := range logs {
			one := single.f.ApplyBatch([]*raft.Log{l})[0]
			got, want := asResult(t, all[i]), asResult(t, one)
			if fmt.Sprint(got.Err) != fmt.Sprint(want.Err) || got.Incident.GetVersion() != want.Incident.GetVersion() {
				rt.Fatalf("entry %d: %v (v%d) in one batch, %v (v%d) alone", i, got.Err, got.Incident.GetVersion(), want.Err, want.Incident.GetVersion())
			}
		}
		if contentDigest(t, batched.f) != contentDigest(t, single.f) {
			b, s := dump(t, batched.f), dump(t, single.f)
			for k, v := range b {
				if s[k] != v {
					rt.Errorf("%q: %x in one batch, %x entry by entry", k, v, s[k])
				}
			}
			for k := range s {
				if _, ok := b[k]; !ok {
					rt.Errorf("%q only entry by entry", k)
				}
			}
			rt.Fatal("the stores differ")
		}
	})
}

// TestWarningRevisionMovesWithWarnings: the revision the leader's sender
// waits on moves with a batch that stores a warning, and with no other.
func TestWarningRevisionMovesWithWarnings(t *testing.T) {
	h := newHarness(t)
	start := h.f.WarningRevision()
	if res := h.apply(h.createLog(newIncident(), "")); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := h.f.WarningRevision(); got != start {
		t.Fatalf("a create moved the warning revision from %d to %d", start, got)
	}
	res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_IssueWarning{IssueWarning: &irxv1.IssueWarningCommand{
		Warning: &irxv1.Warning{Title: "scan", Severity: irxv1.WarningSeverity_WARNING_SEVERITY_HIGH, Tlp: irxv1.Tlp_TLP_GREEN,
			ExpireTime: timestamppb.New(t0.Add(48 * time.Hour))},
	}}}))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := h.f.WarningRevision(); got == start {
		t.Fatal("a new warning left the warning revision where it was")
	}
}
