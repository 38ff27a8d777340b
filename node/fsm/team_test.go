package fsm

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// teamDescription is a small valid description (record's tests check
// what a valid one is; this one only needs to be stored).
func teamDescription() *irxv1.TeamDescription {
	return &irxv1.TeamDescription{
		Contact: &irxv1.TeamContactInformation{Name: "CERT-A", EmailAddresses: []*irxv1.TeamEmailAddress{{Address: "cert@cert-a.example"}}},
		Charter: &irxv1.TeamCharter{MissionStatement: "To help our constituency respond to incidents."},
	}
}

func (h *harness) setTeam(d *irxv1.TeamDescription, expected int64) *Result {
	h.t.Helper()
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_SetTeamDescription{SetTeamDescription: &irxv1.SetTeamDescriptionCommand{
		Description: d, ExpectedVersion: expected,
	}}}))
}

func TestTeamDescriptionVersionsAndOutputOnlyFields(t *testing.T) {
	h := newHarness(t)
	if _, err := h.f.TeamDescription(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before any update: %v, want ErrNotFound", err)
	}
	d := teamDescription()
	// Output-only fields from the proposer are ignored: the team id is the
	// state machine's team, the version the next one, the time the
	// leader's propose time.
	d.TeamId, d.Version = "cert-z", 41
	if res := h.setTeam(d, 0); res.Err != nil {
		t.Fatal(res.Err)
	}
	got, err := h.f.TeamDescription()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTeamId() != team || got.GetVersion() != 1 || !got.GetUpdateTime().AsTime().Equal(h.clock) {
		t.Fatalf("stored %s v%d at %v, want %s v1 at %v", got.GetTeamId(), got.GetVersion(), got.GetUpdateTime().AsTime(), team, h.clock)
	}
	want := teamDescription()
	want.TeamId, want.Version, want.UpdateTime = got.GetTeamId(), got.GetVersion(), got.GetUpdateTime()
	if !proto.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}

	// A full replacement makes version 2; a stale expected version is a
	// conflict and changes nothing.
	d2 := teamDescription()
	d2.Contact.Name = "CERT-A (renamed)"
	d2.Charter = nil // a full replacement: what is left out goes
	if res := h.setTeam(d2, 1); res.Err != nil || res.TeamDescription.GetVersion() != 2 || res.TeamDescription.GetContact().GetName() != "CERT-A (renamed)" {
		t.Fatalf("second version: %v, %v", res.TeamDescription, res.Err)
	}
	if res := h.setTeam(teamDescription(), 1); !errors.Is(res.Err, ErrVersionConflict) {
		t.Fatalf("stale expected version: %v, want ErrVersionConflict", res.Err)
	}
	got, _ = h.f.TeamDescription()
	if got.GetVersion() != 2 || got.GetContact().GetName() != "CERT-A (renamed)" || got.GetCharter() != nil {
		t.Fatalf("after the replacement: %v", got)
	}

	// Invalid content is refused by the state machine too, with field
	// violations, and nothing changes.
	bad := teamDescription()
	bad.Contact.EmailAddresses[0].Address = "not an address"
	res := h.setTeam(bad, 0)
	var verr *record.ValidationError
	if !errors.As(res.Err, &verr) || verr.Violations[0].Field != "description.contact.email_addresses[0].address" {
		t.Fatalf("invalid description: %v", res.Err)
	}
	if got, _ := h.f.TeamDescription(); got.GetVersion() != 2 {
		t.Fatalf("an invalid description changed the state: v%d", got.GetVersion())
	}
	if res := h.setTeam(nil, 0); !errors.As(res.Err, &verr) {
		t.Fatalf("no description: %v", res.Err)
	}

	// It is part of the state: a snapshot carries it, and replaying the
	// log after a restart changes nothing.
	dst := newHarness(t)
	if err := dst.f.Restore(takeSnapshot(t, h.f).reader()); err != nil {
		t.Fatal(err)
	}
	if restored, err := dst.f.TeamDescription(); err != nil || !proto.Equal(restored, got) {
		t.Fatalf("after restore: %v, %v", restored, err)
	}
}
