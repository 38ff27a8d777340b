package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLimitsFromFileOrFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "irxd.yaml")
	yaml := "memory_limit: 768MiB\nfederation:\n  streams_per_peer: 3\n  stream_bytes: 1MiB\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	o, err := parseOptions([]string{"--config", file}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.memoryLimit != 768<<20 || o.federation.StreamsPerPeer != 3 || o.federation.StreamBytes != 1<<20 {
		t.Fatalf("from the file: memory %d, streams %d, stream bytes %d", o.memoryLimit, o.federation.StreamsPerPeer, o.federation.StreamBytes)
	}
	o, err = parseOptions([]string{"--config", file, "--memory-limit", "2GiB", "--streams-per-peer", "5", "--stream-bytes", "300000"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.memoryLimit != 2<<30 || o.federation.StreamsPerPeer != 5 || o.federation.StreamBytes != 300000 {
		t.Fatalf("flags over the file: memory %d, streams %d, stream bytes %d", o.memoryLimit, o.federation.StreamsPerPeer, o.federation.StreamBytes)
	}
	for _, args := range [][]string{{"--memory-limit", "lots"}, {"--stream-bytes", "-1"}, {"--streams-per-peer", "-2"}} {
		if _, err := parseOptions(args, io.Discard, noEnv); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: %v, want an error naming %s", args, err, args[0])
		}
	}
}

func TestMemoryLimitDefault(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, errors.New("no such file") }
	noEnv := func(string) string { return "" }
	if got, from := memoryLimit(512<<20, 0, noEnv, noFile); got != 512<<20 || from != "memory_limit" {
		t.Errorf("configured: %d from %s", got, from)
	}
	cgroup := func(path string) ([]byte, error) {
		if path == "/sys/fs/cgroup/memory.max" {
			return []byte("1073741824\n"), nil
		}
		return nil, errors.New("no such file")
	}
	if got, from := memoryLimit(0, 0, noEnv, cgroup); got != 768<<20 || !strings.HasPrefix(from, "cgroup") {
		t.Errorf("a 1 GiB cgroup: %d from %s, want 3/4 of it", got, from)
	}
	unlimited := func(string) ([]byte, error) { return []byte("max\n"), nil }
	if got, from := memoryLimit(0, 0, noEnv, unlimited); got != defaultMemoryLimit || from != "default" {
		t.Errorf("no limit anywhere: %d from %s", got, from)
	}
	// A build whose databases hold 380 MiB outside the Go heap (cgo):
	// the default and a cgroup's share leave room for it, an operator's
	// limit does not change.
	const offHeap = 380 << 20
	if got, from := memoryLimit(0, offHeap, noEnv, unlimited); got != defaultMemoryLimit-offHeap || !strings.HasPrefix(from, "default, less 380 MiB") {
		t.Errorf("default with off-heap databases: %d from %s", got, from)
	}
	if got, from := memoryLimit(0, offHeap, noEnv, cgroup); got != 768<<20-offHeap || !strings.HasPrefix(from, "cgroup") {
		t.Errorf("a 1 GiB cgroup with off-heap databases: %d from %s", got, from)
	}
	if got, from := memoryLimit(512<<20, offHeap, noEnv, noFile); got != 512<<20 || from != "memory_limit" {
		t.Errorf("configured with off-heap databases: %d from %s", got, from)
	}
	small := func(path string) ([]byte, error) { return []byte("268435456\n"), nil } // 256 MiB
	if got, _ := memoryLimit(0, offHeap, noEnv, small); got != minDerivedLimit {
		t.Errorf("a 256 MiB cgroup with off-heap databases: %d, want the floor %d", got, minDerivedLimit)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4MiB": 4 << 20, "1 GiB": 1 << 30, "2KB": 2000, "10B": 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "9999999999GiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}
