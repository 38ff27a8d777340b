package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestSightingsWithoutDisclosure: A and B do not let attackers' addresses
// flow to each other, but share a sharing group's key. Both report the
// same C2 address: each gets a sighting alert naming the other team, while
// neither holds the other's address, and the group's key is never
// returned. When B rotates its key alone, A's digests no longer match and
// B's sighting goes.
func TestSightingsWithoutDisclosure(t *testing.T) {
	a, b, alertsA, alertsB := sightingTeams(t)
	put := putSharingGroup(t)
	key := bytes.Repeat([]byte{7}, 32)
	ga, gb := put(alertsA, "cert-b", key), put(alertsB, "cert-a", key)
	if len(ga.GetKey())+len(gb.GetKey()) != 0 || ga.GetKeyId() != gb.GetKeyId() || ga.GetKeyId() == "" {
		t.Fatalf("groups as stored: %v, %v", ga, gb)
	}

	atA := create(t, a.clients[0], shareable(1, irxv1.Tlp_TLP_GREEN))
	atB := create(t, b.clients[0], shareable(2, irxv1.Tlp_TLP_GREEN))
	eventually(t, time.Minute, "B sees that A has seen the address", sighted(alertsB, atB.GetId(), "cert-a"))
	eventually(t, time.Minute, "A sees that B has seen the address", sighted(alertsA, atA.GetId(), "cert-b"))

	// Nothing reversible crossed: B's copy of A's record holds neither the
	// address nor the C2 name, and no group key is ever returned.
	eventually(t, time.Minute, "B holds A's record", hasVersion(b.clients[0], atA.GetId(), 1))
	held, _ := get(b.clients[0], atA.GetId())
	if text := prototext.Format(held); strings.Contains(text, "198.51.100.7") || strings.Contains(text, "c2.bad.example") {
		t.Fatalf("B received A's attacker: %s", text)
	}
	groups, err := alertsB.ListSharingGroups(ctxT(t), &irxv1.ListSharingGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 1 || len(groups.GetGroups()[0].GetKey()) != 0 {
		t.Fatalf("ListSharingGroups: %v, %v", groups, err)
	}

	// B alone rotates: A's digests are under the old key, and B drops them.
	put(alertsB, "cert-a", bytes.Repeat([]byte{8}, 32))
	eventually(t, time.Minute, "B's sighting is gone", notSighted(alertsB))

	// Deleting a member takes it out of the group.
	if _, err := b.peers[0].DeletePeer(ctxT(t), &irxv1.DeletePeerRequest{TeamId: "cert-a"}); err != nil {
		t.Fatalf("DeletePeer of a group's member: %v", err)
	}
	groups, err = alertsB.ListSharingGroups(ctxT(t), &irxv1.ListSharingGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 1 || len(groups.GetGroups()[0].GetMemberTeamIds()) != 0 {
		t.Fatalf("ListSharingGroups after the member's deletion: %v, %v", groups, err)
	}
}

// sightedValue is the C2 address shareable records hold.
const sightedValue = "ip:198.51.100.7"

// sightingTeams starts two one-node teams, A and B, that follow each other
// and whose policies keep attackers' addresses from flowing either way.
func sightingTeams(t *testing.T) (a, b *team, alertsA, alertsB irxv1.AlertServiceClient) {
	a = startTeam(t, "cert-a", 1)
	b = startTeam(t, "cert-b", 1)
	a.peerWith(t, b, true)
	b.peerWith(t, a, true)
	noIntruders := func(peer string) *irxv1.DisclosurePolicy {
		p := sharePolicy(peer, irxv1.Tlp_TLP_AMBER, 1)
		p.Rules = slices.DeleteFunc(p.Rules, func(r *irxv1.ClassRule) bool { return r.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_INTRUDER })
		return p
	}
	a.setPolicy(t, noIntruders("cert-b"))
	b.setPolicy(t, noIntruders("cert-a"))
	return a, b, alertClient(t, a), alertClient(t, b)
}

// putSharingGroup puts the group "ncsc-net" with one member.
func putSharingGroup(t *testing.T) func(c irxv1.AlertServiceClient, member string, key []byte) *irxv1.SharingGroup {
	return func(c irxv1.AlertServiceClient, member string, key []byte) *irxv1.SharingGroup {
		t.Helper()
		resp, err := c.PutSharingGroup(ctxT(t), &irxv1.PutSharingGroupRequest{Group: &irxv1.SharingGroup{Name: "ncsc-net", MemberTeamIds: []string{member}, Key: key}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetGroup()
	}
}

// sighted says whether a team's open sighting alert of sightedValue names
// its record own and the team other, and no one else.
func sighted(c irxv1.AlertServiceClient, own, other string) func() error {
	return func() error {
		al, err := openAlert(c, sightedValue)
		if err != nil {
			return err
		}
		if al.GetKind() != irxv1.AlertKind_ALERT_KIND_SIGHTING || !slices.Equal(al.GetSightingTeams(), []string{other}) ||
			len(al.GetRecords()) != 1 || al.GetRecords()[0].GetIncidentId() != own {
			return fmt.Errorf("alert %v", al)
		}
		return nil
	}
}

func notSighted(c irxv1.AlertServiceClient) func() error {
	return func() error {
		if al, err := openAlert(c, sightedValue); err == nil {
			return fmt.Errorf("still %v", al)
		}
		return nil
	}
}

// TestSightingsWithdrawnFromFormerMembers: when A deletes its group, B,
// still a member of its own, drops the digests A sent it, and its sighting
// of A goes; while B cannot be called (A disabled it) the withdrawal is
// listed as owed at A, and it is delivered once B can be.
func TestSightingsWithdrawnFromFormerMembers(t *testing.T) {
	a, b, alertsA, alertsB := sightingTeams(t)
	put := putSharingGroup(t)
	key := bytes.Repeat([]byte{9}, 32)
	put(alertsA, "cert-b", key)
	put(alertsB, "cert-a", key)
	create(t, a.clients[0], shareable(1, irxv1.Tlp_TLP_GREEN))
	atB := create(t, b.clients[0], shareable(2, irxv1.Tlp_TLP_GREEN))
	eventually(t, time.Minute, "B sees that A has seen the address", sighted(alertsB, atB.GetId(), "cert-a"))

	disabled := func(off bool) {
		t.Helper()
		if _, err := a.peers[0].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{
			Peer: &irxv1.Peer{TeamId: "cert-b", Disabled: off}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"disabled"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	disabled(true)
	if _, err := alertsA.DeleteSharingGroup(ctxT(t), &irxv1.DeleteSharingGroupRequest{Name: "ncsc-net"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alertsA.DeleteSharingGroup(ctxT(t), &irxv1.DeleteSharingGroupRequest{Name: "ncsc-net"}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleting the group again: %v", err)
	}
	if _, err := alertsA.DeleteSharingGroup(ctxT(t), &irxv1.DeleteSharingGroupRequest{Name: "Not A Name"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("deleting a group by a name no group can have: %v", err)
	}
	list, err := alertsA.ListSharingGroups(ctxT(t), &irxv1.ListSharingGroupsRequest{})
	if err != nil || len(list.GetGroups()) != 0 || len(list.GetPendingWithdrawals()) != 1 ||
		list.GetPendingWithdrawals()[0].GetPeerTeamId() != "cert-b" || list.GetPendingWithdrawals()[0].GetGroup() != "ncsc-net" {
		t.Fatalf("A's groups after the deletion, B disabled: %v, %v", list, err)
	}
	if err := sighted(alertsB, atB.GetId(), "cert-a")(); err != nil {
		t.Fatalf("B's sighting went while A could not call B: %v", err)
	}

	disabled(false)
	eventually(t, time.Minute, "B drops what A sent it", notSighted(alertsB))
	eventually(t, time.Minute, "A records the withdrawal delivered", func() error {
		list, err := alertsA.ListSharingGroups(ctxT(t), &irxv1.ListSharingGroupsRequest{})
		if err != nil || len(list.GetPendingWithdrawals()) != 0 {
			return fmt.Errorf("%v, %v", list, err)
		}
		return nil
	})
}
