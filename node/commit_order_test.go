package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestCommitInOrderKeepsTheChain: commands committed together enter the
// log in their order (a peer's feed commands each start at the cursor the
// one before moved to, so any reordering would be refused as stale), a
// broken link is refused without moving the cursor and takes the commands
// after it with it, and a create is refused before anything is proposed.
func TestCommitInOrderKeepsTheChain(t *testing.T) {
	n := startErasing(t, t.TempDir(), time.Minute)
	addPeerB(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const chained = 40
	cmds := make([]*irxv1.Command, chained)
	for i := range cmds {
		seq := uint64(i + 1)
		cmds[i] = peerFeed(seq-1, seq, viewItem(seq, canaryView(seq, "CHAIN")))
	}
	for i, err := range n.CommitInOrder(ctx, cmds) {
		if err != nil {
			t.Fatalf("command %d of the chain: %v", i, err)
		}
	}
	cursor := func() uint64 {
		st, err := n.State().PeerState("cert-b")
		if err != nil {
			t.Fatal(err)
		}
		return st.GetInboundCursor()
	}
	if got := cursor(); got != chained {
		t.Fatalf("cursor %d after the chain, want %d", got, chained)
	}

	broken := []*irxv1.Command{
		peerFeed(chained, chained+1, viewItem(chained+1, canaryView(chained+1, "CHAIN"))),
		peerFeed(chained+5, chained+6, viewItem(chained+6, canaryView(chained+6, "CHAIN"))),
		peerFeed(chained+6, chained+7, viewItem(chained+7, canaryView(chained+7, "CHAIN"))),
	}
	errs := n.CommitInOrder(ctx, broken)
	if errs[0] != nil || !errors.Is(errs[1], fsm.ErrStaleCursor) || !errors.Is(errs[2], fsm.ErrStaleCursor) {
		t.Fatalf("refusals %v, want the first applied and the two after the gap stale", errs)
	}
	if got := cursor(); got != chained+1 {
		t.Fatalf("cursor %d after the broken chain, want %d", got, chained+1)
	}

	create := &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
		Incident: &irxv1.Incident{Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}},
	}}}
	next := peerFeed(chained+1, chained+2, viewItem(chained+2, canaryView(chained+2, "CHAIN")))
	for i, err := range n.CommitInOrder(ctx, []*irxv1.Command{next, create}) {
		if err == nil {
			t.Fatalf("command %d of a list holding a create was committed", i)
		}
	}
	// Had the list's first command gone to the log, it would be applied
	// before the one committed after it.
	if errs := n.CommitInOrder(ctx, []*irxv1.Command{next}); errs[0] != nil {
		t.Fatalf("the feed command after a refused list: %v (the refused list's copy was applied)", errs[0])
	}
	if got := cursor(); got != chained+2 {
		t.Fatalf("cursor %d, want %d", got, chained+2)
	}
}
