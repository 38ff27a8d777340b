package fsm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/irxfed/irx/errdefs"
)

// syncBuffer is a log destination tests can read while the code writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fillAndFlush creates n incidents and flushes them into sstables.
func fillAndFlush(t *testing.T, h *harness, n int) {
	t.Helper()
	for range n {
		h.create(newIncident())
	}
	if err := h.f.db.Flush(); err != nil {
		t.Fatal(err)
	}
}

// flipLargestTable flips one byte a third of the way into the largest
// sstable in dir (inside a checksummed block: only the footer is not) and
// returns its path.
func flipLargestTable(t *testing.T, dir string) string {
	t.Helper()
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(tables) == 0 {
		t.Fatalf("no sstables in %s (%v)", dir, err)
	}
	var largest string
	var size int64
	for _, p := range tables {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			largest, size = p, fi.Size()
		}
	}
	data, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x5a
	if err := os.WriteFile(largest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return largest
}

// A state machine whose table is damaged is found out at open, removed,
// and opened empty for Raft to fill from the snapshot and the log; the
// log names the file.
func TestOpenRebuildsCorruptState(t *testing.T) {
	h := newHarness(t)
	fillAndFlush(t, h, 300)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	bad := flipLargestTable(t, h.dir)

	var logs syncBuffer
	f, err := Open(h.dir, team, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open of a corrupt state machine: %v", err)
	}
	defer f.Close()
	if f.AppliedIndex() != 0 || f.LastTicket() != 0 {
		t.Errorf("rebuilt state machine at applied %d, ticket %d; want an empty one", f.AppliedIndex(), f.LastTicket())
	}
	if !strings.Contains(logs.String(), bad) || !strings.Contains(logs.String(), "rebuild") {
		t.Errorf("the log does not name %s and what was done:\n%s", bad, logs.String())
	}
	if _, err := os.Stat(h.dir + ".corrupt"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the damaged copy is still on disk: %v", err)
	}
	if p := f.Problem(0); p != nil {
		t.Errorf("Problem() after the rebuild: %v", p)
	}
}

// An intact state machine opens as it was.
func TestOpenKeepsIntactState(t *testing.T) {
	h := newHarness(t)
	fillAndFlush(t, h, 50)
	want := h.f.AppliedIndex()
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t, h.dir)
	if f.AppliedIndex() != want {
		t.Fatalf("applied %d after reopening, want %d", f.AppliedIndex(), want)
	}
}

// Damage found by the scrub, or by a read, marks the state machine
// corrupt with the file's name, and the read fails with an error rather
// than stopping the process.
func TestVerifyAndReadFindCorruption(t *testing.T) {
	h := newHarness(t)
	fillAndFlush(t, h, 300)
	if err := h.f.Verify(context.Background(), 0); err != nil {
		t.Fatalf("Verify of an intact state machine: %v", err)
	}
	bad := flipLargestTable(t, h.dir)

	err := h.f.Verify(context.Background(), 64<<20)
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Path != bad {
		t.Fatalf("Verify: %v, want a CorruptionError naming %s", err, bad)
	}
	problem := h.f.Problem(0)
	var serr *errdefs.StorageError
	if !errors.As(problem, &serr) || serr.Path != bad || !errors.Is(problem, errdefs.ErrUnavailable) {
		t.Fatalf("Problem() = %v, want an UNAVAILABLE StorageError naming %s", problem, bad)
	}

	// A second state machine over the same damage, found by reading.
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	f := &FSM{team: team, dir: h.dir, log: discard, appliedSignal: make(chan struct{}), families: keyFamilies()}
	db, err := openDB(h.dir, discard, f.health.events(h.dir, discard))
	if err != nil {
		t.Fatal(err)
	}
	f.db = db
	defer db.Close()
	_, _, err = f.List(Query{}, 1000, "")
	if err == nil {
		t.Fatal("List over a damaged table succeeded")
	}
	if f.Corrupted() == "" {
		t.Errorf("a read that hit damage (%v) did not mark the state machine corrupt", err)
	}
}

// BenchmarkVerify checks every block of a state machine of 20,000
// incidents, as a start does (docs/performance.md).
func BenchmarkVerify(b *testing.B) {
	h := &harness{t: b, dir: b.TempDir() + "/state", clock: t0}
	h.f = openFSM(b, h.dir)
	for range 20_000 {
		h.create(newIncident())
	}
	if err := h.f.db.Flush(); err != nil {
		b.Fatal(err)
	}
	var size uint64
	levels, err := h.f.db.SSTables()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range levels {
		for _, t := range l {
			size += t.Size
		}
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		if err := h.f.Verify(context.Background(), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// A snapshot restored over a damaged database replaces the damage: the
// state machine no longer reports it.
func TestRestoreClearsCorruption(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 20)
	snap := takeSnapshot(t, src.f)

	h := newHarness(t)
	fillAndFlush(t, h, 300)
	flipLargestTable(t, h.dir)
	if err := h.f.Verify(context.Background(), 0); err == nil {
		t.Fatal("Verify found no damage")
	}
	if err := h.f.Restore(snap.reader()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if p := h.f.Problem(0); p != nil {
		t.Fatalf("Problem() after the restore: %v", p)
	}
	if err := h.f.Verify(context.Background(), 0); err != nil {
		t.Fatalf("Verify after the restore: %v", err)
	}
}
