package node

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

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
		return errdefs.New(errdefs.ErrDeadlineExceeded, fmt.Sprintf("linearizable read: %v; a stale read answers at once", err))
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
		return ctx.Err()
	}
}
