package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/errdefs/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
)

// notLeaderMessage marks the one refusal that is always safe to retry
// elsewhere: the command never reached this node's Raft log.
const notLeaderMessage = "irx: not the leader"

// forwardedKey marks a call one node forwarded to another, so the receiver
// answers itself instead of forwarding again.
const forwardedKey = "irx-forwarded"

var (
	errNotLeader = errdefs.New(errdefs.ErrFailedPrecondition, notLeaderMessage)
	errNoLeader  = errdefs.New(errdefs.ErrUnavailable, "the team has no leader")
	errStopping  = errdefs.New(errdefs.ErrUnavailable, "node is shutting down")
)

// isNotLeader reports this node's refusal to lead, or another node's as
// its answer carried it back.
func isNotLeader(err error) bool {
	return errors.Is(err, errNotLeader) || errors.Is(err, errdefs.ErrFailedPrecondition) && err.Error() == notLeaderMessage
}

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// ambiguous reports errors after which a command may or may not have been
// committed: the leader died or lost leadership mid-call.
func ambiguous(err error) bool {
	return errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, context.Canceled)
}

// fromLeader is the error another node's answer stands for: the core sees
// the class, message and field violations the leader's core returned, not
// a status.
func fromLeader(err error) error {
	if st, ok := grpcstatus.FromError(err); ok && err != nil {
		return errgrpc.FromStatus(st)
	}
	return err
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
				err = fromLeader(remote(metadata.AppendToOutgoingContext(ctx, forwardedKey, n.cfg.NodeID), conn))
			}
		}
		retry := errors.Is(err, errNoLeader) || isNotLeader(err) || errors.Is(err, raft.ErrNotLeader) ||
			(idempotent && ambiguous(err) && ctx.Err() == nil)
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("no leader could take the call before the deadline (last: %v); retry", err))
		case <-n.stopObserving:
			return errStopping
		case <-time.After(backoff):
			backoff = min(2*backoff, 200*time.Millisecond)
		}
	}
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
