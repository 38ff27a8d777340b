package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// logFormatV1 is the first byte of every encoded log value. Bumping it lets a
// future layout coexist with entries already on disk: old entries keep
// decoding through their own branch, and an unknown version is reported as an
// error instead of being misread.
//
// Layout of version 1 (varints are encoding/binary's):
//
//	version    byte (= 1)
//	type       byte (raft.LogType)
//	index      uvarint
//	term       uvarint
//	appendedAt varint Unix seconds, uvarint nanoseconds (< 1e9)
//	data       uvarint length, bytes
//	extensions uvarint length, bytes
//
// Type is stored as-is without validation so that log types added by newer
// raft versions survive a round trip through this store. Empty Data and
// Extensions decode as nil: raft never distinguishes nil from empty, and
// preserving the difference would cost a flag byte per entry.
const logFormatV1 byte = 1

// zeroUnix is time.Time{}.Unix(). The zero AppendedAt is mapped back to
// time.Time{} on decode so IsZero (and reflect.DeepEqual) behave the same
// before and after a round trip.
const zeroUnix = -62135596800

var errCorruptLog = errors.New("corrupt log entry")

// encodedLogLen returns the exact size appendLog will produce, so the value
// can be written straight into pebble's batch buffer without a scratch copy.
func encodedLogLen(l *raft.Log) int {
	sec, nsec := logTime(l.AppendedAt)
	return 2 +
		uvarintLen(l.Index) +
		uvarintLen(l.Term) +
		varintLen(sec) +
		uvarintLen(nsec) +
		uvarintLen(uint64(len(l.Data))) + len(l.Data) +
		uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions)
}

// appendLog appends the v1 encoding of l to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	sec, nsec := logTime(l.AppendedAt)
	dst = append(dst, logFormatV1, byte(l.Type))
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = binary.AppendVarint(dst, sec)
	dst = binary.AppendUvarint(dst, nsec)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return dst
}

func logTime(t time.Time) (sec int64, nsec uint64) {
	return t.Unix(), uint64(t.Nanosecond())
}

// decodeLog decodes b into *out. The input is typically a buffer owned by
// pebble that is only valid until its closer runs, so Data and Extensions are
// always copied. On error *out is left untouched; every length is checked
// against the remaining input before use so corrupt bytes can neither panic
// nor trigger a huge allocation.
func decodeLog(b []byte, out *raft.Log) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty value", errCorruptLog)
	}
	if b[0] != logFormatV1 {
		return fmt.Errorf("%w: unknown format version %d", errCorruptLog, b[0])
	}
	if len(b) < 2 {
		return fmt.Errorf("%w: truncated header", errCorruptLog)
	}
	d := decoder{b: b[2:]}
	l := raft.Log{Type: raft.LogType(b[1])}
	l.Index = d.uvarint("index")
	l.Term = d.uvarint("term")
	sec := d.varint("appended-at seconds")
	nsec := d.uvarint("appended-at nanoseconds")
	data := d.bytes("data")
	ext := d.bytes("extensions")
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorruptLog, len(d.b))
	}
	if nsec >= uint64(time.Second) {
		return fmt.Errorf("%w: appended-at nanoseconds %d out of range", errCorruptLog, nsec)
	}
	if sec != zeroUnix || nsec != 0 {
		l.AppendedAt = time.Unix(sec, int64(nsec)).UTC()
	}
	// One allocation for both payloads; capacities are clipped so an append
	// to Data by the caller cannot scribble over Extensions.
	if n := len(data) + len(ext); n > 0 {
		buf := make([]byte, n)
		copy(buf, data)
		copy(buf[len(data):], ext)
		if len(data) > 0 {
			l.Data = buf[:len(data):len(data)]
		}
		if len(ext) > 0 {
			l.Extensions = buf[len(data):]
		}
	}
	*out = l
	return nil
}

// decoder reads varint fields sequentially and remembers the first failure,
// which keeps decodeLog a straight line instead of an error check per field.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint", errCorruptLog, field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad %s varint", errCorruptLog, field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a sub-slice of the input (not a copy).
func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %s length %d exceeds remaining %d bytes", errCorruptLog, field, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	// Zig-zag, as binary.PutVarint does.
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}
