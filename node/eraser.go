package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/node/raftstore"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// The eraser makes values the state machine removed because a peer asked
// (see node/fsm/erase.go) unreadable from every file of this node's data
// directory, within Config.EraseWithin of the removal being applied here.
// Each node of a team applies the same removals and erases its own files.
//
// A pass, for all removals noted since the last one:
//
//  1. a Raft snapshot at or after the last noting entry (an existing one, or
//     a new one), which no longer holds the removed values;
//  2. the snapshots taken before it removed from the snapshot store: they
//     hold the state before the removals;
//  3. the Raft log truncated through the noting entry, since the entries
//     that carried the removed values come before it (or are it), and the
//     log's pebble flushed and compacted so the bytes leave its WAL and
//     sstables (raftstore.Store.Erase);
//  4. the noted key ranges of the state machine's pebble compacted
//     (fsm.FSM.EraseState).
//
// The snapshot comes first because the log may only lose entries a
// snapshot covers, and because a raft snapshot in progress holds a pebble
// snapshot of the state that would keep the removed values alive through
// a compaction. Removals noted within the first half of the bound are
// batched into one pass, which has the second half; a burst of withdrawals
// costs one snapshot and one round of compactions. With nothing removed
// the eraser does nothing.
type eraser struct {
	state     *fsm.FSM
	raft      *raft.Raft
	logs      raft.LogStore // the log as raft sees it (with its cache)
	store     *raftstore.Store
	snapshots raft.SnapshotStore
	snapDir   string // where the snapshot store keeps its snapshots
	within    time.Duration
	log       *slog.Logger
	propose   func(context.Context, *irxv1.Command) error

	inPass atomic.Int64 // key ranges of the pass running
	m      eraserMetrics
}

type eraserMetrics struct {
	passes   prometheus.Counter
	failures prometheus.Counter
	delay    prometheus.Histogram
	duration prometheus.Histogram
}

func newEraser(n *Node, logs raft.LogStore, snapshots raft.SnapshotStore, snapDir string) *eraser {
	e := &eraser{
		state: n.state, raft: n.raft, logs: logs, store: n.logs, snapshots: snapshots, snapDir: snapDir,
		within: n.cfg.EraseWithin, log: n.log.With("component", "eraser"),
		propose: func(ctx context.Context, cmd *irxv1.Command) error {
			_, err := n.Propose(ctx, cmd)
			return err
		},
		m: eraserMetrics{
			passes: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "irx_erasure_passes_total", Help: "Erasure passes that made removed values unreadable from this node's files.",
			}),
			failures: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "irx_erasure_failures_total", Help: "Erasure passes that failed; their removals are erased by a later pass.",
			}),
			delay: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "irx_erasure_delay_seconds", Help: "Time from applying the oldest removal of a pass on this node until the pass erased it at rest.",
				Buckets: prometheus.ExponentialBuckets(0.25, 2, 12),
			}),
			duration: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "irx_erasure_pass_seconds", Help: "Time one erasure pass took: snapshot, log truncation and compactions.",
				Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
			}),
		},
	}
	n.metrics.registry.MustRegister(e.m.passes, e.m.failures, e.m.delay, e.m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "irx_erasure_pending", Help: "Key ranges removed on this node (about five per withdrawn record) whose values are not yet erased at rest.",
		}, func() float64 {
			_, pending, _ := e.state.PendingErasure()
			return float64(pending + int(e.inPass.Load()))
		}))
	return e
}

// run erases until ctx ends.
func (e *eraser) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.state.Erasures():
		}
		for e.passDue(ctx) {
			er, ok := e.state.TakeErasure()
			if !ok {
				break
			}
			err := e.pass(ctx, er)
			if ferr := e.state.FinishErasure(er, err); ferr != nil {
				e.log.Error("erasure: cannot clear the marker of an owed erasure; the next start erases everything again", "error", ferr)
			}
			if err != nil {
				e.m.failures.Inc()
				if ctx.Err() != nil {
					return
				}
				e.log.Warn("erasure pass failed; retrying", "noted_ranges", er.Ranges, "error", err)
				if !sleep(ctx, e.retryAfter()) {
					return
				}
			}
		}
	}
}

// passDue waits until a pass is due and reports whether one is: half the
// bound after the oldest pending removal was applied.
func (e *eraser) passDue(ctx context.Context) bool {
	since, _, ok := e.state.PendingErasure()
	if !ok {
		return false
	}
	return sleep(ctx, time.Until(since.Add(e.within/2)))
}

