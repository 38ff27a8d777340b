package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// bufferSink is a raft.SnapshotSink that keeps the stream in memory.
type bufferSink struct {
	bytes.Buffer
	failAfter int // Write fails once the buffer would exceed this (if > 0)
	closed    bool
	cancelled bool
}

func (s *bufferSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}
func (s *bufferSink) ID() string    { return "test-sink" }
func (s *bufferSink) Close() error  { s.closed = true; return nil }
func (s *bufferSink) Cancel() error { s.cancelled = true; return nil }

// snapshotBytes is a persisted snapshot stream.
type snapshotBytes struct{ data []byte }

// trackingReader records whether Restore closed its input.
type trackingReader struct {
	io.Reader
	closed bool
}

func (r *trackingReader) Close() error { r.closed = true; return nil }

func (s *snapshotBytes) reader() *trackingReader {
	return &trackingReader{Reader: bytes.NewReader(s.data)}
}

func takeSnapshot(t testing.TB, f *FSM) *snapshotBytes {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist left the sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return &snapshotBytes{data: bytes.Clone(sink.Bytes())}
}

// populate builds a state with versions, a request id, a foreign record and
// a rejected entry.
func populate(t *testing.T, h *harness, n int) {
	t.Helper()
	for i := range n {
		inc := newIncident()
		inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_OTHER, Value: fmt.Sprint("ioc-", i%3)}}
		if res := h.apply(h.createLog(inc, fmt.Sprint("req-", i))); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	h.update(&irxv1.Incident{Id: idOf(1), Status: irxv1.Status_STATUS_RESOLVED}, "status")
	h.update(&irxv1.Incident{Id: idOf(1), Tlp: irxv1.Tlp_TLP_RED}, "tlp")
	h.asTeam("cert-b", func() { h.create(newIncident()) })
	h.apply(h.entry(raft.LogCommand, []byte("junk")))
}

func noStagingLeft(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir + ".restore", dir + ".old"} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", filepath.Base(d), err)
		}
	}
}

func TestSnapshotRestoreIntoFreshFSM(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 20)
	snap := takeSnapshot(t, src.f)
	want, wantCounters := digest(t, src.f), countersOf(src.f)

	dst := newHarness(t)
	rc := snap.reader()
	if err := dst.f.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Errorf("Restore did not close its reader")
	}
	noStagingLeft(t, dst.dir)
	if !bytes.Equal(digest(t, dst.f), want) {
		t.Fatalf("restored digest differs from the source")
	}
	if got := countersOf(dst.f); got != wantCounters {
		t.Fatalf("restored counters %+v, want %+v", got, wantCounters)
	}

	// Reads work on the restored state.
	if got, wantInc := mustGet(t, dst.f, idOf(1), 0), mustGet(t, src.f, idOf(1), 0); !proto.Equal(got, wantInc) || got.GetVersion() != 3 {
		t.Fatalf("Get after restore = %v, want %v", got, wantInc)
	}
	if vs, _, err := dst.f.Versions(idOf(1), 0, ""); err != nil || len(vs) != 3 {
		t.Fatalf("Versions after restore: %d, %v", len(vs), err)
	}
	if got := listAll(t, dst.f, Query{Indicator: "ioc-1"}, 2); !slices.Equal(got, listAll(t, src.f, Query{Indicator: "ioc-1"}, 2)) || len(got) != 7 {
		t.Fatalf("List(indicator) after restore = %v", got)
	}
	if got := listAll(t, dst.f, Query{OriginTeam: "cert-b"}, 10); !slices.Equal(got, []string{"cert-b:21"}) {
		t.Fatalf("List(origin cert-b) after restore = %v", got)
	}

	// The restored replica continues the log exactly like the source:
	// request ids, tickets and the feed carry over.
	dst.index, dst.clock = src.index, src.clock
	next := []*raft.Log{
		src.createLog(newIncident(), "req-3"), // retry: no new ticket
		src.createLog(newIncident(), "req-new"),
		src.updateLog(&irxv1.Incident{Id: idOf(2), Priority: irxv1.Priority_PRIORITY_LOW}, 1, "priority"),
	}
	srcRes, dstRes := src.f.ApplyBatch(next), dst.f.ApplyBatch(next)
	for i := range next {
		a, b := asResult(t, srcRes[i]), asResult(t, dstRes[i])
		if !proto.Equal(a.Incident, b.Incident) || (a.Err == nil) != (b.Err == nil) {
			t.Fatalf("entry %d: source %v/%v, restored %v/%v", i, a.Incident, a.Err, b.Incident, b.Err)
		}
	}
	if asResult(t, dstRes[0]).Incident.GetId() != idOf(4) || asResult(t, dstRes[1]).Incident.GetId() != idOf(22) {
		t.Fatalf("restored replica: retry gave %s, new create %s", asResult(t, dstRes[0]).Incident.GetId(), asResult(t, dstRes[1]).Incident.GetId())
	}
	if !bytes.Equal(digest(t, dst.f), digest(t, src.f)) {
		t.Fatalf("source and restored replica diverged after applying the same entries")
	}

	// Entries the snapshot covers are skipped by the restored replica.
	if res := dst.f.ApplyBatch(next); res[0] != nil || res[2] != nil {
		t.Fatalf("entries covered by the state re-applied: %v", res)
	}

	// The restored state survives a close and reopen.
	d := digest(t, dst.f)
	if err := dst.f.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openFSM(t, dst.dir)
	if !bytes.Equal(digest(t, reopened), d) {
		t.Fatalf("restored state lost on reopen")
	}
}

