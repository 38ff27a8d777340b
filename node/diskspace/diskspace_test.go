package diskspace

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/irxfed/irx/errdefs"
)

type fakeDisks struct {
	mu   sync.Mutex
	free map[string]uint64
}

func (f *fakeDisks) set(path string, free uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free[path] = free
}

func (f *fakeDisks) stat(path string) (uint64, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	free, ok := f.free[path]
	if !ok {
		return 0, 0, errors.New("no such file system")
	}
	return free, 1 << 30, nil
}

func TestGuardRefusesBelowReserve(t *testing.T) {
	disks := &fakeDisks{free: map[string]uint64{"/d/raft": 500 << 20, "/d/state": 500 << 20}}
	g := New(100<<20, disks.stat, Disk{Name: "raft log", Path: "/d/raft"}, Disk{Name: "state machine", Path: "/d/state"})
	if g.Poll() {
		t.Error("first poll with room reports a change")
	}
	if g.Low() != nil || g.Exhausted() != nil {
		t.Fatalf("refuses with room: %v, %v", g.Low(), g.Exhausted())
	}

	disks.set("/d/state", 80<<20)
	if !g.Poll() {
		t.Error("poll below the reserve reports no change")
	}
	err := g.Low()
	var serr *errdefs.StorageError
	if !errors.As(err, &serr) || !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("Low() = %v, want a RESOURCE_EXHAUSTED StorageError", err)
	}
	for _, want := range []string{"state machine disk", "/d/state", "80.0 MiB free", "100.0 MiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Low() = %q, does not say %q", err, want)
		}
	}
	if g.Exhausted() != nil {
		t.Errorf("Exhausted() = %v above half the reserve", g.Exhausted())
	}

	disks.set("/d/state", 40<<20)
	g.Poll()
	if err := g.Exhausted(); !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "/d/state") {
		t.Fatalf("Exhausted() = %v below half the reserve", err)
	}

	disks.set("/d/state", 300<<20)
	if !g.Poll() {
		t.Error("poll after space returned reports no change")
	}
	if g.Low() != nil || g.Exhausted() != nil {
		t.Fatalf("still refuses after space returned: %v, %v", g.Low(), g.Exhausted())
	}
	if st := g.Status(); len(st) != 2 || st[1].Free != 300<<20 {
		t.Errorf("Status() = %+v", st)
	}
}

// A file system that cannot be asked is reported, not refused; nor is
// anything refused without a reserve.
func TestGuardUnknownAndNoReserve(t *testing.T) {
	disks := &fakeDisks{free: map[string]uint64{"/d/raft": 0}}
	g := New(100<<20, disks.stat, Disk{Name: "raft log", Path: "/missing"})
	g.Poll()
	if g.Low() != nil {
		t.Errorf("Low() = %v for an unknown file system", g.Low())
	}
	if st := g.Status(); st[0].Err == nil {
		t.Error("Status() does not report the failed statfs")
	}
	g = New(0, disks.stat, Disk{Name: "raft log", Path: "/d/raft"})
	g.Poll()
	if g.Low() != nil || g.Exhausted() != nil {
		t.Error("refuses without a reserve")
	}
}

func TestStatFSOfThisDirectory(t *testing.T) {
	free, total, err := statFS(t.TempDir())
	if err != nil {
		t.Skipf("statfs: %v", err)
	}
	if total == 0 || free > total {
		t.Errorf("statFS: free %d of %d", free, total)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
