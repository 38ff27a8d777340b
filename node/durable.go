package node

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// The leader writes its log while its followers write theirs (the log
// store's write-ahead appends, node/raftstore/durable.go), so hashicorp/raft
// may count an entry committed when a follower has it on disk and the
// leader's own copy is still on its way there. Two rules keep that from
// mattering, because each holds until the leader's copy is durable too and
// the entry is on a majority of disks:
//
//   - no state machine applies an entry before its own log has it on disk
//     (durableFSM), so nothing is applied, answered or read that a crash
//     could still take away;
//   - the leader tells followers a commit index no higher than what its own
//     log has on disk (durableTransport), so no follower applies an entry
//     that the leader's crash could leave on a minority.
//
// A membership change is confirmed by a state machine entry after it
// (Node.confirmOnDisk), for the same reason.

// durableLog is what the rules need of the log store.
type durableLog interface {
	Durable() uint64
	WaitDurable(index uint64) error
}

// durableFSM applies entries only once the local log has them on disk.
type durableFSM struct {
	raft.BatchingFSM
	log durableLog
}

func (f durableFSM) ApplyBatch(logs []*raft.Log) []any {
	if len(logs) > 0 {
		if err := f.log.WaitDurable(logs[len(logs)-1].Index); err != nil {
			// The log closed under raft, which shuts down first: applying
			// what may not be on disk would make it permanent.
			panic(fmt.Sprintf("raft log not durable up to %d: %v", logs[len(logs)-1].Index, err))
		}
	}
	return f.BatchingFSM.ApplyBatch(logs)
}

func (f durableFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// raftTransport is a transport with the optional parts hashicorp/raft
// looks for: pre-vote and close, which the network transport has.
type raftTransport interface {
	raft.Transport
	raft.WithPreVote
	raft.WithClose
}

// durableTransport caps the commit index the leader sends at what its log
// has on disk.
//
// It also sends nothing while stalled reports an error: a leader whose
// Raft loop is stuck in a write the disk does not finish still has its
// heartbeats sent by other goroutines, which would keep the followers
// from electing a leader that can write.
type durableTransport struct {
	raftTransport
	log     durableLog
	stalled func() error
}

func (t durableTransport) refuse() error {
	if t.stalled == nil {
		return nil
	}
	if err := t.stalled(); err != nil {
		return fmt.Errorf("not replicating while this node's disk is stalled: %w", err)
	}
	return nil
}

func (t durableTransport) capped(req *raft.AppendEntriesRequest) *raft.AppendEntriesRequest {
	durable := t.log.Durable()
	if req.LeaderCommitIndex <= durable {
		return req
	}
	// A copy: raft still reads its own request (entries, indexes) when the
	// answer comes.
	out := *req
	out.LeaderCommitIndex = durable
	return &out
}

// AppendEntries implements raft.Transport.
func (t durableTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if err := t.refuse(); err != nil {
		return err
	}
	return t.raftTransport.AppendEntries(id, target, t.capped(req), resp)
}

// AppendEntriesPipeline implements raft.Transport.
func (t durableTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if err := t.refuse(); err != nil {
		return nil, err
	}
	p, err := t.raftTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return durablePipeline{AppendPipeline: p, t: t}, nil
}

type durablePipeline struct {
	raft.AppendPipeline
	t durableTransport
}

func (p durablePipeline) AppendEntries(req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if err := p.t.refuse(); err != nil {
		return nil, err
	}
	return p.AppendPipeline.AppendEntries(p.t.capped(req), resp)
}
