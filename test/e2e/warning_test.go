package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func listWarnings(c irxv1.AlertServiceClient) ([]*irxv1.Warning, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ListWarnings(ctx, &irxv1.ListWarningsRequest{PageSize: 1000})
	return resp.GetWarnings(), err
}

func findWarning(c irxv1.AlertServiceClient, id string) (*irxv1.Warning, error) {
	ws, err := listWarnings(c)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		if w.GetWarningId() == id {
			return w, nil
		}
	}
	return nil, fmt.Errorf("no warning %s among %d", id, len(ws))
}

func deliveryState(w *irxv1.Warning, peer string) irxv1.WarningDeliveryState {
	for _, d := range w.GetDeliveries() {
		if d.GetPeerTeamId() == peer {
			return d.GetState()
		}
	}
	return irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_UNSPECIFIED
}

// TestEmergencyWarnings: A warns about a network in B's declared
// constituency (in A's policy for B) and not C's, while B is still
// catching up on a backlog of A's records: the warning reaches B, never
// C, and B's operator's acknowledgement comes back to A. A warning for all
// peers reaches both. Bad warnings are refused naming the field.
func TestEmergencyWarnings(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b := startTeam(t, "cert-b", 1)
	c := startTeam(t, "cert-c", 1)
	a.peerWith(t, b, true)
	a.peerWith(t, c, true)
	c.peerWith(t, a, true)
	toB := sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1)
	toB.Constituency = &irxv1.Constituency{Cidrs: []string{"198.51.100.0/24"}, Domains: []string{"cert-b.example"}}
	toC := sharePolicy("cert-c", irxv1.Tlp_TLP_GREEN, 1)
	toC.Constituency = &irxv1.Constituency{Cidrs: []string{"203.0.113.0/24"}}
	a.setPolicy(t, toB)
	a.setPolicy(t, toC)
	alertsA, alertsB, alertsC := alertClient(t, a), alertClient(t, b), alertClient(t, c)

	// A backlog of records for B to pull: B peers with A only now, and the
	// warning leaves while B starts on it.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				create(t, a.clients[0], shareable(1000*w+i, irxv1.Tlp_TLP_GREEN))
			}
		}()
	}
	wg.Wait()
	b.peerWith(t, a, true)

	expire := timestamppb.New(time.Now().Add(24 * time.Hour))
	issued, err := alertsA.IssueWarning(ctxT(t), &irxv1.IssueWarningRequest{Warning: &irxv1.Warning{
		Title: "C2 takeover in 198.51.100.0/25", Text: "Block outbound 443 to the range.",
		Severity: irxv1.WarningSeverity_WARNING_SEVERITY_CRITICAL, Tlp: irxv1.Tlp_TLP_AMBER,
		AffectedCidrs: []string{"198.51.100.0/25"}, AffectedProducts: []string{"ExampleVPN 9.1"},
		RecommendedActions: []string{"block", "hunt for beacons"}, ExpireTime: expire,
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := issued.GetWarning()
	if len(w.GetDeliveries()) != 1 || w.GetDeliveries()[0].GetPeerTeamId() != "cert-b" || w.GetIssuedBy() == "" {
		t.Fatalf("recipients of a warning for B's constituency only: %v", w)
	}
	eventually(t, time.Minute, "B holds the warning", func() error {
		got, err := findWarning(alertsB, w.GetWarningId())
		if err == nil && (got.GetReceivedFrom() != "cert-a" || got.GetTitle() != w.GetTitle() || len(got.GetDeliveries()) != 0) {
			return fmt.Errorf("B holds %v", got)
		}
		return err
	})
	// For the record, not a condition: how far B was in A's feed.
	if st, err := b.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"}); err == nil {
		t.Logf("when the warning was at B, B had pulled A's feed to %d of %d", st.GetPeer().GetStatus().GetInboundCursor(), 2000)
	}
	eventually(t, time.Minute, "A records the delivery to B", func() error {
		got, err := findWarning(alertsA, w.GetWarningId())
		if err == nil && deliveryState(got, "cert-b") != irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_DELIVERED {
			return fmt.Errorf("A: %v", got.GetDeliveries())
		}
		return err
	})

	// B's operator acknowledges; A learns who and when.
	if _, err := alertsB.AcknowledgeWarning(ctxT(t), &irxv1.AcknowledgeWarningRequest{WarningId: w.GetWarningId()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "A has B's acknowledgement", func() error {
		got, err := findWarning(alertsA, w.GetWarningId())
		if err != nil {
			return err
		}
		for _, d := range got.GetDeliveries() {
			if d.GetState() == irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_ACKNOWLEDGED && d.GetAcknowledgedBy() != "" && d.GetAcknowledgeTime() != nil {
				return nil
			}
		}
		return fmt.Errorf("A: %v", got.GetDeliveries())
	})
	eventually(t, time.Minute, "B knows A has its acknowledgement", func() error {
		got, err := findWarning(alertsB, w.GetWarningId())
		if err == nil && !got.GetAcknowledgementDelivered() {
			return fmt.Errorf("B: %v", got)
		}
		return err
	})

	// For all peers: C too, within its GREEN ceiling.
	all, err := alertsA.IssueWarning(ctxT(t), &irxv1.IssueWarningRequest{Warning: &irxv1.Warning{
		Title: "Phishing wave", Severity: irxv1.WarningSeverity_WARNING_SEVERITY_HIGH, Tlp: irxv1.Tlp_TLP_GREEN,
		AllPeers: true, ExpireTime: expire,
	}})
	if err != nil || len(all.GetWarning().GetDeliveries()) != 2 {
		t.Fatalf("a warning for all peers: %v, %v", all, err)
	}
	eventually(t, time.Minute, "C holds the warning for all", func() error {
		_, err := findWarning(alertsC, all.GetWarning().GetWarningId())
		return err
	})
	// C never received the first: it was never addressed to it.
	if _, err := findWarning(alertsC, w.GetWarningId()); err == nil {
		t.Fatalf("C received a warning outside its constituency")
	}
	if _, err := alertsC.AcknowledgeWarning(ctxT(t), &irxv1.AcknowledgeWarningRequest{WarningId: w.GetWarningId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("C acknowledging a warning it does not hold: %v", err)
	}

	for _, bad := range []struct {
		field string
		w     *irxv1.Warning
	}{
		{"warning.title", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_GREEN, ExpireTime: expire}},
		{"warning.tlp", &irxv1.Warning{Title: "x", ExpireTime: expire}},
		{"warning.tlp", &irxv1.Warning{Title: "x", Tlp: irxv1.Tlp_TLP_RED, ExpireTime: expire}},
		{"warning.expire_time", &irxv1.Warning{Title: "x", Tlp: irxv1.Tlp_TLP_GREEN, ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))}},
		{"warning.affected_cidrs[0]", &irxv1.Warning{Title: "x", Tlp: irxv1.Tlp_TLP_GREEN, ExpireTime: expire, AffectedCidrs: []string{"198.51.100.7/24"}}},
		{"warning.affected_domains[0]", &irxv1.Warning{Title: "x", Tlp: irxv1.Tlp_TLP_GREEN, ExpireTime: expire, AffectedDomains: []string{"not a domain"}}},
	} {
		_, err := alertsA.IssueWarning(ctxT(t), &irxv1.IssueWarningRequest{Warning: bad.w})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message()+fmt.Sprint(status.Convert(err).Details()), bad.field) {
			t.Errorf("IssueWarning(%v): %v; want INVALID_ARGUMENT naming %s", bad.w, err, bad.field)
		}
	}
	ws, _ := listWarnings(alertsA)
	if len(ws) != 2 {
		t.Errorf("A stores %d warnings, want the 2 valid ones", len(ws))
	}
}