func TestSnapshotThroughRaftSnapshotStore(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 5)
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, src.f.AppliedIndex(), 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	metas, err := store.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("snapshot store holds %d snapshots, %v", len(metas), err)
	}
	_, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	if err := dst.f.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !bytes.Equal(digest(t, dst.f), digest(t, src.f)) || countersOf(dst.f) != countersOf(src.f) {
		t.Fatalf("restore through raft's snapshot store differs")
	}
}

// TestSnapshotIsPointInTime checks later applies do not leak into a
// snapshot that is being persisted.
func TestSnapshotIsPointInTime(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 4)
	want, wantCounters := digest(t, src.f), countersOf(src.f)
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		src.create(newIncident())
	}
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := newHarness(t)
	if err := dst.f.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest(t, dst.f), want) || countersOf(dst.f) != wantCounters {
		t.Fatalf("snapshot holds writes made after it was taken: counters %+v, want %+v", countersOf(dst.f), wantCounters)
	}
}

func TestPersistFailureCancelsSink(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 3)
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &bufferSink{failAfter: 1}
	if err := snap.Persist(sink); err == nil {
		t.Fatalf("Persist into a failing sink succeeded")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("failing Persist: sink cancelled=%v closed=%v, want cancelled only", sink.cancelled, sink.closed)
	}
}

// TestCloseWaitsForSnapshotRelease checks the database is not closed under
// a snapshot that raft is still persisting.
func TestCloseWaitsForSnapshotRelease(t *testing.T) {
	h := newHarness(t)
	populate(t, h, 2)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- h.f.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a snapshot was open", err)
	case <-time.After(100 * time.Millisecond):
	}
	// The snapshot is still readable: its database is open.
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist while Close waits: %v", err)
	}
	snap.Release()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not return after Release")
	}
}

func TestRestoreReplacesContents(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 3)
	snap := takeSnapshot(t, src.f)

	dst := newHarness(t)
	for range 9 {
		inc := newIncident()
		inc.Tlp = irxv1.Tlp_TLP_GREEN
		inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_OTHER, Value: "only-in-dst"}}
		dst.create(inc)
	}
	dst.update(&irxv1.Incident{Id: idOf(9), Status: irxv1.Status_STATUS_FUTURE}, "status")
	if dst.f.AppliedIndex() <= src.f.AppliedIndex() {
		t.Fatalf("setup: destination should be ahead")
	}
	if err := dst.f.Restore(snap.reader()); err != nil {
		t.Fatal(err)
	}
	noStagingLeft(t, dst.dir)
	if !bytes.Equal(digest(t, dst.f), digest(t, src.f)) || countersOf(dst.f) != countersOf(src.f) {
		t.Fatalf("restore did not replace the contents: counters %+v, want %+v", countersOf(dst.f), countersOf(src.f))
	}
	if _, err := dst.f.Get(idOf(9), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("incident of the old state still readable: %v", err)
	}
	for _, q := range []Query{{Indicator: "only-in-dst"}, {TLP: irxv1.Tlp_TLP_GREEN}, {Status: irxv1.Status_STATUS_FUTURE}} {
		if got := listAll(t, dst.f, q, 10); len(got) != 0 {
			t.Fatalf("index entries of the old state survive: List(%+v) = %v", q, got)
		}
	}
	// Restoring the same snapshot twice is fine.
	if err := dst.f.Restore(snap.reader()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest(t, dst.f), digest(t, src.f)) {
		t.Fatalf("second restore differs")
	}
}

