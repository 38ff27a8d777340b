package raftstore

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/irxfed/irx/errdefs"
)

// watchStall counts the append now starting as overdue once it has run
// for the stall timeout; call the function it returns when it ends.
func (s *Store) watchStall() func() {
	if s.stallAfter <= 0 {
		return func() {}
	}
	var late atomic.Bool
	t := time.AfterFunc(s.stallAfter, func() {
		late.Store(true)
		s.overdue.Add(1)
		s.logger.Error("raft log write stalled; refusing other appends until it finishes", "path", s.dir, "after", s.stallAfter)
	})
	return func() {
		if !t.Stop() {
			// The timer fired, or is firing: wait for it to have counted.
			for !late.Load() {
				time.Sleep(time.Millisecond)
			}
			s.overdue.Add(-1)
			s.logger.Warn("the stalled raft log write finished", "path", s.dir)
		}
	}
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
