//go:build !linux

package raftstore

import "github.com/cockroachdb/pebble/v2/vfs"

// allocate leaves the reservation to pebble where fallocate is not there.
func allocate(f vfs.File, offset, length int64) error {
	return f.Preallocate(offset, length)
}
