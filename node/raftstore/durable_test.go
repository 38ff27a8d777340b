package raftstore

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/irxfed/irx/node/internal/heldsync"
)

type aheadStore struct {
	*Store
	fs      *vfs.MemFS
	gate    *heldsync.Disk
	leading atomic.Bool
}

// openAhead opens a store with write-ahead appends on a memory file system
// that can be crashed (CrashClone keeps only what was synced).
func openAhead(t *testing.T) *aheadStore {
	t.Helper()
	a := &aheadStore{fs: vfs.NewCrashableMem(), gate: &heldsync.Disk{}}
	a.leading.Store(true)
	s, err := Open("raft", WithLogger(slog.New(slog.DiscardHandler)), WithFS(errorfs.Wrap(a.fs, a.gate)), WithWriteAhead(a.leading.Load))
	if err != nil {
		t.Fatal(err)
	}
	a.Store = s
	t.Cleanup(func() {
		a.gate.Release()
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// lastAfterCrash is the last index a store opened on what a crash now
// would leave of the disk holds.
func (a *aheadStore) lastAfterCrash(t *testing.T) uint64 {
	t.Helper()
	s, err := Open("raft", WithLogger(slog.New(slog.DiscardHandler)), WithFS(a.fs.CrashClone(vfs.CrashCloneCfg{})))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// A leader's appends return before they are on disk; what WaitDurable
// confirmed survives a crash, and what it did not may not.
func TestWriteAheadAppendsBecomeDurable(t *testing.T) {
	a := openAhead(t)
	if err := a.StoreLogs(testLogs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitDurable(5); err != nil || a.Durable() != 5 {
		t.Fatalf("WaitDurable(5): %v, durable %d", err, a.Durable())
	}
	a.gate.Hold()
	// The disk holds every sync now, and the append returns all the same.
	done := make(chan error, 1)
	go func() { done <- a.StoreLogs(testLogs(6, 10)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a leader's append waited for the disk")
	}
	if last, _ := a.LastIndex(); last != 10 || a.Durable() != 5 {
		t.Fatalf("last %d, durable %d; want 10 written, 5 durable", last, a.Durable())
	}
	if got := a.lastAfterCrash(t); got != 5 {
		t.Fatalf("a crash now leaves the log at %d, want 5 (what was synced)", got)
	}
	a.gate.Release()
	if err := a.WaitDurable(10); err != nil || a.Durable() != 10 {
		t.Fatalf("WaitDurable(10): %v, durable %d", err, a.Durable())
	}
	if got := a.lastAfterCrash(t); got != 10 {
		t.Fatalf("after WaitDurable(10), a crash leaves the log at %d", got)
	}
}

// A node that does not lead syncs what it appends before the append
// returns: a follower acknowledges what it stores.
func TestAppendsOfAFollowerAreSynced(t *testing.T) {
	a := openAhead(t)
	a.leading.Store(false)
	a.gate.Hold()
	done := make(chan error, 1)
	go func() { done <- a.StoreLogs(testLogs(1, 3)) }()
	select {
	case err := <-done:
		t.Fatalf("a follower's append returned (%v) while the disk held its sync", err)
	case <-time.After(50 * time.Millisecond):
	}
	a.gate.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append did not return once the disk synced")
	}
	if a.Durable() != 3 || a.lastAfterCrash(t) != 3 {
		t.Fatalf("durable %d, after a crash %d; want 3", a.Durable(), a.lastAfterCrash(t))
	}
}

// Cutting off the log's tail takes it out of what is durable: entries
// appended there later are durable only once synced themselves.
func TestTruncatedTailIsNotDurable(t *testing.T) {
	a := openAhead(t)
	if err := a.StoreLogs(testLogs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitDurable(10); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	if a.Durable() != 7 {
		t.Fatalf("durable %d after cutting 8-10, want 7", a.Durable())
	}
	a.gate.Hold()
	if err := a.StoreLogs(testLogs(8, 9)); err != nil {
		t.Fatal(err)
	}
	if a.Durable() != 7 {
		t.Fatalf("durable %d before the new entries are synced, want 7", a.Durable())
	}
	a.gate.Release()
	if err := a.WaitDurable(9); err != nil || a.Durable() != 9 {
		t.Fatalf("WaitDurable(9): %v, durable %d", err, a.Durable())
	}
	// Compaction cuts the head, which leaves the durable index alone.
	if err := a.DeleteRange(1, 4); err != nil || a.Durable() != 9 {
		t.Fatalf("after compaction: %v, durable %d", err, a.Durable())
	}
}

// Closing syncs what was written and releases whoever waits for it; a wait
// for what was never written ends with ErrClosed.
func TestCloseSyncsAndReleasesWaiters(t *testing.T) {
	a := openAhead(t)
	a.gate.Hold()
	if err := a.StoreLogs(testLogs(1, 4)); err != nil {
		t.Fatal(err)
	}
	waits := make(chan error, 2)
	go func() { waits <- a.WaitDurable(4) }()
	go func() { waits <- a.WaitDurable(99) }()
	a.gate.Release()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	var got []error
	for range 2 {
		select {
		case err := <-waits:
			got = append(got, err)
		case <-time.After(10 * time.Second):
			t.Fatal("a wait did not end when the store closed")
		}
	}
	if (got[0] != nil) == (got[1] != nil) || (!errors.Is(got[0], ErrClosed) && !errors.Is(got[1], ErrClosed)) {
		t.Fatalf("waits ended with %v; want nil for 4 and ErrClosed for 99", got)
	}
	if a.lastAfterCrash(t) != 4 {
		t.Fatal("close did not sync what was written")
	}
}
