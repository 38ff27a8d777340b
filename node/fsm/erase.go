package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/node/internal/pebblerase"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Erasure at rest.
//
// Deleting or overwriting a stored value hides it from every read at once,
// but its bytes stay on disk: in this database until a compaction drops
// the shadowed version under its tombstone, in the Raft log entries that
// carried it, and in snapshots taken before. Where a removal is a promise
// to a peer (its withdrawal of a record we hold, or a narrower view that
// replaces one), the applier notes what it removed with erased, and the
// node's eraser (node/eraser.go) takes the notes and makes the values
// unreadable from every file of the node within a bounded time: a
// snapshot that no longer holds them, the Raft log truncated through the
// noting entry and compacted, the older snapshots removed, and the noted
// key ranges of this database compacted (EraseState).
//
// Every node of a team applies the same entries, so every node notes the
// same removals and erases them locally.

// Span is a range of state machine keys, Start inclusive, End exclusive.
type Span struct {
	Start, End []byte
}

// Erasure is what one pass of the node's eraser makes unreadable.
type Erasure struct {
	// Spans are the key ranges whose values were removed, sorted, overlaps
	// merged.
	Spans []Span
	// Index is the highest Raft index of a noting entry: the log up to it
	// may carry the removed values.
	Index uint64
	// Since is when the oldest of the removals was applied on this node.
	Since time.Time
	// Ranges counts the key ranges noted (calls of erased), before
	// merging; a withdrawn copy is about five.
	Ranges int
	// Full means the ranges are not known: an erasure was owed when the
	// node stopped (or the state was restored from a snapshot), so the
	// whole database is compacted.
	Full bool
}

// erased notes that applying the current entry (a.index) removed the values
// stored under the keys in [start, end): deleted them, or overwrote them
// with something else. Call it beside the deletion or overwrite, for
// removals a peer relies on; see the erasure comment above. For a held
// view replaced by another of the same version, that is
//
//	a.erasedKeys(versionKey(id, version))
//	a.erasedKeys(indexKeys(id, old)...) // if the indexes were made from old
//
// Noting costs nothing until the node's eraser runs, once per batch of
// removals; noting a range with nothing removed in it costs a compaction
// of that range.
func (a *applier) erased(start, end []byte) {
	a.erasedSpans = append(a.erasedSpans, Span{Start: bytes.Clone(start), End: bytes.Clone(end)})
	a.erasedIndex = max(a.erasedIndex, a.index)
}

// erasedKeys notes single keys whose values the current entry removed.
func (a *applier) erasedKeys(keys ...[]byte) {
	for _, k := range keys {
		a.erased(k, keyAfter(k))
	}
}

// erasedCopy notes the removal of our copy of a foreign incident: every
// version of it, and the index keys made from them (they hold values of
// its fields, an indicator's hash, a taxonomy term, a time): those of inc,
// the latest version, and those of older versions, deleted when a newer
// one came but perhaps still in a table. Call it before the versions are
// deleted from the batch, which it reads them from.
func (a *applier) erasedCopy(id record.ID, inc *irxv1.Incident) {
	prefix := cat(prefixVersion, idKey(id))
	a.erased(prefix, prefixEnd(prefix))
	a.erasedKeys(indexKeys(id, inc)...)
	it, err := a.stateReader().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		a.fail(err)
		return
	}
	for valid := it.First(); valid; valid = it.Next() {
		old := &irxv1.Incident{}
		if proto.Unmarshal(it.Value(), old) == nil && old.GetVersion() != inc.GetVersion() {
			a.erasedKeys(indexKeys(id, old)...)
		}
	}
	if err := it.Close(); err != nil {
		a.fail(err)
	}
}

// keyAfter is the smallest key greater than k.
func keyAfter(k []byte) []byte { return append(bytes.Clone(k), 0) }

// erasures holds the removals applied and not yet erased. A marker file
// beside the database says that an erasure is owed: the database has no
// write-ahead log, and after a crash it comes back with whatever its last
// flush held, possibly a removal whose erasure never ran; the node cannot
// know which, and erases everything (Erasure.Full) at its next start.
type erasures struct {
	marker string

	mu      sync.Mutex
	pending Erasure
	has     bool
	// preparing counts removals written to the database and not yet
	// noted: the marker must stay until they are.
	preparing int
	marked    bool

	// noted has a value when a removal was noted since the eraser last
	// looked.
	noted chan struct{}
}

