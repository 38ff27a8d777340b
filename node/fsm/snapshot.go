package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Snapshot stream format: magic, then (uvarint key length, key, uvarint
// value length, value) for every key in order, a zero key length, and a
// CRC-32C of the magic and everything after it up to the checksum. Keys are
// never empty, so the zero length ends the stream unambiguously; the
// checksum catches truncation and damage.
//
// Version 2 compresses everything after the magic as one zstd stream
// (records, end marker and checksum, which is still over the uncompressed
// bytes): a large store's snapshot is written by every node, sent whole to
// a new member and carried by every backup. Version 1 is the same
// uncompressed, and is still read: snapshots and backups a node made
// before.
var (
	snapshotMagic   = []byte("IRXSNAP\x02")
	snapshotMagicV1 = []byte("IRXSNAP\x01")
)

// snapshotWindow is the zstd window a snapshot is written with, and
// maxSnapshotWindow the largest a reader accepts, so a damaged or hostile
// stream cannot make a restore allocate without limit.
const (
	snapshotWindow    = 4 << 20
	maxSnapshotWindow = 16 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot is returned by Restore for a stream that fails its checks.
var ErrCorruptSnapshot = errors.New("fsm: corrupt snapshot")

// Snapshot implements raft.FSM. Raft may compact its log up to this
// snapshot, after which the database (which has no WAL) and the snapshot
// are the only copies of the state. Correctness needs neither a sync nor a
// flush: a node whose database is older than its newest snapshot restores
// the snapshot on start. The flush started here, without waiting, makes
// that rare, so a restart replays a short tail of the log instead.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if _, err := f.db.AsyncFlush(); err != nil {
		return nil, fmt.Errorf("fsm: flush before snapshot: %w", err)
	}
	f.snapshots.Add(1)
	release := f.openSnapshots.add(f.applied.Load())
	return &snapshot{snap: f.db.NewSnapshot(), done: func() { release(); f.snapshots.Done() }}, nil
}

type snapshot struct {
	snap *pebble.Snapshot
	done func()
}

// Persist streams the pebble snapshot to the sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return fmt.Errorf("fsm: snapshot: %w", err)
	}
	sw := newStreamWriter(w)
	for valid := it.First(); valid; valid = it.Next() {
		sw.put(it.Key(), it.Value())
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("fsm: snapshot: %w", err)
	}
	return sw.finish()
}

// streamWriter writes the snapshot stream format (version 2).
type streamWriter struct {
	zw  *zstd.Encoder
	crc hash.Hash32
	bw  *bufio.Writer
	n   [binary.MaxVarintLen64]byte
	err error // of the magic's write or the encoder's set-up
}

func newStreamWriter(w io.Writer) *streamWriter {
	crc := crc32.New(crcTable)
	crc.Write(snapshotMagic)
	// Until the stream is set up, puts go nowhere; finish reports why.
	sw := &streamWriter{crc: crc, bw: bufio.NewWriter(io.Discard)}
	if _, sw.err = w.Write(snapshotMagic); sw.err == nil {
		// One encoder goroutine: a snapshot is written beside the apply
		// loop, and the fastest level keeps the writer ahead of the disk.
		sw.zw, sw.err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(snapshotWindow))
	}
	if sw.err == nil {
		sw.bw = bufio.NewWriterSize(io.MultiWriter(sw.zw, crc), 1<<20)
	}
	return sw
}

// put writes one key and value; a write error is reported by finish.
func (sw *streamWriter) put(k, v []byte) {
	for _, b := range [][]byte{k, v} {
		sw.bw.Write(sw.n[:binary.PutUvarint(sw.n[:], uint64(len(b)))])
		sw.bw.Write(b)
	}
}

// finish writes the end marker and the checksum, and ends the compressed
// stream.
func (sw *streamWriter) finish() error {
	if sw.err != nil {
		return fmt.Errorf("fsm: snapshot: %w", sw.err)
	}
	sw.bw.Write(sw.n[:binary.PutUvarint(sw.n[:], 0)])
	if err := sw.bw.Flush(); err != nil {
		return fmt.Errorf("fsm: snapshot: %w", errors.Join(err, sw.zw.Close()))
	}
	if _, err := sw.zw.Write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32())); err != nil {
		return fmt.Errorf("fsm: snapshot: %w", errors.Join(err, sw.zw.Close()))
	}
	if err := sw.zw.Close(); err != nil {
		return fmt.Errorf("fsm: snapshot: %w", err)
	}
	return nil
}

