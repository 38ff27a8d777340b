package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

func openTestStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testLog(idx uint64) *raft.Log {
	return &raft.Log{
		Index:      idx,
		Term:       idx/10 + 1,
		Type:       raft.LogCommand,
		Data:       []byte(fmt.Sprintf("data-%d", idx)),
		Extensions: []byte(fmt.Sprintf("ext-%d", idx)),
		AppendedAt: time.Unix(1700000000+int64(idx), int64(idx)*1000),
	}
}

func testLogs(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, testLog(i))
	}
	return out
}

func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func requireBounds(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("bounds = [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

// requirePresent checks exactly the indexes in want exist within [lo, hi].
func requirePresent(t *testing.T, s *Store, lo, hi uint64, want func(uint64) bool) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		switch {
		case want(i) && err != nil:
			t.Fatalf("GetLog(%d): %v, want present", i, err)
		case want(i) && !logsEqual(&got, testLog(i)):
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, testLog(i))
		case !want(i) && err != raft.ErrLogNotFound: // identity, as raft compares
			t.Fatalf("GetLog(%d): err = %v, want raft.ErrLogNotFound", i, err)
		}
	}
}

func between(lo, hi uint64) func(uint64) bool {
	return func(i uint64) bool { return i >= lo && i <= hi }
}

func TestEmptyStore(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	requireBounds(t, s, 0, 0)
	var l raft.Log
	for _, idx := range []uint64{0, 1, math.MaxUint64} {
		if err := s.GetLog(idx, &l); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) on empty store: %v", idx, err)
		}
	}
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatalf("DeleteRange on empty store: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	requireBounds(t, s, 0, 0)
}

func TestStoreAndGetSingle(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	in := testLog(7)
	if err := s.StoreLog(in); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 7, 7)
	var got raft.Log
	if err := s.GetLog(7, &got); err != nil {
		t.Fatal(err)
	}
	if !logsEqual(&got, in) {
		t.Fatalf("got %+v, want %+v", got, in)
	}
	// The returned slices must not alias anything the store reuses.
	got.Data[0] ^= 0xff
	var again raft.Log
	if err := s.GetLog(7, &again); err != nil || !logsEqual(&again, in) {
		t.Fatalf("second read: %+v, %v", again, err)
	}
	// Overwrite in place (raft rewrites an index after truncation).
	repl := testLog(7)
	repl.Term = 99
	repl.Data = []byte("replaced")
	if err := s.StoreLog(repl); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(7, &got); err != nil || !logsEqual(&got, repl) {
		t.Fatalf("after overwrite: %+v, %v", got, err)
	}
	requireBounds(t, s, 7, 7)
}

func TestStoreLogsBatch(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	if err := s.StoreLogs(testLogs(1, 100)); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 100)
	requirePresent(t, s, 1, 101, between(1, 100))
	if err := s.StoreLogs(testLogs(101, 150)); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 150)
}

func TestStoreLogsRejectsInvalid(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	if err := s.StoreLogs([]*raft.Log{testLog(1), nil}); err == nil {
		t.Fatal("nil entry accepted")
	}
	if err := s.StoreLog(&raft.Log{Index: 0}); err == nil {
		t.Fatal("index 0 accepted")
	}
	requireBounds(t, s, 0, 0)
}

func TestEmptyPayloadAndZeroTime(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	in := &raft.Log{Index: 1, Term: 1, Type: raft.LogNoop}
	if err := s.StoreLog(in); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(1, &got); err != nil {
		t.Fatal(err)
	}
	if got.Data != nil || got.Extensions != nil || !got.AppendedAt.IsZero() || got.Type != raft.LogNoop {
		t.Fatalf("got %+v", got)
	}
}

func TestDeleteRangePrefixCompaction(t *testing.T) {
	for _, n := range []uint64{10, 1000} { // point-delete and range-tombstone paths
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := openTestStore(t, t.TempDir())
			last := n + 20
			if err := s.StoreLogs(testLogs(1, last)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(1, n); err != nil {
				t.Fatal(err)
			}
			requireBounds(t, s, n+1, last)
			requirePresent(t, s, 1, last+1, between(n+1, last))
			// Raft compacts from FirstIndex, which may already be past
			// min; deleting nothing new must be harmless.
			if err := s.DeleteRange(1, n); err != nil {
				t.Fatal(err)
			}
			requireBounds(t, s, n+1, last)
		})
	}
}

