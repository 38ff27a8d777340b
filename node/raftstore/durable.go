package raftstore

import (
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Appends written ahead of the disk.
//
// hashicorp/raft stores the leader's new entries before it replicates
// them, so the leader's fsync and then a follower's are both in every
// commit's path. Raft does not need that order (Ongaro's thesis, §10.2.1):
// the leader may write its log while the followers write theirs, as long
// as nothing acts on an entry before a majority has it on disk. With
// WithWriteAhead, an append made while the node leads returns once it is
// written, and a syncer goroutine makes it durable; Durable tells how far
// the log is on disk and WaitDurable waits for an index. Appends made while
// the node does not lead are synced before they return, as a follower must
// before it acknowledges them.
//
// The other half of the promise is the node's (node/durable.go): its state
// machine applies an entry only once it is durable here, so nothing is
// answered or applied before the leader's copy and a follower's are on
// disk, and the leader tells followers a commit index no higher than its
// durable one, so no follower applies an entry the leader could still lose.

// durability tracks how far the log is on disk.
type durability struct {
	mu      sync.Mutex
	changed *sync.Cond
	// written is the last index appended; durable the last one known to be
	// on disk with everything before it.
	written, durable uint64
	// epoch changes when the log's tail is cut off, so that a sync begun
	// before cannot vouch for entries written after.
	epoch uint64
	// stopping: the store is closing; finished: nothing will be synced any
	// more (the sync loop ended, or there is none).
	stopping, finished bool
	done               chan struct{}
}

func newDurability(last uint64) *durability {
	d := &durability{written: last, durable: last, done: make(chan struct{})}
	d.changed = sync.NewCond(&d.mu)
	return d
}

// wrote records an append that is not yet synced.
func (d *durability) wrote(last uint64) {
	d.mu.Lock()
	d.written = max(d.written, last)
	d.mu.Unlock()
	d.changed.Broadcast()
}

// synced records that every write so far is on disk, up to last.
func (d *durability) synced(last uint64) {
	d.mu.Lock()
	d.written = max(d.written, last)
	d.durable = max(d.durable, d.written)
	d.mu.Unlock()
	d.changed.Broadcast()
}

// cut records that the log ends before from from now on.
func (d *durability) cut(from uint64) {
	d.mu.Lock()
	d.epoch++
	d.written = min(d.written, from-1)
	d.durable = min(d.durable, from-1)
	d.mu.Unlock()
}

// Durable returns the last log index that is on disk together with every
// entry before it.
func (s *Store) Durable() uint64 {
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	return s.dur.durable
}

// WaitDurable blocks until the log is on disk up to index. It returns
// ErrClosed if the store closed first.
func (s *Store) WaitDurable(index uint64) error {
	d := s.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.durable < index && !d.finished {
		d.changed.Wait()
	}
	if d.durable < index {
		return ErrClosed
	}
	return nil
}

// syncLoop makes written entries durable until the store closes, and once
// more then. Each round syncs everything written so far with one fsync.
func (s *Store) syncLoop() {
	d := s.dur
	defer close(d.done)
	for {
		d.mu.Lock()
		for d.written <= d.durable && !d.stopping {
			d.changed.Wait()
		}
		if d.written <= d.durable {
			d.finished = true
			d.mu.Unlock()
			d.changed.Broadcast()
			return
		}
		target, epoch := d.written, d.epoch
		d.mu.Unlock()

		start := time.Now()
		s.syncSince.Store(start.UnixNano())
		err := s.syncWAL()
		s.syncSince.Store(0)
		if err != nil {
			// The log may not hold what it was given; nothing written
			// after can be trusted either. Pebble stops the process on a
			// failed WAL write for the same reason.
			s.logger.Error("raft log sync failed; the node must stop", "error", err)
			panic(fmt.Sprintf("raftstore: sync appends up to %d: %v", target, err))
		}
		if s.onSync != nil {
			s.onSync(time.Since(start))
		}
		d.mu.Lock()
		if epoch == d.epoch {
			d.durable = max(d.durable, target)
		}
		d.mu.Unlock()
		d.changed.Broadcast()
	}
}

// syncWAL puts everything written to the database so far on disk: pebble's
// write-ahead log is one sequence, and a synced write syncs all before it.
func (s *Store) syncWAL() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.closeMu.RUnlock()
	return s.db.LogData(nil, pebble.Sync)
}

// stopSyncing ends the sync loop after a last sync of what is written.
func (s *Store) stopSyncing() {
	d := s.dur
	d.mu.Lock()
	d.stopping = true
	if s.writeAhead == nil {
		d.finished = true
	}
	d.mu.Unlock()
	d.changed.Broadcast()
	if s.writeAhead != nil {
		<-d.done
	}
}