func newErasures(marker string) *erasures {
	return &erasures{marker: marker, noted: make(chan struct{}, 1)}
}

// load reads the marker a previous run left: a full erasure is owed.
func (e *erasures) load(applied uint64) error {
	_, err := os.Stat(e.marker)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("fsm: erasure marker: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.marked = true
	e.addLocked(Erasure{Index: applied, Since: time.Now(), Full: true})
	return nil
}

// prepare makes sure the marker is on disk before a removal is committed
// to the database; note (or abandon) must follow.
func (e *erasures) prepare() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.marked {
		if err := writeSynced(e.marker); err != nil {
			return fmt.Errorf("fsm: erasure marker: %w", err)
		}
		e.marked = true
	}
	e.preparing++
	return nil
}

// note adds committed removals for the eraser.
func (e *erasures) note(spans []Span, index uint64, at time.Time) {
	e.mu.Lock()
	e.preparing--
	e.addLocked(Erasure{Spans: spans, Index: index, Since: at, Ranges: len(spans)})
	e.mu.Unlock()
}

func (e *erasures) addLocked(add Erasure) {
	if !e.has {
		e.pending, e.has = add, true
	} else {
		p := &e.pending
		p.Spans = append(p.Spans, add.Spans...)
		p.Index = max(p.Index, add.Index)
		p.Ranges += add.Ranges
		p.Full = p.Full || add.Full
		if add.Since.Before(p.Since) {
			p.Since = add.Since
		}
	}
	select {
	case e.noted <- struct{}{}:
	default:
	}
}

