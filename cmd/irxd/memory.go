package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultMemoryLimit is the node's memory limit when neither the
// configuration, GOMEMLIMIT nor a cgroup sets one: room for the state
// machine's block cache (which is Go heap in a static build) and the
// working set of a busy node, with margin. It keeps the whole process
// within 1 GiB of resident memory: a node whose live heap multiplied by
// GOGC passes the limit (a store with millions of distinct indicators in
// the correlation memory) runs at the limit, and the resident set is the
// limit plus what the runtime does not count: the binary's own pages and,
// in a build with cgo, the databases' caches and memtables, which
// memoryLimit takes out of it (docs/performance.md).
const defaultMemoryLimit = 1<<30 - 64<<20

// cgroupShare is the part of a cgroup's memory limit the Go runtime is
// given; the rest is for what it does not count (thread stacks outside
// the heap, the kernel's page tables and socket buffers charged to the
// cgroup).
const cgroupShare = 0.75

// minDerivedLimit is the least memory limit derived from a cgroup or the
// default after the databases' off-heap share is taken out.
const minDerivedLimit = 128 << 20

// memoryLimit decides the node's memory limit for Go's heap: configured
// (bytes, 0 if not), else GOMEMLIMIT as the runtime read it, else a share
// of the cgroup's limit, else the default; and says where it came from.
// offHeap (node.OffHeapBytes) is what the databases hold outside the Go
// heap in this build: a limit derived from the cgroup or the default
// leaves room for it, so the whole process keeps to that budget. A limit
// the operator set is Go's alone.
func memoryLimit(configured, offHeap int64, getenv func(string) string, readFile func(string) ([]byte, error)) (int64, string) {
	limit, source, derived := budget(configured, getenv, readFile)
	if offHeap > 0 && derived {
		limit = max(limit-offHeap, minDerivedLimit)
		source += fmt.Sprintf(", less %d MiB the databases hold outside the Go heap", offHeap>>20)
	}
	return limit, source
}

// budget is memoryLimit before the off-heap share is taken out; derived
// says the limit is the cgroup's share or the default, not one the
// operator set.
func budget(configured int64, getenv func(string) string, readFile func(string) ([]byte, error)) (limit int64, source string, derived bool) {
	if configured > 0 {
		return configured, "memory_limit", false
	}
	if getenv("GOMEMLIMIT") != "" {
		if current := debug.SetMemoryLimit(-1); current < math.MaxInt64 {
			return current, "GOMEMLIMIT", false
		}
	}
	// The memory limit of the process's cgroup: v2, then v1.
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := readFile(path)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		// "max" (v2), or v1's "unlimited" (a number near MaxInt64).
		if err != nil || v <= 0 || v >= 1<<50 {
			continue
		}
		return int64(float64(v) * cgroupShare), "cgroup " + path, true
	}
	return defaultMemoryLimit, "default", true
}

// parseBytes reads a size: a number of bytes with an optional unit (KiB,
// MiB, GiB, or KB, MB, GB in powers of 1000).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size: a number of bytes, or with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}
