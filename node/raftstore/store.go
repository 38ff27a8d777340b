// Package raftstore implements hashicorp/raft's LogStore and StableStore on a
// pebble database.
//
// Every mutation is committed with pebble.Sync: raft's safety argument
// assumes that a log entry or vote it has been told is stored survives a
// crash, so nothing here is acknowledged before it is on stable storage.
// The one exception is a leader's own appends with WithWriteAhead, whose
// durability the node waits for itself (durable.go).
package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/node/internal/pebblerase"
)

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// ErrKeyNotFound is returned by Get and GetUint64 for a key that was never
// set. Its text must stay exactly "not found" and it must be returned
// unwrapped: raft (NewRaft, HasExistingState, requestVote) recognises a
// missing key by comparing err.Error() == "not found", the convention of
// raft-boltdb, and treats any other error as fatal.
var ErrKeyNotFound = errors.New("not found")

// ErrClosed is returned by every method once Close has been called. Pebble
// panics on use after close, so the store checks first.
var ErrClosed = errors.New("raftstore: closed")

// Key layout. Both prefixes are readable in pebble tooling output and sort
// apart, so a log scan bounded by [logPrefix, logUpper) can never see a
// stable key.
const (
	logPrefix    = "l/"
	stablePrefix = "s/"
	logKeyLen    = len(logPrefix) + 8
	// A pebble batch's header, and what each set adds to its key and
	// value: a kind byte and two length varints (of at most 5 bytes).
	batchHeaderLen      = 12
	batchRecordOverhead = 1 + 5 + 5
)

// logUpper is the exclusive upper bound of the log key space ('/'+1 == '0').
var logUpper = []byte("l0")

// pointDeleteMax is the widest DeleteRange done with point tombstones. Raft's
// conflict truncation usually removes a handful of entries, and a few point
// deletes are cheaper for later reads than a range tombstone; compaction of
// thousands of entries is one range tombstone.
const pointDeleteMax = 64

const defaultCacheSize = 16 << 20

// ManualMemoryBytes is the most a store with the default cache holds in
// memory that pebble allocates itself (outside the Go heap where the build
// uses cgo): the cache and up to three memtables of pebble's default 4 MiB.
const ManualMemoryBytes = defaultCacheSize + 3*4<<20

type config struct {
	logger     *slog.Logger
	cacheSize  int64
	fs         vfs.FS
	writeAhead func() bool
	onSync     func(time.Duration)
	writable   func() error
	stallAfter time.Duration
}

// Option configures Open.
type Option func(*config)

// WithLogger routes pebble's log output to l, including info-level messages.
// Without it, only warnings and errors go to slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithCacheSize sets pebble's block cache size in bytes. Raft mostly reads
// entries it has just written (served from the memtable) or, when a follower
// lags, a sequential range, so a small cache is enough.
func WithCacheSize(bytes int64) Option {
	return func(c *config) {
		if bytes > 0 {
			c.cacheSize = bytes
		}
	}
}

// WithWriteAhead lets appends made while leading() reports true (the node
// leads) return before they are on disk; see Durable. leading is called
// for every append.
func WithWriteAhead(leading func() bool) Option {
	return func(c *config) { c.writeAhead = leading }
}

// WithSyncObserver has observe called with the duration of every sync of
// appends written ahead.
func WithSyncObserver(observe func(time.Duration)) Option {
	return func(c *config) { c.onSync = observe }
}

// WithWriteCheck has every append first call writable, and fail with its
// error, unwritten, when it returns one (the node's free-space guard).
func WithWriteCheck(writable func() error) Option {
	return func(c *config) { c.writable = writable }
}

// WithStallTimeout sets how long an append, or a sync of appends written
// ahead, may take before the store reports itself stalled (Stalled), and
// every other append fails at once with a StorageError of class
// errdefs.ErrUnavailable until the stalled one finishes. The stalled
// append itself waits: pebble's writes cannot be cancelled, and an error
// returned for a write that lands later would leave Raft's idea of its log
// behind the log. The node stops its Raft heartbeats while the store is
// stalled, so that a leader stuck here is replaced. Zero: never stalled.
func WithStallTimeout(d time.Duration) Option {
	return func(c *config) { c.stallAfter = d }
}

