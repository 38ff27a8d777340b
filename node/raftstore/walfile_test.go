package raftstore

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// A write-ahead log has its length before it is written (so a synced
// append does not grow the file), and a store whose newest log ends in
// that zeroed space opens after a crash with every synced append.
func TestWALsHaveTheirLengthAndReplayAfterACrash(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("logs are given their length with fallocate, on Linux")
	}
	dir := t.TempDir()
	s := openTestStore(t, dir)
	for i := uint64(1); i <= 50; i++ {
		if err := s.StoreLog(testLog(i)); err != nil {
			t.Fatal(err)
		}
	}

	// Copying the files of an open store after synced appends is what a
	// machine that lost power would find on its disk.
	img := diskImage(t, dir)
	var longest int
	for name, b := range img {
		if strings.HasSuffix(name, ".log") {
			longest = max(longest, len(b))
		}
	}
	// The entries fill a small part of a WAL; the rest is reserved length.
	if longest < 1<<20 {
		t.Fatalf("longest WAL is %d bytes: its length is not reserved", longest)
	}

	s2 := openTestStore(t, writeImage(t, img))
	requireBounds(t, s2, 1, 50)
	requirePresent(t, s2, 1, 51, between(1, 50))
	if err := s2.StoreLogs(testLogs(51, 60)); err != nil {
		t.Fatal(err)
	}
	requirePresent(t, s2, 1, 61, between(1, 60))
}

// Zeros where synced entries were, followed by blocks of entries synced
// after them, are a damaged log, not its end: the store refuses to open
// rather than forget appends it acknowledged. (Zeros after the last synced
// entry are the end, as above. Pebble looks for later synced entries from
// the next 32 KiB block of the log on, so a hole in the log's last block
// reads as its end, with or without the reserved length.)
func TestAHoleInSyncedEntriesIsNotReadAsTheEnd(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.StoreLogs(testLogs(1, 50)); err != nil {
		t.Fatal(err)
	}
	before := diskImage(t, dir)
	if err := s.StoreLogs(testLogs(51, 55)); err != nil {
		t.Fatal(err)
	}
	middle := diskImage(t, dir)
	for first := uint64(56); first < 2056; first += 100 {
		if err := s.StoreLogs(testLogs(first, first+99)); err != nil {
			t.Fatal(err)
		}
	}
	after := diskImage(t, dir)

	// The bytes entries 51-55 took in the WAL, zeroed in the later image.
	holed := false
	for name, b := range middle {
		if !strings.HasSuffix(name, ".log") || bytes.Equal(b, before[name]) {
			continue
		}
		lo, hi := changed(before[name], b)
		if !bytes.Equal(after[name][:hi], b[:hi]) || len(bytes.Trim(after[name][hi+32<<10:], "\x00")) == 0 {
			t.Fatalf("%s: entries after 55 were not written beyond the block of 51-55", name)
		}
		clear(after[name][lo:hi])
		holed = true
	}
	if !holed {
		t.Fatal("no WAL changed with entries 51-55: the test shows nothing")
	}

	crashed := writeImage(t, after)
	if s2, err := Open(crashed, WithLogger(slog.New(slog.DiscardHandler))); err == nil {
		last, _ := s2.LastIndex()
		s2.Close()
		t.Fatalf("a log missing synced entries 51-55 opened, last index %d", last)
	} else if !pebble.IsCorruptionError(err) {
		t.Fatalf("open: %v, want pebble's corruption", err)
	}
}

// changed is the range [lo, hi) where b differs from a, a file that
// may have grown since a (read as zeros past its end).
func changed(a, b []byte) (lo, hi int) {
	at := func(i int) byte {
		if i < len(a) {
			return a[i]
		}
		return 0
	}
	for lo < len(b) && at(lo) == b[lo] {
		lo++
	}
	hi = len(b)
	for hi > lo && at(hi-1) == b[hi-1] {
		hi--
	}
	return lo, hi
}

// diskImage reads every file of dir.
func diskImage(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	img := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		img[e.Name()] = b
	}
	return img
}

// writeImage writes img into a new directory and returns it.
func writeImage(t *testing.T, img map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range img {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
