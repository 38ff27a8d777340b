package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// ClusterStatus reports every member as it reports itself, with its lag
// behind the leader's commit index.
func (n *Node) ClusterStatus(ctx context.Context, includeDigest bool) (*irxv1.GetClusterStatusResponse, error) {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, n.raftError(err)
	}
	resp := &irxv1.GetClusterStatusResponse{
		TeamId:        n.cfg.TeamID,
		NodeId:        n.cfg.NodeID,
		Role:          roleOf(n.raft.State()),
		LeaderId:      string(leaderID),
		LeaderAddress: string(leaderAddr),
		Term:          n.raft.CurrentTerm(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.appliedIndex(),
		LastTicket:    n.state.LastTicket(),
		FeedSequence:  n.state.FeedSequence(),
		Disks:         n.diskStatus(),
	}
	if includeDigest {
		// Applied index and digest must describe the same state: read the
		// index the digest was taken at.
		applied, digest, err := n.state.DigestAt()
		if err != nil {
			return nil, fmt.Errorf("state digest: %w", err)
		}
		resp.AppliedIndex, resp.StateDigest = applied, hex.EncodeToString(digest)
	}
	servers := future.Configuration().Servers
	statuses := make([]*irxv1.GetNodeStatusResponse, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			statuses[i] = n.nodeStatus()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			callCtx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			conn, err := n.peers.get(string(s.Address))
			if err == nil {
				statuses[i], err = irxv1.NewNodeServiceClient(conn).GetNodeStatus(callCtx, &irxv1.GetNodeStatusRequest{})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	leaderCommit := resp.GetCommitIndex()
	for i, s := range servers {
		if s.ID == leaderID && statuses[i] != nil {
			leaderCommit = statuses[i].GetCommitIndex()
		}
	}
	for i, s := range servers {
		m := memberOf(s, leaderID)
		if st := statuses[i]; st != nil {
			m.Role = st.GetRole()
			m.AppliedIndex = st.GetAppliedIndex()
			if leaderCommit > m.AppliedIndex {
				m.Lag = leaderCommit - m.AppliedIndex
			}
		} else if errs[i] != nil {
			m.Error = errs[i].Error()
		}
		resp.Members = append(resp.Members, m)
	}
	return resp, nil
}

func (n *Node) nodeStatus() *irxv1.GetNodeStatusResponse {
	return &irxv1.GetNodeStatusResponse{
		NodeId:       n.cfg.NodeID,
		Role:         roleOf(n.raft.State()),
		AppliedIndex: n.appliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
	}
}

// appliedIndex is how far this node applied the log: the state machine's
// index, or raft's when raft has since applied entries the state machine
// never sees (its own no-op after an election, configuration changes), so
// a caught-up member shows no lag.
func (n *Node) appliedIndex() uint64 {
	return max(n.state.AppliedIndex(), n.raft.AppliedIndex())
}

func (n *Node) members() ([]*irxv1.ClusterMember, error) {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, n.raftError(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []*irxv1.ClusterMember
	for _, s := range future.Configuration().Servers {
		out = append(out, memberOf(s, leaderID))
	}
	return out, nil
}

// memberOf describes one server of the Raft configuration.
func memberOf(s raft.Server, leaderID raft.ServerID) *irxv1.ClusterMember {
	return &irxv1.ClusterMember{NodeId: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: s.ID == leaderID}
}

// AddMember adds a node to the Raft configuration, through the leader.
func (n *Node) AddMember(ctx context.Context, req *irxv1.AddMemberRequest) (*irxv1.AddMemberResponse, error) {
	var resp *irxv1.AddMemberResponse
	err := n.onLeader(ctx, true, func() error {
		var f raft.IndexFuture
		if req.GetNonVoter() {
			f = n.raft.AddNonvoter(raft.ServerID(req.GetNodeId()), raft.ServerAddress(req.GetAddress()), 0, n.cfg.Raft.ApplyTimeout)
		} else {
			f = n.raft.AddVoter(raft.ServerID(req.GetNodeId()), raft.ServerAddress(req.GetAddress()), 0, n.cfg.Raft.ApplyTimeout)
		}
		if err := waitFuture(ctx, f); err != nil {
			return n.raftError(err)
		}
		if err := n.confirmOnDisk(ctx); err != nil {
			return err
		}
		members, err := n.members()
		resp = &irxv1.AddMemberResponse{Members: members}
		return err
	}, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = irxv1.NewClusterServiceClient(conn).AddMember(ctx, req)
		return err
	})
	return resp, err
}

// RemoveMember removes a node from the Raft configuration, through the
// leader.
func (n *Node) RemoveMember(ctx context.Context, req *irxv1.RemoveMemberRequest) (*irxv1.RemoveMemberResponse, error) {
	var resp *irxv1.RemoveMemberResponse
	err := n.onLeader(ctx, true, func() error {
		members, err := n.members()
		if err != nil {
			return err
		}
		if !containsMember(members, req.GetNodeId()) {
			return fmt.Errorf("node %q is not a member of team %q: %w", req.GetNodeId(), n.cfg.TeamID, errdefs.ErrNotFound)
		}
		if err := waitFuture(ctx, n.raft.RemoveServer(raft.ServerID(req.GetNodeId()), 0, n.cfg.Raft.ApplyTimeout)); err != nil {
			return n.raftError(err)
		}
		if err := n.confirmOnDisk(ctx); err != nil {
			return err
		}
		members, err = n.members()
		resp = &irxv1.RemoveMemberResponse{Members: members}
		return err
	}, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = irxv1.NewClusterServiceClient(conn).RemoveMember(ctx, req)
		return err
	})
	return resp, err
}

// TransferLeadership hands leadership to another member, through the
// current leader.
func (n *Node) TransferLeadership(ctx context.Context, req *irxv1.TransferLeadershipRequest) (*irxv1.TransferLeadershipResponse, error) {
	// The leader before the transfer: a node that forwarded the request
	// learns of the new leader only from its first heartbeat, so until
	// then it still names the old one.
	_, before := n.raft.LeaderWithID()
	err := n.onLeader(ctx, false, func() error {
		var f raft.Future
		if id := req.GetNodeId(); id != "" {
			members, err := n.members()
			if err != nil {
				return err
			}
			var addr string
			for _, m := range members {
				if m.GetNodeId() == id {
					addr = m.GetAddress()
				}
			}
			if addr == "" {
				return fmt.Errorf("node %q is not a member of team %q: %w", id, n.cfg.TeamID, errdefs.ErrNotFound)
			}
			if id == n.cfg.NodeID {
				return nil // already the leader
			}
			f = n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
		} else {
			f = n.raft.LeadershipTransfer()
		}
		if err := waitFuture(ctx, f); err != nil {
			return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("leadership transfer: %v", err))
		}
		return nil
	}, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := irxv1.NewClusterServiceClient(conn).TransferLeadership(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Report the new leader once this node knows it: the one named (which
	// may be the one before, when it was asked to keep leading), or any
	// leader but the one before.
	for {
		_, id := n.raft.LeaderWithID()
		if id != "" && (string(id) == req.GetNodeId() || id != before) {
			return &irxv1.TransferLeadershipResponse{LeaderId: string(id)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, errdefs.New(errdefs.ErrDeadlineExceeded, "leadership moved but no new leader was seen before the deadline")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// confirmOnDisk returns once an entry proposed after a membership change
// has been applied. Raft reports the change committed when it has counted
// the leader's copy, which may still be on its way to disk (durable.go);
// an entry after it is applied only once the leader's log and a majority's
// hold it, and the change with it. (When the leader removed itself, the
// entry goes to the next leader.)
func (n *Node) confirmOnDisk(ctx context.Context) error {
	_, err := n.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}})
	if err != nil {
		return fmt.Errorf("membership changed; confirming it is on disk: %w", err)
	}
	return nil
}

func containsMember(ms []*irxv1.ClusterMember, id string) bool {
	for _, m := range ms {
		if m.GetNodeId() == id {
			return true
		}
	}
	return false
}