// WithFS opens the store on fs instead of the operating system's file
// system (tests use a memory one that can lose what was not synced).
func WithFS(fs vfs.FS) Option {
	return func(c *config) { c.fs = fs }
}

// logBounds is the cached [first, last] index range; first == 0 means empty.
// It is swapped as one pointer so readers never see a first from one write
// and a last from another.
type logBounds struct {
	first, last uint64
}

// Store is a raft.LogStore and raft.StableStore backed by pebble. It is safe
// for concurrent use.
type Store struct {
	db     *pebble.DB
	fs     *pebblerase.FS
	dir    string
	logger *slog.Logger

	// closeMu is held shared by every operation and exclusively by Close, so
	// Close waits for in-flight calls instead of pulling the DB from under
	// them.
	closeMu sync.RWMutex
	closed  bool

	// writeMu serialises log mutations together with the bounds update that
	// follows them. Raft appends from its main goroutine while log
	// compaction's DeleteRange runs on the snapshot goroutine; without this,
	// two commits could publish their bounds in the opposite order.
	writeMu sync.Mutex
	// bounds is nil when unknown (after a failed write, where the on-disk
	// outcome is unclear); it is then recomputed from disk under writeMu.
	bounds atomic.Pointer[logBounds]

	writeAhead func() bool
	onSync     func(time.Duration)
	dur        *durability

	writable   func() error
	stallAfter time.Duration
	// overdue counts appends still running past stallAfter; syncSince is
	// when the sync of appends written ahead now running began (unix
	// nanoseconds, 0 when none runs).
	overdue   atomic.Int32
	syncSince atomic.Int64
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts ...Option) (*Store, error) {
	if dir == "" {
		return nil, errors.New("raftstore: open: empty directory")
	}
	cfg := config{cacheSize: defaultCacheSize}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(minLevelHandler{min: slog.LevelWarn, inner: slog.Default().Handler()})
	}
	logger := cfg.logger.With("component", "raftstore")
	plog := pebbleLogger{l: logger.With("subsystem", "pebble")}

	// Deleted entries must be erasable from the files (Erase), WALs
	// included: see pebblerase.FS.
	fs := cfg.fs
	if fs == nil {
		fs = vfs.Default
	}
	efs := pebblerase.NewFS(sizedWALFS{FS: fs})

	fresh, err := isNewStore(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open %s: %w", dir, err)
	}

	cache := pebble.NewCache(cfg.cacheSize)
	// The DB takes its own reference; ours must be dropped either way.
	defer cache.Unref()

	db, err := pebble.Open(dir, &pebble.Options{
		FS:     efs,
		Cache:  cache,
		Logger: plog,
		// A fresh store has no older pebble to stay compatible with.
		FormatMajorVersion: pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			// Pebble's default calls Fatalf. The read that hit the corruption
			// already returns an error, which raft surfaces; killing the
			// process from a background goroutine is the host's call.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				logger.Error("pebble data corruption", "info", info.String())
			},
			// Every raft append waits on fsync, so a slow disk is raft
			// latency; make it visible.
			DiskSlow: func(info pebble.DiskSlowInfo) {
				logger.Warn("pebble disk slow", "info", info.String())
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				logger.Warn("pebble write stall", "reason", info.Reason)
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("raftstore: open %s: %w", dir, err)
	}
	// Pebble makes a new store's first WAL before it raises the store to
	// the format whose WAL chunks record how far the log was synced.
	// Without that record, a hole in synced entries reads as the log's
	// end, and a restart would forget appends the node acknowledged; a
	// flush starts the next WAL in the newer format before any append.
	if fresh {
		if err := db.Flush(); err != nil {
			return nil, errors.Join(fmt.Errorf("raftstore: open %s: first WAL: %w", dir, err), db.Close())
		}
	}
	s := &Store{db: db, fs: efs, dir: dir, logger: logger, writeAhead: cfg.writeAhead, onSync: cfg.onSync,
		writable: cfg.writable, stallAfter: cfg.stallAfter}
	b, err := s.loadBoundsLocked()
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	// What the log holds after opening is what the disk held.
	s.dur = newDurability(b.last)
	if s.writeAhead != nil {
		go s.syncLoop()
	}
	return s, nil
}