func writeSynced(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString("an erasure at rest is owed; see node/fsm/erase.go\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Erasures has a value when removals were noted since the last call of
// TakeErasure; the eraser waits on it.
func (f *FSM) Erasures() <-chan struct{} { return f.erasures.noted }

// PendingErasure reports when the oldest removal not yet taken was
// applied, and how many key ranges are pending.
func (f *FSM) PendingErasure() (since time.Time, ranges int, ok bool) {
	e := f.erasures
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending.Since, e.pending.Ranges, e.has
}

// TakeErasure hands the pending removals to the eraser, their spans sorted
// and merged. FinishErasure must follow.
func (f *FSM) TakeErasure() (Erasure, bool) {
	e := f.erasures
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.has {
		return Erasure{}, false
	}
	out := e.pending
	e.pending, e.has = Erasure{}, false
	out.Spans = mergeSpans(out.Spans)
	return out, true
}

// FinishErasure ends the pass over er: after a failure the removals are
// pending again; after success the marker goes, unless more removals are
// pending or being applied.
func (f *FSM) FinishErasure(er Erasure, passErr error) error {
	e := f.erasures
	e.mu.Lock()
	defer e.mu.Unlock()
	if passErr != nil {
		e.addLocked(er)
		return nil
	}
	if e.has || e.preparing > 0 || !e.marked {
		return nil
	}
	if err := os.Remove(e.marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fsm: erasure marker: %w", err)
	}
	e.marked = false
	return syncDir(filepath.Dir(e.marker))
}

// mergeSpans sorts spans and merges those that overlap or touch.
func mergeSpans(spans []Span) []Span {
	slices.SortFunc(spans, func(x, y Span) int { return bytes.Compare(x.Start, y.Start) })
	var out []Span
	for _, s := range spans {
		if n := len(out); n > 0 && bytes.Compare(s.Start, out[n-1].End) <= 0 {
			if bytes.Compare(s.End, out[n-1].End) > 0 {
				out[n-1].End = s.End
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// maxCompactions bounds the compactions of one pass. Each is a pebble
// manual compaction that rewrites the tables its range overlaps at every
// level; many small ranges (a burst of withdrawals scatters index keys
// over their families) are cheaper as one range per family.
const maxCompactions = 16

// compactionSpans is what EraseState compacts for spans.
func (f *FSM) compactionSpans(spans []Span) []Span {
	if len(spans) <= maxCompactions {
		return spans
	}
	var out []Span
	last := -2
	for _, s := range spans {
		i, found := slices.BinarySearchFunc(f.families, s.Start, bytes.Compare)
		if !found {
			i-- // the family whose prefix is at or below the key; -1 before all
		}
		if n := len(out); n > 0 && i == last {
			out[n-1].End = s.End // spans are sorted and disjoint
			continue
		}
		out = append(out, s)
		last = i
	}
	return out
}

// EraseState makes the values er noted unreadable from the database's
// files. It waits until no pebble snapshot taken before the removals is
// open (a compaction keeps what an open snapshot can still see), compacts
// the noted ranges (everything, for a full erasure) down to the last
// level, where the shadowed versions and the tombstones over them are
// dropped (memtables overlapping a range are flushed first), and waits
// until pebble has removed the sstables the compactions replaced.
func (f *FSM) EraseState(ctx context.Context, er Erasure) error {
	if err := f.openSnapshots.waitFrom(ctx, er.Index); err != nil {
		return err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return errClosed
	}
	spans := f.compactionSpans(er.Spans)
	if er.Full {
		// Every key the state machine writes starts with a printable prefix.
		spans = []Span{{Start: []byte{}, End: []byte{0xff}}}
	}
	for _, s := range spans {
		if err := f.db.Compact(ctx, s.Start, s.End, false); err != nil {
			return fmt.Errorf("fsm: erase: compact: %w", err)
		}
	}
	if err := f.rewritePinned(ctx, spans); err != nil {
		return err
	}
	obsolete, err := pebblerase.Obsolete(vfs.Default, f.db, f.dir)
	if err != nil {
		return fmt.Errorf("fsm: erase: %w", err)
	}
	if err := pebblerase.WaitRemoved(ctx, vfs.Default, f.db, f.dir, obsolete); err != nil {
		return fmt.Errorf("fsm: erase: %w", err)
	}
	return nil
}

// rewritePinned rewrites the tables overlapping spans that hold keys a
// snapshot kept. Pebble's manual compaction moves a range down level by
// level but never rewrites a table of the last level on its own; and an
// automatic compaction that ran while a snapshot older than a removal was
// open may have put the removed value there, beside the tombstone or newer
// version that shadows it, and marked the table as holding pinned keys. A
// range key tombstone over such a table (no point read sees range keys,
// and the state machine writes none) gives the compaction an overlapping
// table above it at every level, so the table is merged again, now with
// no snapshot to keep what is shadowed; the range key tombstone is dropped
// in the same merge. A table with nothing pinned gets no tombstone, which
// would otherwise be moved down alone and stay.
func (f *FSM) rewritePinned(ctx context.Context, spans []Span) error {
	// A snapshot taken after the removals may pin other keys meanwhile;
	// the removed values are gone after one rewrite whatever it pins.
	const rounds = 2
	for range rounds {
		var pinned []Span
		for _, s := range spans {
			levels, err := f.db.SSTables(pebble.WithProperties(), pebble.WithKeyRangeFilter(s.Start, s.End))
			if err != nil {
				return fmt.Errorf("fsm: erase: list tables: %w", err)
			}
			for _, level := range levels {
				for _, t := range level {
					if t.Properties != nil && t.Properties.SnapshotPinnedKeys > 0 {
						pinned = append(pinned, Span{Start: bytes.Clone(t.Smallest.UserKey), End: keyAfter(t.Largest.UserKey)})
					}
				}
			}
		}
		if len(pinned) == 0 {
			return nil
		}
		for _, s := range mergeSpans(pinned) {
			if err := f.db.RangeKeyDelete(s.Start, s.End, pebble.NoSync); err != nil {
				return fmt.Errorf("fsm: erase: %w", err)
			}
			if err := f.db.Compact(ctx, s.Start, s.End, false); err != nil {
				return fmt.Errorf("fsm: erase: compact: %w", err)
			}
		}
	}
	return nil
}

// openSnapshots tracks the pebble snapshots of the database by the applied
// index they were taken at, so an erasure can wait for those that still
// see what it removed.
type openSnapshots struct {
	mu      sync.Mutex
	byIndex map[uint64]int
}

// add records a snapshot taken at applied index; call the result when it
// is closed.
func (o *openSnapshots) add(index uint64) (release func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byIndex == nil {
		o.byIndex = map[uint64]int{}
	}
	o.byIndex[index]++
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.byIndex[index]--; o.byIndex[index] == 0 {
			delete(o.byIndex, index)
		}
	}
}

// waitFrom waits until every open snapshot was taken at index or later.
// A snapshot taken at index already holds the removals of the entry at
// index.
func (o *openSnapshots) waitFrom(ctx context.Context, index uint64) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		o.mu.Lock()
		older := 0
		for i, n := range o.byIndex {
			if i < index {
				older += n
			}
		}
		o.mu.Unlock()
		if older == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fsm: erase: %d snapshots taken before index %d still open: %w", older, index, ctx.Err())
		case <-tick.C:
		}
	}
}
