package raftstore

import (
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// countFSM counts applied commands and snapshots that count, so a restart can
// tell whether raft restored the snapshot and replayed the tail.
type countFSM struct {
	mu sync.Mutex
	n  uint64
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return countSnapshot(f.count()), nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var buf [8]byte
	if _, err := io.ReadFull(rc, buf[:]); err != nil {
		return err
	}
	f.mu.Lock()
	f.n = binary.BigEndian.Uint64(buf[:])
	f.mu.Unlock()
	return nil
}

type countSnapshot uint64

func (c countSnapshot) Persist(sink raft.SnapshotSink) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(c))
	if _, err := sink.Write(buf[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

type testNode struct {
	id    raft.ServerID
	dir   string
	store *Store
	fsm   *countFSM
	trans *raft.InmemTransport
	raft  *raft.Raft
}

func raftConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	// A leader steps down when a quorum has not answered within the lease:
	// on a loaded two-core machine under -race, fsync'd appends and a
	// snapshot install stall a follower for longer than tens of
	// milliseconds, which lost leadership mid-test. A second costs the
	// tests only the first election.
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = time.Second
	c.CommitTimeout = 10 * time.Millisecond
	// Only explicit Snapshot() calls, so the test controls truncation.
	c.SnapshotThreshold = 1 << 30
	c.SnapshotInterval = time.Hour
	c.TrailingLogs = 10
	c.LogOutput = io.Discard
	c.LogLevel = "ERROR"
	return c
}

// startNode opens (or reopens) the store and snapshot dir under dir and
// starts raft on them.
func startNode(t *testing.T, id raft.ServerID, dir string) *testNode {
	t.Helper()
	n := &testNode{id: id, dir: dir, fsm: &countFSM{}}
	n.store = openTestStore(t, filepath.Join(dir, "raft"))
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snaps"), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// The timeout bounds how long an RPC waits for the other node's raft
	// loop to take it, which a busy machine can stall for seconds.
	_, n.trans = raft.NewInmemTransportWithTimeout(raft.ServerAddress(id), 10*time.Second)
	n.raft, err = raft.NewRaft(raftConfig(id), n.fsm, n.store, n.store, snaps, n.trans)
	if err != nil {
		t.Fatalf("NewRaft(%s): %v", id, err)
	}
	t.Cleanup(func() { _ = n.raft.Shutdown().Error() })
	return n
}

func (n *testNode) stop(t *testing.T) {
	t.Helper()
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown(%s): %v", n.id, err)
	}
	if err := n.store.Close(); err != nil {
		t.Fatalf("Close(%s): %v", n.id, err)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func applyN(t *testing.T, r *raft.Raft, n int) {
	t.Helper()
	futures := make([]raft.ApplyFuture, 0, n)
	for i := range n {
		futures = append(futures, r.Apply([]byte(fmt.Sprintf("cmd-%d", i)), 5*time.Second))
	}
	// Apply's timeout only bounds enqueueing; a future whose entry can never
	// commit blocks until leadership is lost, so bound the whole wait here.
	errc := make(chan error, 1)
	go func() {
		for i, f := range futures {
			if err := f.Error(); err != nil {
				errc <- fmt.Errorf("apply %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %d applies", n)
	}
}

func storeBounds(t *testing.T, s *Store) (uint64, uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

// TestRaftSingleNodeRestart drives real hashicorp/raft against the store:
// first boot on an empty store (exercises the "not found" contract), a
// snapshot that truncates the log, and a restart that must recover state
// from the snapshot plus the log tail.
func TestRaftSingleNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real raft")
	}
	dir := t.TempDir()
	n := startNode(t, "n1", dir)

	existing, err := raft.HasExistingState(n.store, n.store, mustSnaps(t, dir))
	if err != nil || existing {
		t.Fatalf("HasExistingState on fresh store = %v, %v", existing, err)
	}
	boot := raft.Configuration{Servers: []raft.Server{{ID: n.id, Address: n.trans.LocalAddr()}}}
	if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	waitFor(t, "leadership", time.Minute, func() bool { return n.raft.State() == raft.Leader })

	applyN(t, n.raft, 500)
	if got := n.fsm.count(); got != 500 {
		t.Fatalf("fsm count = %d, want 500", got)
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, last := storeBounds(t, n.store)
	// TrailingLogs=10: everything but the last 10 entries is compacted.
	if first <= 1 || last-first+1 != 10 {
		t.Fatalf("after snapshot bounds [%d, %d], want a 10-entry tail", first, last)
	}
	var l raft.Log
	if err := n.store.GetLog(first-1, &l); err != raft.ErrLogNotFound {
		t.Fatalf("compacted entry %d: %v", first-1, err)
	}

	applyN(t, n.raft, 100)
	lastBefore := n.raft.LastIndex()
	firstBefore, storeLast := storeBounds(t, n.store)
	if storeLast != lastBefore || firstBefore != first {
		t.Fatalf("store bounds [%d, %d], raft last %d", firstBefore, storeLast, lastBefore)
	}
	n.stop(t)

	// Restart on the same directories.
	n2 := startNode(t, "n1", dir)
	if f, l := storeBounds(t, n2.store); f != firstBefore || l != lastBefore {
		t.Fatalf("reopened bounds [%d, %d], want [%d, %d]", f, l, firstBefore, lastBefore)
	}
	existing, err = raft.HasExistingState(n2.store, n2.store, mustSnaps(t, dir))
	if err != nil || !existing {
		t.Fatalf("HasExistingState after restart = %v, %v", existing, err)
	}
	term, err := n2.store.GetUint64([]byte("CurrentTerm"))
	if err != nil || term == 0 {
		t.Fatalf("CurrentTerm = %d, %v", term, err)
	}
	waitFor(t, "leadership after restart", time.Minute, func() bool { return n2.raft.State() == raft.Leader })
	// Snapshot restore gives 500, replaying the log tail gives the other 100.
	waitFor(t, "fsm to recover 600 applies", time.Minute, func() bool { return n2.fsm.count() == 600 })
	if got := n2.raft.LastIndex(); got <= lastBefore {
		t.Fatalf("raft LastIndex after restart = %d, want > %d (new term's no-op)", got, lastBefore)
	}

	applyN(t, n2.raft, 50)
	if got := n2.fsm.count(); got != 650 {
		t.Fatalf("fsm count = %d, want 650", got)
	}
	if f, _ := storeBounds(t, n2.store); f != firstBefore {
		t.Fatalf("FirstIndex moved without a snapshot: %d -> %d", firstBefore, f)
	}
	if err := n2.raft.Snapshot().Error(); err != nil {
		t.Fatalf("second snapshot: %v", err)
	}
	if f, l := storeBounds(t, n2.store); f <= firstBefore || l-f+1 != 10 {
		t.Fatalf("after second snapshot bounds [%d, %d]", f, l)
	}
	n2.stop(t)
}

// TestRaftFollowerCatchUpViaSnapshot adds a follower after the leader has
// compacted its log. Raft decides to ship a snapshot only when GetLog returns
// exactly raft.ErrLogNotFound; the follower then installs it and appends
// after a gap on its own store.
func TestRaftFollowerCatchUpViaSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real raft")
	}
	leader := startNode(t, "n1", t.TempDir())
	boot := raft.Configuration{Servers: []raft.Server{{ID: leader.id, Address: leader.trans.LocalAddr()}}}
	if err := leader.raft.BootstrapCluster(boot).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leadership", time.Minute, func() bool { return leader.raft.State() == raft.Leader })
	applyN(t, leader.raft, 200)
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := storeBounds(t, leader.store); first <= 1 {
		t.Fatalf("leader log not compacted: first = %d", first)
	}

	follower := startNode(t, "n2", t.TempDir())
	leader.trans.Connect(follower.trans.LocalAddr(), follower.trans)
	follower.trans.Connect(leader.trans.LocalAddr(), leader.trans)
	if err := leader.raft.AddVoter(follower.id, follower.trans.LocalAddr(), 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	applyN(t, leader.raft, 20)
	waitFor(t, "follower to catch up", time.Minute, func() bool { return follower.fsm.count() == 220 })

	ff, fl := storeBounds(t, follower.store)
	if ff <= 1 || fl != leader.raft.LastIndex() {
		t.Fatalf("follower bounds [%d, %d], leader last %d", ff, fl, leader.raft.LastIndex())
	}
	if err := leader.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := follower.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
}

func mustSnaps(t *testing.T, dir string) raft.SnapshotStore {
	t.Helper()
	s, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snaps"), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