// isNewStore reports whether dir holds no pebble store yet.
func isNewStore(fs vfs.FS, dir string) (bool, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !slices.ContainsFunc(names, func(name string) bool { return strings.HasPrefix(name, "MANIFEST-") }), nil
}

// Close closes the database. Calls after the first return ErrClosed.
func (s *Store) Close() error {
	// The last appends written ahead are synced first, and waiters for
	// them released.
	s.stopSyncing()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raftstore: close: %w", err)
	}
	return nil
}

// acquire takes the shared close lock. The caller must call s.closeMu.RUnlock
// when it returns nil.
func (s *Store) acquire() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// StorageMetrics returns pebble's metrics of the log's database, or nil
// once the store is closed.
func (s *Store) StorageMetrics() *pebble.Metrics {
	if err := s.acquire(); err != nil {
		return nil
	}
	defer s.closeMu.RUnlock()
	return s.db.Metrics()
}

// FirstIndex implements raft.LogStore. It returns 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	b, err := s.currentBounds()
	if err != nil {
		return 0, fmt.Errorf("raftstore: first index: %w", err)
	}
	return b.first, nil
}

// LastIndex implements raft.LogStore. It returns 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) {
	b, err := s.currentBounds()
	if err != nil {
		return 0, fmt.Errorf("raftstore: last index: %w", err)
	}
	return b.last, nil
}

func (s *Store) currentBounds() (logBounds, error) {
	if err := s.acquire(); err != nil {
		return logBounds{}, err
	}
	defer s.closeMu.RUnlock()
	if b := s.bounds.Load(); b != nil {
		return *b, nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.loadBoundsLocked()
}

// loadBoundsLocked returns the cached bounds, reading them from disk if they
// are unknown. writeMu must be held (or the store not yet shared).
func (s *Store) loadBoundsLocked() (logBounds, error) {
	if b := s.bounds.Load(); b != nil {
		return *b, nil
	}
	first, err := s.edgeIndex([]byte(logPrefix), logUpper, false)
	if err != nil {
		return logBounds{}, err
	}
	var last uint64
	if first != 0 {
		if last, err = s.edgeIndex([]byte(logPrefix), logUpper, true); err != nil {
			return logBounds{}, err
		}
	}
	b := logBounds{first: first, last: last}
	s.bounds.Store(&b)
	return b, nil
}

// edgeIndex returns the lowest (or, with last, highest) log index whose key
// lies in [lower, upper), or 0 if there is none.
func (s *Store) edgeIndex(lower, upper []byte, last bool) (idx uint64, err error) {
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("raftstore: scan log keys: %w", err)
	}
	defer func() {
		if cerr := iter.Close(); cerr != nil && err == nil {
			idx, err = 0, fmt.Errorf("raftstore: scan log keys: close iterator: %w", cerr)
		}
	}()
	var ok bool
	if last {
		ok = iter.Last()
	} else {
		ok = iter.First()
	}
	if !ok {
		// Exhausted or failed; Close reports the error, if any.
		return 0, nil
	}
	k := iter.Key()
	if len(k) != logKeyLen {
		return 0, fmt.Errorf("raftstore: scan log keys: %w: malformed key %q", errCorruptLog, k)
	}
	return binary.BigEndian.Uint64(k[len(logPrefix):]), nil
}

func logKey(idx uint64) []byte {
	k := make([]byte, logKeyLen)
	putLogKey(k, idx)
	return k
}