func TestRestoreRejectsCorruptStreams(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 6)
	good := takeSnapshot(t, src.f).data
	if !bytes.HasPrefix(good, snapshotMagic) {
		t.Fatalf("stream does not start with the magic")
	}

	dst := newHarness(t)
	populate(t, dst, 2)
	dst.create(newIncident())
	before, beforeCounters := digest(t, dst.f), countersOf(dst.f)
	beforeInc := mustGet(t, dst.f, idOf(1), 0)

	flip := func(pos int, bit byte) []byte { return flipped(good, pos, bit) }
	v1 := asVersion1(t, good)
	variants := map[string][]byte{
		"empty":                                  nil,
		"magic only":                             bytes.Clone(snapshotMagic),
		"bad magic":                              append([]byte("IRXSNAP\x03"), good[len(snapshotMagic):]...),
		"version 1 magic on a compressed stream": append(bytes.Clone(snapshotMagicV1), good[len(snapshotMagic):]...),
		"version 2 magic on a plain stream":      append(bytes.Clone(snapshotMagic), v1[len(snapshotMagicV1):]...),
		"data after the stream":                  append(bytes.Clone(good), good[len(snapshotMagic):]...),
		"compressed huge chunk length":           compressedStream(t, append([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 64)...)),
		"compressed varint overflow":             compressedStream(t, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}),
		"version 1 truncated":                    v1[:len(v1)/2],
		"version 1 checksum flipped":             flipped(v1, len(v1)-1, 0x80),
		"version 1 end marker damaged":           flipped(v1, len(v1)-5, 0x01),
		"truncated at 1":                         good[:1],
		"truncated mid-way":                      good[:len(good)/2],
		"no checksum":                            good[:len(good)-4],
		"partial checksum":                       good[:len(good)-1],
		"checksum flipped":                       flip(len(good)-1, 0x80),
		"end marker damaged":                     flip(len(good)-5, 0x01),
		"huge chunk length": append(append(bytes.Clone(snapshotMagicV1), 0xff, 0xff, 0xff, 0xff, 0x0f), // 4 GiB key
			make([]byte, 64)...),
		"varint overflow": append(bytes.Clone(snapshotMagicV1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for i := range 8 {
		pos := len(snapshotMagicV1) + i*(len(v1)-len(snapshotMagicV1)-1)/7
		variants[fmt.Sprintf("version 1 bit flip at %d", pos)] = flipped(v1, pos, byte(1)<<i)
	}
	// Single-bit flips across the whole stream, key and value bytes alike.
	for i := 0; i < 24; i++ {
		pos := len(snapshotMagic) + i*(len(good)-len(snapshotMagic)-1)/23
		variants[fmt.Sprintf("bit flip at %d", pos)] = flip(pos, byte(1)<<(i%8))
	}
	for name, data := range variants {
		t.Run(name, func(t *testing.T) {
			rc := &trackingReader{Reader: bytes.NewReader(data)}
			err := dst.f.Restore(rc)
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("Restore: %v, want ErrCorruptSnapshot", err)
			}
			if !rc.closed {
				t.Errorf("Restore did not close its reader")
			}
			noStagingLeft(t, dst.dir)
			if !bytes.Equal(digest(t, dst.f), before) || countersOf(dst.f) != beforeCounters {
				t.Fatalf("failed restore changed the state")
			}
			if got := mustGet(t, dst.f, idOf(1), 0); !proto.Equal(got, beforeInc) {
				t.Fatalf("failed restore: Get = %v", got)
			}
		})
	}
	// The state machine still works after all those failures.
	dst.create(newIncident())
	if err := dst.f.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
		t.Fatalf("valid restore after failed ones: %v", err)
	}
	if !bytes.Equal(digest(t, dst.f), digest(t, src.f)) {
		t.Fatalf("valid restore after failed ones differs")
	}
}

func flipped(data []byte, pos int, bit byte) []byte {
	b := bytes.Clone(data)
	b[pos] ^= bit
	return b
}

