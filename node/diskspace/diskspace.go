// Package diskspace watches the free space of the file systems a node
// writes to, so that the node refuses writes while a reserve is left
// instead of running its stores into a full disk: pebble stalls every
// write, forever, once a flush cannot be written, and stops the process
// when its write-ahead log cannot be.
package diskspace

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/irxfed/irx/errdefs"
)

// Disk is one directory a node writes to, with the role it plays.
type Disk struct {
	Name string // "raft log", "state machine", ...
	Path string
}

// Status is what the last look at a disk found.
type Status struct {
	Disk
	Free, Total uint64
	// Err is set when the file system could not be asked.
	Err error
}

// StatFunc reports the space available to the process on the file system
// holding path, and its size.
type StatFunc func(path string) (free, total uint64, err error)

// Guard keeps the last free-space figures of its disks.
//
// Two thresholds: below the reserve the node takes no new writes from
// clients and hands its leadership away (Low); below half of it nothing is
// appended to the log at all (Exhausted), which leaves the rest for what
// cannot be refused (Raft's term and vote, pebble's manifests and
// flushes of what is already committed).
type Guard struct {
	disks   []Disk
	reserve uint64
	stat    StatFunc

	mu   sync.Mutex
	last []Status
	// low and exhausted are the current refusals, nil when there is none;
	// read on every write, so without a lock.
	low, exhausted atomic.Pointer[errdefs.StorageError]
}

// New returns a guard of disks that keeps reserve bytes free. A zero
// reserve never refuses. stat nil uses the operating system's statfs.
func New(reserve uint64, stat StatFunc, disks ...Disk) *Guard {
	if stat == nil {
		stat = statFS
	}
	return &Guard{disks: disks, reserve: reserve, stat: stat}
}

// Reserve is the free space the guard keeps, in bytes.
func (g *Guard) Reserve() uint64 { return g.reserve }

// Poll looks at every disk once and updates the refusals. It reports
// whether either refusal changed.
func (g *Guard) Poll() bool {
	st := make([]Status, len(g.disks))
	var low, exhausted *errdefs.StorageError
	for i, d := range g.disks {
		st[i].Disk = d
		st[i].Free, st[i].Total, st[i].Err = g.stat(d.Path)
		if st[i].Err != nil || g.reserve == 0 {
			// A file system that cannot say how full it is is not
			// refused for that: the stores' own errors remain.
			continue
		}
		if low == nil && st[i].Free < g.reserve {
			low = g.refusal(st[i], g.reserve)
		}
		if exhausted == nil && st[i].Free < g.reserve/2 {
			exhausted = g.refusal(st[i], g.reserve/2)
		}
	}
	g.mu.Lock()
	g.last = st
	g.mu.Unlock()
	changed := (g.low.Swap(low) == nil) != (low == nil)
	changed = (g.exhausted.Swap(exhausted) == nil) != (exhausted == nil) || changed
	return changed
}

func (g *Guard) refusal(s Status, limit uint64) *errdefs.StorageError {
	return &errdefs.StorageError{
		Disk: s.Name + " disk", Path: s.Path, Class: errdefs.ErrResourceExhausted,
		Reason: fmt.Sprintf("%s free of %s, below the %s this node keeps free; writes are refused until space is freed",
			Bytes(s.Free), Bytes(s.Total), Bytes(limit)),
	}
}

// Run polls every interval until ctx ends, calling changed (if not nil)
// after a poll that changed a refusal.
func (g *Guard) Run(ctx context.Context, interval time.Duration, changed func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if g.Poll() && changed != nil {
			changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Low returns the refusal of new client writes, or nil while every disk
// has its reserve free.
func (g *Guard) Low() error {
	if e := g.low.Load(); e != nil {
		return e
	}
	return nil
}

// Exhausted returns the refusal of every log append, or nil while every
// disk has at least half its reserve free.
func (g *Guard) Exhausted() error {
	if e := g.exhausted.Load(); e != nil {
		return e
	}
	return nil
}

// Status returns what the last poll found, one entry per disk.
func (g *Guard) Status() []Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Status(nil), g.last...)
}

// Bytes formats n for people: "12.0 MiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
