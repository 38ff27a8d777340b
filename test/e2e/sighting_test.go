package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestSightingsWithoutDisclosure: A and B do not let attackers' addresses
// flow to each other, but share a sharing group's key. Both report the
// same C2 address: each gets a sighting alert naming the other team, while
// neither holds the other's address, and the group's key is never
// returned. When B rotates its key alone, A's digests no longer match and
// B's sighting goes.
func TestSightingsWithoutDisclosure(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b := startTeam(t, "cert-b", 1)
	a.peerWith(t, b, true)
	b.peerWith(t, a, true)
	noIntruders := func(peer string) *irxv1.DisclosurePolicy {
		p := sharePolicy(peer, irxv1.Tlp_TLP_AMBER, 1)
		p.Rules = slices.DeleteFunc(p.Rules, func(r *irxv1.ClassRule) bool { return r.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_INTRUDER })
		return p
	}
	a.setPolicy(t, noIntruders("cert-b"))
	b.setPolicy(t, noIntruders("cert-a"))
	alertsA, alertsB := alertClient(t, a), alertClient(t, b)
	key := bytes.Repeat([]byte{7}, 32)
	put := func(c irxv1.AlertServiceClient, member string, key []byte) *irxv1.SharingGroup {
		t.Helper()
		resp, err := c.PutSharingGroup(ctxT(t), &irxv1.PutSharingGroupRequest{Group: &irxv1.SharingGroup{Name: "ncsc-net", MemberTeamIds: []string{member}, Key: key}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetGroup()
	}
	ga, gb := put(alertsA, "cert-b", key), put(alertsB, "cert-a", key)
	if len(ga.GetKey())+len(gb.GetKey()) != 0 || ga.GetKeyId() != gb.GetKeyId() || ga.GetKeyId() == "" {
		t.Fatalf("groups as stored: %v, %v", ga, gb)
	}

	atA := create(t, a.clients[0], shareable(1, irxv1.Tlp_TLP_GREEN))
	atB := create(t, b.clients[0], shareable(2, irxv1.Tlp_TLP_GREEN))
	const value = "ip:198.51.100.7"
	sighted := func(c irxv1.AlertServiceClient, own, other string) func() error {
		return func() error {
			al, err := openAlert(c, value)
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
	eventually(t, time.Minute, "B's sighting is gone", func() error {
		if al, err := openAlert(alertsB, value); err == nil {
			return fmt.Errorf("still %v", al)
		}
		return nil
	})

	// Deleting a member takes it out of the group.
	if _, err := b.peers[0].DeletePeer(ctxT(t), &irxv1.DeletePeerRequest{TeamId: "cert-a"}); err != nil {
		t.Fatalf("DeletePeer of a group's member: %v", err)
	}
	groups, err = alertsB.ListSharingGroups(ctxT(t), &irxv1.ListSharingGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 1 || len(groups.GetGroups()[0].GetMemberTeamIds()) != 0 {
		t.Fatalf("ListSharingGroups after the member's deletion: %v, %v", groups, err)
	}
}
