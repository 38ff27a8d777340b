package fsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/irxfed/irx/errdefs"
)

// The state machine's storage health: damage found in its files, and
// writes that pebble holds back (a flush that cannot be written stalls
// every later write, apply included).

// health is what the state machine's pebble reported about its storage.
type health struct {
	// corrupt is the first file found damaged, "" while none is.
	corrupt atomic.Pointer[string]
	// stallSince is when the current write stall began (unix nanoseconds),
	// 0 when writes flow.
	stallSince atomic.Int64
	// background is pebble's last failed flush or compaction; cleared when
	// a flush succeeds.
	background atomic.Pointer[error]
}

// events is the listener of the state machine's pebble. Pebble's default
// on corruption stops the process from whatever goroutine read the block
// (a handler's, answering INTERNAL after a panic); the read returns the
// error anyway, and the node answers it as this node's damage.
func (h *health) events(dir string, log *slog.Logger) *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			path := info.Path
			if h.corrupt.CompareAndSwap(nil, &path) {
				log.Error("state machine file is corrupt; this node answers reads from other nodes' copies until it is restarted, which rebuilds it from the Raft log",
					"file", path, "error", info.Details)
			}
		},
		BackgroundError: func(err error) {
			h.background.Store(&err)
			log.Warn("state machine storage: background write failed", "dir", dir, "error", err)
		},
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err == nil {
				h.background.Store(nil)
			}
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			h.stallSince.CompareAndSwap(0, time.Now().UnixNano())
			log.Warn("state machine storage: writes stalled", "dir", dir, "reason", info.Reason)
		},
		WriteStallEnd: func() {
			h.stallSince.Store(0)
			log.Info("state machine storage: writes flow again", "dir", dir)
		},
	}
}

// Problem returns a StorageError when the state machine's storage is
// damaged or its writes have stalled for longer than stallAfter, and nil
// otherwise.
func (f *FSM) Problem(stallAfter time.Duration) error {
	if p := f.health.corrupt.Load(); p != nil {
		return &errdefs.StorageError{Disk: "state machine", Path: *p, Class: errdefs.ErrUnavailable,
			Reason: "the file fails its checksums; restart the node to rebuild the state machine from the Raft log"}
	}
	return f.Stalled(stallAfter)
}

// Stalled returns a StorageError when the state machine's writes have
// stalled for longer than stallAfter, and nil otherwise.
func (f *FSM) Stalled(stallAfter time.Duration) error {
	if since := f.health.stallSince.Load(); since != 0 {
		if d := time.Since(time.Unix(0, since)); d > stallAfter {
			reason := fmt.Sprintf("writes have stalled for %s", d.Round(time.Second))
			if bg := f.health.background.Load(); bg != nil {
				reason += ": " + (*bg).Error()
			}
			return &errdefs.StorageError{Disk: "state machine disk", Path: f.dir, Class: errdefs.ErrUnavailable, Reason: reason}
		}
	}
	return nil
}

// Corrupted returns the path of the first state file found damaged, or "".
func (f *FSM) Corrupted() string {
	if p := f.health.corrupt.Load(); p != nil {
		return *p
	}
	return ""
}

// CorruptionError names a state machine file that fails its checksums.
type CorruptionError struct {
	Path string
	Err  error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("state machine file %s is corrupt: %v", e.Path, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Verify checks the checksum of every block of every table of the state
// machine's database, pausing after each table so that no more than
// bytesPerSecond are read (0: no pause). It returns a *CorruptionError
// for the first damaged table, and marks the state machine corrupt.
func (f *FSM) Verify(ctx context.Context, bytesPerSecond int64) error {
	f.mu.RLock()
	db := f.db
	var levels [][]pebble.SSTableInfo
	var err error
	if db != nil {
		levels, err = db.SSTables()
	}
	f.mu.RUnlock()
	if db == nil {
		return errors.New("fsm: verify: closed")
	}
	if err != nil {
		return fmt.Errorf("fsm: verify: list tables: %w", err)
	}
	err = verifyTables(ctx, f.dir, levels, bytesPerSecond)
	var cerr *CorruptionError
	if errors.As(err, &cerr) {
		p := cerr.Path
		f.health.corrupt.CompareAndSwap(nil, &p)
	}
	return err
}

func verifyTables(ctx context.Context, dir string, levels [][]pebble.SSTableInfo, bytesPerSecond int64) error {
	seen := map[uint64]bool{}
	for _, level := range levels {
		for _, t := range level {
			num := uint64(t.BackingSSTNum)
			if seen[num] {
				continue
			}
			seen[num] = true
			path := filepath.Join(dir, fmt.Sprintf("%06d.sst", num))
			if err := verifyTable(path); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					// Compacted away since the listing.
					continue
				}
				return &CorruptionError{Path: path, Err: err}
			}
			if bytesPerSecond > 0 {
				pause := time.Duration(float64(t.Size) / float64(bytesPerSecond) * float64(time.Second))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(pause):
				}
			} else if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// openVerified opens the database in dir and checks every table. A
// damaged database is removed and an empty one opened in its place: the
// state machine is derived from the Raft log, and Raft fills the empty one
// from the newest snapshot and the log after it (the node restores the
// snapshot when the database is older, Node.stateCoversSnapshots). The
// damaged copy is not kept: records withdrawn later would stay on disk in
// it, out of the eraser's reach.
func (f *FSM) openVerified(dir string) (*pebble.DB, error) {
	db, err := openDB(dir, f.log, f.health.events(dir, f.log))
	if err != nil {
		return nil, err
	}
	levels, err := db.SSTables()
	if err == nil {
		err = verifyTables(context.Background(), dir, levels, 0)
	}
	var cerr *CorruptionError
	if err == nil || !errors.As(err, &cerr) {
		if err != nil {
			err = errors.Join(fmt.Errorf("fsm: verify: %w", err), db.Close())
		}
		return db, err
	}
	f.log.Error("state machine file is corrupt; removing the state machine to rebuild it from the Raft snapshot and log",
		"file", cerr.Path, "error", cerr.Err)
	_ = db.Close() // the tables it would flush are the damaged ones
	aside := dir + ".corrupt"
	if err := os.RemoveAll(aside); err != nil {
		return nil, fmt.Errorf("fsm: rebuild: %w", err)
	}
	if err := os.Rename(dir, aside); err != nil {
		return nil, fmt.Errorf("fsm: rebuild: %w", err)
	}
	if err := errors.Join(syncDir(filepath.Dir(dir)), os.RemoveAll(aside)); err != nil {
		return nil, fmt.Errorf("fsm: rebuild: %w", err)
	}
	f.health.corrupt.Store(nil)
	if db, err = openDB(dir, f.log, f.health.events(dir, f.log)); err != nil {
		return nil, err
	}
	f.log.Warn("state machine removed; Raft rebuilds it from the snapshot and log", "dir", dir)
	return db, nil
}

// verifyTable checks the checksums of every block of one sstable.
func verifyTable(path string) error {
	file, err := vfs.Default.Open(path)
	if err != nil {
		return err
	}
	readable, err := sstable.NewSimpleReadable(file)
	if err != nil {
		_ = file.Close()
		return err
	}
	r, err := sstable.NewReader(context.Background(), readable, sstable.ReaderOptions{})
	if err != nil {
		_ = readable.Close()
		return err
	}
	return errors.Join(r.ValidateBlockChecksums(), r.Close())
}