// RestoredSnapshot copies the snapshot stream of a backup from r to w as
// the first snapshot of a team restored from it: the same state, with a
// RestoreMark of generation (the caller's, unique to this restore; not 0)
// that records where the backup left the feed and the tickets. It
// returns the mark. The stream is checked as Restore checks
// it; w is complete only when it returns nil.
//
// The mark goes into the state, not beside it, so every member of the
// restored team has it from the first snapshot it installs, and the
// federation reads it from the state it serves from.
func RestoredSnapshot(w io.Writer, r io.Reader, generation uint64) (*irxv1.RestoreMark, error) {
	if generation == 0 {
		return nil, errors.New("fsm: a restore's generation must not be 0")
	}
	in, err := openStream(r)
	if err != nil {
		return nil, err
	}
	defer in.close()
	sw := newStreamWriter(w)
	mark := &irxv1.RestoreMark{Generation: generation}
	for {
		key, err := in.chunk()
		if err != nil {
			return nil, err
		}
		if key == nil {
			break
		}
		val, err := in.chunk()
		if err != nil {
			return nil, err
		}
		var counter *uint64
		switch {
		case bytes.Equal(key, keyRestore):
			continue // replaced below
		case bytes.Equal(key, keyFeed):
			counter = &mark.FeedSequence
		case bytes.Equal(key, keyTicket):
			counter = &mark.LastTicket
		case bytes.Equal(key, keyApplied):
			counter = &mark.RaftIndex
		}
		if counter != nil {
			if len(val) != 8 {
				return nil, fmt.Errorf("%w: %s is %d bytes", ErrCorruptSnapshot, key, len(val))
			}
			*counter = binary.BigEndian.Uint64(val)
		}
		sw.put(key, val)
	}
	if err := in.end(); err != nil {
		return nil, err
	}
	enc, err := marshal.Marshal(mark)
	if err != nil {
		return nil, fmt.Errorf("fsm: restore mark: %w", err)
	}
	// Restore loads keys in any order: the mark can follow the rest.
	sw.put(keyRestore, enc)
	if err := sw.finish(); err != nil {
		return nil, err
	}
	return mark, nil
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {
	_ = s.snap.Close()
	s.done()
}

// Restore implements raft.FSM: it builds a new database from the stream
// beside the current one and swaps directories, so a crash at any point
// leaves either the old state or the new one (see recoverDirs).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	// The Raft log this node holds may carry values that the snapshot's
	// state no longer has and whose removal this node will never apply:
	// erase the log up to what the state now covers, whatever happens.
	if err := f.erasures.prepare(); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	defer func() { f.erasures.note(nil, f.applied.Load(), time.Now()) }()
	staging := f.dir + ".restore"
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if err := loadSnapshot(staging, rc, f.log); err != nil {
		return errors.Join(err, os.RemoveAll(staging))
	}

	old := f.dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return errors.Join(fmt.Errorf("fsm: restore: %w", err), os.RemoveAll(staging))
	}
	f.snapshots.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("fsm: restore: close current: %w", err)
	}
	f.db = nil
	if err := os.Rename(f.dir, old); err != nil {
		// Nothing moved: keep serving the old state.
		return errors.Join(fmt.Errorf("fsm: restore: %w", err), f.reopen(f.dir), os.RemoveAll(staging))
	}
	if err := os.Rename(staging, f.dir); err != nil {
		// Put the old state back rather than leave no database.
		return errors.Join(fmt.Errorf("fsm: restore: %w", err), os.Rename(old, f.dir), f.reopen(f.dir))
	}
	if err := syncDir(filepath.Dir(f.dir)); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if err := f.reopen(f.dir); err != nil {
		return err
	}
	// Damage found in the replaced database is gone with it.
	f.health.corrupt.Store(nil)
	f.signalApplied()
	f.log.Info("state machine restored from snapshot", "applied_index", f.applied.Load(), "last_ticket", f.lastTicket.Load())
	return os.RemoveAll(old)
}

// reopen opens dir as the current database; f.mu must be held.
func (f *FSM) reopen(dir string) error {
	db, err := openDB(dir, f.log, f.health.events(dir, f.log))
	if err != nil {
		return err
	}
	if err := f.adopt(db); err != nil {
		return errors.Join(err, db.Close())
	}
	return nil
}

// loadSnapshot writes a snapshot stream into a new, durable database at dir.
func loadSnapshot(dir string, r io.Reader, logger *slog.Logger) error {
	db, err := openDB(dir, logger, nil)
	if err != nil {
		return err
	}
	if err := copySnapshot(db, r); err != nil {
		return errors.Join(err, db.Close())
	}
	if err := db.Flush(); err != nil {
		return errors.Join(fmt.Errorf("fsm: restore: flush: %w", err), db.Close())
	}
	return db.Close()
}

