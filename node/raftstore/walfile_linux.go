package raftstore

import (
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// allocate reserves [offset, offset+length) of f and extends its size to
// cover it. Where the file system cannot, pebble's own reservation is used.
func allocate(f vfs.File, offset, length int64) error {
	fd := f.Fd()
	if fd == vfs.InvalidFd {
		return f.Preallocate(offset, length)
	}
	if err := syscall.Fallocate(int(fd), 0, offset, length); err != nil {
		return f.Preallocate(offset, length)
	}
	return nil
}
