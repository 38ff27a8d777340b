package fsm

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
	"github.com/irxfed/irx/test/atrest"
)

// canaryView is a foreign view whose free-text fields hold canaries.
func canaryView(origin string, ticket uint64, canary string) *irxv1.Incident {
	v := foreignView(origin, ticket, 1)
	v.Descriptions = []*irxv1.Description{{Lang: "en", Text: "seen beaconing " + canary + "-desc"}}
	v.VictimHosts[0].Hostname = canary + "-host.example.org"
	v.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: canary + "-c2.example"}}
	return v
}

func canaries(c string) []string { return []string{c + "-desc", c + "-host", c + "-c2"} }

func (h *harness) flush() {
	h.t.Helper()
	if err := h.f.db.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

func scanState(t *testing.T, dir string, needles ...string) []atrest.Finding {
	t.Helper()
	found, err := atrest.Scan(dir, needles...)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestWithdrawalNotesAnErasure(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	for i, c := range []string{"KEEP", "GONE"} {
		if res := h.feed("cert-b", uint64(i), uint64(i+1), viewItem(uint64(i+1), canaryView("cert-b", uint64(i+1), c))); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if _, _, ok := h.f.PendingErasure(); ok {
		t.Fatal("an erasure is pending though nothing was removed")
	}
	if _, err := os.Stat(h.dir + ".erase-owed"); !os.IsNotExist(err) {
		t.Fatalf("erasure marker without a removal: %v", err)
	}
	// A second version with another indicator: the first one's index key
	// was deleted then, and is erased with the copy.
	v2 := canaryView("cert-b", 2, "GONE2")
	v2.Version = 2
	if res := h.feed("cert-b", 2, 3, viewItem(3, v2)); res.Err != nil {
		t.Fatal(res.Err)
	}
	first, _ := h.f.Get("cert-b:2", 1)
	gone, _ := h.f.Get("cert-b:2", 0)
	if res := h.feed("cert-b", 3, 4, withdrawalItem(4, "cert-b:2", 2, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)); res.Err != nil {
		t.Fatal(res.Err)
	}
	select {
	case <-h.f.Erasures():
	default:
		t.Fatal("no signal for the eraser")
	}
	er, ok := h.f.TakeErasure()
	if !ok || er.Index != h.index || er.Full || er.Since.IsZero() {
		t.Fatalf("erasure %+v, %v; want one at index %d", er, ok, h.index)
	}
	// Every version of the withdrawn copy and each of its index keys, and
	// nothing of the record kept.
	id := record.ID{Team: "cert-b", Ticket: 2}
	want := append(append([][]byte{cat(prefixVersion, idKey(id))}, indexKeys(id, gone)...), indexKeys(id, first)...)
	covered := func(k []byte) bool {
		for _, s := range er.Spans {
			if bytes.Compare(s.Start, k) <= 0 && bytes.Compare(k, s.End) < 0 {
				return true
			}
		}
		return false
	}
	for _, k := range want {
		if !covered(k) {
			t.Errorf("key %q of the withdrawn copy is not in the erasure %v", k, er.Spans)
		}
	}
	kept, _ := h.f.Get("cert-b:1", 0)
	for _, k := range append([][]byte{versionKey(record.ID{Team: "cert-b", Ticket: 1}, 1)}, indexKeys(record.ID{Team: "cert-b", Ticket: 1}, kept)...) {
		if covered(k) && !bytes.HasPrefix(k, prefixStatus) && !bytes.HasPrefix(k, prefixTLP) && !bytes.HasPrefix(k, prefixTaxonomy) {
			t.Errorf("key %q of a kept record is in the erasure", k)
		}
	}
	if _, err := os.Stat(h.dir + ".erase-owed"); err != nil {
		t.Fatalf("no erasure marker while one is owed: %v", err)
	}
	if err := h.f.FinishErasure(er, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.dir + ".erase-owed"); !os.IsNotExist(err) {
		t.Fatalf("erasure marker after the erasure: %v", err)
	}
}

// TestEraseStateRemovesValuesFromEveryFile: a withdrawn copy's values are
// in the database's sstables (and memtable) after the withdrawal; after
// EraseState no file of the database holds them, and a pebble snapshot
// taken before the withdrawal holds the erasure back until it is closed.
func TestEraseStateRemovesValuesFromEveryFile(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	if res := h.feed("cert-b", 0, 2, viewItem(1, canaryView("cert-b", 1, "GONE")), viewItem(2, canaryView("cert-b", 2, "KEEP"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.flush()
	// A snapshot raft is still persisting from when the withdrawal comes.
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Released below; also if the test fails before, or closing the
	// database would wait for it.
	var release sync.Once
	t.Cleanup(func() { release.Do(snap.Release) })
	if res := h.feed("cert-b", 2, 3, withdrawalItem(3, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.flush() // the tombstones in a table above the values
	if found := scanState(t, h.dir, canaries("GONE")...); len(found) < len(canaries("GONE")) {
		t.Fatalf("before erasure: found %v; the test cannot fail", found)
	}
	er, ok := h.f.TakeErasure()
	if !ok {
		t.Fatal("no erasure pending")
	}
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.f.EraseState(short, er); err == nil || !strings.Contains(err.Error(), "snapshots taken before") {
		t.Fatalf("erased while a snapshot from before the withdrawal was open: %v", err)
	}
	release.Do(snap.Release)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.f.EraseState(ctx, er); err != nil {
		t.Fatal(err)
	}
	found := scanState(t, h.dir, append(canaries("GONE"), canaries("KEEP")...)...)
	kept := 0
	for _, f := range found {
		if strings.HasPrefix(f.Needle, "KEEP") {
			kept++
			continue
		}
		t.Errorf("withdrawn value still readable: %v", f)
	}
	if kept == 0 {
		t.Error("the kept record's values are in no file")
	}
	if _, err := h.f.Get("cert-b:2", 0); err != nil {
		t.Errorf("kept record: %v", err)
	}
}

// TestEraseStateCompactsWhatPebbleLeaves: the withdrawn values lie in
// the last level and the withdrawal's tombstones only in the memtable,
// where pebble has no reason to compact anything; EraseState drops them.
func TestEraseStateCompactsWhatPebbleLeaves(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	if res := h.feed("cert-b", 0, 2, viewItem(1, canaryView("cert-b", 1, "GONE")), viewItem(2, canaryView("cert-b", 2, "KEEP"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := h.f.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	if res := h.feed("cert-b", 2, 3, withdrawalItem(3, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if found := scanState(t, h.dir, canaries("GONE")...); len(found) < len(canaries("GONE")) {
		t.Fatalf("before erasure: found %v; the test cannot fail", found)
	}
	er, _ := h.f.TakeErasure()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.f.EraseState(ctx, er); err != nil {
		t.Fatal(err)
	}
	if found := scanState(t, h.dir, canaries("GONE")...); len(found) > 0 {
		t.Errorf("after EraseState: %v", found)
	}
	if found := scanState(t, h.dir, canaries("KEEP")...); len(found) == 0 {
		t.Error("the kept record's values are in no file")
	}
}

// TestErasureOwedAcrossRestart: a node that stops before its eraser ran
// erases everything at its next start.
func TestErasureOwedAcrossRestart(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	if res := h.feed("cert-b", 0, 1, viewItem(1, canaryView("cert-b", 1, "GONE"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.feed("cert-b", 1, 2, withdrawalItem(2, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t, h.dir)
	er, ok := f.TakeErasure()
	if !ok || !er.Full || er.Index != h.index {
		t.Fatalf("after a restart: %+v, %v; want a full erasure up to %d", er, ok, h.index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.EraseState(ctx, er); err != nil {
		t.Fatal(err)
	}
	if found := scanState(t, h.dir, canaries("GONE")...); len(found) > 0 {
		t.Errorf("after a full erasure: %v", found)
	}
	if err := f.FinishErasure(er, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := openFSM(t, h.dir).TakeErasure(); ok {
		t.Fatal("an erasure is owed again after it was done")
	}
}

func TestFailedErasureIsPendingAgain(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.feed("cert-b", 0, 2, viewItem(1, canaryView("cert-b", 1, "A")), viewItem(2, canaryView("cert-b", 2, "B")))
	h.feed("cert-b", 2, 3, withdrawalItem(3, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN))
	first, _ := h.f.TakeErasure()
	h.feed("cert-b", 3, 4, withdrawalItem(4, "cert-b:2", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN))
	if err := h.f.FinishErasure(first, context.DeadlineExceeded); err != nil {
		t.Fatal(err)
	}
	again, ok := h.f.TakeErasure()
	if !ok || again.Index != 4 || again.Ranges != 2*first.Ranges || !again.Since.Equal(first.Since) {
		t.Fatalf("after a failed pass: %+v; want both removals, up to index 4, since the first", again)
	}
	if err := h.f.FinishErasure(again, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.dir + ".erase-owed"); !os.IsNotExist(err) {
		t.Fatalf("marker after every erasure is done: %v", err)
	}
}

// TestMarkerStaysWhileRemovalsArePending: a pass that succeeds while
// newer removals wait leaves the marker for them.
func TestMarkerStaysWhileRemovalsArePending(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.feed("cert-b", 0, 2, viewItem(1, canaryView("cert-b", 1, "A")), viewItem(2, canaryView("cert-b", 2, "B")))
	h.feed("cert-b", 2, 3, withdrawalItem(3, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN))
	first, _ := h.f.TakeErasure()
	h.feed("cert-b", 3, 4, withdrawalItem(4, "cert-b:2", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN))
	if err := h.f.FinishErasure(first, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.dir + ".erase-owed"); err != nil {
		t.Fatalf("marker gone while a removal waits: %v", err)
	}
	second, ok := h.f.TakeErasure()
	if !ok || second.Index != 4 {
		t.Fatalf("pending after the first pass: %+v, %v", second, ok)
	}
	if err := h.f.FinishErasure(second, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.dir + ".erase-owed"); !os.IsNotExist(err) {
		t.Fatalf("marker after every erasure is done: %v", err)
	}
}

func TestMergeAndCoalesceSpans(t *testing.T) {
	s := func(a, b string) Span { return Span{Start: []byte(a), End: []byte(b)} }
	got := mergeSpans([]Span{s("c", "d"), s("a", "b"), s("b", "bb"), s("c", "cc")})
	if len(got) != 2 || string(got[0].End) != "bb" || string(got[1].Start) != "c" || string(got[1].End) != "d" {
		t.Fatalf("merged %q", got)
	}
	f := &FSM{families: keyFamilies()}
	var many []Span
	for i := range maxCompactions + 4 {
		k := append(bytes.Clone(prefixInd), byte(i), 1)
		many = append(many, Span{Start: k, End: keyAfter(k)})
	}
	many = append(many, s("ver/x", "ver/y"))
	got = f.compactionSpans(mergeSpans(many))
	if len(got) != 2 || !bytes.HasPrefix(got[0].Start, prefixInd) || !bytes.HasPrefix(got[0].End, prefixInd) || string(got[1].Start) != "ver/x" {
		t.Fatalf("coalesced %q", got)
	}
}