func copySnapshot(db *pebble.DB, r io.Reader) error {
	in, err := openStream(r)
	if err != nil {
		return err
	}
	defer in.close()
	b := db.NewBatch()
	defer func() { _ = b.Close() }()
	for {
		key, err := in.chunk()
		if err != nil {
			return err
		}
		if key == nil {
			break
		}
		val, err := in.chunk()
		if err != nil {
			return err
		}
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("fsm: restore: %w", err)
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("fsm: restore: %w", err)
			}
			b.Reset()
		}
	}
	if err := in.end(); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	return nil
}

// chunkReader reads length-prefixed chunks, keeping the CRC of every byte
// consumed so the trailer can be checked.
type chunkReader struct {
	r   *bufio.Reader
	crc uint32
	zr  *zstd.Decoder // version 2's; nil for version 1
}

// openStream reads a snapshot stream's magic and returns the reader of
// what follows it, decompressed for version 2.
func openStream(r io.Reader) (*chunkReader, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return nil, fmt.Errorf("%w: bad header", ErrCorruptSnapshot)
	}
	in := &chunkReader{crc: crc32.Update(0, crcTable, magic)}
	switch {
	case bytes.Equal(magic, snapshotMagic):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxSnapshotWindow),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("fsm: read snapshot: %w", err)
		}
		in.zr, in.r = zr, bufio.NewReaderSize(zr, 1<<20)
	case bytes.Equal(magic, snapshotMagicV1):
		in.r = bufio.NewReaderSize(r, 1<<20)
	default:
		return nil, fmt.Errorf("%w: bad header", ErrCorruptSnapshot)
	}
	return in, nil
}

// end checks the checksum after the end marker, and that nothing follows
// it in a compressed stream.
func (c *chunkReader) end() error {
	var sum [4]byte
	if _, err := io.ReadFull(c.r, sum[:]); err != nil {
		return fmt.Errorf("%w: missing checksum", ErrCorruptSnapshot)
	}
	if binary.BigEndian.Uint32(sum[:]) != c.crc {
		return fmt.Errorf("%w: checksum mismatch", ErrCorruptSnapshot)
	}
	if c.zr != nil {
		if n, err := c.r.Read(sum[:1]); n > 0 || !errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: data after the checksum (%v)", ErrCorruptSnapshot, err)
		}
	}
	return nil
}

func (c *chunkReader) close() {
	if c.zr != nil {
		c.zr.Close()
	}
}

// maxChunk bounds one key or value so a damaged length cannot make Restore
// allocate without limit.
const maxChunk = 64 << 20

// chunk returns the next chunk, or nil at the end marker.
func (c *chunkReader) chunk() ([]byte, error) {
	n, err := binary.ReadUvarint(c.r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	var lenBuf [binary.MaxVarintLen64]byte
	c.crc = crc32.Update(c.crc, crcTable, lenBuf[:binary.PutUvarint(lenBuf[:], n)])
	if n == 0 {
		return nil, nil
	}
	if n > maxChunk {
		return nil, fmt.Errorf("%w: chunk of %d bytes", ErrCorruptSnapshot, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	c.crc = crc32.Update(c.crc, crcTable, buf)
	return buf, nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// recoverDirs finishes or undoes a Restore that a crash interrupted. The
// staging directory is complete only once the live one has been renamed
// away, so: live and staging both present means the restore had not begun
// its swap (drop staging); live missing means it had (promote staging).
func recoverDirs(dir string) error {
	staging, old := dir+".restore", dir+".old"
	_, liveErr := os.Stat(dir)
	_, stagingErr := os.Stat(staging)
	switch {
	case errors.Is(liveErr, os.ErrNotExist) && stagingErr == nil:
		if err := os.Rename(staging, dir); err != nil {
			return fmt.Errorf("fsm: finish interrupted restore: %w", err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	case stagingErr == nil:
		if err := os.RemoveAll(staging); err != nil {
			return fmt.Errorf("fsm: drop interrupted restore: %w", err)
		}
	}
	if err := os.RemoveAll(dir + ".corrupt"); err != nil {
		return fmt.Errorf("fsm: drop a corrupt state machine: %w", err)
	}
	if _, err := os.Stat(dir); err == nil {
		return os.RemoveAll(old)
	}
	return nil
}
