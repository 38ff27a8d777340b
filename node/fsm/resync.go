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
func (a *applier) resyncPeer(c *irxv1.ResyncPeerCommand) *Result {
	peer := c.GetPeerTeamId()
	if peer == a.fsm.team || record.ValidateTeamID(peer) != nil {
		return &Result{Err: fmt.Errorf("%w: resync with %q", ErrInvalidCommand, peer)}
	}
	_, closer, err := a.b.Get(peerKey(peer))
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
	if st.GetInboundCursor() != c.GetFromCursor() || st.GetInboundGeneration() != c.GetFromGeneration() {
		return &Result{Err: fmt.Errorf("%w: our cursor in %s's feed is %d in generation %d, the resync was for %d in %d",
			ErrStaleCursor, peer, st.GetInboundCursor(), st.GetInboundGeneration(), c.GetFromCursor(), c.GetFromGeneration())}
	}
	if c.GetGeneration() == c.GetFromGeneration() || c.GetFromCursor() <= c.GetRestoredFeedSequence() {
		return &Result{Err: fmt.Errorf("%w: a resync with %s that changes nothing", ErrInvalidCommand, peer)}
	}
	ids, err := a.recordsOf(peer)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	for _, id := range ids {
		cur, err := newestVersion(a.b, id)
		if err != nil {
			a.fail(err)
			return &Result{Err: err}
		}
		a.deleteCopy(id, cur)
		delete(a.fsm.tombstones, id)
	}
	a.deleteRange(cat(prefixTomb, []byte(peer), []byte{0}))
	for id := range a.fsm.tombstones {
		if id.Team == peer {
			delete(a.fsm.tombstones, id)
		}
	}
	st.InboundCursor, st.InboundPolicyVersion, st.InboundGeneration = 0, 0, c.GetGeneration()
	a.setProto(st, peerStateKey(peer))
	a.fsm.log.Warn("peer restored from a backup older than our cursor: dropped our copies of its records, reading its feed again",
		"peer", peer, "records", len(ids), "generation", c.GetGeneration(), "restored_feed_sequence", c.GetRestoredFeedSequence())
	return &Result{Err: a.err}
}

// recordsOf lists the ids of the incidents of origin team that we hold.
func (a *applier) recordsOf(team string) ([]record.ID, error) {
	prefix := cat(prefixIncident, []byte(team), []byte{0})
	it, err := a.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []record.ID
	for it.First(); it.Valid(); it.Next() {
		id, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			return nil, fmt.Errorf("fsm: incident key %q: %w", it.Key(), err)
		}
		ids = append(ids, id)
	}
	return ids, it.Error()
}
