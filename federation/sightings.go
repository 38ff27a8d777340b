package federation

import (
	"context"
	"crypto/sha256"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Sightings go to the members of our sharing groups as keyed digests
// only, by the leader, apart from the feed: each member gets the digests
// of the values of those of our records its policy lets it receive by TLP
// (no policy, nothing: default deny), whenever that set changed since it
// was last sent. A member replaces what it holds from us with each set.

// maxSightings bounds one delivery: 16-byte digests under the peer-facing
// listener's 1 MiB request limit.
const maxSightings = 50000

type sightingSender struct {
	applied uint64
	sent    map[string][32]byte // group \0 peer -> digest of the set sent
}

func (s *warningSender) sightings(ctx context.Context) {
	applied := s.f.state.AppliedIndex()
	if s.sight.sent != nil && applied == s.sight.applied {
		return
	}
	if s.sight.sent == nil {
		s.sight.sent = map[string][32]byte{}
	}
	// Withdrawals first: a former member put back into the group since
	// gets its full set in the pass below, after the empty one.
	done := s.withdraw(ctx)
	groups, err := s.f.state.SharingGroups()
	if err != nil {
		s.f.log.Warn("reading sharing groups", "error", err)
		return
	}
	for _, g := range groups {
		for _, member := range g.GetMemberTeamIds() {
			if err := s.sendSightings(ctx, g.GetName(), member); err != nil {
				done = false
				s.f.log.Warn("sightings not sent; will retry", "group", g.GetName(), "peer", member, "error", err)
			}
		}
	}
	if done {
		s.sight.applied = applied
	}
}

func (s *warningSender) sendSightings(ctx context.Context, group, member string) error {
	peer, err := s.f.state.Peer(member)
	if err != nil || peer.GetDisabled() || len(peer.GetEndpoints()) == 0 {
		return nil // nobody to tell, or not allowed to
	}
	maxTLP := irxv1.Tlp_TLP_UNSPECIFIED
	pol, err := s.f.state.Policy(member, 0)
	switch {
	case err == nil && pol.GetVersion() > 0:
		maxTLP = min(pol.GetTlpCeiling(), irxv1.Tlp_TLP_AMBER_STRICT)
	case err != nil && !errors.Is(err, errdefs.ErrNotFound):
		return err
	}
	// Under no policy the set is empty, and sent as such: a member whose
	// policy was deleted or narrowed drops what it had.
	keyID, digests, err := s.f.state.OwnSightings(group, maxTLP, maxSightings)
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write([]byte(keyID))
	for _, d := range digests {
		h.Write(d)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	key := group + "\x00" + member
	if prev, ok := s.sight.sent[key]; ok && prev == sum {
		return nil
	}
	if keyID == "" {
		return nil // the group is gone; its members are owed withdrawals
	}
	if _, err := s.f.callPeer(ctx, peer, warningCallTimeout, func(ctx context.Context, c irxv1.FederationServiceClient) error {
		_, err := c.DeliverSightings(ctx, &irxv1.DeliverSightingsRequest{Group: group, KeyId: keyID, Digests: digests})
		return err
	}); err != nil {
		return err
	}
	s.sight.sent[key] = sum
	return nil
}

// withdraw tells each former member of a group to drop what we sent it
// (an empty set), and records it told; it reports whether none is left to
// retry.
func (s *warningSender) withdraw(ctx context.Context) bool {
	owed, err := s.f.state.SightingsWithdrawals()
	if err != nil {
		s.f.log.Warn("reading sightings withdrawals", "error", err)
		return false
	}
	done := true
	for _, w := range owed {
		if err := s.sendWithdrawal(ctx, w); err != nil {
			done = false
			s.f.log.Warn("sightings withdrawal not sent; will retry", "group", w.GetGroup(), "peer", w.GetPeerTeamId(), "error", err)
		}
	}
	return done
}

func (s *warningSender) sendWithdrawal(ctx context.Context, w *irxv1.SightingsWithdrawal) error {
	peer, err := s.f.state.Peer(w.GetPeerTeamId())
	if err != nil || peer.GetDisabled() || len(peer.GetEndpoints()) == 0 {
		return nil // not callable now; the withdrawal stays owed
	}
	_, err = s.f.callPeer(ctx, peer, warningCallTimeout, func(ctx context.Context, c irxv1.FederationServiceClient) error {
		_, err := c.DeliverSightings(ctx, &irxv1.DeliverSightingsRequest{Group: w.GetGroup(), KeyId: w.GetKeyId()})
		return err
	})
	switch status.Code(err) {
	case codes.OK:
	case codes.PermissionDenied, codes.NotFound:
		// We are not in its group: leaving a group drops what the
		// member that left sent, so it holds nothing from us.
	default:
		return err
	}
	// What it held is gone: if it joins again it is sent its set anew.
	delete(s.sight.sent, w.GetGroup()+"\x00"+w.GetPeerTeamId())
	_, err = s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_ClearSightingsWithdrawal{ClearSightingsWithdrawal: &irxv1.ClearSightingsWithdrawalCommand{
		Group: w.GetGroup(), PeerTeamId: w.GetPeerTeamId(), Revision: w.GetRevision(),
	}}})
	return err
}

// DeliverSightings implements irx.v1.FederationService.
func (s *federationService) DeliverSightings(ctx context.Context, req *irxv1.DeliverSightingsRequest) (*irxv1.DeliverSightingsResponse, error) {
	from := caller(ctx)
	switch {
	case req.GetGroup() == "":
		return nil, status.Error(codes.InvalidArgument, "group is required")
	case len(req.GetDigests()) > maxSightings:
		return nil, status.Errorf(codes.InvalidArgument, "digests: at most %d", maxSightings)
	}
	seen := make(map[string]bool, len(req.GetDigests()))
	for _, d := range req.GetDigests() {
		if seen[string(d)] {
			return nil, status.Error(codes.InvalidArgument, "digests: a digest is repeated")
		}
		seen[string(d)] = true
	}
	if _, err := s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
		PeerTeamId: from, Group: req.GetGroup(), KeyId: req.GetKeyId(), Digests: req.GetDigests(),
	}}}); err != nil {
		return nil, err
	}
	return &irxv1.DeliverSightingsResponse{}, nil
}
