// Package heldsync is a pebble errorfs injector for tests: a disk that, while
// held, does not get round to syncing (every sync waits until Release).
package heldsync

import (
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Disk holds every sync of the files it is wrapped around while held. Wrap a
// file system with errorfs.Wrap(fs, disk). The zero value is a disk that
// syncs at once.
type Disk struct {
	mu   sync.Mutex
	held chan struct{} // nil when not held
}

// Hold makes syncs wait from now on.
func (d *Disk) Hold() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held == nil {
		d.held = make(chan struct{})
	}
}

// Release lets waiting and later syncs through.
func (d *Disk) Release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held != nil {
		close(d.held)
		d.held = nil
	}
}

// MaybeError implements errorfs.Injector: a sync waits while the disk is held.
func (d *Disk) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		d.mu.Lock()
		held := d.held
		d.mu.Unlock()
		if held != nil {
			<-held
		}
	}
	return nil
}

func (d *Disk) String() string { return "held sync" }
