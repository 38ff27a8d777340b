package raftstore

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
	crashed := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var longest int64
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".log") {
			longest = max(longest, int64(len(b)))
		}
		if err := os.WriteFile(filepath.Join(crashed, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 50 small entries are a few KiB; pebble reserves 110% of a memtable.
	if longest < 1<<20 {
		t.Fatalf("longest WAL is %d bytes: its length is not reserved", longest)
	}

	s2 := openTestStore(t, crashed)
	requireBounds(t, s2, 1, 50)
	requirePresent(t, s2, 1, 51, between(1, 50))
	if err := s2.StoreLogs(testLogs(51, 60)); err != nil {
		t.Fatal(err)
	}
	requirePresent(t, s2, 1, 61, between(1, 60))
}
