package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// A peer's status says each direction of federation on its own, whichever
// node of the team the peer pulls from and whichever node answers: B
// follows A through a follower of A's, A does not follow B and has a
// policy for it, B has none for A.
func TestPeerStatusSaysWhoFollowsWhom(t *testing.T) {
	a := startTeam(t, "cert-a", 3)
	b := startTeam(t, "cert-b", 1)

	st, err := a.clients[0].cluster.GetClusterStatus(ctxT(t), &irxv1.GetClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	leader := st.GetLeaderId()
	var via, other int // A's nodes: one B pulls from, one that will go down
	for i := range a.nodes {
		if id := fmt.Sprintf("node%d", i+1); id != leader {
			via, other = other, i
		}
	}
	viaID, otherID := fmt.Sprintf("node%d", via+1), fmt.Sprintf("node%d", other+1)
	if viaID == leader || otherID == leader || via == other {
		t.Fatalf("leader %s, via %s, other %s", leader, viaID, otherID)
	}

	a.peerWith(t, b, false) // A admits B and does not follow it
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1))
	caA, err := a.nodes[via].CACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	// B follows A through a follower of A only.
	if _, err := b.peers[0].CreatePeer(ctxT(t), &irxv1.CreatePeerRequest{Peer: &irxv1.Peer{
		TeamId: "cert-a", CaCertificatePem: caA, Endpoints: []string{a.nodes[via].FedAddr},
	}}); err != nil {
		t.Fatal(err)
	}

	peerAt := func(tm *team, i int, id string) (*irxv1.PeerStatus, error) {
		resp, err := tm.peers[i].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: id})
		return resp.GetPeer().GetStatus(), err
	}
	for i := range a.nodes {
		eventually(t, time.Minute, fmt.Sprintf("A (asked at node%d) sees cert-b follow it on %s", i+1, viaID), func() error {
			s, err := peerAt(a, i, "cert-b")
			switch {
			case err != nil:
				return err
			case !s.GetFollowsUs() || !slices.Equal(s.GetFollowsUsOnNodes(), []string{viaID}) || s.GetLastSubscribeTime() == nil:
				return fmt.Errorf("follows us %v on %v, last subscribed %v", s.GetFollowsUs(), s.GetFollowsUsOnNodes(), s.GetLastSubscribeTime())
			case s.GetConnected() || s.GetNothingDisclosed() || len(s.GetUnansweredNodes()) > 0:
				return fmt.Errorf("connected %v, nothing disclosed %v, unanswered %v", s.GetConnected(), s.GetNothingDisclosed(), s.GetUnansweredNodes())
			}
			return nil
		})
	}
	eventually(t, time.Minute, "B follows cert-a, which does not follow B and gets nothing from it", func() error {
		s, err := peerAt(b, 0, "cert-a")
		switch {
		case err != nil:
			return err
		case !s.GetConnected() || s.GetFollowsUs() || !s.GetNothingDisclosed():
			return fmt.Errorf("connected %v, follows us %v, nothing disclosed %v", s.GetConnected(), s.GetFollowsUs(), s.GetNothingDisclosed())
		}
		return nil
	})

	// A member that is down cannot say whether the peer's stream is on it.
	if err := a.nodes[other].Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "A names the member that did not answer", func() error {
		s, err := peerAt(a, via, "cert-b")
		if err != nil {
			return err
		}
		if !s.GetFollowsUs() || !slices.Equal(s.GetUnansweredNodes(), []string{otherID}) {
			return fmt.Errorf("follows us %v, unanswered %v", s.GetFollowsUs(), s.GetUnansweredNodes())
		}
		return nil
	})

	// B stops: its stream ends, and A says when it last subscribed.
	if err := b.nodes[0].Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "A sees cert-b no longer follow it", func() error {
		s, err := peerAt(a, via, "cert-b")
		switch {
		case err != nil:
			return err
		case s.GetFollowsUs() || len(s.GetFollowsUsOnNodes()) > 0 || s.GetLastSubscribeTime() == nil:
			return fmt.Errorf("follows us %v on %v, last subscribed %v", s.GetFollowsUs(), s.GetFollowsUsOnNodes(), s.GetLastSubscribeTime())
		}
		return nil
	})
}