func putLogKey(dst []byte, idx uint64) {
	copy(dst, logPrefix)
	binary.BigEndian.PutUint64(dst[len(logPrefix):], idx)
}

// logEndKey is the exclusive pebble bound just past idx. key(MaxUint64+1)
// would wrap to key(0) and make the range empty, so the top index maps to the
// end of the log key space instead.
func logEndKey(idx uint64) []byte {
	if idx == math.MaxUint64 {
		return logUpper
	}
	return logKey(idx + 1)
}

// GetLog implements raft.LogStore. A missing index yields raft.ErrLogNotFound
// unwrapped: raft's replication compares err == ErrLogNotFound to decide to
// send a snapshot to a lagging follower, so wrapping it would stall that
// follower forever.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	if err := s.acquire(); err != nil {
		return fmt.Errorf("raftstore: get log %d: %w", index, err)
	}
	defer s.closeMu.RUnlock()

	// Raft asks for compacted indexes (follower catch-up probing); answering
	// from the cached bounds avoids a pebble lookup. The bounds always cover
	// every stored key, so this never hides an entry.
	if b := s.bounds.Load(); b != nil && (b.first == 0 || index < b.first || index > b.last) {
		return raft.ErrLogNotFound
	}

	val, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftstore: get log %d: %w", index, err)
	}
	var l raft.Log
	decErr := decodeLog(val, &l)
	if err := closer.Close(); err != nil {
		return fmt.Errorf("raftstore: get log %d: release value: %w", index, err)
	}
	if decErr != nil {
		return fmt.Errorf("raftstore: get log %d: %w", index, decErr)
	}
	if l.Index != index {
		return fmt.Errorf("raftstore: get log %d: %w: value holds index %d", index, errCorruptLog, l.Index)
	}
	*log = l
	return nil
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs implements raft.LogStore. All entries go in one batch and one
// fsync, so a call is atomic: after a crash either all or none are present.
func (s *Store) StoreLogs(logs []*raft.Log) (err error) {
	if len(logs) == 0 {
		return nil
	}
	minIdx, maxIdx := uint64(math.MaxUint64), uint64(0)
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raftstore: store logs: entry %d is nil", i)
		}
		// Index 0 is what FirstIndex/LastIndex report for "empty"; storing
		// it would make an empty log indistinguishable from a non-empty one.
		if l.Index == 0 {
			return fmt.Errorf("raftstore: store logs: entry %d has index 0", i)
		}
		minIdx = min(minIdx, l.Index)
		maxIdx = max(maxIdx, l.Index)
	}
	if s.writable != nil {
		if err := s.writable(); err != nil {
			return fmt.Errorf("raftstore: store logs %d-%d: %w", minIdx, maxIdx, err)
		}
	}
	if err := s.Stalled(); err != nil {
		return fmt.Errorf("raftstore: store logs %d-%d: %w", minIdx, maxIdx, err)
	}
	if err := s.acquire(); err != nil {
		return fmt.Errorf("raftstore: store logs %d-%d: %w", minIdx, maxIdx, err)
	}
	defer s.closeMu.RUnlock()

	// Sized up front: a batch grown by doubling copies what it holds at
	// each step, and a follower's entries of a peer's feed are MiBs.
	size := batchHeaderLen
	for _, l := range logs {
		size += batchRecordOverhead + logKeyLen + encodedLogLen(l)
	}
	b := s.db.NewBatchWithSize(size)
	defer func() {
		if cerr := b.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("raftstore: store logs %d-%d: close batch: %w", minIdx, maxIdx, cerr)
		}
	}()
	for _, l := range logs {
		// Encode in place in the batch buffer: no per-entry scratch
		// allocation or extra copy of Data.
		n := encodedLogLen(l)
		op := b.SetDeferred(logKeyLen, n)
		putLogKey(op.Key, l.Index)
		if enc := appendLog(op.Value[:0], l); len(enc) != n {
			return fmt.Errorf("raftstore: store log %d: encoded %d bytes, expected %d", l.Index, len(enc), n)
		}
		if err := op.Finish(); err != nil {
			return fmt.Errorf("raftstore: store log %d: %w", l.Index, err)
		}
	}

	defer s.watchStall()()
	return s.commitLogs(b, minIdx, maxIdx)
}

