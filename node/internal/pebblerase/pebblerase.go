// Package pebblerase holds what a node's pebble databases need so that
// data they deleted is gone from their files, not only from reads: write-
// ahead logs that are not reused with old records in them, and a wait for
// pebble to remove the sstables a compaction made obsolete.
package pebblerase

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS lets a database keep recycling its write-ahead logs and still erase
// what they held.
//
// Pebble reuses an obsolete WAL file for a new log: syncing a file that
// already has its length is cheaper than syncing one that grows (on ext4,
// without reuse, a synced append of the Raft log took an eighth longer
// and a batch of 64 half as long again). But it renames the file and
// overwrites it from the start, so until the new log has grown past the
// old one's length, the file's tail holds the old log's records.
// TaintWALs marks the logs that exist now: a tainted file is never reused
// (ReuseForWrite creates a fresh one instead, which its contract allows),
// and EmptyTainted empties those pebble keeps for reuse; an empty file is
// safe to reuse.
type FS struct {
	vfs.FS

	// mu orders ReuseForWrite, Remove and EmptyTainted, so a file is
	// not emptied while pebble renames or deletes it.
	mu      sync.Mutex
	tainted map[string]bool // paths
}

// NewFS wraps fs.
func NewFS(fs vfs.FS) *FS { return &FS{FS: fs, tainted: map[string]bool{}} }

// Unwrap implements vfs.FS.
func (fs *FS) Unwrap() vfs.FS { return fs.FS }

// ReuseForWrite implements vfs.FS: a tainted file is removed and a new
// one created.
func (fs *FS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.tainted[oldname] {
		return fs.FS.ReuseForWrite(oldname, newname, category)
	}
	delete(fs.tainted, oldname)
	if err := fs.FS.Remove(oldname); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return fs.FS.Create(newname, category)
}

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.tainted, name)
	return fs.FS.Remove(name)
}

// TaintWALs marks the write-ahead logs now in dir.
func (fs *FS) TaintWALs(dir string) error {
	names, err := fs.FS.List(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, name := range names {
		if strings.HasSuffix(name, ".log") {
			fs.tainted[fs.FS.PathJoin(dir, name)] = true
		}
	}
	return nil
}

// EmptyTainted empties the tainted logs of dir still on disk: pebble keeps
// them for reuse, or has yet to delete them. Call it only once each is
// obsolete: after a flush that began after TaintWALs, which makes every
// log older than the one it starts obsolete.
func (fs *FS) EmptyTainted(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	emptied := false
	for path := range fs.tainted {
		if _, err := fs.FS.Stat(path); errors.Is(err, os.ErrNotExist) {
			delete(fs.tainted, path)
			continue
		}
		// Create replaces the file with an empty one of the same name,
		// which pebble can still rename for reuse or delete.
		f, err := fs.FS.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return err
		}
		delete(fs.tainted, path)
		emptied = true
	}
	if !emptied {
		return nil
	}
	d, err := fs.FS.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Obsolete lists the sstables of dir that a database must remove before
// what it deleted is gone: those on disk that its current version does not
// hold (tables a compaction replaced, or a compaction's output not yet
// installed, which WaitRemoved tells apart).
func Obsolete(fs vfs.FS, db *pebble.DB, dir string) ([]string, error) {
	live, err := liveTables(db)
	if err != nil {
		return nil, err
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, name := range names {
		if num, ok := tableNum(name); ok && !live[num] {
			out = append(out, name)
		}
	}
	return out, nil
}

// WaitRemoved waits until none of names (files of dir) exists any more,
// but for sstables the database has since made live. Pebble deletes
// obsolete files in the background, and not while an open iterator still
// reads them, so this may wait for readers to finish.
func WaitRemoved(ctx context.Context, fs vfs.FS, db *pebble.DB, dir string, names []string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		live, err := liveTables(db)
		if err != nil {
			return err
		}
		remaining := names[:0]
		for _, name := range names {
			if num, ok := tableNum(name); ok && live[num] {
				continue
			}
			if _, err := fs.Stat(fs.PathJoin(dir, name)); err == nil {
				remaining = append(remaining, name)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		names = remaining
		if len(names) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pebble has not removed %d obsolete files (%s): %w", len(names), strings.Join(names, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

func liveTables(db *pebble.DB) (map[uint64]bool, error) {
	levels, err := db.SSTables()
	if err != nil {
		return nil, fmt.Errorf("list live sstables: %w", err)
	}
	live := map[uint64]bool{}
	for _, level := range levels {
		for _, t := range level {
			live[uint64(t.BackingSSTNum)] = true
		}
	}
	return live, nil
}

// tableNum parses pebble's sstable file name, NNNNNN.sst.
func tableNum(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, ".sst")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}
