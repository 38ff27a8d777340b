package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/node/api"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// notLeaderMessage marks the one refusal that is always safe to retry
// elsewhere: the command never reached this node's Raft log.
const notLeaderMessage = "irx: not the leader"

// forwardedKey marks a call one node forwarded to another, so the receiver
// answers itself instead of forwarding again.
const forwardedKey = "irx-forwarded"

var (
	errNotLeader = grpcstatus.Error(codes.FailedPrecondition, notLeaderMessage)
	errNoLeader  = errors.New("the team has no leader")
)

func isNotLeader(err error) bool {
	st, ok := grpcstatus.FromError(err)
	return ok && st.Code() == codes.FailedPrecondition && st.Message() == notLeaderMessage
}

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// ambiguous reports errors after which a command may or may not have been
// committed: the leader died or lost leadership mid-call.
func ambiguous(err error) bool {
	if errors.Is(err, raft.ErrLeadershipLost) {
		return true
	}
	switch grpcstatus.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return true
	}
	return false
}

// onLeader runs local when this node leads, or remote against the leader's
// intra-cluster server when another node does. While the team is electing,
// or leadership moves before the call lands, it waits and tries again
// within ctx: callers never see "not leader". idempotent also retries
// ambiguous failures, for calls that can be repeated without effect.
func (n *Node) onLeader(ctx context.Context, idempotent bool, local func() error, remote func(context.Context, *grpc.ClientConn) error) error {
	forwarded := isForwarded(ctx)
	backoff := 10 * time.Millisecond
	for {
		var err error
		switch addr, _ := n.raft.LeaderWithID(); {
		case n.raft.State() == raft.Leader:
			err = local()
		case forwarded:
			// The node that forwarded to us retries against the real leader.
			return errNotLeader
		case addr == "":
			err = errNoLeader
		default:
			var conn *grpc.ClientConn
			if conn, err = n.peers.get(string(addr)); err == nil {
				err = remote(metadata.AppendToOutgoingContext(ctx, forwardedKey, n.cfg.NodeID), conn)
			}
		}
		retry := errors.Is(err, errNoLeader) || isNotLeader(err) || errors.Is(err, raft.ErrNotLeader) ||
			(idempotent && ambiguous(err) && ctx.Err() == nil)
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return grpcstatus.Errorf(codes.Unavailable, "no leader could take the call before the deadline (last: %v); retry", err)
		case <-n.stopObserving:
			return grpcstatus.Error(codes.Unavailable, "node is shutting down")
		case <-time.After(backoff):
			backoff = min(2*backoff, 200*time.Millisecond)
		}
	}
}

