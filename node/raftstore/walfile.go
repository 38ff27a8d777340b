package raftstore

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// sizedWALFS gives pebble's write-ahead logs their length before they are
// written. Pebble reserves a log's space ahead of its writes but keeps the
// file's size (FALLOC_FL_KEEP_SIZE), so every synced append still grows the
// file and fdatasync must also commit the new size to the file system's
// journal, which on ext4 costs a small append's sync more than its data
// (docs/performance.md). With the size reserved as well, a sync writes
// only the data. Pebble reads a log's
// zeroed tail as its end, as it does for logs it recycles.
type sizedWALFS struct {
	vfs.FS
}

// Unwrap implements vfs.FS.
func (fs sizedWALFS) Unwrap() vfs.FS { return fs.FS }

// Create implements vfs.FS.
func (fs sizedWALFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return sizeIfWAL(name, f), err
}

// ReuseForWrite implements vfs.FS.
func (fs sizedWALFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return sizeIfWAL(newname, f), err
}

func sizeIfWAL(name string, f vfs.File) vfs.File {
	if f == nil || !strings.HasSuffix(name, ".log") {
		return f
	}
	return sizedFile{File: f}
}

// sizedFile reserves space and size together.
type sizedFile struct {
	vfs.File
}

// Preallocate implements vfs.File.
func (f sizedFile) Preallocate(offset, length int64) error {
	return allocate(f.File, offset, length)
}