func (e *eraser) retryAfter() time.Duration { return min(e.within/4, 5*time.Second) }

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pass erases er at rest; see the eraser's comment for the steps.
func (e *eraser) pass(ctx context.Context, er fsm.Erasure) error {
	start := time.Now()
	e.inPass.Store(int64(er.Ranges))
	defer e.inPass.Store(0)
	// A guard against a pass that hangs (a raft snapshot that never ends),
	// not the bound: a pass that takes longer than the bound still
	// finishes; one that hangs this long fails and is tried again.
	ctx, cancel := context.WithTimeout(ctx, max(2*e.within, time.Minute))
	defer cancel()

	snapIndex, took, err := e.snapshotCovering(ctx, er.Index)
	if err != nil {
		return err
	}
	removed, err := removeSnapshotsBefore(e.snapDir, er.Index)
	if err != nil {
		return err
	}
	if err := e.keepLogFromEmptying(ctx, er.Index); err != nil {
		return err
	}
	first, err := e.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	if first != 0 && first <= er.Index {
		if err := e.logs.DeleteRange(first, er.Index); err != nil {
			return fmt.Errorf("erasure: truncate the raft log: %w", err)
		}
	}
	if err := e.store.Erase(ctx, er.Index); err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	if err := e.state.EraseState(ctx, er); err != nil {
		return fmt.Errorf("erasure: %w", err)
	}

	e.m.passes.Inc()
	e.m.delay.Observe(time.Since(er.Since).Seconds())
	e.m.duration.Observe(time.Since(start).Seconds())
	// Counts and indexes only: the removed values are never logged.
	e.log.Info("erased removed values at rest",
		"noted_ranges", er.Ranges, "compacted_ranges", len(er.Spans), "full", er.Full,
		"log_truncated_through", er.Index, "snapshot_index", snapIndex, "snapshot_taken", took,
		"old_snapshots_removed", removed,
		"since_applied", time.Since(er.Since).Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// keepLogFromEmptying makes sure the log holds an entry after index before
// it is truncated through index. Raft counts the entries since its last
// snapshot from the log's last index, which is 0 for an empty log: it
// would then take a snapshot at every check of its snapshot interval
// until an entry came. A no-op proposed through the leader gives every
// node's log one.
func (e *eraser) keepLogFromEmptying(ctx context.Context, index uint64) error {
	if last, err := e.logs.LastIndex(); err != nil || last > index {
		return err
	}
	if err := e.propose(ctx, &irxv1.Command{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}); err != nil {
		return fmt.Errorf("erasure: an entry after the erased ones: %w", err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		last, err := e.logs.LastIndex()
		if err != nil || last > index {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("erasure: waiting for an entry after %d: %w", index, ctx.Err())
		case <-tick.C:
		}
	}
}

// snapshotCovering returns the index of a Raft snapshot at index or
// later, taking one if the store has none, and whether it took one.
func (e *eraser) snapshotCovering(ctx context.Context, index uint64) (uint64, bool, error) {
	metas, err := e.snapshots.List()
	if err != nil {
		return 0, false, fmt.Errorf("erasure: list snapshots: %w", err)
	}
	if len(metas) > 0 && metas[0].Index >= index {
		return metas[0].Index, false, nil
	}
	future := e.raft.Snapshot()
	done := make(chan error, 1)
	go func() { done <- future.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return 0, false, fmt.Errorf("erasure: snapshot: %w", ctx.Err())
	}
	if err != nil {
		return 0, false, fmt.Errorf("erasure: snapshot: %w", err)
	}
	meta, rc, err := future.Open()
	if err != nil {
		return 0, false, fmt.Errorf("erasure: snapshot: %w", err)
	}
	_ = rc.Close()
	// Raft labels a snapshot with the last entry it handed the state
	// machine; right after a restart that can trail what the state holds.
	if meta.Index < index {
		return 0, false, fmt.Errorf("erasure: the newest snapshot covers index %d, not yet %d", meta.Index, index)
	}
	return meta.Index, true, nil
}

// removeSnapshotsBefore deletes the snapshots in dir (hashicorp/raft's
// file snapshot store: one directory per snapshot, named
// term-index-milliseconds) taken before index: they hold the state before
// the removals. Its metadata goes first, so a crash halfway leaves a
// directory the store no longer lists, which the next pass removes.
func removeSnapshotsBefore(dir string, index uint64) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("erasure: list snapshots: %w", err)
	}
	removed := 0
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		idx, ok := snapshotIndex(ent.Name())
		if !ok || idx >= index {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		if err := os.Remove(filepath.Join(path, "meta.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("erasure: remove snapshot %s: %w", ent.Name(), err)
		}
		if err := os.RemoveAll(path); err != nil {
			return removed, fmt.Errorf("erasure: remove snapshot %s: %w", ent.Name(), err)
		}
		removed++
	}
	if removed > 0 {
		d, err := os.Open(dir)
		if err != nil {
			return removed, fmt.Errorf("erasure: %w", err)
		}
		if err := errors.Join(d.Sync(), d.Close()); err != nil {
			return removed, fmt.Errorf("erasure: sync %s: %w", dir, err)
		}
	}
	return removed, nil
}

// snapshotIndex parses the index from a snapshot directory's name,
// term-index-milliseconds, with ".tmp" while it is written.
func snapshotIndex(name string) (uint64, bool) {
	parts := strings.Split(strings.TrimSuffix(name, ".tmp"), "-")
	if len(parts) != 3 {
		return 0, false
	}
	idx, err := strconv.ParseUint(parts[1], 10, 64)
	return idx, err == nil
}