// TestWarningsDoNotWaitForAnUnreachablePeer: a recipient that accepts the
// connection and never answers holds its own delivery until the call
// gives up, and nothing else. A second warning reaches B while the first
// attempt to deliver the first warning to the silent peer is still open
// (before this, a round of deliveries waited for all of its calls, so the
// second warning waited for the silent peer's call timeout).
func TestWarningsDoNotWaitForAnUnreachablePeer(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b := startTeam(t, "cert-b", 1)
	a.peerWith(t, b, true)
	b.peerWith(t, a, true)
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1))

	// cert-s: a peer whose endpoint accepts connections and reads them
	// without ever answering.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan struct{}, 64)
	firstClosed := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			go func() {
				_, _ = io.Copy(io.Discard, conn)
				_ = conn.Close()
				if n == 0 {
					close(firstClosed)
				}
			}()
		}
	}()
	if _, err := a.peers[0].CreatePeer(ctxT(t), &irxv1.CreatePeerRequest{Peer: &irxv1.Peer{
		TeamId: "cert-s", CaCertificatePem: string(mustNewCA(t, "cert-s").CertPEM()), Endpoints: []string{silent.Addr().String()},
	}}); err != nil {
		t.Fatal(err)
	}
	a.setPolicy(t, sharePolicy("cert-s", irxv1.Tlp_TLP_AMBER, 1))
	alertsA, alertsB := alertClient(t, a), alertClient(t, b)

	issue := func(title string) string {
		t.Helper()
		resp, err := alertsA.IssueWarning(ctxT(t), &irxv1.IssueWarningRequest{Warning: &irxv1.Warning{
			Title: title, Severity: irxv1.WarningSeverity_WARNING_SEVERITY_HIGH, Tlp: irxv1.Tlp_TLP_GREEN,
			AllPeers: true, ExpireTime: timestamppb.New(time.Now().Add(time.Hour)),
		}})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetWarning().GetDeliveries()); n != 2 {
			t.Fatalf("%s: %d recipients, want cert-b and cert-s", title, n)
		}
		return resp.GetWarning().GetWarningId()
	}
	issue("first")
	select {
	case <-accepted: // A's call to cert-s is open and waits
	case <-time.After(time.Minute):
		t.Fatal("A never called the silent peer")
	}
	second := issue("second")
	eventually(t, time.Minute, "B holds the second warning", func() error {
		_, err := findWarning(alertsB, second)
		return err
	})
	select {
	case <-firstClosed:
		t.Fatal("the second warning reached B only after A's first call to the silent peer gave up: deliveries wait for each other")
	default:
	}
}