// asVersion1 rewrites a snapshot stream in the uncompressed format of
// version 1, as a node of an earlier build wrote it.
func asVersion1(t testing.TB, stream []byte) []byte {
	t.Helper()
	body := decompressed(t, stream)
	body = body[:len(body)-4] // the checksum, of the version 2 magic
	out := append(bytes.Clone(snapshotMagicV1), body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// decompressed is what follows a version 2 stream's magic, decompressed.
func decompressed(t testing.TB, stream []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(stream, snapshotMagic) {
		t.Fatalf("not a version 2 stream: %q", stream[:min(len(stream), len(snapshotMagic))])
	}
	zr, err := zstd.NewReader(bytes.NewReader(stream[len(snapshotMagic):]))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// compressedStream is a version 2 stream of body: the magic, then body
// compressed (records, end marker and checksum as the caller wrote them).
func compressedStream(t *testing.T, body []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(body, bytes.Clone(snapshotMagic))
}

// A snapshot of an earlier build (version 1, uncompressed) restores to the
// same state as the stream this build writes, and is smaller than it.
func TestRestoreReadsVersion1Snapshots(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 20)
	good := takeSnapshot(t, src.f).data
	v1 := asVersion1(t, good)
	if len(good) >= len(v1) {
		t.Errorf("the compressed stream is %d bytes, the uncompressed %d", len(good), len(v1))
	}
	for name, stream := range map[string][]byte{"version 1": v1, "version 2": good} {
		dst := newHarness(t)
		populate(t, dst, 2)
		if err := dst.f.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
			t.Fatalf("%s: Restore: %v", name, err)
		}
		if !bytes.Equal(digest(t, dst.f), digest(t, src.f)) || countersOf(dst.f) != countersOf(src.f) {
			t.Errorf("%s: the restored state differs from the snapshot's source", name)
		}
	}
}

// makeState builds a state machine in dir with n incidents and returns its
// digest and counters.
func makeState(t *testing.T, dir string, n int) ([]byte, counters) {
	t.Helper()
	f, err := Open(dir, team, discard)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, f: f, dir: dir, clock: t0}
	for range n {
		h.create(newIncident())
	}
	d, c := digest(t, f), countersOf(f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return d, c
}

func TestRecoverDirs(t *testing.T) {
	type state struct {
		digest   []byte
		counters counters
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, live string) state // returns the state Open must end in
	}{
		{"crash after live was renamed to .old", func(t *testing.T, live string) state {
			makeState(t, live, 5) // the old state, renamed away
			if err := os.Rename(live, live+".old"); err != nil {
				t.Fatal(err)
			}
			d, c := makeState(t, live+".restore", 3) // the complete new state
			return state{d, c}
		}},
		{"crash after the swap, before .old was removed", func(t *testing.T, live string) state {
			d, c := makeState(t, live, 3)
			makeState(t, live+".old", 5)
			return state{d, c}
		}},
		{"crash while staging a pebble database", func(t *testing.T, live string) state {
			d, c := makeState(t, live, 5)
			makeState(t, live+".restore", 3)
			return state{d, c}
		}},
		{"crash while staging, staging unreadable", func(t *testing.T, live string) state {
			d, c := makeState(t, live, 5)
			if err := os.MkdirAll(live+".restore", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(live+".restore", "MANIFEST-000001"), []byte("half"), 0o644); err != nil {
				t.Fatal(err)
			}
			return state{d, c}
		}},
		{"crash during the first restore of an empty node", func(t *testing.T, live string) state {
			f := openFSM(t, live) // an empty live state, renamed away
			_ = f.Close()
			if err := os.Rename(live, live+".old"); err != nil {
				t.Fatal(err)
			}
			d, c := makeState(t, live+".restore", 2)
			return state{d, c}
		}},
		{"nothing on disk", func(t *testing.T, live string) state {
			f, err := Open(t.TempDir()+"/empty", team, discard)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			return state{digest(t, f), countersOf(f)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := filepath.Join(t.TempDir(), "state")
			want := tt.setup(t, live)
			f, err := Open(live, team, discard)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer f.Close()
			noStagingLeft(t, live)
			if !bytes.Equal(digest(t, f), want.digest) || countersOf(f) != want.counters {
				t.Fatalf("Open ended in the wrong state: counters %+v, want %+v", countersOf(f), want.counters)
			}
			// And it is a working state machine.
			h := &harness{t: t, f: f, dir: live, index: f.AppliedIndex(), clock: t0.Add(time.Hour)}
			if got := h.create(newIncident()); got.GetId() != idOf(want.counters.ticket+1) {
				t.Fatalf("create after recovery: %s", got.GetId())
			}
		})
	}
}
