package raftstore

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/irxfed/irx/errdefs"
)

// bounded runs fn, waiting at most stallAfter for it. After that it
// returns the stall error and leaves fn running; until fn returns, the
// store reports itself stalled.
func (s *Store) bounded(fn func() error) error {
	done := make(chan error, 1)
	var late atomic.Bool
	go func() {
		err := fn()
		if late.CompareAndSwap(true, false) {
			s.overdue.Add(-1)
			s.logger.Warn("a stalled raft log write finished", "error", err)
		}
		done <- err
	}()
	t := time.NewTimer(s.stallAfter)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	// Count it overdue unless it finished in the meantime.
	s.overdue.Add(1)
	late.Store(true)
	select {
	case err := <-done:
		if late.CompareAndSwap(true, false) {
			s.overdue.Add(-1)
		}
		return err
	default:
	}
	s.logger.Error("raft log write stalled; refusing appends until it finishes", "path", s.dir, "after", s.stallAfter)
	return s.stallError(s.stallAfter)
}

// Stalled returns an error naming the log's disk while an append or a sync
// has run longer than the stall timeout, and nil otherwise (always nil
// without WithStallTimeout).
func (s *Store) Stalled() error {
	if s.stallAfter <= 0 {
		return nil
	}
	if s.overdue.Load() > 0 {
		return s.stallError(s.stallAfter)
	}
	if since := s.syncSince.Load(); since != 0 {
		if d := time.Since(time.Unix(0, since)); d > s.stallAfter {
			return s.stallError(d.Round(time.Millisecond))
		}
	}
	return nil
}

func (s *Store) stallError(d time.Duration) error {
	return &errdefs.StorageError{
		Disk: "raft log disk", Path: s.dir, Class: errdefs.ErrUnavailable,
		Reason: fmt.Sprintf("a write has not finished in %s; the disk is stalled or failing", d),
	}
}
