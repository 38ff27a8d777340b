package fsm

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// A backup's snapshot, rewritten for a restored team, restores the same
// state plus a mark of where the backup left the numbering; restoring a
// restored team's backup counts the generation on.
func TestRestoredSnapshot(t *testing.T) {
	src := newHarness(t)
	populate(t, src, 10)
	snap := takeSnapshot(t, src.f)
	if src.f.Restored() != nil {
		t.Fatal("a team never restored has a restore mark")
	}

	var out bytes.Buffer
	mark, err := RestoredSnapshot(&out, bytes.NewReader(snap.data), 7)
	if err != nil {
		t.Fatal(err)
	}
	want := countersOf(src.f)
	if mark.GetGeneration() != 7 || mark.GetFeedSequence() != want.feed || mark.GetLastTicket() != want.ticket || mark.GetRaftIndex() != want.applied {
		t.Fatalf("mark %v, want generation 7 at %+v", mark, want)
	}
	dst := newHarness(t)
	if err := dst.f.Restore((&snapshotBytes{data: out.Bytes()}).reader()); err != nil {
		t.Fatal(err)
	}
	if got := dst.f.Restored(); got.GetGeneration() != 7 || got.GetFeedSequence() != want.feed {
		t.Fatalf("restored state's mark %v", got)
	}
	if got := countersOf(dst.f); got != want {
		t.Fatalf("restored counters %+v, want %+v", got, want)
	}
	got, wantKV := dump(t, dst.f), dump(t, src.f)
	delete(got, string(keyRestore))
	if !maps.Equal(got, wantKV) {
		t.Fatal("the restored state differs from the backup's beyond the mark")
	}

	// The restored team, backed up and restored again: its mark is
	// replaced by the new one.
	var again bytes.Buffer
	mark2, err := RestoredSnapshot(&again, bytes.NewReader(takeSnapshot(t, dst.f).data), 9)
	if err != nil {
		t.Fatal(err)
	}
	if mark2.GetGeneration() != 9 || mark2.GetFeedSequence() != want.feed {
		t.Fatalf("second restore's mark %v", mark2)
	}
}

func TestRestoredSnapshotRefusesDamage(t *testing.T) {
	h := newHarness(t)
	populate(t, h, 3)
	data := takeSnapshot(t, h.f).data
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)-5],
		"flipped":   append(append(bytes.Clone(data[:len(data)/2]), data[len(data)/2]^0x20), data[len(data)/2+1:]...),
		"no magic":  data[3:],
	} {
		if _, err := RestoredSnapshot(&bytes.Buffer{}, bytes.NewReader(bad), 1); !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("%s: %v, want ErrCorruptSnapshot", name, err)
		}
	}
}
