package raftstore

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/node/internal/heldsync"
)

// An append whose sync does not come back fails after the stall timeout
// with an error naming the log's disk, instead of holding Raft's loop
// forever; appends after it fail at once until it finishes, and then the
// store takes appends again.
func TestStalledAppendFailsAndRecovers(t *testing.T) {
	gate := &heldsync.Disk{}
	s, err := Open("raft", WithLogger(slog.New(slog.DiscardHandler)), WithFS(errorfs.Wrap(vfs.NewMem(), gate)),
		WithStallTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		gate.Release()
		_ = s.Close()
	}()
	if err := s.StoreLogs(testLogs(1, 10)); err != nil {
		t.Fatal(err)
	}

	gate.Hold()
	first := make(chan error, 1)
	go func() { first <- s.StoreLogs(testLogs(11, 20)) }()
	select {
	case err = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("an append on a held disk did not return")
	}
	var serr *errdefs.StorageError
	if !errors.As(err, &serr) || !errors.Is(err, errdefs.ErrUnavailable) || serr.Path != "raft" || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("append on a held disk: %v, want an UNAVAILABLE StorageError naming the raft log's path", err)
	}
	if s.Stalled() == nil {
		t.Fatal("Stalled() is nil while an append is held")
	}
	// The next append does not queue behind the held one.
	done := make(chan error, 1)
	go func() { done <- s.StoreLogs(testLogs(21, 21)) }()
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("append while stalled: %v, want UNAVAILABLE", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an append while stalled did not return")
	}

	gate.Release()
	deadline := time.Now().Add(30 * time.Second)
	for s.Stalled() != nil {
		if time.Now().After(deadline) {
			t.Fatal("still stalled after the disk came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The held append landed after all; the log goes on from it.
	if err := s.StoreLogs(testLogs(21, 30)); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	requireBounds(t, s, 1, 30)
}

// An append the write check refuses is not written.
func TestWriteCheckRefusesAppends(t *testing.T) {
	var full atomic.Bool
	refusal := &errdefs.StorageError{Disk: "raft log disk", Path: "raft", Reason: "full", Class: errdefs.ErrResourceExhausted}
	s, err := Open("raft", WithLogger(slog.New(slog.DiscardHandler)), WithFS(vfs.NewMem()), WithWriteCheck(func() error {
		if full.Load() {
			return refusal
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StoreLogs(testLogs(1, 5)); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if err := s.StoreLogs(testLogs(6, 9)); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("append on a full disk: %v, want RESOURCE_EXHAUSTED", err)
	}
	requireBounds(t, s, 1, 5)
	// Raft's term and vote are not appends: they are still written.
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatalf("SetUint64 on a full disk: %v", err)
	}
	full.Store(false)
	if err := s.StoreLogs(testLogs(6, 9)); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 9)
}
