// Package backup is the format of a team's backup: the header, the state
// machine's snapshot stream in chunks, and a trailer with the SHA-256 of
// the header and the chunks, as irx.v1.BackupResponse messages. On the
// wire they are the messages of BackupService/Backup; in a file, the same
// messages each preceded by its length as a varint.
//
// The Decoder checks a backup as it reads it: the header first, the
// checksum and the length only at the end. A restore therefore reads a
// file through once to verify it before writing anything, and again to
// use it.
package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// FormatVersion is the version of the format this package writes and reads.
const FormatVersion = 1

// ChunkSize is the most state bytes one message carries: small enough for
// gRPC's default message limit, large enough that framing costs nothing.
const ChunkSize = 256 << 10

// maxMessage bounds one message read from a file, so a damaged length
// cannot make a reader allocate without limit.
const maxMessage = ChunkSize + 4<<10

// ErrInvalid is the class of every refusal of a backup: damaged,
// truncated, of another team or of an unknown format.
var ErrInvalid = errdefs.New(errdefs.ErrInvalidArgument, "invalid backup")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var marshal = proto.MarshalOptions{Deterministic: true}

// Header returns the header of a backup of team made by node from a
// snapshot consistent at index and term, of size bytes.
func Header(team, node string, index, term, size uint64, now time.Time) *irxv1.BackupHeader {
	return &irxv1.BackupHeader{
		FormatVersion: FormatVersion, TeamId: team, NodeId: node,
		RaftIndex: index, RaftTerm: term, CreateTime: timestamppb.New(now), SizeBytes: size,
	}
}

// Encode sends a backup: the header, content in chunks, the trailer. It
// reads one chunk at a time, and send blocking (a gRPC stream under flow
// control) holds the reading back: memory stays bounded whatever the size.
func Encode(hdr *irxv1.BackupHeader, content io.Reader, send func(*irxv1.BackupResponse) error) error {
	sum := sha256.New()
	enc, err := marshal.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("backup: header: %w", err)
	}
	sum.Write(enc)
	if err := send(&irxv1.BackupResponse{Part: &irxv1.BackupResponse_Header{Header: hdr}}); err != nil {
		return err
	}
	buf := make([]byte, ChunkSize)
	var n uint64
	for {
		k, err := io.ReadFull(content, buf)
		if k > 0 {
			sum.Write(buf[:k])
			n += uint64(k)
			// The message is sent before buf is refilled: grpc encodes it in Send.
			if err := send(&irxv1.BackupResponse{Part: &irxv1.BackupResponse_Chunk{Chunk: buf[:k]}}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("backup: read state: %w", err)
		}
	}
	if hdr.GetSizeBytes() != 0 && n != hdr.GetSizeBytes() {
		return fmt.Errorf("backup: the snapshot held %d bytes, not the %d it announced", n, hdr.GetSizeBytes())
	}
	return send(&irxv1.BackupResponse{Part: &irxv1.BackupResponse_Trailer{Trailer: &irxv1.BackupTrailer{
		Sha256: hex.EncodeToString(sum.Sum(nil)), ContentBytes: n,
	}}})
}

// WriteMessage appends one message of a backup to a file.
func WriteMessage(w io.Writer, m *irxv1.BackupResponse) error {
	_, err := protodelim.MarshalTo(w, m)
	return err
}

// Decoder reads a backup, checking it. Read returns the state's bytes and,
// at the end, io.EOF only if the trailer matches what was read; any damage
// is an error wrapping ErrInvalid.
type Decoder struct {
	next   func() (*irxv1.BackupResponse, error)
	hdr    *irxv1.BackupHeader
	sum    hash.Hash
	n      uint64
	rest   []byte
	err    error
	chunks uint64
}

