package fsm

import (
	"bytes"
	"errors"
	"slices"
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

// TestDeletedPeerLeavesSharingGroups: deleting a peer takes it out of
// every sharing group, with the sightings it sent us (their alert goes),
// also within one batch; a group it was the last member of stays, empty,
// and a team peered again under its id is in no group.
func TestDeletedPeerLeavesSharingGroups(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	key := bytes.Repeat([]byte{2}, 32)
	put := func(name string, members ...string) *raft.Log {
		return h.command(&irxv1.Command{Kind: &irxv1.Command_PutSharingGroup{PutSharingGroup: &irxv1.PutSharingGroupCommand{
			Group: &irxv1.SharingGroup{Name: name, MemberTeamIds: members, Key: key},
		}}})
	}
	del := func(peer string) *raft.Log {
		return h.command(&irxv1.Command{Kind: &irxv1.Command_DeletePeer{DeletePeer: &irxv1.DeletePeerCommand{TeamId: peer}}})
	}
	for _, l := range []*raft.Log{put("north", "cert-b", "cert-c"), put("solo", "cert-c")} {
		if res := h.apply(l); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	inc := newIncident()
	inc.ReportTime = timestamppb.New(t0)
	inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}}
	h.create(inc)
	sighting := AlertID("sighting:ip:198.51.100.7")
	if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
		PeerTeamId: "cert-c", Group: "north", KeyId: KeyID(key), Digests: [][]byte{SightingDigest(key, "ip:198.51.100.7")},
	}}})); res.Err != nil {
		t.Fatal(res.Err)
	}
	if al, err := h.f.Alert(sighting); err != nil || len(al.GetSightingTeams()) != 1 || al.GetSightingTeams()[0] != "cert-c" {
		t.Fatalf("sighting alert before: %v %v", al, err)
	}
	// cert-b leaves north in the batch that deletes cert-c, after it.
	results := h.f.ApplyBatch([]*raft.Log{del("cert-c"), del("cert-b"), h.command(&irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{
		Peer: &irxv1.Peer{TeamId: "cert-c", CaCertificatePem: "pinned"}, Create: true,
	}}})})
	for i, r := range results {
		if res := asResult(t, r); res.Err != nil {
			t.Fatalf("entry %d: %v", i, res.Err)
		}
	}
	groups, err := h.f.SharingGroups()
	if err != nil || len(groups) != 2 {
		t.Fatalf("groups: %v %v", groups, err)
	}
	for _, g := range groups {
		if len(g.GetMemberTeamIds()) != 0 || g.GetKeyId() != KeyID(key) {
			t.Fatalf("group after its members were deleted: %v", g)
		}
	}
	if al, err := h.f.Alert(sighting); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted peer's sighting: %v %v", al, err)
	}
	if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
		PeerTeamId: "cert-c", Group: "north", KeyId: KeyID(key), Digests: [][]byte{SightingDigest(key, "ip:198.51.100.7")},
	}}})); !errors.Is(res.Err, errdefs.ErrPermissionDenied) {
		t.Fatalf("sightings of the team peered again: %v", res.Err)
	}
}

// TestRegroupKeepsSightings: putting a group again under its key keeps
// what the members that stay sent us (they send again only when their own
// set changes) and drops what a member that left sent; a new key drops it
// all.
func TestRegroupKeepsSightings(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"cert-b", "cert-c", "cert-d"} {
		h.addPeer(p)
	}
	key := bytes.Repeat([]byte{3}, 32)
	put := func(key []byte, members ...string) {
		t.Helper()
		if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_PutSharingGroup{PutSharingGroup: &irxv1.PutSharingGroupCommand{
			Group: &irxv1.SharingGroup{Name: "g", MemberTeamIds: members, Key: key},
		}}})); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	put(key, "cert-b", "cert-c")
	inc := newIncident()
	inc.ReportTime = timestamppb.New(t0)
	inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}}
	h.create(inc)
	for _, p := range []string{"cert-b", "cert-c"} {
		if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
			PeerTeamId: p, Group: "g", KeyId: KeyID(key), Digests: [][]byte{SightingDigest(key, "ip:198.51.100.7")},
		}}})); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	sighted := func() []string {
		t.Helper()
		al, err := h.f.Alert(AlertID("sighting:ip:198.51.100.7"))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return al.GetSightingTeams()
	}
	put(key, "cert-b", "cert-c", "cert-d")
	if got := sighted(); !slices.Equal(got, []string{"cert-b", "cert-c"}) {
		t.Fatalf("sighting teams after a member joined: %v", got)
	}
	if _, ds, err := h.f.OwnSightings("g", irxv1.Tlp_TLP_AMBER, 10); err != nil || len(ds) != 1 {
		t.Fatalf("our digests after a member joined: %x %v", ds, err)
	}
	put(key, "cert-b", "cert-d")
	if got := sighted(); !slices.Equal(got, []string{"cert-b"}) {
		t.Fatalf("sighting teams after cert-c left: %v", got)
	}
	put(bytes.Repeat([]byte{4}, 32), "cert-b", "cert-d")
	if got := sighted(); got != nil {
		t.Fatalf("sighting teams after a new key: %v", got)
	}
}

