package federation

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// followStatusTimeout bounds how long describing peers waits for each
// member to say which peers follow it; a member that is down costs no more.
const followStatusTimeout = time.Second

// followers counts the Subscribe streams peers have open on this node: the
// direction of federation in which a peer follows us. (Which peers we
// follow is the leader's pullers'.)
type followers struct {
	mu   sync.Mutex
	open map[string]int
	last map[string]time.Time // when the peer last opened one here
}

func newFollowers() *followers {
	return &followers{open: map[string]int{}, last: map[string]time.Time{}}
}

// begin counts a stream of peer until the returned func is called.
func (fl *followers) begin(peer string) (end func()) {
	fl.mu.Lock()
	fl.open[peer]++
	fl.last[peer] = time.Now()
	fl.mu.Unlock()
	return func() {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		if fl.open[peer]--; fl.open[peer] <= 0 {
			delete(fl.open, peer)
		}
	}
}

// list is what this node knows, ordered by team id.
func (fl *followers) list() []*irxv1.PeerStreams {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	out := make([]*irxv1.PeerStreams, 0, len(fl.last))
	for peer, last := range fl.last {
		out = append(out, &irxv1.PeerStreams{TeamId: peer, OpenStreams: int32(fl.open[peer]), LastSubscribeTime: timestamppb.New(last)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetTeamId() < out[j].GetTeamId() })
	return out
}

// peerStreamService answers for this node alone, on the operator API and
// the intra-cluster server alike.
type peerStreamService struct {
	irxv1.UnimplementedPeerStreamServiceServer
	f *Federation
}

func (s *peerStreamService) ListPeerStreams(context.Context, *irxv1.ListPeerStreamsRequest) (*irxv1.ListPeerStreamsResponse, error) {
	return &irxv1.ListPeerStreamsResponse{NodeId: s.f.node.NodeID(), Peers: s.f.followers.list()}, nil
}

// describeFollowing fills in, for peers the leader described, whether each
// follows us: it asks every member of the team which peers have Subscribe
// streams open on it, since a peer pulls from whichever node it reaches.
func (f *Federation) describeFollowing(ctx context.Context, peers ...*irxv1.Peer) {
	var mu sync.Mutex
	byNode := map[string][]*irxv1.PeerStreams{f.node.NodeID(): f.followers.list()}
	errs := f.node.OnMembers(ctx, func(ctx context.Context, id string, conn *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(ctx, followStatusTimeout)
		defer cancel()
		resp, err := irxv1.NewPeerStreamServiceClient(conn).ListPeerStreams(ctx, &irxv1.ListPeerStreamsRequest{})
		if err != nil {
			return err
		}
		mu.Lock()
		byNode[id] = resp.GetPeers()
		mu.Unlock()
		return nil
	})
	var unanswered []string
	for id, err := range errs {
		if err != nil {
			f.log.Debug("a member did not say which peers follow it", "member", id, "error", err)
			unanswered = append(unanswered, id)
		}
	}
	slices.Sort(unanswered)
	nodes := make([]string, 0, len(byNode))
	for id := range byNode {
		nodes = append(nodes, id)
	}
	slices.Sort(nodes)
	for _, p := range peers {
		st := p.GetStatus()
		if st == nil {
			continue
		}
		st.UnansweredNodes = unanswered
		for _, id := range nodes {
			for _, ps := range byNode[id] {
				if ps.GetTeamId() != p.GetTeamId() {
					continue
				}
				if ps.GetOpenStreams() > 0 {
					st.FollowsUs = true
					st.FollowsUsOnNodes = append(st.FollowsUsOnNodes, id)
				}
				if last := ps.GetLastSubscribeTime(); last != nil && (st.LastSubscribeTime == nil || last.AsTime().After(st.LastSubscribeTime.AsTime())) {
					st.LastSubscribeTime = last
				}
			}
		}
	}
}