func TestDeleteRangeSuffixTruncation(t *testing.T) {
	for _, n := range []uint64{5, 500} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := openTestStore(t, t.TempDir())
			last := 100 + n
			if err := s.StoreLogs(testLogs(1, last)); err != nil {
				t.Fatal(err)
			}
			// Conflict truncation: raft deletes [conflict, lastIndex].
			if err := s.DeleteRange(101, last); err != nil {
				t.Fatal(err)
			}
			requireBounds(t, s, 1, 100)
			requirePresent(t, s, 95, last+1, between(1, 100))
			// The new leader's entries then take those indexes.
			if err := s.StoreLogs(testLogs(101, 103)); err != nil {
				t.Fatal(err)
			}
			requireBounds(t, s, 1, 103)
		})
	}
}

func TestDeleteRangeInclusiveEdges(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	if err := s.StoreLogs(testLogs(1, 20)); err != nil {
		t.Fatal(err)
	}
	// Middle range: both ends inclusive, bounds untouched.
	if err := s.DeleteRange(5, 7); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 20)
	requirePresent(t, s, 1, 20, func(i uint64) bool { return i < 5 || i > 7 })
	// Single element.
	if err := s.DeleteRange(10, 10); err != nil {
		t.Fatal(err)
	}
	requirePresent(t, s, 9, 11, func(i uint64) bool { return i != 10 })
	// min > max is a no-op.
	if err := s.DeleteRange(15, 14); err != nil {
		t.Fatal(err)
	}
	requirePresent(t, s, 14, 15, func(uint64) bool { return true })
	// Prefix whose end lands in a hole: first must be the next real entry.
	if err := s.DeleteRange(0, 5); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 8, 20)
	// Suffix whose start lands in a hole.
	if err := s.DeleteRange(10, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 8, 9)
	// Everything, with max == MaxUint64.
	if err := s.DeleteRange(0, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 0, 0)
	requirePresent(t, s, 1, 21, func(uint64) bool { return false })
}

func TestMaxIndex(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	top := testLog(math.MaxUint64)
	if err := s.StoreLogs([]*raft.Log{testLog(1), top}); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, math.MaxUint64)
	var got raft.Log
	if err := s.GetLog(math.MaxUint64, &got); err != nil || !logsEqual(&got, top) {
		t.Fatalf("GetLog(max): %+v %v", got, err)
	}
	// Range-tombstone path with end = MaxUint64.
	if err := s.DeleteRange(math.MaxUint64-1000, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 1)
	if err := s.StoreLog(top); err != nil {
		t.Fatal(err)
	}
	// Point-delete path with hi == MaxUint64 must terminate.
	if err := s.DeleteRange(math.MaxUint64-3, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 1)
}

func TestGaps(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	// A follower that installed a snapshot keeps old entries and appends
	// after a gap; a non-monotonic store must cope.
	if err := s.StoreLogs(testLogs(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testLogs(50, 52)); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 1, 52)
	present := func(i uint64) bool { return i <= 5 || (i >= 50 && i <= 52) }
	requirePresent(t, s, 1, 53, present)
	// Compaction up to the snapshot index: first jumps over the gap.
	if err := s.DeleteRange(1, 49); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 50, 52)
	// Storing below first moves first down.
	if err := s.StoreLog(testLog(3)); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 3, 52)
	// Truncating a suffix that starts in a gap.
	if err := s.DeleteRange(10, 52); err != nil {
		t.Fatal(err)
	}
	requireBounds(t, s, 3, 3)
}

