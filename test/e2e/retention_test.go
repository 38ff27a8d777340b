package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func retentionClient(t *testing.T, tm *team) irxv1.RetentionServiceClient {
	t.Helper()
	conn, err := tm.nodes[0].Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return irxv1.NewRetentionServiceClient(conn)
}

// holds fails unless some copy of id at tm holds value (want) or none does.
func holds(t *testing.T, tm *team, id, value string) bool {
	t.Helper()
	for _, inc := range everyCopy(t, tm, id) {
		data, err := proto.Marshal(inc)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), value) {
			return true
		}
	}
	return false
}

func byIndicator(t *testing.T, tm *team, value string) []string {
	t.Helper()
	resp, err := tm.clients[0].incidents.ListIncidents(ctxT(t), &irxv1.ListIncidentsRequest{Indicator: value, PageSize: 100})
	if err != nil {
		t.Fatalf("%s: ListIncidents indicator %s: %v", tm.id, value, err)
	}
	var ids []string
	for _, inc := range resp.GetIncidents() {
		ids = append(ids, inc.GetId())
	}
	return ids
}

// TestRetentionPurgesAtOriginAndPeer runs two real teams over mTLS with a
// fast retention clock and a floor of one second. A's policy purges
// private user information of TLP:GREEN records after 15 seconds and
// removes resolved records after 20: at A and at B, no version and no
// index keeps what went, while a TLP:AMBER record keeps its private user
// information and open records stay; A's ledger keeps the decisions and
// digests (never the values) and B's acknowledgement of the retention
// replacement and withdrawal. B holds A's terms and applies them on its
// own clock: a record that arrives after is purged at B with A gone.
// Refused policies change nothing.
func TestRetentionPurgesAtOriginAndPeer(t *testing.T) {
	fast := []string{"--retention-tick", "200ms", "--retention-min-keep", "1s"}
	a := startTeam(t, "cert-a", 1, fast...)
	b := startTeam(t, "cert-b", 1, fast...)
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	a.setPolicy(t, forwardAllBut("cert-b", 2))
	ra, rb := retentionClient(t, a), retentionClient(t, b)

	keep := func(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
	for _, bad := range []struct {
		rule  *irxv1.RetentionRule
		field string
	}{
		{&irxv1.RetentionRule{Name: "too-short", InfoClass: privateUser, Keep: keep(500 * time.Millisecond)}, "policy.rules[0].keep"},
		{&irxv1.RetentionRule{Name: "contacts", InfoClass: contactClass, Keep: keep(time.Hour)}, "policy.rules[0].info_class"},
	} {
		_, err := ra.SetRetentionPolicy(ctxT(t), &irxv1.SetRetentionPolicyRequest{Policy: &irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{bad.rule}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("policy %v: %v, want InvalidArgument naming %s", bad.rule, err, bad.field)
		}
	}
	if _, err := ra.GetRetentionPolicy(ctxT(t), &irxv1.GetRetentionPolicyRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("retention policy after refusals: %v, want NotFound", err)
	}
	set, err := ra.SetRetentionPolicy(ctxT(t), &irxv1.SetRetentionPolicyRequest{Policy: &irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{
		{Name: "green-private-user", InfoClass: privateUser, Tlp: irxv1.Tlp_TLP_GREEN, Keep: keep(15 * time.Second)},
		{Name: "resolved-records", Keep: keep(20 * time.Second)},
	}}})
	if err != nil {
		t.Fatal(err)
	}

	green, _ := canaryRecord()
	greenID := create(t, a.clients[0], green).GetId()
	if _, err := a.clients[0].incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{
		Incident: &irxv1.Incident{Id: greenID, Status: irxv1.Status_STATUS_IN_PROGRESS}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}},
	}); err != nil {
		t.Fatal(err)
	}
	amber, _ := canaryRecord()
	amber.Tlp = irxv1.Tlp_TLP_AMBER
	amber.LogExcerpts[0].Content = "amber-private-user-log"
	amberID := create(t, a.clients[0], amber).GetId()
	resolved, _ := canaryRecord()
	resolved.Status = irxv1.Status_STATUS_RESOLVED
	resolved.Indicators[0].Value = "cnry-gone.example"
	goneID := create(t, a.clients[0], resolved).GetId()
	caughtUp(t, a, "cert-b", 1)

	// What B received: the values (the test can fail) and A's terms.
	if !holds(t, b, amberID, "amber-private-user-log") {
		t.Fatal("B's copy of the TLP:AMBER record lacks its private user information: nothing reached B to purge")
	}
	terms, err := rb.GetRetentionPolicy(ctxT(t), &irxv1.GetRetentionPolicyRequest{TeamId: "cert-a"})
	if err != nil || !proto.Equal(terms.GetPolicy(), set.GetPolicy()) {
		t.Fatalf("A's terms at B: %v, %v; want %v", terms.GetPolicy(), err, set.GetPolicy())
	}

	for _, tm := range []*team{a, b} {
		eventually(t, 90*time.Second, tm.id+" purged by retention", func() error {
			if holds(t, tm, greenID, "cnry-private-user-log") || holds(t, tm, greenID, "+1 555 0199") {
				return fmt.Errorf("a version of %s still holds private user information", greenID)
			}
			if err := gone(tm.clients[0], goneID)(); err != nil {
				return err
			}
			if ids := byIndicator(t, tm, "cnry-gone.example"); len(ids) > 0 {
				return fmt.Errorf("the indicator index still finds %v", ids)
			}
			return nil
		})
		if !holds(t, tm, amberID, "amber-private-user-log") || !holds(t, tm, greenID, "cnry-intruder.example") {
			t.Errorf("%s: retention purged what no rule covers", tm.id)
		}
		if _, err := get(tm.clients[0], greenID); err != nil {
			t.Errorf("%s: the open record was removed: %v", tm.id, err)
		}
		if ids := byIndicator(t, tm, "cnry-intruder.example"); !slices.Contains(ids, greenID) {
			t.Errorf("%s: the indicator index lost the open record: %v", tm.id, ids)
		}
	}

	// A's ledger: the decisions with digests, never the values; and B's
	// acknowledgement of what the purge re-disclosed.
	ds, err := ra.ListRetentionDecisions(ctxT(t), &irxv1.ListRetentionDecisionsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	type decided struct {
		id      string
		version int64
		removed bool
	}
	var got []decided
	for _, d := range ds.GetDecisions() {
		got = append(got, decided{d.GetIncidentId(), d.GetVersion(), d.GetRemoved()})
		if !strings.HasPrefix(d.GetDigestBefore(), "SHA256:") || d.GetOriginTeam() != "cert-a" {
			t.Errorf("decision %v", d)
		}
	}
	for _, want := range []decided{{greenID, 1, false}, {greenID, 2, false}, {goneID, 1, true}} {
		if !slices.Contains(got, want) {
			t.Errorf("A's decisions %v lack %v", got, want)
		}
	}
	encoded, _ := proto.Marshal(ds)
	if strings.Contains(string(encoded), "cnry-private-user-log") {
		t.Error("the decision ledger holds a purged value")
	}
	eventually(t, 60*time.Second, "B acknowledged the retention replacement and withdrawal", func() error {
		reasons := map[string]bool{}
		for _, id := range []string{greenID, goneID} {
			resp, err := a.audit[0].ListDisclosures(ctxT(t), &irxv1.ListDisclosuresRequest{PeerTeamId: "cert-b", IncidentId: id, PageSize: 1000})
			if err != nil {
				return err
			}
			for _, d := range resp.GetDisclosures() {
				if d.GetReplacementReason() == irxv1.ReplacementReason_REPLACEMENT_REASON_RETENTION {
					reasons[id+" replaced"] = true
				}
				if d.GetWithdrawalReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION {
					reasons[id+" withdrawn"] = true
				}
			}
		}
		if !reasons[greenID+" replaced"] || !reasons[goneID+" withdrawn"] {
			return fmt.Errorf("ledger for cert-b has %v", reasons)
		}
		return nil
	})

	// With A gone, B still purges by A's terms on its own clock.
	late, _ := canaryRecord()
	late.LogExcerpts[0].Content = "late-private-user-log"
	lateID := create(t, a.clients[0], late).GetId()
	caughtUp(t, a, "cert-b", 1)
	if err := a.nodes[0].Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "B purged the late record by A's terms with A gone", func() error {
		if holds(t, b, lateID, "late-private-user-log") {
			return fmt.Errorf("B's copy of %s still holds private user information", lateID)
		}
		return nil
	})
}

