// Package pebblerase holds what both of a node's pebble databases need so
// that data they deleted is gone from their files, not only from reads:
// no recycling of write-ahead logs, and a wait for pebble to remove the
// files a compaction or flush made obsolete.
package pebblerase

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Cleaner removes obsolete files, as pebble's default cleaner does, and
// keeps pebble from recycling write-ahead logs.
//
// Pebble renames an obsolete WAL to reuse it and overwrites it from the
// start; until the new log has grown past the old one's length, the tail
// of the file still holds the old log's records, which erasure must be
// able to remove. Pebble recycles only when the cleaner does not need the
// contents of obsolete files (base.NeedsFileContents, whose marker method
// is unexported): embedding ArchiveCleaner one level down gives the marker
// while DeleteCleaner's Clean, one level up, is the one that runs. The
// cost is a new file per memtable instead of a reused one.
type Cleaner struct {
	pebble.DeleteCleaner
	keepsContents
}

var _ pebble.Cleaner = Cleaner{}

type keepsContents struct{ pebble.ArchiveCleaner }

// String names the cleaner in pebble's OPTIONS file.
func (Cleaner) String() string { return "delete-no-wal-recycling" }

// Obsolete lists the files of dir that a database must remove before what
// it deleted is gone: sstables on disk that its current version does not
// hold (tables a compaction replaced, or a compaction's output not yet
// installed, which WaitRemoved tells apart), plus extra, names the caller
// knows will be obsolete (the WAL before a flush).
func Obsolete(fs vfs.FS, db *pebble.DB, dir string, extra ...string) ([]string, error) {
	live, err := liveTables(db)
	if err != nil {
		return nil, err
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := append([]string(nil), extra...)
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

// WALs lists the write-ahead log files of dir.
func WALs(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, name := range names {
		if strings.HasSuffix(name, ".log") {
			out = append(out, name)
		}
	}
	return out, nil
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
