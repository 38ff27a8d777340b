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
	mu      sync.Mutex
	open    map[string]int
	last    map[string]time.Time // when the peer last opened one here
	refused map[string]int64     // streams refused over a limit
	bytes   map[string]int64     // what the peer's streams hold (streamQueue)
	most    map[string]int64     // the most they held at once
}

func newFollowers() *followers {
	return &followers{open: map[string]int{}, last: map[string]time.Time{}, refused: map[string]int64{}, bytes: map[string]int64{}, most: map[string]int64{}}
}

// admit counts a stream of peer until the returned func is called, unless
// the peer already has limit streams open (limit <= 0: no limit). It
// returns the streams open before this one.
func (fl *followers) admit(peer string, limit int) (end func(), open int, ok bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	open = fl.open[peer]
	if limit > 0 && open >= limit {
		fl.refused[peer]++
		return nil, open, false
	}
	fl.open[peer]++
	fl.last[peer] = time.Now()
	return func() {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		if fl.open[peer]--; fl.open[peer] <= 0 {
			delete(fl.open, peer)
		}
	}, open, true
}

// queued adds delta to the bytes peer's streams hold.
func (fl *followers) queued(peer string, delta int64) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.bytes[peer] += delta
	fl.most[peer] = max(fl.most[peer], fl.bytes[peer])
	if fl.bytes[peer] == 0 {
		delete(fl.bytes, peer)
	}
}

// peak is the most peer's streams held at once on this node since it
// started.
func (fl *followers) peak(peer string) int64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.most[peer]
}

// usage is what peer's streams hold on this node: open streams, streams
// refused since start, bytes queued.
func (fl *followers) usage(peer string) (open int, refused, queued int64) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.open[peer], fl.refused[peer], fl.bytes[peer]
}

// list is what this node knows, ordered by team id; limit is the node's
// streams_per_peer.
func (fl *followers) list(limit int) []*irxv1.PeerStreams {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	out := make([]*irxv1.PeerStreams, 0, len(fl.last))
	// A peer refused every stream has no last subscribe time, and is
	// listed all the same.
	for peer := range fl.refused {
		if _, ok := fl.last[peer]; !ok {
			out = append(out, &irxv1.PeerStreams{TeamId: peer, RefusedStreams: fl.refused[peer], StreamsPerPeer: int32(limit)})
		}
	}
	for peer, last := range fl.last {
		out = append(out, &irxv1.PeerStreams{
			TeamId: peer, OpenStreams: int32(fl.open[peer]), LastSubscribeTime: timestamppb.New(last),
			RefusedStreams: fl.refused[peer], QueuedBytes: fl.bytes[peer], StreamsPerPeer: int32(limit),
		})
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
	return &irxv1.ListPeerStreamsResponse{NodeId: s.f.node.NodeID(), Peers: s.f.followers.list(s.f.cfg.StreamsPerPeer)}, nil
}

// describeFollowing fills in, for peers the leader described, whether each
// follows us: it asks every member of the team which peers have Subscribe
// streams open on it, since a peer pulls from whichever node it reaches.
func (f *Federation) describeFollowing(ctx context.Context, peers ...*irxv1.Peer) {
	var mu sync.Mutex
	byNode := map[string][]*irxv1.PeerStreams{f.node.NodeID(): f.followers.list(f.cfg.StreamsPerPeer)}
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
				st.OpenStreams += ps.GetOpenStreams()
				st.RefusedStreams += ps.GetRefusedStreams()
				st.QueuedBytes += ps.GetQueuedBytes()
				if id == f.node.NodeID() || st.StreamsPerPeer == 0 {
					st.StreamsPerPeer = ps.GetStreamsPerPeer()
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