// TestWritesThroughAFollowerAnswerWithWhatTheyStored: a follower forwards
// a write to the leader and answers with what the leader's state machine
// stored, for every kind of write, as the leader itself would. A forwarded
// IssueWarning answered an empty warning (no id, no deliveries) until the
// forwarding carried warnings, alerts' settings, sharing groups, privacy
// budgets and retention policies too.
func TestWritesThroughAFollowerAnswerWithWhatTheyStored(t *testing.T) {
	a := startTeam(t, "cert-a", 3)
	b := startTeam(t, "cert-b", 1)
	a.peerWith(t, b, true)
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 1))
	leader, _ := roles(t, a.nodes)
	follower := a.nodes[(leader+1)%len(a.nodes)]
	conn, err := follower.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	issued, err := irxv1.NewAlertServiceClient(conn).IssueWarning(ctxT(t), &irxv1.IssueWarningRequest{Warning: &irxv1.Warning{
		Title: "through a follower", Tlp: irxv1.Tlp_TLP_GREEN, Severity: irxv1.WarningSeverity_WARNING_SEVERITY_HIGH,
		AllPeers: true, ExpireTime: timestamppb.New(time.Now().Add(time.Hour)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := issued.GetWarning()
	if !strings.HasPrefix(w.GetWarningId(), "cert-a:w") || w.GetTitle() != "through a follower" ||
		len(w.GetDeliveries()) != 1 || w.GetDeliveries()[0].GetPeerTeamId() != "cert-b" {
		t.Fatalf("IssueWarning through a follower answered %v, want the stored warning with its delivery to cert-b", w)
	}

	settings, err := irxv1.NewAlertServiceClient(conn).UpdateAlertSettings(ctxT(t), &irxv1.UpdateAlertSettingsRequest{
		Settings: &irxv1.AlertSettings{Window: durationpb.New(48 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if settings.GetSettings().GetWindow().AsDuration() != 48*time.Hour {
		t.Errorf("UpdateAlertSettings through a follower answered %v", settings.GetSettings())
	}

	set, err := irxv1.NewRetentionServiceClient(conn).SetRetentionPolicy(ctxT(t), &irxv1.SetRetentionPolicyRequest{Policy: &irxv1.RetentionPolicy{
		Rules: []*irxv1.RetentionRule{{Name: "records", Keep: durationpb.New(5 * 365 * 24 * time.Hour)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if rules := set.GetPolicy().GetRules(); len(rules) != 1 || rules[0].GetName() != "records" {
		t.Errorf("SetRetentionPolicy through a follower answered %v", set.GetPolicy())
	}
}