// TestSightingsWithdrawals: a member taken out of a group, or every member
// of a deleted group, is owed a withdrawal (until the leader records it
// delivered, and only the one delivered: one owed again since stands); a
// member put back is owed none; a deleted peer is owed none. Deleting a
// group drops its key, our digests and the sightings its members sent,
// with their alert. An empty set under any key is accepted: it is how a
// withdrawal arrives.
func TestSightingsWithdrawals(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"cert-b", "cert-c", "cert-d"} {
		h.addPeer(p)
	}
	key := bytes.Repeat([]byte{5}, 32)
	run := func(cmd *irxv1.Command) *Result {
		t.Helper()
		return h.apply(h.command(cmd))
	}
	put := func(members ...string) {
		t.Helper()
		if res := run(&irxv1.Command{Kind: &irxv1.Command_PutSharingGroup{PutSharingGroup: &irxv1.PutSharingGroupCommand{
			Group: &irxv1.SharingGroup{Name: "g", MemberTeamIds: members, Key: key},
		}}}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	owed := func() map[string]*irxv1.SightingsWithdrawal {
		t.Helper()
		ws, err := h.f.SightingsWithdrawals()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*irxv1.SightingsWithdrawal{}
		for _, w := range ws {
			out[w.GetGroup()+"/"+w.GetPeerTeamId()] = w
		}
		return out
	}
	clear := func(w *irxv1.SightingsWithdrawal, revision uint64) {
		t.Helper()
		if res := run(&irxv1.Command{Kind: &irxv1.Command_ClearSightingsWithdrawal{ClearSightingsWithdrawal: &irxv1.ClearSightingsWithdrawalCommand{
			Group: w.GetGroup(), PeerTeamId: w.GetPeerTeamId(), Revision: revision,
		}}}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	put("cert-b", "cert-c", "cert-d")
	inc := newIncident()
	inc.ReportTime = timestamppb.New(t0)
	inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}}
	h.create(inc)
	if res := run(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
		PeerTeamId: "cert-c", Group: "g", KeyId: KeyID(key), Digests: [][]byte{SightingDigest(key, "ip:198.51.100.7")},
	}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(owed()) != 0 {
		t.Fatalf("withdrawals owed before anyone left: %v", owed())
	}

	put("cert-c", "cert-d")
	w, ok := owed()["g/cert-b"]
	if !ok || len(owed()) != 1 || w.GetKeyId() != KeyID(key) || w.GetRevision() == 0 || w.GetCreateTime() == nil {
		t.Fatalf("after cert-b left: %v", owed())
	}
	put("cert-b", "cert-c", "cert-d")
	if len(owed()) != 0 {
		t.Fatalf("cert-b is back and still owed a withdrawal: %v", owed())
	}
	put("cert-c", "cert-d")
	first := owed()["g/cert-b"]
	put("cert-b", "cert-c", "cert-d")
	put("cert-c", "cert-d")
	again := owed()["g/cert-b"]
	if first == nil || again == nil || again.GetRevision() <= first.GetRevision() {
		t.Fatalf("owed twice: %v then %v", first, again)
	}
	clear(first, first.GetRevision())
	if _, ok := owed()["g/cert-b"]; !ok {
		t.Fatal("delivering an earlier withdrawal cleared the one owed since")
	}
	clear(again, again.GetRevision())
	if len(owed()) != 0 {
		t.Fatalf("after the withdrawal was delivered: %v", owed())
	}

	// A withdrawal reaches us from a member: an empty set, whatever key.
	if res := run(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
		PeerTeamId: "cert-d", Group: "g", KeyId: "0000000000000000",
	}}}); res.Err != nil {
		t.Fatalf("an empty set under another key: %v", res.Err)
	}

	del := func(name string) *Result {
		return run(&irxv1.Command{Kind: &irxv1.Command_DeleteSharingGroup{DeleteSharingGroup: &irxv1.DeleteSharingGroupCommand{Name: name}}})
	}
	if res := del("nope"); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("deleting a group that does not exist: %v", res.Err)
	}
	if _, err := h.f.Alert(AlertID("sighting:ip:198.51.100.7")); err != nil {
		t.Fatalf("the sighting before the group's deletion: %v", err)
	}
	if res := del("g"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if gs, _ := h.f.SharingGroups(); len(gs) != 0 {
		t.Fatalf("groups after the deletion: %v", gs)
	}
	if _, err := h.f.Alert(AlertID("sighting:ip:198.51.100.7")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted group's sighting: %v", err)
	}
	if keyID, ds, err := h.f.OwnSightings("g", irxv1.Tlp_TLP_AMBER, 10); keyID != "" || len(ds) != 0 || err != nil {
		t.Fatalf("our digests under the deleted group's key: %s %x %v", keyID, ds, err)
	}
	if got := owed(); len(got) != 2 || got["g/cert-c"] == nil || got["g/cert-d"] == nil {
		t.Fatalf("owed after the group's deletion: %v", got)
	}
	if res := run(&irxv1.Command{Kind: &irxv1.Command_ReceiveSightings{ReceiveSightings: &irxv1.ReceiveSightingsCommand{
		PeerTeamId: "cert-c", Group: "g", KeyId: KeyID(key), Digests: [][]byte{SightingDigest(key, "ip:198.51.100.7")},
	}}}); !errors.Is(res.Err, errdefs.ErrPermissionDenied) {
		t.Fatalf("sightings for a deleted group: %v", res.Err)
	}
	if res := run(&irxv1.Command{Kind: &irxv1.Command_DeletePeer{DeletePeer: &irxv1.DeletePeerCommand{TeamId: "cert-c"}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := owed(); len(got) != 1 || got["g/cert-d"] == nil {
		t.Fatalf("owed after cert-c was deleted: %v", got)
	}
}
