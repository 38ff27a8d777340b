package raftstore

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func benchLog(idx uint64, data []byte) *raft.Log {
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
}

// BenchmarkStoreLog measures one synced append, i.e. raft's per-entry
// latency floor on this disk.
func BenchmarkStoreLog(b *testing.B) {
	s := openTestStore(b, b.TempDir())
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

// BenchmarkStoreLogs64 measures a 64-entry batch of ~1 KiB entries, the shape
// raft produces under load (MaxAppendEntries defaults to 64).
func BenchmarkStoreLogs64(b *testing.B) {
	s := openTestStore(b, b.TempDir())
	data := make([]byte, 1024)
	logs := make([]*raft.Log, 64)
	b.SetBytes(int64(len(logs) * len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	next := uint64(1)
	for range b.N {
		for j := range logs {
			logs[j] = benchLog(next, data)
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetLog measures a read of a recently written entry.
func BenchmarkGetLog(b *testing.B) {
	s := openTestStore(b, b.TempDir())
	data := make([]byte, 1024)
	const n = 4096
	logs := make([]*raft.Log, 0, 64)
	for i := uint64(1); i <= n; i++ {
		logs = append(logs, benchLog(i, data))
		if len(logs) == cap(logs) {
			if err := s.StoreLogs(logs); err != nil {
				b.Fatal(err)
			}
			logs = logs[:0]
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var l raft.Log
	for i := range b.N {
		if err := s.GetLog(uint64(i%n)+1, &l); err != nil {
			b.Fatal(err)
		}
	}
}