// commitLogs commits a batch of appends and records the new bounds.
func (s *Store) commitLogs(b *pebble.Batch, minIdx, maxIdx uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.loadBoundsLocked()
	if err != nil {
		return fmt.Errorf("raftstore: store logs %d-%d: %w", minIdx, maxIdx, err)
	}
	// hashicorp/raft appends from its main goroutine: as leader from
	// dispatchLogs, as follower from appendEntries, which has made the node
	// a follower before it stores anything. So a leading node's appends are
	// its own new entries, and everything else is synced.
	ahead := s.writeAhead != nil && s.writeAhead()
	sync := pebble.Sync
	if ahead {
		sync = pebble.NoSync
	}
	if err := b.Commit(sync); err != nil {
		// Whether the batch landed is unknown; re-read bounds next time.
		s.bounds.Store(nil)
		return fmt.Errorf("raftstore: store logs %d-%d: %w", minIdx, maxIdx, err)
	}
	next := cur
	if next.first == 0 || minIdx < next.first {
		next.first = minIdx
	}
	next.last = max(next.last, maxIdx)
	s.bounds.Store(&next)
	if ahead {
		s.dur.wrote(maxIdx)
	} else {
		s.dur.synced(maxIdx)
	}
	return nil
}

// DeleteRange implements raft.LogStore. Both ends are inclusive, as raft
// expects: compaction passes (first, snapshotIndex-trailing) and conflict
// truncation passes (conflictIndex, lastIndex).
func (s *Store) DeleteRange(minIdx, maxIdx uint64) (err error) {
	if minIdx > maxIdx {
		return nil
	}
	if err := s.acquire(); err != nil {
		return fmt.Errorf("raftstore: delete logs %d-%d: %w", minIdx, maxIdx, err)
	}
	defer s.closeMu.RUnlock()

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.loadBoundsLocked()
	if err != nil {
		return fmt.Errorf("raftstore: delete logs %d-%d: %w", minIdx, maxIdx, err)
	}
	// No key exists outside [first, last], so clamping loses nothing and
	// keeps point deletes (and the range tombstone) as small as possible.
	lo, hi := max(minIdx, cur.first), min(maxIdx, cur.last)
	if cur.first == 0 || lo > hi {
		return nil
	}

	if hi == cur.last {
		// A sync begun before must not vouch for what is appended after.
		s.dur.cut(lo)
	}
	if hi-lo < pointDeleteMax {
		err = s.deletePoints(lo, hi)
	} else {
		err = s.db.DeleteRange(logKey(lo), logEndKey(hi), pebble.Sync)
	}
	if err != nil {
		s.bounds.Store(nil)
		return fmt.Errorf("raftstore: delete logs %d-%d: %w", lo, hi, err)
	}
	// The delete was synced, and with it every write before it.
	s.dur.synced(0)

	next := cur
	switch {
	case lo == cur.first && hi == cur.last:
		next = logBounds{}
	case lo == cur.first:
		// hi < last, so hi+1 cannot overflow and a key >= hi+1 exists.
		next.first, err = s.edgeIndex(logKey(hi+1), logUpper, false)
	case hi == cur.last:
		// lo > first >= 1, and a key < lo exists.
		next.last, err = s.edgeIndex([]byte(logPrefix), logKey(lo), true)
	}
	if err != nil {
		s.bounds.Store(nil)
		return fmt.Errorf("raftstore: delete logs %d-%d: refresh bounds: %w", lo, hi, err)
	}
	s.bounds.Store(&next)
	return nil
}

