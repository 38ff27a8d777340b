package backup_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/node/backup"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// encode makes a backup file of content.
func encode(t testing.TB, team string, content []byte) []byte {
	t.Helper()
	var file bytes.Buffer
	hdr := backup.Header(team, "node1", 42, 3, uint64(len(content)), time.Unix(1700000000, 0))
	err := backup.Encode(hdr, bytes.NewReader(content), func(m *irxv1.BackupResponse) error {
		// Encode reuses its chunk buffer after send returns.
		return backup.WriteMessage(&file, proto.Clone(m).(*irxv1.BackupResponse))
	})
	if err != nil {
		t.Fatal(err)
	}
	return file.Bytes()
}

func TestRoundTrip(t *testing.T) {
	content := make([]byte, 3*backup.ChunkSize+17)
	_, _ = rand.Read(content)
	file := encode(t, "cert-a", content)
	d, err := backup.NewFileDecoder(bytes.NewReader(file), "cert-a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(content))
	}
	if h := d.Header(); h.GetRaftIndex() != 42 || h.GetRaftTerm() != 3 || h.GetTeamId() != "cert-a" || h.GetNodeId() != "node1" {
		t.Fatalf("header %v", h)
	}
}

func refused(t *testing.T, file []byte, team, want string) {
	t.Helper()
	_, err := backup.Verify(bytes.NewReader(file), team)
	if err == nil {
		t.Fatalf("accepted; want a refusal saying %q", want)
	}
	if !errors.Is(err, backup.ErrInvalid) || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("%v: not of class ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%v: does not say %q", err, want)
	}
}

func TestRefusesOtherTeam(t *testing.T) {
	refused(t, encode(t, "cert-a", []byte("state")), "cert-b", `backup of team "cert-a", and this node is configured for team "cert-b"`)
}

func TestRefusesNonBackup(t *testing.T) {
	refused(t, nil, "cert-a", "empty")
	refused(t, []byte("IRXSNAP\x01 not a backup file"), "cert-a", "")
}

// Every truncation of a backup is refused, wherever the file ends.
func TestRefusesEveryTruncation(t *testing.T) {
	file := encode(t, "cert-a", bytes.Repeat([]byte("state"), backup.ChunkSize/2))
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, len(file)-1).Draw(t, "length")
		if _, err := backup.Verify(bytes.NewReader(file[:n]), "cert-a"); !errors.Is(err, backup.ErrInvalid) {
			t.Fatalf("a file cut to %d of %d bytes: %v", n, len(file), err)
		}
	})
	refused(t, file[:len(file)-3], "cert-a", "truncated")
}

// Any one changed byte is refused: by the checksum, or earlier by the
// framing or the header.
func TestRefusesEveryFlippedByte(t *testing.T) {
	file := encode(t, "cert-a", bytes.Repeat([]byte("state"), 1000))
	rapid.Check(t, func(t *rapid.T) {
		i := rapid.IntRange(0, len(file)-1).Draw(t, "offset")
		x := rapid.ByteRange(1, 255).Draw(t, "xor")
		bad := bytes.Clone(file)
		bad[i] ^= x
		if _, err := backup.Verify(bytes.NewReader(bad), ""); err == nil {
			t.Fatalf("byte %d of %d xor %#x accepted", i, len(file), x)
		}
	})
	bad := bytes.Clone(file)
	bad[len(bad)/2] ^= 1
	refused(t, bad, "cert-a", "checksum mismatch")
}

func TestRefusesDataAfterTrailer(t *testing.T) {
	file := encode(t, "cert-a", []byte("state"))
	var extra bytes.Buffer
	_ = backup.WriteMessage(&extra, &irxv1.BackupResponse{Part: &irxv1.BackupResponse_Chunk{Chunk: []byte("more")}})
	refused(t, append(bytes.Clone(file), extra.Bytes()...), "cert-a", "after the trailer")
}