// TestRetentionTermsChangeReachesTheChain: B and C hold a record of A's
// (C through B) under A's first terms, which purge nothing yet. A then
// shortens its terms, still purging nothing, and makes no new record: the
// new terms travel A→B→C on their own (so B and C would purge by them on
// their own clocks even if A went away). A team that holds nothing of A's
// through B (D) does not learn A's terms. Then A's terms purge, and A, B
// and C each lose the private user information.
func TestRetentionTermsChangeReachesTheChain(t *testing.T) {
	fast := []string{"--retention-tick", "200ms", "--retention-min-keep", "1s"}
	a := startTeam(t, "cert-a", 1, fast...)
	b := startTeam(t, "cert-b", 1, fast...)
	c := startTeam(t, "cert-c", 1, fast...)
	d := startTeam(t, "cert-d", 1, fast...)
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	b.peerWith(t, c, false)
	c.peerWith(t, b, true)
	b.peerWith(t, d, false)
	d.peerWith(t, b, true)
	a.setPolicy(t, forwardAllBut("cert-b", 2))
	b.setPolicy(t, forwardAllBut("cert-c", 3))
	ra := retentionClient(t, a)

	keep := func(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
	if _, err := ra.SetRetentionPolicy(ctxT(t), &irxv1.SetRetentionPolicyRequest{Policy: &irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{
		{Name: "private-user", InfoClass: privateUser, Keep: keep(24 * time.Hour)},
	}}}); err != nil {
		t.Fatal(err)
	}
	rec, _ := canaryRecord()
	id := create(t, a.clients[0], rec).GetId()
	caughtUp(t, a, "cert-b", 1)
	caughtUp(t, b, "cert-c", 1)
	for _, tm := range []*team{b, c} {
		if !holds(t, tm, id, "cnry-private-user-log") {
			t.Fatalf("%s's copy lacks the private user information: nothing reached it to purge", tm.id)
		}
	}

	shorter, err := ra.SetRetentionPolicy(ctxT(t), &irxv1.SetRetentionPolicyRequest{Policy: &irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{
		{Name: "private-user", InfoClass: privateUser, Keep: keep(12 * time.Hour)},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []*team{b, c} {
		eventually(t, 60*time.Second, "A's shorter terms at "+tm.id, func() error {
			got, err := retentionClient(t, tm).GetRetentionPolicy(ctxT(t), &irxv1.GetRetentionPolicyRequest{TeamId: "cert-a"})
			if err != nil {
				return err
			}
			if !proto.Equal(got.GetPolicy(), shorter.GetPolicy()) {
				return fmt.Errorf("A's terms at %s: %v, want %v", tm.id, got.GetPolicy(), shorter.GetPolicy())
			}
			return nil
		})
	}
	caughtUp(t, b, "cert-d", 0)
	if _, err := retentionClient(t, d).GetRetentionPolicy(ctxT(t), &irxv1.GetRetentionPolicyRequest{TeamId: "cert-a"}); status.Code(err) != codes.NotFound {
		t.Errorf("D, which holds nothing of A's, got A's terms: %v", err)
	}

	short, err := ra.SetRetentionPolicy(ctxT(t), &irxv1.SetRetentionPolicyRequest{Policy: &irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{
		{Name: "private-user", InfoClass: privateUser, Keep: keep(2 * time.Second)},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []*team{a, b, c} {
		eventually(t, 90*time.Second, tm.id+" purged by A's new terms", func() error {
			if tm != a {
				got, err := retentionClient(t, tm).GetRetentionPolicy(ctxT(t), &irxv1.GetRetentionPolicyRequest{TeamId: "cert-a"})
				if err != nil {
					return err
				}
				if got.GetPolicy().GetVersion() != short.GetPolicy().GetVersion() {
					return fmt.Errorf("A's terms at %s are version %d, want %d", tm.id, got.GetPolicy().GetVersion(), short.GetPolicy().GetVersion())
				}
			}
			if holds(t, tm, id, "cnry-private-user-log") || holds(t, tm, id, "+1 555 0199") {
				return fmt.Errorf("a version of %s still holds private user information", id)
			}
			return nil
		})
		if !holds(t, tm, id, "cnry-intruder.example") {
			t.Errorf("%s: the purge took what the rule does not cover", tm.id)
		}
	}
}
