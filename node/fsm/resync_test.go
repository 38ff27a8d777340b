package fsm

import (
	"errors"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func (h *harness) resync(peer string, from, fromGen, gen, restored uint64) *Result {
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ResyncPeer{ResyncPeer: &irxv1.ResyncPeerCommand{
		PeerTeamId: peer, FromCursor: from, FromGeneration: fromGen, Generation: gen, RestoredFeedSequence: restored,
	}}}))
}

// A resync with a restored peer drops every copy of the peer's own
// records, tombstones included, and nothing else, and restarts the cursor;
// the records the restored peer then serves under the old numbers are
// stored as new, not taken for duplicates.
func TestResyncPeer(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	if res := h.feed("cert-b", 0, 3, viewItem(1, foreignView("cert-b", 1, 1)), viewItem(2, foreignView("cert-b", 2, 1)),
		viewItem(3, foreignView("cert-c", 1, 1, "cert-b"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.feed("cert-b", 3, 4, withdrawalItem(4, "cert-b:2", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)); res.Err != nil {
		t.Fatal(res.Err)
	}
	own := h.create(newIncident())

	// Stale (cursor moved, or generation differs) and pointless resyncs
	// are refused whole.
	before := contentDigest(t, h.f)
	for name, res := range map[string]*Result{
		"stale cursor":     h.resync("cert-b", 3, 0, 5, 2),
		"stale generation": h.resync("cert-b", 4, 9, 5, 2),
		"same generation":  h.resync("cert-b", 4, 0, 0, 2),
		"cursor in backup": h.resync("cert-b", 4, 0, 5, 4),
	} {
		if res.Err == nil {
			t.Errorf("%s: applied", name)
		}
		if contentDigest(t, h.f) != before {
			t.Fatalf("%s: a refused resync changed the state", name)
		}
	}
	if res := h.resync("cert-b", 4, 0, 5, 2); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, id := range []string{"cert-b:1", "cert-b:2"} {
		if _, err := h.f.Get(id, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s kept after the resync: %v", id, err)
		}
	}
	mustGet(t, h.f, "cert-c:1", 0)
	mustGet(t, h.f, own.GetId(), 0)
	if got := listAll(t, h.f, Query{OriginTeam: "cert-b"}, 10); len(got) != 0 {
		t.Fatalf("the indexes still list %v", got)
	}
	st, _ := h.f.PeerState("cert-b")
	if st.GetInboundCursor() != 0 || st.GetInboundGeneration() != 5 {
		t.Fatalf("peer state after resync %v", st)
	}
	// The restored peer serves its feed from 0: cert-b:2 is a record again
	// (the withdrawal was lost with the backup), a different one.
	v := foreignView("cert-b", 2, 1)
	v.AssistanceRequested = "the restored team's second record"
	if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: "cert-b", FromCursor: 0, Cursor: 2, Items: []*irxv1.FeedItem{viewItem(2, v)}, Head: 2, Generation: 5,
	}}})); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:2", 0); got.GetAssistanceRequested() != v.GetAssistanceRequested() || got.GetWithdrawTime() != nil {
		t.Fatalf("cert-b:2 after the resync: %v", got)
	}
	if st, _ := h.f.PeerState("cert-b"); st.GetInboundGeneration() != 5 || st.GetInboundCursor() != 2 {
		t.Fatalf("peer state %v", st)
	}
}

// TestResyncPeerInStretches: a resync deletes our copies of the peer's
// records a stretch per command; until the last stretch the peer's feed
// is refused and a continuation of another generation changes nothing;
// the last stretch clears the mark and the feed applies from 0.
func TestResyncPeerInStretches(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	held := resyncStretch + resyncStretch/2
	var items []*irxv1.FeedItem
	for i := range held {
		items = append(items, viewItem(uint64(i+1), foreignView("cert-b", uint64(i+1), 1)))
	}
	if res := h.feed("cert-b", 0, uint64(held), items...); res.Err != nil {
		t.Fatal(res.Err)
	}
	count := func() int { return len(listAll(t, h.f, Query{OriginTeam: "cert-b"}, 2*held)) }
	continuation := func(gen uint64) *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ResyncPeer{ResyncPeer: &irxv1.ResyncPeerCommand{
			PeerTeamId: "cert-b", Generation: gen, Continuation: true,
		}}}))
	}
	if res := continuation(5); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("a continuation with no resync under way: %v", res.Err)
	}
	if res := h.resync("cert-b", uint64(held), 0, 5, 2); res.Err != nil {
		t.Fatal(res.Err)
	}
	st, _ := h.f.PeerState("cert-b")
	if n := count(); n != held-resyncStretch || !st.GetInboundResyncPending() || st.GetInboundCursor() != 0 {
		t.Fatalf("after the first stretch: %d records held (want %d), state %v", n, held-resyncStretch, st)
	}
	feedFromZero := func() *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
			PeerTeamId: "cert-b", FromCursor: 0, Cursor: 1, Items: []*irxv1.FeedItem{viewItem(1, foreignView("cert-b", 1, 1))}, Head: 1, Generation: 5,
		}}}))
	}
	before := contentDigest(t, h.f)
	if res := feedFromZero(); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("the feed applied during the resync: %v", res.Err)
	}
	if res := continuation(6); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("a continuation of another generation: %v", res.Err)
	}
	if contentDigest(t, h.f) != before {
		t.Fatal("a refused command changed the state")
	}
	if res := continuation(5); res.Err != nil {
		t.Fatal(res.Err)
	}
	if st, _ := h.f.PeerState("cert-b"); count() != 0 || st.GetInboundResyncPending() {
		t.Fatalf("after the last stretch: %d records held, state %v", count(), st)
	}
	if res := feedFromZero(); res.Err != nil {
		t.Fatal(res.Err)
	}
	if count() != 1 {
		t.Fatalf("after the feed from 0: %d records", count())
	}
}
