package node

import (
	"context"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Group commit on the leader: proposals that arrive while earlier batches
// are in flight leave together as one CommandBatch log entry. hashicorp/raft
// pays per entry (a future, msgpack encoding for every follower, a log key),
// so under load one entry for many writes is what scales; with a single
// client every batch holds one command and nothing waits.
const (
	maxBatchCommands = 256
	maxBatchBytes    = 2 << 20
	maxInFlight      = 4
)

type proposal struct {
	cmd  *irxv1.Command
	done chan proposalResult
}

type proposalResult struct {
	res *fsm.Result
	err error
}

type batcher struct {
	n        *Node
	queue    chan *proposal
	inFlight chan struct{}
}

func newBatcher(n *Node) *batcher {
	return &batcher{n: n, queue: make(chan *proposal, 4*maxBatchCommands), inFlight: make(chan struct{}, maxInFlight)}
}

// submit queues cmd and waits for its result or ctx.
func (b *batcher) submit(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case b.queue <- p:
	case <-ctx.Done():
		return nil, grpcstatus.Error(codes.DeadlineExceeded, "the node is overloaded: the write was not proposed before the deadline; retry")
	case <-b.n.stopObserving:
		return nil, grpcstatus.Error(codes.Unavailable, "node is shutting down")
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, grpcstatus.Error(codes.DeadlineExceeded, "the write was not confirmed in time; it may still be applied: retry with the same request_id")
	}
}

func (b *batcher) run() {
	for {
		var first *proposal
		select {
		case first = <-b.queue:
		case <-b.n.stopObserving:
			b.failQueued()
			return
		}
		// Wait for a slot first: while every slot is busy, proposals pile up
		// in the queue and the next batch takes them all.
		select {
		case b.inFlight <- struct{}{}:
		case <-b.n.stopObserving:
			first.done <- proposalResult{err: grpcstatus.Error(codes.Unavailable, "node is shutting down")}
			b.failQueued()
			return
		}
		batch, size := []*proposal{first}, proto.Size(first.cmd)
	drain:
		for len(batch) < maxBatchCommands && size < maxBatchBytes {
			select {
			case p := <-b.queue:
				batch = append(batch, p)
				size += proto.Size(p.cmd)
			default:
				break drain
			}
		}
		go b.propose(batch)
	}
}

func (b *batcher) failQueued() {
	for {
		select {
		case p := <-b.queue:
			p.done <- proposalResult{err: grpcstatus.Error(codes.Unavailable, "node is shutting down")}
		default:
			return
		}
	}
}

// propose appends the batch as one entry and hands each proposal its own
// result.
func (b *batcher) propose(batch []*proposal) {
	defer func() { <-b.inFlight }()
	entry := batch[0].cmd
	if len(batch) > 1 {
		cmds := make([]*irxv1.Command, len(batch))
		for i, p := range batch {
			p.cmd.ProposeTime = nil // the batch's time applies
			cmds[i] = p.cmd
		}
		entry = &irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}}
	}
	entry.ProposeTime = timestamppb.Now()
	data, err := proto.Marshal(entry)
	if err != nil {
		b.failAll(batch, grpcstatus.Errorf(codes.Internal, "encode command: %v", err))
		return
	}
	future := b.n.raft.Apply(data, b.n.cfg.Raft.ApplyTimeout)
	if err := future.Error(); err != nil {
		b.failAll(batch, b.n.raftError(err))
		return
	}
	res, ok := future.Response().(*fsm.Result)
	if !ok {
		b.failAll(batch, grpcstatus.Errorf(codes.Internal, "state machine returned %T", future.Response()))
		return
	}
	if len(batch) == 1 {
		batch[0].done <- proposalResult{res: res}
		return
	}
	if res.Err != nil || len(res.Batch) != len(batch) {
		b.failAll(batch, grpcstatus.Errorf(codes.Internal, "batch of %d applied with %d results: %v", len(batch), len(res.Batch), res.Err))
		return
	}
	for i, p := range batch {
		p.done <- proposalResult{res: res.Batch[i]}
	}
}

func (b *batcher) failAll(batch []*proposal, err error) {
	for _, p := range batch {
		p.done <- proposalResult{err: err}
	}
}
