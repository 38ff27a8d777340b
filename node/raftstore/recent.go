package raftstore

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Recent keeps the newest entries written through it in memory, up to a
// number of bytes, in front of a log store. Raft reads each entry back
// soon after writing it: the leader once or twice per follower to
// replicate it, a follower once to apply it. From pebble each read is a
// memtable search and a decode, which showed in the leader's profile under
// one sequential client; from here it is a slice index.
//
// Unlike hashicorp/raft's LogCache, which holds a fixed number of entries
// of any size, Recent is bounded by bytes: a group commit entry may hold
// megabytes.
type Recent struct {
	raft.LogStore
	maxBytes int

	mu      sync.RWMutex
	entries []*raft.Log // consecutive indexes, from entries[0].Index
	bytes   int
}

// NewRecent keeps up to maxBytes of the newest entries written to store.
func NewRecent(store raft.LogStore, maxBytes int) *Recent {
	return &Recent{LogStore: store, maxBytes: maxBytes}
}

// entryBytes is what an entry costs to keep: its payloads and the struct.
func entryBytes(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + 64 }

// GetLog implements raft.LogStore.
func (r *Recent) GetLog(index uint64, log *raft.Log) error {
	r.mu.RLock()
	if n := len(r.entries); n > 0 && index >= r.entries[0].Index && index < r.entries[0].Index+uint64(n) {
		*log = *r.entries[index-r.entries[0].Index]
		r.mu.RUnlock()
		return nil
	}
	r.mu.RUnlock()
	return r.LogStore.GetLog(index, log)
}

// StoreLog implements raft.LogStore.
func (r *Recent) StoreLog(log *raft.Log) error { return r.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: what the store took is kept.
func (r *Recent) StoreLogs(logs []*raft.Log) error {
	if err := r.LogStore.StoreLogs(logs); err != nil {
		// What the store holds is not known; it answers for itself.
		r.clear()
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range logs {
		if n := len(r.entries); n > 0 && l.Index != r.entries[n-1].Index+1 {
			// Raft overwrites a conflicting tail after deleting it; any other
			// gap starts afresh.
			r.entries, r.bytes = nil, 0
		}
		r.entries = append(r.entries, l)
		r.bytes += entryBytes(l)
	}
	k, over := 0, r.bytes-r.maxBytes
	for ; k < len(r.entries) && over > 0; k++ {
		over -= entryBytes(r.entries[k])
	}
	r.drop(k)
	return nil
}

// DeleteRange implements raft.LogStore (hi inclusive). Raft deletes the
// log's head after a snapshot, from its snapshot goroutine while entries
// are written, and a follower's conflicting tail before it writes the
// leader's; the cache forgets the range first, so it never holds an entry
// the store no longer does.
func (r *Recent) DeleteRange(lo, hi uint64) error {
	r.mu.Lock()
	if n := len(r.entries); n > 0 {
		first, last := r.entries[0].Index, r.entries[n-1].Index
		switch {
		case hi < first || lo > last:
		case lo <= first && hi < last:
			r.drop(int(hi - first + 1))
		case lo > first && hi >= last:
			for _, l := range r.entries[lo-first:] {
				r.bytes -= entryBytes(l)
			}
			clear(r.entries[lo-first:])
			r.entries = r.entries[:lo-first]
		default:
			r.entries, r.bytes = nil, 0
		}
	}
	r.mu.Unlock()
	return r.LogStore.DeleteRange(lo, hi)
}

// drop forgets the first k entries.
func (r *Recent) drop(k int) {
	for i := range k {
		r.bytes -= entryBytes(r.entries[i])
		r.entries[i] = nil
	}
	r.entries = r.entries[k:]
}

func (r *Recent) clear() {
	r.mu.Lock()
	r.entries, r.bytes = nil, 0
	r.mu.Unlock()
}