func (s *Store) deletePoints(lo, hi uint64) (err error) {
	b := s.db.NewBatch()
	defer func() {
		if cerr := b.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close batch: %w", cerr)
		}
	}()
	var k [logKeyLen]byte
	for idx := lo; ; idx++ {
		putLogKey(k[:], idx)
		if err := b.Delete(k[:], nil); err != nil {
			return err
		}
		if idx == hi { // checked here so hi == MaxUint64 cannot loop forever
			break
		}
	}
	return b.Commit(pebble.Sync)
}

// Erase makes the log entries up to upTo, already deleted (DeleteRange),
// unreadable from the store's files. A deletion only hides an entry:
// pebble keeps its bytes in the write-ahead log until the memtable that
// holds it is flushed (and in the log file after that, when it reuses the
// file for a later log), and in sstables until a compaction drops it under
// its tombstone. Erase marks the WALs as not to be reused, flushes,
// empties them, compacts the log's keys up to upTo to the last level,
// where the deleted entries and their tombstones are dropped, and waits
// until pebble has removed the sstables that held them. Raft's appends go
// on meanwhile; the cost is a flush and a compaction of what remains of
// the range, usually little after raft's own log compaction.
func (s *Store) Erase(ctx context.Context, upTo uint64) error {
	if err := s.acquire(); err != nil {
		return fmt.Errorf("raftstore: erase up to %d: %w", upTo, err)
	}
	defer s.closeMu.RUnlock()
	if err := s.fs.TaintWALs(s.dir); err != nil {
		return fmt.Errorf("raftstore: erase up to %d: %w", upTo, err)
	}
	// The flush makes every WAL that holds the entries obsolete: the log
	// written from now on is a new one.
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("raftstore: erase up to %d: flush: %w", upTo, err)
	}
	if err := s.fs.EmptyTainted(s.dir); err != nil {
		return fmt.Errorf("raftstore: erase up to %d: empty old logs: %w", upTo, err)
	}
	if err := s.db.Compact(ctx, []byte(logPrefix), logEndKey(upTo), false); err != nil {
		return fmt.Errorf("raftstore: erase up to %d: compact: %w", upTo, err)
	}
	obsolete, err := pebblerase.Obsolete(s.fs, s.db, s.dir)
	if err != nil {
		return fmt.Errorf("raftstore: erase up to %d: %w", upTo, err)
	}
	if err := pebblerase.WaitRemoved(ctx, s.fs, s.db, s.dir, obsolete); err != nil {
		return fmt.Errorf("raftstore: erase up to %d: %w", upTo, err)
	}
	return nil
}

func stableKey(key []byte) []byte {
	k := make([]byte, 0, len(stablePrefix)+len(key))
	return append(append(k, stablePrefix...), key...)
}

// Set implements raft.StableStore.
func (s *Store) Set(key, val []byte) error {
	if err := s.acquire(); err != nil {
		return fmt.Errorf("raftstore: set %q: %w", key, err)
	}
	defer s.closeMu.RUnlock()
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("raftstore: set %q: %w", key, err)
	}
	return nil
}

// Get implements raft.StableStore. A key that was never set returns
// ErrKeyNotFound (see its comment for why it is not wrapped). A key set to an
// empty value returns a non-nil empty slice, so the two stay distinguishable.
func (s *Store) Get(key []byte) ([]byte, error) {
	if err := s.acquire(); err != nil {
		return nil, fmt.Errorf("raftstore: get %q: %w", key, err)
	}
	defer s.closeMu.RUnlock()
	val, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftstore: get %q: %w", key, err)
	}
	// val belongs to pebble and is only valid until closer.Close.
	out := make([]byte, len(val))
	copy(out, val)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("raftstore: get %q: release value: %w", key, err)
	}
	return out, nil
}

// SetUint64 implements raft.StableStore. Values are 8 bytes big-endian, the
// same encoding raft-boltdb uses.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], val)
	return s.Set(key, buf[:])
}

// GetUint64 implements raft.StableStore. A missing key returns 0 and
// ErrKeyNotFound, unwrapped, as raft requires.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("raftstore: get uint64 %q: value is %d bytes, want 8", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}