// NewFileDecoder reads the header of a backup file and checks that it is
// a backup of team in a format this node reads. team empty skips the team
// check.
func NewFileDecoder(r io.Reader, team string) (*Decoder, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	opts := protodelim.UnmarshalOptions{MaxSize: maxMessage}
	return NewDecoder(func() (*irxv1.BackupResponse, error) {
		m := &irxv1.BackupResponse{}
		if err := opts.UnmarshalFrom(br, m); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return nil, io.EOF
			case errors.Is(err, io.ErrUnexpectedEOF):
				return nil, invalid("truncated: the file ends inside a message")
			}
			return nil, invalid("damaged message: %v", err)
		}
		return m, nil
	}, team)
}

// NewDecoder reads the header from next (io.EOF at the end of the
// messages) and checks it as NewFileDecoder does.
func NewDecoder(next func() (*irxv1.BackupResponse, error), team string) (*Decoder, error) {
	d := &Decoder{next: next, sum: sha256.New()}
	m, err := next()
	if errors.Is(err, io.EOF) {
		return nil, invalid("empty: no header")
	}
	if err != nil {
		return nil, err
	}
	hdr := m.GetHeader()
	if hdr == nil {
		return nil, invalid("does not begin with a header: not a backup file")
	}
	if v := hdr.GetFormatVersion(); v != FormatVersion {
		return nil, invalid("format version %d; this irxd reads version %d", v, FormatVersion)
	}
	if hdr.GetTeamId() == "" || hdr.GetRaftIndex() == 0 || hdr.GetRaftTerm() == 0 {
		return nil, invalid("the header lacks the team id, Raft index or term")
	}
	if team != "" && hdr.GetTeamId() != team {
		return nil, invalid("it is a backup of team %q, and this node is configured for team %q: a team is restored only from its own backup", hdr.GetTeamId(), team)
	}
	enc, err := marshal.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("backup: header: %w", err)
	}
	d.sum.Write(enc)
	d.hdr = hdr
	return d, nil
}

// Header is the backup's header.
func (d *Decoder) Header() *irxv1.BackupHeader { return d.hdr }

// Read implements io.Reader over the state's bytes.
func (d *Decoder) Read(p []byte) (int, error) {
	for len(d.rest) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.advance()
	}
	k := copy(p, d.rest)
	d.rest = d.rest[k:]
	return k, nil
}

// advance reads the next message: a chunk into rest, or the trailer,
// checked, giving io.EOF.
func (d *Decoder) advance() error {
	m, err := d.next()
	if errors.Is(err, io.EOF) {
		return invalid("truncated: it ends after %d bytes of state without its trailer", d.n)
	}
	if err != nil {
		return err
	}
	switch part := m.GetPart().(type) {
	case *irxv1.BackupResponse_Chunk:
		d.sum.Write(part.Chunk)
		d.n += uint64(len(part.Chunk))
		d.chunks++
		if size := d.hdr.GetSizeBytes(); size != 0 && d.n > size {
			return invalid("more state than the %d bytes the header announces", size)
		}
		d.rest = part.Chunk
		return nil
	case *irxv1.BackupResponse_Trailer:
		t := part.Trailer
		if t.GetContentBytes() != d.n {
			return invalid("truncated: %d bytes of state, the trailer says %d", d.n, t.GetContentBytes())
		}
		if size := d.hdr.GetSizeBytes(); size != 0 && d.n != size {
			return invalid("truncated: %d bytes of state, the header says %d", d.n, size)
		}
		if got := hex.EncodeToString(d.sum.Sum(nil)); got != t.GetSha256() {
			return invalid("checksum mismatch: SHA-256 %s, the trailer says %s (the file is damaged)", got, t.GetSha256())
		}
		if _, err := d.next(); !errors.Is(err, io.EOF) {
			return invalid("data after the trailer")
		}
		return io.EOF
	default:
		return invalid("a second header after %d bytes of state", d.n)
	}
}

// Verify reads a whole backup file and checks it, writing nothing: its
// header if the file is a complete, undamaged backup of team.
func Verify(r io.Reader, team string) (*irxv1.BackupHeader, error) {
	d, err := NewFileDecoder(r, team)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, d); err != nil {
		return nil, err
	}
	return d.Header(), nil
}
