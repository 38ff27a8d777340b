package atrest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/klauspost/compress/zstd"
)

const canary = "CANARY-7f3a9c1e5b2d"

// hiddenValue holds the canary only where compression turns it into
// back-references: its two halves appear before it, so an LZ compressor
// copies them and the canary's bytes never appear together in the table.
func hiddenValue() []byte {
	return []byte(canary[:11] + " the quick brown fox " + canary[7:] + strings.Repeat(" the quick brown fox "+canary, 50))
}

func wheres(found []Finding, needle string) []string {
	var out []string
	for _, f := range found {
		if f.Needle == needle {
			out = append(out, f.Where)
		}
	}
	return out
}

func TestScanDecodesCompressedSSTables(t *testing.T) {
	for name, profile := range map[string]*sstable.CompressionProfile{
		"fastest (the state machine's)": sstable.FastestCompression,
		"zstd":                          sstable.ZstdCompression,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// No WAL: the sstable is the only file that holds the canary.
			opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, DisableWAL: true}
			for i := range opts.Levels {
				opts.Levels[i].Compression = func() *sstable.CompressionProfile { return profile }
			}
			db, err := pebble.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			inKey := "KEYCANARY-0c4d"
			inRangeDel := "DELCANARY-91ab"
			for _, err := range []error{
				db.Set([]byte("a"), hiddenValue(), pebble.NoSync),
				db.Set([]byte("b/"+inKey), []byte("v"), pebble.NoSync),
				db.DeleteRange([]byte("c/"+inRangeDel), []byte("d"), pebble.NoSync),
				db.Flush(),
				db.Close(),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(tables) == 0 {
				t.Fatal("no sstable was written")
			}
			for _, p := range tables {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(data, []byte(canary)) {
					t.Fatalf("%s holds the canary raw: compression did not hide it, so this test proves nothing", p)
				}
			}
			found, err := Scan(dir, canary, inKey, inRangeDel, "NOT-THERE-5e5e")
			if err != nil {
				t.Fatal(err)
			}
			for needle, want := range map[string]string{canary: "sstable value", inKey: "sstable key", inRangeDel: "sstable range deletion"} {
				if got := wheres(found, needle); !slices.Contains(got, want) {
					t.Errorf("%s found in %v, want it in an %s", needle, got, want)
				}
			}
			if got := wheres(found, "NOT-THERE-5e5e"); len(got) > 0 {
				t.Errorf("found what was never written: %v", got)
			}
		})
	}
}

func TestScanFindsWriteAheadLogsAndOtherFiles(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	// Written and synced, never flushed: only the WAL holds it.
	if err := db.Set([]byte("k"), []byte("value "+canary), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	other := "SNAPCANARY-3d3d"
	if err := os.MkdirAll(filepath.Join(dir, "snapshots", "1-2-3"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snapshots", "1-2-3", "state.bin"), []byte("xx"+other+"yy"), 0o600); err != nil {
		t.Fatal(err)
	}
	found, err := Scan(dir, canary, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var inWAL, inSnapshot bool
	for _, f := range found {
		inWAL = inWAL || (f.Needle == canary && strings.HasSuffix(f.File, ".log"))
		inSnapshot = inSnapshot || (f.Needle == other && f.File == filepath.Join("snapshots", "1-2-3", "state.bin"))
	}
	if !inWAL || !inSnapshot {
		t.Fatalf("found %v; want the canary in a WAL and the other in the snapshot file", found)
	}
}

func TestScanRefusesWhatItCannotDecode(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "000001.sst"), []byte("not a table"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Scanner{Settle: 100 * time.Millisecond}).Scan(dir, canary); err == nil {
		t.Fatal("an undecodable sstable was skipped without an error")
	}
}

// A snapshot stream of format 2 is compressed: the canary is found only
// decompressed, and a stream that does not decompress is an error.
func TestScanDecompressesSnapshotStreams(t *testing.T) {
	dir := t.TempDir()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	stream := zw.EncodeAll(hiddenValue(), []byte("IRXSNAP\x02"))
	if bytes.Contains(stream, []byte(canary)) {
		t.Fatal("the compressed stream shows the canary raw: the test proves nothing")
	}
	path := filepath.Join(dir, "snapshots", "1-2-3", "state.bin")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	found, err := Scan(dir, canary)
	if err != nil {
		t.Fatal(err)
	}
	if got := wheres(found, canary); !slices.Equal(got, []string{"snapshot stream, decompressed"}) {
		t.Fatalf("canary found in %q, want only in the decompressed stream", got)
	}
	if err := os.WriteFile(path, stream[:len(stream)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Scanner{Settle: 100 * time.Millisecond}).Scan(dir, canary); err == nil {
		t.Fatal("a truncated snapshot stream was skipped without an error")
	}
}
