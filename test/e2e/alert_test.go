package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func alertClient(t *testing.T, tm *team) irxv1.AlertServiceClient {
	t.Helper()
	conn, err := tm.nodes[0].Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return irxv1.NewAlertServiceClient(conn)
}

// openAlert finds the open alert of value at a team.
func openAlert(c irxv1.AlertServiceClient, value string) (*irxv1.Alert, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ListAlerts(ctx, &irxv1.ListAlertsRequest{State: irxv1.AlertState_ALERT_STATE_OPEN, PageSize: 1000})
	if err != nil {
		return nil, err
	}
	for _, al := range resp.GetAlerts() {
		if al.GetValue() == value {
			return al, nil
		}
	}
	return nil, fmt.Errorf("no open alert of %s among %d", value, len(resp.GetAlerts()))
}

// TestAlertsAcrossTeams: the same C2 address reported at A and at B, whose
// policies let attackers' addresses flow both ways, raises an alert at
// both naming both records; B's watch sees it arrive; an operator's
// acknowledgement is recorded. C receives A's record with the attacker
// pseudonymised and reports the same address itself: a pseudonym is never
// matched against a value in clear, so C gets no alert.
func TestAlertsAcrossTeams(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b := startTeam(t, "cert-b", 1)
	c := startTeam(t, "cert-c", 1)
	a.peerWith(t, b, true)
	b.peerWith(t, a, true)
	a.peerWith(t, c, false)
	c.peerWith(t, a, true)
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1))
	b.setPolicy(t, sharePolicy("cert-a", irxv1.Tlp_TLP_AMBER, 1))
	toC := sharePolicy("cert-c", irxv1.Tlp_TLP_AMBER, 1)
	for _, r := range toC.GetRules() {
		if r.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_INTRUDER {
			r.Action = irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE
		}
	}
	a.setPolicy(t, toC)

	alertsA := alertClient(t, a)
	alertsB := alertClient(t, b)
	alertsC := alertClient(t, c)

	// B watches before anything is reported.
	watchCtx, stopWatch := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopWatch()
	watch, err := alertsB.WatchAlerts(watchCtx, &irxv1.WatchAlertsRequest{State: irxv1.AlertState_ALERT_STATE_OPEN})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || len(first.GetAlerts()) != 0 {
		t.Fatalf("the watch's first answer: %v, %v; want no open alerts", first, err)
	}

	atA := create(t, a.clients[0], shareable(1, irxv1.Tlp_TLP_GREEN))
	atB := create(t, b.clients[0], shareable(2, irxv1.Tlp_TLP_GREEN))
	atC := create(t, c.clients[0], shareable(3, irxv1.Tlp_TLP_GREEN))

	const value = "ip:198.51.100.7"
	want := []string{atA.GetId(), atB.GetId()}
	slices.Sort(want)
	for _, team := range []struct {
		name   string
		alerts irxv1.AlertServiceClient
	}{{"cert-a", alertsA}, {"cert-b", alertsB}} {
		eventually(t, time.Minute, team.name+" has an alert naming both records", func() error {
			al, err := openAlert(team.alerts, value)
			if err != nil {
				return err
			}
			var ids []string
			for _, r := range al.GetRecords() {
				ids = append(ids, r.GetIncidentId())
			}
			slices.Sort(ids)
			if !slices.Equal(ids, want) || !slices.Equal(al.GetTeams(), []string{"cert-a", "cert-b"}) || al.GetCount() != 2 {
				return fmt.Errorf("alert %v", al)
			}
			return nil
		})
	}
	for {
		resp, err := watch.Recv()
		if err != nil {
			t.Fatalf("B's watch ended before the alert came: %v", err)
		}
		if slices.ContainsFunc(resp.GetAlerts(), func(al *irxv1.Alert) bool { return al.GetValue() == value }) {
			break
		}
	}

	al, _ := openAlert(alertsB, value)
	acked, err := alertsB.AcknowledgeAlert(ctxT(t), &irxv1.AcknowledgeAlertRequest{AlertId: al.GetAlertId()})
	if err != nil || acked.GetAlert().GetAcknowledgedBy() == "" || acked.GetAlert().GetAcknowledgeTime() == nil {
		t.Fatalf("AcknowledgeAlert: %v, %v", acked, err)
	}

	// C holds A's record, its attacker pseudonymised, beside its own record
	// of the address in clear: no alert.
	eventually(t, time.Minute, "C has A's record", hasVersion(c.clients[0], atA.GetId(), 1))
	held, _ := get(c.clients[0], atA.GetId())
	if got := held.GetAttackingHosts()[0].GetAddresses()[0]; got == "198.51.100.7" {
		t.Fatalf("C received the attacker in clear: %v", held.GetAttackingHosts())
	}
	resp, err := alertsC.ListAlerts(ctxT(t), &irxv1.ListAlertsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetAlerts()) != 0 {
		t.Fatalf("C matched a pseudonym against its own %s: %v", atC.GetId(), resp.GetAlerts())
	}
}