// Propose appends cmd to the team's Raft log, on this node if it leads or
// through the leader otherwise, and returns the state machine's result.
func (n *Node) Propose(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
	create := cmd.GetCreateIncident()
	if create != nil && create.GetRequestId() == "" {
		// A create with a request id is idempotent, so it can be retried
		// through a leader change without creating the incident twice.
		create.RequestId = "irx-" + randomID()
		create.FreshRequestId = true
	}
	// attempted clears the fresh mark once a proposal may have reached a
	// log, so every retry is checked against stored request ids.
	attempted := func() {
		if create != nil {
			create.FreshRequestId = false
		}
	}
	idempotent := cmd.GetCreateIncident() != nil
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > n.cfg.Raft.ApplyTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.Raft.ApplyTimeout)
		defer cancel()
	}
	var res *fsm.Result
	err := n.onLeader(ctx, idempotent,
		func() (err error) {
			defer attempted()
			res, err = n.applyLocal(ctx, cmd)
			return err
		},
		func(ctx context.Context, conn *grpc.ClientConn) error {
			defer attempted()
			resp, err := n.forwarder.submit(ctx, conn, cmd)
			if err != nil {
				return err
			}
			res = &fsm.Result{Incident: resp.GetIncident(), Policy: resp.GetPolicy(), Peer: resp.GetPeer(), TeamDescription: resp.GetTeamDescription()}
			if len(resp.GetErrorStatus()) > 0 {
				res.Err = decodeStatus(resp.GetErrorStatus())
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// applyLocal proposes cmd to this node's Raft, which must lead, through the
// group-commit batcher.
func (n *Node) applyLocal(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
	if n.raft.State() != raft.Leader {
		return nil, errNotLeader
	}
	return n.batcher.submit(ctx, submission(cmd))
}

// applyLocalAll proposes cmds as applyLocal does each, together.
func (n *Node) applyLocalAll(ctx context.Context, cmds []*irxv1.Command) []proposalResult {
	if n.raft.State() != raft.Leader {
		results := make([]proposalResult, len(cmds))
		for i := range results {
			results[i].err = errNotLeader
		}
		return results
	}
	own := make([]*irxv1.Command, len(cmds))
	for i, c := range cmds {
		own[i] = submission(c)
	}
	return n.batcher.submitAll(ctx, own)
}

// submission is the batcher's own copy of cmd: the batcher stamps and
// marshals it, possibly after the caller gave up and went on to change its
// copy (a retry clears FreshRequestId). The incident itself is shared; no
// one writes to it.
func submission(cmd *irxv1.Command) *irxv1.Command {
	own := &irxv1.Command{Kind: cmd.GetKind()}
	if c := cmd.GetCreateIncident(); c != nil {
		own.Kind = &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
			Incident: c.GetIncident(), RequestId: c.GetRequestId(), FreshRequestId: c.GetFreshRequestId(),
		}}
	}
	return own
}

func (n *Node) raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		// Nothing was appended: safe to send to the new leader.
		return errNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return grpcstatus.Error(codes.Unavailable, "leadership changed while the write was in flight; it may have been applied: retry with the same request_id")
	case errors.Is(err, raft.ErrRaftShutdown):
		return grpcstatus.Error(codes.Unavailable, "node is shutting down")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return grpcstatus.Error(codes.Unavailable, "the node is overloaded; retry with the same request_id")
	}
	return grpcstatus.Errorf(codes.Internal, "raft: %v", err)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReadBarrier implements api.ReadBarrier with Raft's read-index protocol:
// learn the leader's commit index once its leadership is confirmed, then
// wait until this node has applied that far.
func (n *Node) ReadBarrier(ctx context.Context, c irxv1.ReadConsistency) error {
	if c == irxv1.ReadConsistency_READ_CONSISTENCY_STALE {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.Raft.ApplyTimeout)
		defer cancel()
	}
	var index uint64
	err := n.onLeader(ctx, true,
		func() (err error) { index, err = n.localReadIndex(ctx); return err },
		func(ctx context.Context, conn *grpc.ClientConn) error {
			resp, err := irxv1.NewNodeServiceClient(conn).ReadIndex(ctx, &irxv1.ReadIndexRequest{})
			index = resp.GetReadIndex()
			return err
		})
	if err != nil {
		return err
	}
	if err := n.state.WaitApplied(ctx, index); err != nil {
		return grpcstatus.Errorf(codes.DeadlineExceeded, "linearizable read: %v; a stale read answers at once", err)
	}
	return nil
}

// localReadIndex returns the commit index once this node has confirmed it
// still leads. A new leader first commits an entry of its own term (a
// LeaderNoopCommand), without which its commit index may trail what the
// previous leader acknowledged.
func (n *Node) localReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, errNotLeader
	}
	if term := n.raft.CurrentTerm(); n.readyTerm.Load() != term {
		noop := &irxv1.Command{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}
		if _, err := n.applyLocal(ctx, noop); err != nil {
			return 0, err
		}
		n.readyTerm.Store(term)
	}
	index := n.raft.CommitIndex()
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, n.raftError(err)
	}
	return index, nil
}

