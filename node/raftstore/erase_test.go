package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/test/atrest"
)

// TestEraseRemovesDeletedEntriesFromEveryFile stores entries that carry a
// canary, in sstables and in WALs that pebble reuses, deletes them as
// raft's log compaction does, and erases: no file of the store holds the
// canary any more, while the entries after the erased range are intact.
func TestEraseRemovesDeletedEntriesFromEveryFile(t *testing.T) {
	for _, width := range []uint64{3, 2 * pointDeleteMax} { // point deletes and a range tombstone
		t.Run(fmt.Sprintf("%d entries", width), func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			canary := func(i uint64) string { return fmt.Sprintf("ERASE-ME-%d-5b1c", i) }
			var next uint64 = 1
			store := func(n uint64, data func(uint64) []byte) {
				t.Helper()
				var logs []*raft.Log
				for range n {
					l := testLog(next)
					l.Data = data(next)
					logs = append(logs, l)
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
			}
			// Rounds after the first reuse WAL files an erasure emptied.
			for round := range 3 {
				var gone []string
				// The erased entries are in three WALs: the first is flushed
				// and kept for reuse, the second flushed and the first reused
				// for the third (its tail still holds the first's entries),
				// and the second waits for reuse when Erase flushes.
				erased := func(i uint64) []byte { gone = append(gone, canary(i)); return []byte(canary(i)) }
				first := next
				for part := range 3 {
					store(width/3+1, erased)
					if part < 2 {
						if err := s.db.Flush(); err != nil {
							t.Fatal(err)
						}
					}
				}
				upTo := next - 1
				kept := fmt.Sprintf("KEEP-ME-%d-77aa", round)
				store(5, func(uint64) []byte { return []byte(kept) })

				if found, err := atrest.Scan(dir, gone...); err != nil || len(found) == 0 {
					t.Fatalf("round %d: before erasure the canaries are not found (%v): the test cannot fail", round, err)
				}
				// Raft's log compaction deletes through the entry the
				// snapshot covers.
				if err := s.DeleteRange(first, upTo); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := s.Erase(ctx, upTo); err != nil {
					t.Fatal(err)
				}
				found, err := atrest.Scan(dir, append(gone, kept)...)
				if err != nil {
					t.Fatal(err)
				}
				keptFound := false
				for _, f := range found {
					if f.Needle == kept {
						keptFound = true
						continue
					}
					t.Errorf("round %d: erased entry still readable: %v", round, f)
				}
				if !keptFound {
					t.Errorf("round %d: the entries after the erased range were not found in any file", round)
				}
				var l raft.Log
				if err := s.GetLog(upTo+1, &l); err != nil || string(l.Data) != kept {
					t.Fatalf("round %d: entry after the erased range: %q, %v", round, l.Data, err)
				}
				// The kept entries go with the next round's range.
				if err := s.DeleteRange(upTo+1, next-1); err != nil {
					t.Fatal(err)
				}
				store(1, func(uint64) []byte { return []byte("tail") }) // the log never empties, as raft's does not
			}
		})
	}
}
