package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Propose appends cmd to the team's Raft log, on this node if it leads or
// through the leader otherwise, and returns the state machine's result.
func (n *Node) Propose(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
	// A node whose disks refuse writes says so at once, naming the disk,
	// rather than letting the caller wait out its deadline.
	if err := n.storageProblem(); err != nil {
		return nil, err
	}
	if cmd.Actor == nil {
		// The operator call this command is for: recorded with the
		// change, in the same entry (node/access.go).
		cmd.Actor = actorFrom(ctx)
	}
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
			res = &fsm.Result{Incident: resp.GetIncident(), Policy: resp.GetPolicy(), Peer: resp.GetPeer(), TeamDescription: resp.GetTeamDescription(),
				Binding: resp.GetBinding(), Revoked: resp.GetRevokedCertificate(), Replayed: resp.GetRequestReplayed(),
				Alert: resp.GetAlert(), AlertSettings: resp.GetAlertSettings(), Warning: resp.GetWarning(), SharingGroup: resp.GetSharingGroup(),
				Budget: resp.GetBudget(), Retention: resp.GetRetention()}
			if len(resp.GetErrorStatus()) > 0 {
				res.Err = decodeRefusal(resp.GetErrorStatus())
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Commit proposes cmd as Propose does and returns what the state machine
// stored for it: the incident, policy, peer or team description it made
// (nil for commands that store none of those), or its refusal as the
// error.
func (n *Node) Commit(ctx context.Context, cmd *irxv1.Command) (proto.Message, error) {
	res, err := n.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return res.Stored()
}

// CommitInOrder appends cmds to the log of this node, which must lead, as
// one entry each, in their order, without waiting for one's commit and
// apply before the next leaves: a stream of large commands (a peer's feed,
// a quarter MiB each) keeps the followers' disks and the state machines
// busy at once instead of in turn. It returns each one's refusal (nil:
// applied). A command that continues the one before it (a peer feed
// command starts at the cursor the one before moved to) is refused by the
// state machine when that one was not applied. Creates go through Propose,
// which gives them their request ids and evaluates them.
func (n *Node) CommitInOrder(ctx context.Context, cmds []*irxv1.Command) []error {
	errs := make([]error, len(cmds))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if n.raft.State() != raft.Leader {
		return fail(errNotLeader)
	}
	if err := n.storageProblem(); err != nil {
		return fail(err)
	}
	for _, cmd := range cmds {
		if cmd.GetCreateIncident() != nil {
			return fail(errors.New("a create goes through Propose, not CommitInOrder"))
		}
	}
	actor := actorFrom(ctx)
	futures := make([]raft.ApplyFuture, 0, len(cmds))
	for _, cmd := range cmds {
		entry := submission(cmd)
		if entry.Actor == nil {
			entry.Actor = actor
		}
		entry.ProposeTime = timestamppb.Now()
		data, err := proto.Marshal(entry)
		if err != nil {
			errs[len(futures)] = fmt.Errorf("encode command: %w", err)
			break
		}
		// One goroutine's Apply calls enter the log in call order.
		futures = append(futures, n.raft.Apply(data, n.cfg.Raft.ApplyTimeout))
	}
	for i, future := range futures {
		res, err := n.applied(future)
		if errs[i] = err; err == nil {
			_, errs[i] = res.Stored()
		}
	}
	for i := len(futures); i < len(errs); i++ {
		if errs[i] == nil {
			errs[i] = fmt.Errorf("not proposed: %w", errs[len(futures)])
		}
	}
	return errs
}

// applied waits for an entry's apply and returns the state machine's
// result, or why there is none.
func (n *Node) applied(future raft.ApplyFuture) (*fsm.Result, error) {
	if err := future.Error(); err != nil {
		return nil, n.raftError(err)
	}
	res, ok := future.Response().(*fsm.Result)
	if !ok {
		return nil, fmt.Errorf("state machine returned %T", future.Response())
	}
	return res, nil
}

// applyLocal proposes cmd to this node's Raft, which must lead, through the
// group-commit batcher.
func (n *Node) applyLocal(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
	if n.raft.State() != raft.Leader {
		return nil, errNotLeader
	}
	// A leader's no-op (the read index's) is let through: it holds
	// nothing, and without it a node whose disks refuse writes could not
	// serve a linearizable read. The log still refuses it below half the
	// reserve.
	if cmd.GetLeaderNoop() == nil {
		if err := n.storageProblem(); err != nil {
			return nil, err
		}
	}
	return n.batcher.submit(ctx, cmd)
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
	if err := n.storageProblem(); err != nil {
		results := make([]proposalResult, len(cmds))
		for i := range results {
			results[i].err = err
		}
		return results
	}
	return n.batcher.submitAll(ctx, cmds)
}

// submission is a grouper's own copy of cmd, made as it takes the command:
// the batcher stamps and marshals it, the forwarder sends it, possibly after
// the caller gave up and went on to change its copy (a retry clears
// FreshRequestId). The incident itself is shared; no one writes to it.
func submission(cmd *irxv1.Command) *irxv1.Command {
	own := &irxv1.Command{Kind: cmd.GetKind(), Actor: cmd.GetActor()}
	if c := cmd.GetCreateIncident(); c != nil {
		own.Kind = &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
			Incident: c.GetIncident(), RequestId: c.GetRequestId(), FreshRequestId: c.GetFreshRequestId(),
			RequestDigest: c.GetRequestDigest(),
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
		return errdefs.New(errdefs.ErrUnavailable, "leadership changed while the write was in flight; it may have been applied: retry with the same request_id")
	case errors.Is(err, raft.ErrRaftShutdown):
		return errStopping
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return errdefs.New(errdefs.ErrUnavailable, "the node is overloaded; retry with the same request_id")
	}
	return fmt.Errorf("raft: %w", err)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
