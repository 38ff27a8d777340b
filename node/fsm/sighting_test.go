package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

func TestSightings(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	key := bytes.Repeat([]byte{1}, 32)
	put := func(members ...string) *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_PutSharingGroup{PutSharingGroup: &irxv1.PutSharingGroupCommand{
			Group: &irxv1.SharingGroup{Name: "g", MemberTeamIds: members, Key: key},
		}}}))
	}
	// A team that is not a peer is refused, naming the member, and
	// nothing is stored.
	var ve *record.ValidationError
	if res := put("cert-b", "cert-z"); !errors.As(res.Err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].Field != "group.member_team_ids[1]" {
		t.Fatalf("a group with a member that is not a peer: %v", res.Err)
	}
	if gs, err := h.f.SharingGroups(); err != nil || len(gs) != 0 {
		t.Fatalf("the refused group was stored: %v %v", gs, err)
	}
	if res := put("cert-b"); res.Err != nil || len(res.SharingGroup.GetKey()) != 0 || res.SharingGroup.GetKeyId() != KeyID(key) {
		t.Fatalf("put group: %v %v", res.SharingGroup, res.Err)
	}
	inc := newIncident()
	inc.ReportTime = timestamppb.New(t0)
	inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}}
	own := h.create(inc)
	send := func(peer, keyID string, digests ...[]byte) *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
			PeerTeamId: peer, Group: "g", KeyId: keyID, Digests: digests,
		}}}))
	}
	d := SightingDigest(key, "ip:198.51.100.7")
	other := SightingDigest(key, "ip:198.51.100.8")
	if res := send("cert-c", KeyID(key), d); !errors.Is(res.Err, errdefs.ErrPermissionDenied) {
		t.Fatalf("sightings from a non-member: %v", res.Err)
	}
	if res := send("cert-b", "0000000000000000", d); !errors.Is(res.Err, errGroupKeyDiffers) {
		t.Fatalf("sightings under another key: %v", res.Err)
	}
	if res := send("cert-b", KeyID(key), d, other); res.Err != nil {
		t.Fatal(res.Err)
	}
	al, err := h.f.Alert(AlertID("sighting:ip:198.51.100.7"))
	if err != nil || al.GetKind() != irxv1.AlertKind_ALERT_KIND_SIGHTING || len(al.GetSightingTeams()) != 1 ||
		al.GetRecords()[0].GetIncidentId() != own.GetId() {
		t.Fatalf("sighting alert %v %v", al, err)
	}
	if _, err := h.f.Alert(AlertID("sighting:ip:198.51.100.8")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an alert for a value we do not hold: %v", err)
	}
	// The member no longer holds it: the sighting goes.
	if res := send("cert-b", KeyID(key), other); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.f.Alert(AlertID("sighting:ip:198.51.100.7")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the sighting stayed: %v", err)
	}
	// What may be told to a member: digests only, within its TLP.
	keyID, ds, err := h.f.OwnSightings("g", irxv1.Tlp_TLP_AMBER, 10)
	if err != nil || keyID != KeyID(key) || len(ds) != 1 || !bytes.Equal(ds[0], d) {
		t.Fatalf("own sightings %s %x %v", keyID, ds, err)
	}
	if _, ds, _ := h.f.OwnSightings("g", irxv1.Tlp_TLP_GREEN, 10); len(ds) != 0 {
		t.Fatalf("an AMBER record's digests offered under a GREEN ceiling: %x", ds)
	}
}

// TestPeerInSharingGroupStays: a peer that is a member of a sharing group
// cannot be deleted (the refusal names the group) until the group is put
// without it, also within one batch; a peer of no group is deleted.
func TestPeerInSharingGroupStays(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	put := func(members ...string) *raft.Log {
		return h.command(&irxv1.Command{Kind: &irxv1.Command_PutSharingGroup{PutSharingGroup: &irxv1.PutSharingGroupCommand{
			Group: &irxv1.SharingGroup{Name: "north", MemberTeamIds: members, Key: bytes.Repeat([]byte{2}, 32)},
		}}})
	}
	del := func(peer string) *raft.Log {
		return h.command(&irxv1.Command{Kind: &irxv1.Command_DeletePeer{DeletePeer: &irxv1.DeletePeerCommand{TeamId: peer}}})
	}
	if res := h.apply(put("cert-b", "cert-c")); res.Err != nil {
		t.Fatal(res.Err)
	}
	before := contentDigest(t, h.f)
	res := h.apply(del("cert-b"))
	if !errors.Is(res.Err, ErrPeerInSharingGroup) || !errors.Is(res.Err, errdefs.ErrFailedPrecondition) || !strings.Contains(res.Err.Error(), "north") {
		t.Fatalf("deleting a member of a group: %v", res.Err)
	}
	if contentDigest(t, h.f) != before {
		t.Fatal("the refused deletion changed the state")
	}
	if _, err := h.f.Peer("cert-b"); err != nil {
		t.Fatalf("the member is gone: %v", err)
	}
	// The group without cert-c and cert-c's deletion in one batch.
	results := h.f.ApplyBatch([]*raft.Log{put("cert-b"), del("cert-c"), del("cert-b")})
	if r := asResult(t, results[1]); r.Err != nil {
		t.Fatalf("deleting a peer the same batch took out of its group: %v", r.Err)
	}
	if r := asResult(t, results[2]); !errors.Is(r.Err, ErrPeerInSharingGroup) {
		t.Fatalf("deleting a member in the batch that kept it: %v", r.Err)
	}
	if _, err := h.f.Peer("cert-c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cert-c after its deletion: %v", err)
	}
}
