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

// An append whose sync does not come back makes the store report itself
// stalled, naming the log's disk, after the stall timeout; other appends
// fail at once instead of queueing behind it; when the disk comes back
// the append completes and the store takes appends again.
func TestStalledAppendReportedAndRecovers(t *testing.T) {
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
	held := make(chan error, 1)
	go func() { held <- s.StoreLogs(testLogs(11, 20)) }()
	deadline := time.Now().Add(30 * time.Second)
	for s.Stalled() == nil {
		if time.Now().After(deadline) {
			t.Fatal("not stalled 30 s into a held append")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = s.Stalled()
	var serr *errdefs.StorageError
	if !errors.As(err, &serr) || !errors.Is(err, errdefs.ErrUnavailable) || serr.Path != "raft" || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("Stalled() = %v, want an UNAVAILABLE StorageError naming the raft log's path", err)
	}
	// Another append does not queue behind the held one.
	other := make(chan error, 1)
	go func() { other <- s.StoreLogs(testLogs(21, 21)) }()
	select {
	case err := <-other:
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Fatalf("append while stalled: %v, want UNAVAILABLE", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an append while stalled did not return")
	}

	gate.Release()
	select {
	case err := <-held:
		if err != nil {
			t.Fatalf("the held append, once the disk came back: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held append did not finish after the disk came back")
	}
	if err := s.Stalled(); err != nil {
		t.Fatalf("still stalled after the held append finished: %v", err)
	}
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

// BenchmarkStoreLogBounded is BenchmarkStoreLog with the stall timeout the
// node sets: the cost of running each append on a goroutine of its own.
func BenchmarkStoreLogBounded(b *testing.B) {
	s, err := Open(b.TempDir(), WithLogger(slog.New(slog.DiscardHandler)), WithStallTimeout(2*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.StoreLog(benchLog(uint64(i)+1, data)); err != nil {
			b.Fatal(err)
		}
	}
}