func TestStable(t *testing.T) {
	s := openTestStore(t, t.TempDir())

	// Missing keys: exactly what raft string-compares, unwrapped.
	v, err := s.Get([]byte("CurrentTerm"))
	if err == nil || err.Error() != "not found" || !errors.Is(err, ErrKeyNotFound) || v != nil {
		t.Fatalf("Get missing = %q, %v", v, err)
	}
	u, err := s.GetUint64([]byte("CurrentTerm"))
	if err == nil || err.Error() != "not found" || u != 0 {
		t.Fatalf("GetUint64 missing = %d, %v", u, err)
	}

	if err := s.Set([]byte("LastVoteCand"), []byte("node-1")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Fatalf("Get after overwrite = %q, %v", v, err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("empty")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get empty = %#v, %v", v, err)
	}

	for _, want := range []uint64{0, 1, 42, math.MaxUint64} {
		if err := s.SetUint64([]byte("CurrentTerm"), want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != want {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, want)
		}
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a 6-byte value succeeded")
	}

	// Stable keys live in their own key space: they must not show up as logs.
	requireBounds(t, s, 0, 0)
	if err := s.StoreLog(testLog(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(0, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != math.MaxUint64 {
		t.Fatalf("stable key lost by log DeleteRange: %d, %v", got, err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.StoreLogs(testLogs(1, 300)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(291, 300); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	var l raft.Log
	if err := s.GetLog(150, &l); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetLog after Close: %v", err)
	}
	if _, err := s.LastIndex(); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastIndex after Close: %v", err)
	}

	s2 := openTestStore(t, dir)
	requireBounds(t, s2, 101, 290)
	requirePresent(t, s2, 1, 301, between(101, 290))
	if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := s2.Get([]byte("LastVoteCand")); err != nil || string(v) != "n1" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	openTestStore(t, dir)
	// Two raft nodes on one directory would corrupt each other; pebble's
	// lock file must make the second open fail rather than succeed.
	if s, err := Open(dir, WithLogger(slog.New(slog.DiscardHandler))); err == nil {
		_ = s.Close()
		t.Fatal("second Open of the same dir succeeded")
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestCorruptValue(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	if err := s.StoreLogs(testLogs(1, 3)); err != nil {
		t.Fatal(err)
	}
	valid := appendLog(nil, testLog(2))
	cases := map[string][]byte{
		"empty":         {},
		"bad version":   append([]byte{99}, valid[1:]...),
		"truncated":     valid[:len(valid)-3],
		"trailing":      append(append([]byte{}, valid...), 0),
		"huge length":   {logFormatV1, 0, 2, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"wrong index":   appendLog(nil, testLog(5)),
		"varint overfl": {logFormatV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for name, val := range cases {
		t.Run(name, func(t *testing.T) {
			if err := s.db.Set(logKey(2), val, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			before := raft.Log{Index: 12345}
			got := before
			err := s.GetLog(2, &got)
			if err == nil {
				t.Fatalf("GetLog succeeded on corrupt value: %+v", got)
			}
			if err == raft.ErrLogNotFound || !errors.Is(err, errCorruptLog) {
				t.Fatalf("err = %v, want a corruption error", err)
			}
			if !logsEqual(&got, &before) {
				t.Fatalf("output modified on error: %+v", got)
			}
		})
	}
}

// TestConcurrentAppendAndCompact mirrors raft's threading: appends on one
// goroutine, compaction and reads on others. Bounds must never go backwards
// past stored data, and -race must stay quiet.
func TestConcurrentAppendAndCompact(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	const total = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errc := make(chan error, 3)

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := uint64(1); i <= total; i += 10 {
			if err := s.StoreLogs(testLogs(i, i+9)); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			last, err := s.LastIndex()
			if err != nil {
				errc <- err
				return
			}
			if last > 50 {
				first, err := s.FirstIndex()
				if err != nil {
					errc <- err
					return
				}
				if err := s.DeleteRange(first, last-50); err != nil {
					errc <- err
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			last, err := s.LastIndex()
			if err != nil {
				errc <- err
				return
			}
			if last == 0 {
				continue
			}
			var l raft.Log
			// An entry within the bounds just read must be readable unless
			// compaction has since moved first past it.
			if err := s.GetLog(last, &l); err != nil {
				first, ferr := s.FirstIndex()
				if err == raft.ErrLogNotFound && ferr == nil && first > last {
					continue
				}
				errc <- fmt.Errorf("GetLog(last=%d): %w", last, err)
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last != total || first == 0 || first > last {
		t.Fatalf("bounds [%d, %d]", first, last)
	}
	requirePresent(t, s, first, last, func(uint64) bool { return true })
	// The cached bounds must match a fresh scan of the disk.
	s.bounds.Store(nil)
	requireBounds(t, s, first, last)
}
