package node

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Group commit on the leader: proposals that arrive while earlier batches
// are in flight leave together as one CommandBatch log entry. hashicorp/raft
// pays per entry (a future, msgpack encoding for every follower, a log key),
// so under load one entry for many writes is what scales; with a single
// client every batch holds one command and nothing waits.
//
// A batch stays within wire.MaxEntryBytes (followers copy a larger entry's
// data many times over in raft's transport), less an eighth for what the
// batch adds to its commands' sizes as submitted: each command's framing,
// and the id, times and provenance evaluating a create adds to it.
const (
	maxBatchCommands = 256
	maxBatchBytes    = wire.MaxEntryBytes * 7 / 8
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
	n *Node
	*grouper[*proposal]
}

func newBatcher(n *Node) *batcher {
	b := &batcher{n: n, grouper: newGrouper[*proposal](n.stopObserving, maxBatchCommands, maxBatchBytes, maxInFlight)}
	b.size = func(p *proposal) int { return proto.Size(p.cmd) }
	b.send = b.propose
	b.fail = func(p *proposal) {
		p.done <- proposalResult{err: errStopping}
	}
	return b
}

// submit queues cmd and waits for its result or ctx.
func (b *batcher) submit(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
	r := b.submitAll(ctx, []*irxv1.Command{cmd})[0]
	return r.res, r.err
}

// submitAll queues cmds one after the other, so they mostly share entries,
// and waits for each one's result or ctx: the commands a follower forwards
// in one call need no goroutine each.
func (b *batcher) submitAll(ctx context.Context, cmds []*irxv1.Command) []proposalResult {
	results := make([]proposalResult, len(cmds))
	proposals := make([]*proposal, len(cmds))
	for i, cmd := range cmds {
		proposals[i] = &proposal{cmd: submission(cmd), done: make(chan proposalResult, 1)}
	}
	// Idle: the commands go as one entry from here, and this goroutine
	// waits for raft's answer, not for ctx: raft answers once the entry is
	// applied, or fails it when this node stops leading (a leader cut off
	// from its majority steps down within the leader lease). A caller whose
	// deadline passes first has its answer from gRPC at the deadline.
	if b.sendAlone(proposals) {
		for i, p := range proposals {
			results[i] = <-p.done
		}
		return results
	}
	for i, p := range proposals {
		if err := b.put(ctx, p, "proposed"); err != nil {
			results[i].err = err
			proposals[i] = nil
		}
	}
	for i, p := range proposals {
		if p == nil {
			continue
		}
		r, err := await(ctx, b.stop, p.done, "the write was not confirmed in time; it may still be applied: retry with the same request_id")
		if err != nil {
			r.err = err
		}
		results[i] = r
	}
	return results
}

// propose appends the batch as one entry and hands each proposal its own
// result.
func (b *batcher) propose(batch []*proposal) {
	now := timestamppb.Now()
	batch = b.evaluate(batch, now)
	if len(batch) == 0 {
		return
	}
	entry := batch[0].cmd
	if len(batch) > 1 {
		cmds := make([]*irxv1.Command, len(batch))
		for i, p := range batch {
			p.cmd.ProposeTime = nil // the batch's time applies
			cmds[i] = p.cmd
		}
		entry = &irxv1.Command{Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}}
	}
	entry.ProposeTime = now
	data, err := proto.Marshal(entry)
	if err != nil {
		b.failAll(batch, fmt.Errorf("encode command: %w", err))
		return
	}
	start := time.Now()
	res, err := b.n.applied(b.n.raft.Apply(data, b.n.cfg.Raft.ApplyTimeout))
	if err != nil {
		b.failAll(batch, err)
		return
	}
	b.n.metrics.commit.Observe(time.Since(start).Seconds())
	if len(batch) == 1 {
		batch[0].done <- proposalResult{res: res}
		return
	}
	if res.Err != nil || len(res.Batch) != len(batch) {
		b.failAll(batch, fmt.Errorf("batch of %d applied with %d results: %w", len(batch), len(res.Batch), res.Err))
		return
	}
	for i, p := range batch {
		p.done <- proposalResult{res: res.Batch[i]}
	}
}

// evaluate completes every create of the batch for the entry's time once,
// here, so that no replica decodes, checks and encodes the incident again
// (fsm.CompleteCreate). A create that fails is answered at once and stays
// out of the log. It returns the proposals that go into the entry.
func (b *batcher) evaluate(batch []*proposal, now *timestamppb.Timestamp) []*proposal {
	kept := batch[:0]
	for _, p := range batch {
		if c := p.cmd.GetCreateIncident(); c != nil {
			_, data, err := fsm.CompleteCreate(b.n.cfg.TeamID, c.GetIncident(), now)
			if err != nil {
				p.done <- proposalResult{res: &fsm.Result{Err: err}}
				continue
			}
			actor := p.cmd.GetActor()
			p.cmd = fsm.EvaluatedCreate(c, data)
			p.cmd.Actor = actor
		}
		kept = append(kept, p)
	}
	return kept
}

func (b *batcher) failAll(batch []*proposal, err error) {
	for _, p := range batch {
		p.done <- proposalResult{err: err}
	}
}
