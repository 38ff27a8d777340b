package raftstore

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCodecRoundTrip(t *testing.T) {
	cases := []*raft.Log{
		{},
		{Index: 1, Term: 1, Type: raft.LogNoop},
		{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogType(255),
			Data: bytes.Repeat([]byte{0xab}, 70000), Extensions: []byte{0},
			AppendedAt: time.Unix(1<<40, 999999999)},
		{Index: 5, Term: 2, Type: raft.LogConfiguration, Data: []byte("cfg"),
			AppendedAt: time.Unix(-1, 1)},
		{Index: 9, Term: 3, AppendedAt: time.Unix(0, 0)},
		testLog(123),
	}
	for _, in := range cases {
		enc := appendLog(nil, in)
		if len(enc) != encodedLogLen(in) {
			t.Fatalf("encodedLogLen = %d, encoded %d bytes", encodedLogLen(in), len(enc))
		}
		var out raft.Log
		if err := decodeLog(enc, &out); err != nil {
			t.Fatalf("decode %+v: %v", in, err)
		}
		if !logsEqual(in, &out) {
			t.Fatalf("round trip: got %+v, want %+v", out, *in)
		}
		if in.AppendedAt.IsZero() != out.AppendedAt.IsZero() {
			t.Fatalf("IsZero changed: %v -> %v", in.AppendedAt, out.AppendedAt)
		}
		// Output must not alias the input buffer, which pebble reuses.
		if len(out.Data) > 0 {
			enc[len(enc)-1-len(in.Extensions)-1] ^= 0xff
			if !bytes.Equal(out.Data, in.Data) {
				t.Fatal("decoded Data aliases the encoded buffer")
			}
		}
	}
}

func TestCodecSize(t *testing.T) {
	// Guard against accidental bloat: a typical entry costs about 20
	// bytes of framing.
	l := &raft.Log{Index: 1 << 30, Term: 12, Data: make([]byte, 1024), AppendedAt: time.Now()}
	if overhead := encodedLogLen(l) - 1024; overhead > 24 {
		t.Fatalf("framing overhead %d bytes", overhead)
	}
}

func FuzzDecodeLog(f *testing.F) {
	for _, l := range []*raft.Log{{}, testLog(1), testLog(1 << 40), {Index: math.MaxUint64, Data: []byte{1}}} {
		f.Add(appendLog(nil, l), l.Index, l.Term, uint8(l.Type), l.Data, l.Extensions, l.AppendedAt.Unix(), uint32(l.AppendedAt.Nanosecond()))
	}
	f.Add([]byte{}, uint64(0), uint64(0), uint8(0), []byte(nil), []byte(nil), int64(zeroUnix), uint32(0))
	f.Add([]byte{logFormatV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint64(1), uint64(1), uint8(1), []byte("x"), []byte("y"), int64(math.MinInt64), uint32(math.MaxUint32))

	f.Fuzz(func(t *testing.T, raw []byte, index, term uint64, typ uint8, data, ext []byte, sec int64, nsec uint32) {
		// Arbitrary bytes: must return, not panic; if accepted, the result
		// must be stable under re-encoding.
		var got raft.Log
		if err := decodeLog(raw, &got); err == nil {
			var again raft.Log
			if err := decodeLog(appendLog(nil, &got), &again); err != nil {
				t.Fatalf("re-decode of accepted input failed: %v", err)
			}
			if !logsEqual(&got, &again) {
				t.Fatalf("unstable decode: %+v vs %+v", got, again)
			}
		}

		// Valid logs: exact size prediction, lossless round trip, and every
		// strict prefix rejected (a torn value is never silently accepted).
		in := &raft.Log{
			Index: index, Term: term, Type: raft.LogType(typ),
			Data: data, Extensions: ext,
			AppendedAt: time.Unix(sec, int64(nsec%uint32(time.Second))),
		}
		enc := appendLog(nil, in)
		if len(enc) != encodedLogLen(in) {
			t.Fatalf("encodedLogLen = %d, encoded %d", encodedLogLen(in), len(enc))
		}
		var out raft.Log
		if err := decodeLog(enc, &out); err != nil {
			t.Fatalf("decode of valid log: %v", err)
		}
		if !logsEqual(in, &out) {
			t.Fatalf("round trip: got %+v, want %+v", out, *in)
		}
		// All header-sized prefixes plus a few cuts inside the payload keep
		// this linear in the input size.
		cuts := []int{len(enc) / 2, len(enc) - 2, len(enc) - 1}
		for i := range min(len(enc), 48) {
			cuts = append(cuts, i)
		}
		for _, i := range cuts {
			if i < 0 || i >= len(enc) {
				continue
			}
			if err := decodeLog(enc[:i], &out); err == nil {
				t.Fatalf("prefix of length %d/%d accepted", i, len(enc))
			}
		}
	})
}
