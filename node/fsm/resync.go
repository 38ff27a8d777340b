package fsm

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// resyncPeer follows a peer restored from a backup older than our cursor
// in its feed (ResyncPeerCommand). What we applied after the backup's last
// entry is gone at the peer, which hands out those tickets, versions and
// feed sequences again for other content; keeping our copies would make
// the new ones look like duplicates. So every copy of the peer's own
// records goes (versions, indexes, tombstones), and our cursor returns to
// 0 in the new generation: the peer's feed, read again, gives us exactly
// what the restored team holds, and nothing twice, since versions are
// keyed by (origin, id, version). Records of other origins that reached us
// through the peer are theirs to number and stay.
//
// The copies go a stretch of resyncStretch records per command, so no
// Raft entry's work grows with what we hold of the peer: the first
// command moves the cursor and marks the resync pending, continuations
// delete the rest, and the peer's feed is refused until the last stretch
// cleared the mark.
func (a *applier) resyncPeer(c *irxv1.ResyncPeerCommand) *Result {
	peer := c.GetPeerTeamId()
	if peer == a.fsm.team || record.ValidateTeamID(peer) != nil {
		return &Result{Err: fmt.Errorf("%w: resync with %q", ErrInvalidCommand, peer)}
	}
	_, closer, err := a.reads().Get(peerKey(peer))
	if errors.Is(err, pebble.ErrNotFound) {
		return &Result{Err: fmt.Errorf("%w: peer %q", ErrNotFound, peer)}
	}
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	_ = closer.Close()
	st, err := a.peerState(peer)
	if err != nil {
		return &Result{Err: err}
	}
	if c.GetContinuation() {
		if !st.GetInboundResyncPending() || st.GetInboundGeneration() != c.GetGeneration() {
			return &Result{Err: fmt.Errorf("%w: no resync with %s is under way in generation %d", ErrStaleCursor, peer, c.GetGeneration())}
		}
	} else {
		if st.GetInboundCursor() != c.GetFromCursor() || st.GetInboundGeneration() != c.GetFromGeneration() {
			return &Result{Err: fmt.Errorf("%w: our cursor in %s's feed is %d in generation %d, the resync was for %d in %d",
				ErrStaleCursor, peer, st.GetInboundCursor(), st.GetInboundGeneration(), c.GetFromCursor(), c.GetFromGeneration())}
		}
		if c.GetGeneration() == c.GetFromGeneration() || c.GetFromCursor() <= c.GetRestoredFeedSequence() {
			return &Result{Err: fmt.Errorf("%w: a resync with %s that changes nothing", ErrInvalidCommand, peer)}
		}
		st.InboundCursor, st.InboundPolicyVersion, st.InboundGeneration = 0, 0, c.GetGeneration()
		st.InboundResyncPending = true
		a.fsm.log.Warn("peer restored from a backup older than our cursor: dropping our copies of its records, then reading its feed again",
			"peer", peer, "generation", c.GetGeneration(), "restored_feed_sequence", c.GetRestoredFeedSequence())
	}
	ids, err := a.recordsOf(peer, resyncStretch)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	for _, id := range ids {
		cur, err := newestVersion(a.reads(), id)
		if err != nil {
			a.fail(err)
			return &Result{Err: err}
		}
		a.deleteCopy(id, cur)
		delete(a.fsm.tombstones, id)
	}
	if len(ids) < resyncStretch {
		a.deleteRange(cat(prefixTomb, []byte(peer), []byte{0}))
		for id := range a.fsm.tombstones {
			if id.Team == peer {
				delete(a.fsm.tombstones, id)
			}
		}
		st.InboundResyncPending = false
		a.fsm.log.Info("resync with a restored peer: our copies of its records are gone; reading its feed again", "peer", peer, "generation", st.GetInboundGeneration())
	}
	a.setProto(st, peerStateKey(peer))
	return &Result{Err: a.err}
}

// resyncStretch is how many records of a restored peer one resync command
// deletes.
const resyncStretch = 1024

// recordsOf lists the ids of up to limit incidents of origin team that we
// hold, in id order.
func (a *applier) recordsOf(team string, limit int) ([]record.ID, error) {
	prefix := cat(prefixIncident, []byte(team), []byte{0})
	it, err := a.reads().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []record.ID
	for valid := it.First(); valid && len(ids) < limit; valid = it.Next() {
		id, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			return nil, fmt.Errorf("fsm: incident key %q: %w", it.Key(), err)
		}
		ids = append(ids, id)
	}
	return ids, it.Error()
}
