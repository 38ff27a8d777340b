// Package atrest searches every file of a node's data directory for given
// byte strings, the way someone holding the disk would: to prove that what
// was erased cannot be read from any file, and (so such a test can fail)
// that it could be before.
//
// Every regular file is searched raw. Pebble compresses the blocks of its
// sstables, so a raw search can miss what they hold: *.sst files are also
// opened with pebble's own sstable reader, and every point key and value
// (values kept in value blocks included), every range deletion, every
// range key and every user property is searched decoded. Pebble's
// write-ahead logs (*.log), MANIFEST and OPTIONS files store records
// uncompressed: the raw search covers them. The state machine's snapshot
// stream (node/fsm/snapshot.go) is compressed since its format 2: a file
// that starts with that format's magic is also searched decompressed
// (format 1 was plain, and the raw search covers it).
//
// Only tests use this package.
package atrest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"
)

// Finding is one place a needle was found.
type Finding struct {
	File   string // path relative to the scanned directory
	Needle string
	Where  string // "raw bytes", "sstable key", "sstable value", ...
}

func (f Finding) String() string { return fmt.Sprintf("%q in %s (%s)", f.Needle, f.File, f.Where) }

// Scan searches every regular file under dir for each needle. The
// directory may belong to a running node: a file that vanishes while the
// directory is walked (pebble deletes obsolete files in the background)
// is skipped, and an sstable that does not decode is read again for a
// while, since it may be a table being written. One that cannot be read,
// or still does not decode, is an error: a scan that silently skipped a
// file would prove nothing.
func Scan(dir string, needles ...string) ([]Finding, error) {
	return Scanner{}.Scan(dir, needles...)
}

// Scanner is Scan with settings.
type Scanner struct {
	// Settle is how long a table that does not decode is read again (a
	// running database may be writing it); zero means ten seconds.
	Settle time.Duration
}

// Scan is the package's Scan with s's settings.
func (s Scanner) Scan(dir string, needles ...string) ([]Finding, error) {
	settle := s.Settle
	if settle == 0 {
		settle = 10 * time.Second
	}
	var found []Finding
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := scanFile(path, rel, needles, settle)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("atrest: %s: %w", rel, err)
		}
		found = append(found, f...)
		return nil
	})
	return found, err
}

func scanFile(path, rel string, needles []string, settle time.Duration) ([]Finding, error) {
	deadline := time.Now().Add(settle)
	for {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var found []Finding
		for _, n := range needles {
			if bytes.Contains(data, []byte(n)) {
				found = append(found, Finding{File: rel, Needle: n, Where: "raw bytes"})
			}
		}
		var decoded []Finding
		switch {
		case bytes.HasPrefix(data, snapshotMagic):
			decoded, err = scanSnapshot(data, rel, needles)
		case strings.HasSuffix(path, ".sst"):
			decoded, err = scanSSTable(data, rel, needles)
		default:
			return found, nil
		}
		if err == nil {
			return append(found, decoded...), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("decode: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snapshotMagic starts a snapshot stream of format 2, whose body is one
// zstd stream.
var snapshotMagic = []byte("IRXSNAP\x02")

// scanSnapshot searches a snapshot stream's decompressed body. A stream
// that does not decompress may be one being written: the caller reads it
// again for a while, as a table, and then reports the error rather than a
// clean file.
func scanSnapshot(data []byte, rel string, needles []string) ([]Finding, error) {
	zr, err := zstd.NewReader(bytes.NewReader(data[len(snapshotMagic):]), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	body, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decompress snapshot: %w", err)
	}
	var found []Finding
	for _, n := range needles {
		if bytes.Contains(body, []byte(n)) {
			found = append(found, Finding{File: rel, Needle: n, Where: "snapshot stream, decompressed"})
		}
	}
	return found, nil
}

// scanSSTable searches an sstable's decoded contents. It reads from the
// copy already in memory, so a file pebble deletes meanwhile is still
// searched whole.
func scanSSTable(data []byte, rel string, needles []string) (found []Finding, err error) {
	readable, err := sstable.NewSimpleReadable(memFile{bytes.NewReader(data)})
	if err != nil {
		return nil, err
	}
	opts := &pebble.Options{}
	opts.EnsureDefaults()
	r, err := sstable.NewReader(context.Background(), readable, opts.MakeReaderOptions())
	if err != nil {
		return nil, errors.Join(err, readable.Close())
	}
	defer func() { err = errors.Join(err, r.Close()) }()

	check := func(where string, b []byte) {
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, Finding{File: rel, Needle: n, Where: where})
			}
		}
	}
	for k, v := range r.UserProperties {
		check("sstable property", []byte(k))
		check("sstable property", []byte(v))
	}

	// Every point record, tombstones and shadowed versions included: a
	// table holds what its compaction kept, not only what reads see.
	it, err := r.NewIter(sstable.NoTransforms, nil, nil, sstable.AssertNoBlobHandles)
	if err != nil {
		return nil, err
	}
	for kv := it.First(); kv != nil; kv = it.Next() {
		check("sstable key", kv.K.UserKey)
		v, _, err := kv.Value(nil)
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		check("sstable value", v)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}

	dels, err := r.NewRawRangeDelIter(context.Background(), sstable.NoFragmentTransforms, sstable.NoReadEnv)
	if err != nil {
		return nil, err
	}
	if dels != nil {
		s, err := dels.First()
		for ; s != nil; s, err = dels.Next() {
			check("sstable range deletion", s.Start)
			check("sstable range deletion", s.End)
		}
		dels.Close()
		if err != nil {
			return nil, err
		}
	}
	keys, err := r.NewRawRangeKeyIter(context.Background(), sstable.NoFragmentTransforms, sstable.NoReadEnv)
	if err != nil {
		return nil, err
	}
	if keys != nil {
		s, err := keys.First()
		for ; s != nil; s, err = keys.Next() {
			check("sstable range key", s.Start)
			check("sstable range key", s.End)
			for _, k := range s.Keys {
				check("sstable range key", k.Suffix)
				check("sstable range key", k.Value)
			}
		}
		keys.Close()
		if err != nil {
			return nil, err
		}
	}
	return found, nil
}

// memFile serves an sstable's bytes to pebble's reader.
type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

func (m memFile) Stat() (vfs.FileInfo, error) { return memInfo{size: m.Size()}, nil }

// memInfo answers the only question the reader asks of a file: its size.
type memInfo struct {
	os.FileInfo
	size int64
}

func (i memInfo) Size() int64 { return i.size }

func (memInfo) DeviceID() vfs.DeviceID { return vfs.DeviceID{} }