func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return grpcstatus.FromContextError(ctx.Err()).Err()
	}
}

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
	}
	if includeDigest {
		// Applied index and digest must describe the same state: read the
		// index the digest was taken at.
		applied, digest, err := n.state.DigestAt()
		if err != nil {
			return nil, grpcstatus.Errorf(codes.Internal, "state digest: %v", err)
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
			return grpcstatus.Errorf(codes.NotFound, "node %q is not a member of team %q", req.GetNodeId(), n.cfg.TeamID)
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
				return grpcstatus.Errorf(codes.NotFound, "node %q is not a member of team %q", id, n.cfg.TeamID)
			}
			if id == n.cfg.NodeID {
				return nil // already the leader
			}
			f = n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
		} else {
			f = n.raft.LeadershipTransfer()
		}
		if err := waitFuture(ctx, f); err != nil {
			return grpcstatus.Errorf(codes.Unavailable, "leadership transfer: %v", err)
		}
		return nil
	}, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := irxv1.NewClusterServiceClient(conn).TransferLeadership(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Report the leader once one is known again.
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return &irxv1.TransferLeadershipResponse{LeaderId: string(id)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, grpcstatus.Error(codes.DeadlineExceeded, "leadership moved but no new leader was seen before the deadline")
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

// nodeService implements irx.v1.NodeService for the other nodes of the team.
type nodeService struct {
	irxv1.UnimplementedNodeServiceServer
	n *Node
}

func (s nodeService) Propose(ctx context.Context, req *irxv1.ProposeRequest) (*irxv1.ProposeResponse, error) {
	if req.GetCommand() == nil {
		return nil, grpcstatus.Error(codes.InvalidArgument, "command is required")
	}
	return s.propose(ctx, req.GetCommand())
}

// ProposeBatch proposes the commands together, so they mostly share the
// leader's group-commit entries, and answers each as Propose would.
func (s nodeService) ProposeBatch(ctx context.Context, req *irxv1.ProposeBatchRequest) (*irxv1.ProposeBatchResponse, error) {
	cmds := req.GetCommands()
	if len(cmds) == 0 || len(cmds) > maxForwardCommands {
		return nil, grpcstatus.Errorf(codes.InvalidArgument, "commands: %d; a batch holds 1 to %d", len(cmds), maxForwardCommands)
	}
	for i, c := range cmds {
		if c == nil || c.GetKind() == nil {
			return nil, grpcstatus.Errorf(codes.InvalidArgument, "commands[%d]: a command is required", i)
		}
	}
	results := make([]*irxv1.ProposeBatchResult, len(cmds))
	for i, r := range s.n.applyLocalAll(ctx, cmds) {
		resp, err := proposeResponse(r.res, r.err)
		if err == nil {
			results[i] = &irxv1.ProposeBatchResult{Response: resp}
			continue
		}
		st, mErr := proto.Marshal(grpcstatus.Convert(err).Proto())
		if mErr != nil {
			st, _ = proto.Marshal(grpcstatus.Newf(codes.Internal, "encode result: %v", mErr).Proto())
		}
		results[i] = &irxv1.ProposeBatchResult{CallStatus: st}
	}
	return &irxv1.ProposeBatchResponse{Results: results}, nil
}

func (s nodeService) propose(ctx context.Context, cmd *irxv1.Command) (*irxv1.ProposeResponse, error) {
	return proposeResponse(s.n.applyLocal(ctx, cmd))
}

// proposeResponse is what Propose answers for a proposal's result.
func proposeResponse(res *fsm.Result, err error) (*irxv1.ProposeResponse, error) {
	if err != nil {
		return nil, err
	}
	resp := &irxv1.ProposeResponse{Policy: res.Policy, Peer: res.Peer, TeamDescription: res.TeamDescription}
	if res.Encoded != nil {
		api.SetEncodedIncident(resp, res.Encoded)
	} else {
		resp.Incident = res.Incident
	}
	if res.Err != nil {
		st := grpcstatus.Convert(api.ToStatus(res.Err)).Proto()
		if resp.ErrorStatus, err = proto.Marshal(st); err != nil {
			return nil, grpcstatus.Errorf(codes.Internal, "encode result: %v", err)
		}
	}
	return resp, nil
}

func (s nodeService) ReadIndex(ctx context.Context, _ *irxv1.ReadIndexRequest) (*irxv1.ReadIndexResponse, error) {
	index, err := s.n.localReadIndex(ctx)
	if err != nil {
		return nil, err
	}
	return &irxv1.ReadIndexResponse{ReadIndex: index}, nil
}

func (s nodeService) GetNodeStatus(context.Context, *irxv1.GetNodeStatusRequest) (*irxv1.GetNodeStatusResponse, error) {
	return s.n.nodeStatus(), nil
}

// peerConns caches one gRPC connection per other node, dialled through the
// intra-cluster mTLS transport.
type peerConns struct {
	dial  func(ctx context.Context, addr string) (net.Conn, error)
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (p *peerConns) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	// The transport has already authenticated both ends with the team CA;
	// gRPC runs inside that TLS session.
	c, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(p.dial),
		// A ProposeBatch answer carries every stored record back, up to a
		// full request's worth per command.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxForwardCommands*MaxRequestBytes)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peerConns) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
}
