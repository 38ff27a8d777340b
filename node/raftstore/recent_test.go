package raftstore

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	"pgregory.net/rapid"
)

// Recent is invisible: through it, raft reads what the store holds,
// whatever it writes and deletes in the order raft does (appends after
// the last index, a follower's conflicting tail deleted and written again,
// the head deleted after a snapshot), and it keeps no more than its bytes.
func TestRecentReadsWhatTheStoreHolds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		store, err := Open("raft", WithLogger(slog.New(slog.DiscardHandler)), WithFS(vfs.NewMem()))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		maxBytes := rapid.IntRange(0, 2000).Draw(t, "max bytes")
		r := NewRecent(store, maxBytes)
		term := uint64(1)
		appendFrom := func(next uint64) {
			var logs []*raft.Log
			for i := range rapid.IntRange(1, 8).Draw(t, "entries") {
				logs = append(logs, &raft.Log{Index: next + uint64(i), Term: term, Type: raft.LogCommand,
					Data: bytes.Repeat([]byte{byte(next)}, rapid.IntRange(0, 300).Draw(t, "size"))})
			}
			if err := r.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
		}
		bounds := func() (uint64, uint64) {
			first, _ := store.FirstIndex()
			last, _ := store.LastIndex()
			return first, last
		}
		appendFrom(1)
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			first, last := bounds()
			switch rapid.IntRange(0, 3).Draw(t, "step") {
			case 0:
				appendFrom(last + 1)
			case 1: // a follower's conflicting tail
				lo := rapid.Uint64Range(first, last).Draw(t, "conflict")
				if err := r.DeleteRange(lo, last); err != nil {
					t.Fatal(err)
				}
				if rapid.Bool().Draw(t, "rewrite") || lo == first {
					term++
					appendFrom(lo)
				}
			case 2: // the head, after a snapshot
				if last > first {
					if err := r.DeleteRange(first, rapid.Uint64Range(first, last-1).Draw(t, "compact")); err != nil {
						t.Fatal(err)
					}
				}
			case 3:
				lo := first
				if lo > 2 {
					lo -= 2
				}
				for idx := lo; idx <= last+2; idx++ {
					var got, want raft.Log
					gotErr, wantErr := r.GetLog(idx, &got), store.GetLog(idx, &want)
					if !errors.Is(gotErr, wantErr) || got.Index != want.Index || got.Term != want.Term || !bytes.Equal(got.Data, want.Data) {
						t.Fatalf("GetLog(%d) through Recent: %+v, %v; store: %+v, %v", idx, got, gotErr, want, wantErr)
					}
				}
			}
			kept := 0
			for i, l := range r.entries {
				kept += entryBytes(l)
				if i > 0 && l.Index != r.entries[i-1].Index+1 {
					t.Fatalf("kept entries %d then %d", r.entries[i-1].Index, l.Index)
				}
			}
			if kept != r.bytes || kept > maxBytes {
				t.Fatalf("keeps %d bytes, counts %d, may keep %d", kept, r.bytes, maxBytes)
			}
		}
	})
}
