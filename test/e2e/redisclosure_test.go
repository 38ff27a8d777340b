package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/federation"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// canary is a value planted in one field of the canary record, with the
// information classes from the field of the Incident down to it: it may be
// in a peer's copy only if every one of them is forwarded.
type canary struct {
	value   string
	classes []irxv1.InfoClass
	// needsConsent: it goes where the reporter's consent to give contacts
	// cannot be shown, as at a team whose copy lacks the consent (private
	// site information) it would pass the record on from.
	needsConsent bool
}

var (
	privateUser   = irxv1.InfoClass_INFO_CLASS_PRIVATE_USER
	intruder      = irxv1.InfoClass_INFO_CLASS_INTRUDER
	privateSite   = irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE
	vulnerability = irxv1.InfoClass_INFO_CLASS_VULNERABILITY
	embarrassing  = irxv1.InfoClass_INFO_CLASS_EMBARRASSING
	statistical   = irxv1.InfoClass_INFO_CLASS_STATISTICAL
	contactClass  = irxv1.InfoClass_INFO_CLASS_CONTACT
	everyClass    = []irxv1.InfoClass{privateUser, intruder, privateSite, vulnerability, embarrassing, statistical, contactClass}
)

// canaryRecord is a shareable record with a unique value in fields of
// every information class; canaries lists them.
func canaryRecord() (*irxv1.Incident, []canary) {
	inc := &irxv1.Incident{
		Tlp: irxv1.Tlp_TLP_GREEN, Restriction: irxv1.Restriction_RESTRICTION_PARTNER,
		Taxonomy:          &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
		Status:            irxv1.Status_STATUS_NEW,
		DetectTime:        timestamppb.New(time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)),
		DisclosureConsent: &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}},
		Descriptions:      []*irxv1.Description{{Lang: "en", Text: "cnry-site-description"}},
		ReportingSite:     &irxv1.ReportingSite{Name: "Cnry Site Name", Domain: "cnry-site.example"},
		Contacts: []*irxv1.Contact{{
			Role: irxv1.ContactRole_CONTACT_ROLE_REPORTER, Type: irxv1.ContactType_CONTACT_TYPE_PERSON,
			Name: "Cnry Contact Name", Email: "cnry-contact@example.org", HomeTelephone: "+1 555 0199",
		}},
		VictimHosts: []*irxv1.Host{{
			Hostname: "cnry-victim.example", Addresses: []string{"192.0.2.77"}, InformationAtRisk: "cnry-embarrassing-risk",
		}},
		AttackingHosts:      []*irxv1.Host{{Addresses: []string{"203.0.113.66"}}},
		Indicators:          []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "cnry-intruder.example"}},
		RelatedActivity:     &irxv1.RelatedActivity{ThreatActors: []string{"cnry-intruder-actor"}},
		Methods:             []*irxv1.Method{{Description: "cnry-vulnerability-method", Vulnerabilities: []*irxv1.Vulnerability{{Product: "cnry-vulnerability-product"}}}},
		Assessments:         []*irxv1.Assessment{{BusinessImpacts: []*irxv1.BusinessImpact{{Description: "cnry-embarrassing-impact"}}}},
		LogExcerpts:         []*irxv1.LogExcerpt{{Source: "sshd", Content: "cnry-private-user-log"}},
		AssistanceRequested: "cnry-site-assistance",
	}
	return inc, []canary{
		{"cnry-site-description", []irxv1.InfoClass{privateSite}, false},
		{"Cnry Site Name", []irxv1.InfoClass{privateSite}, false},
		{"cnry-site.example", []irxv1.InfoClass{privateSite}, false},
		{"Cnry Contact Name", []irxv1.InfoClass{contactClass}, true},
		{"cnry-contact@example.org", []irxv1.InfoClass{contactClass}, true},
		{"+1 555 0199", []irxv1.InfoClass{contactClass, privateUser}, true},
		{"cnry-victim.example", []irxv1.InfoClass{privateSite}, false},
		{"192.0.2.77", []irxv1.InfoClass{privateSite}, false},
		{"cnry-embarrassing-risk", []irxv1.InfoClass{privateSite, embarrassing}, false},
		{"203.0.113.66", []irxv1.InfoClass{intruder}, false},
		{"cnry-intruder.example", []irxv1.InfoClass{intruder}, false},
		{"cnry-intruder-actor", []irxv1.InfoClass{intruder}, false},
		{"cnry-vulnerability-method", []irxv1.InfoClass{vulnerability}, false},
		{"cnry-vulnerability-product", []irxv1.InfoClass{vulnerability}, false},
		{"cnry-embarrassing-impact", []irxv1.InfoClass{embarrassing}, false},
		{"cnry-private-user-log", []irxv1.InfoClass{privateUser}, false},
		{"cnry-site-assistance", []irxv1.InfoClass{privateSite}, false},
	}
}

// forwardAllBut forwards every class to peer but those given, up to
// TLP:AMBER, passing records on up to maxHops transfers from the origin.
func forwardAllBut(peer string, maxHops uint32, stripped ...irxv1.InfoClass) *irxv1.DisclosurePolicy {
	p := &irxv1.DisclosurePolicy{
		PeerTeamId: peer, RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling: irxv1.Tlp_TLP_AMBER, MaxHops: maxHops,
	}
	for _, c := range everyClass {
		if !slices.Contains(stripped, c) {
			p.Rules = append(p.Rules, &irxv1.ClassRule{InfoClass: c, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD})
		}
	}
	return p
}

// caughtUp waits until the receiver has applied and acknowledged all of the
// sender's feed under its latest policy for it, the redisclosure of what it
// holds included.
func caughtUp(t *testing.T, sender *team, receiver string, policyVersion int64) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%s caught up with %s's feed under policy v%d", receiver, sender.id, policyVersion), func() error {
		resp, err := sender.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: receiver})
		if err != nil {
			return err
		}
		p := resp.GetPeer()
		if s := p.GetStatus(); p.GetPolicyVersion() != policyVersion || s.GetRedisclosurePolicyVersion() != 0 || s.GetOutboundLagRecords() != 0 {
			return fmt.Errorf("policy v%d, redisclosure pending under v%d, %d records not acknowledged",
				p.GetPolicyVersion(), s.GetRedisclosurePolicyVersion(), s.GetOutboundLagRecords())
		}
		return nil
	})
}

// everyCopy reads id at a team through every read path: the latest, each
// version by number, the list of versions, and the list of the origin's
// records.
func everyCopy(t *testing.T, tm *team, id string) []*irxv1.Incident {
	t.Helper()
	c := tm.clients[0]
	latest, err := get(c, id)
	if err != nil {
		t.Fatalf("%s: GetIncident %s: %v", tm.id, id, err)
	}
	out := []*irxv1.Incident{latest}
	versions, err := c.incidents.ListIncidentVersions(ctxT(t), &irxv1.ListIncidentVersionsRequest{Id: id, PageSize: 1000})
	if err != nil {
		t.Fatalf("%s: ListIncidentVersions %s: %v", tm.id, id, err)
	}
	out = append(out, versions.GetIncidents()...)
	for _, v := range versions.GetIncidents() {
		resp, err := c.incidents.GetIncident(ctxT(t), &irxv1.GetIncidentRequest{Id: id, Version: v.GetVersion()})
		if err != nil {
			t.Fatalf("%s: GetIncident %s v%d: %v", tm.id, id, v.GetVersion(), err)
		}
		out = append(out, resp.GetIncident())
	}
	for _, inc := range listOrigin(t, c, "cert-a") {
		if inc.GetId() == id {
			out = append(out, inc)
		}
	}
	return out
}

// checkCanaries checks that a team's copies of id hold exactly the canaries
// whose classes are all forwarded, and the detection time (statistical)
// only when statistics are. At the end of a chain (reshared), a copy holds
// what needs the reporter's consent only if the team before it could see
// the consent, which is private site information.
func checkCanaries(t *testing.T, tm *team, id string, canaries []canary, reshared bool, stripped ...irxv1.InfoClass) {
	t.Helper()
	copies := everyCopy(t, tm, id)
	for _, inc := range copies {
		data, err := proto.Marshal(inc)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range canaries {
			allowed := !slices.ContainsFunc(c.classes, func(cl irxv1.InfoClass) bool { return slices.Contains(stripped, cl) }) &&
				!(reshared && c.needsConsent && slices.Contains(stripped, privateSite))
			if got := strings.Contains(string(data), c.value); got != allowed {
				t.Errorf("%s's copy of %s v%d holds %q: %v; with %v stripped it should be %v", tm.id, id, inc.GetVersion(), c.value, got, stripped, allowed)
			}
		}
		if got, allowed := inc.GetDetectTime() != nil, !slices.Contains(stripped, statistical); got != allowed {
			t.Errorf("%s's copy of %s v%d has its detection time: %v; with %v stripped it should be %v", tm.id, id, inc.GetVersion(), got, stripped, allowed)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestRedisclosureFollowsEveryChange runs the canary record through three
// real teams, A -> B -> C (B passes it on): for each information class in
// turn, A's policy for B stops forwarding it, and once B acknowledged, no
// read path at B or at C returns a value of that class from any version,
// while every other class is still there; a new version, then all
// versions, are checked again; the class is then forwarded again and comes
// back. Then a later version takes consent back and marks a contact
// private: the older versions at B and C lose them too. A's audit digest of
// each version B holds equals B's own.
func TestRedisclosureFollowsEveryChange(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b := startTeam(t, "cert-b", 1)
	c := startTeam(t, "cert-c", 1)
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	b.peerWith(t, c, false)
	c.peerWith(t, b, true)
	aPolicy := int64(1)
	a.setPolicy(t, forwardAllBut("cert-b", 2))
	b.setPolicy(t, forwardAllBut("cert-c", 3))

	rec, canaries := canaryRecord()
	id := create(t, a.clients[0], rec).GetId()
	caughtUp(t, a, "cert-b", aPolicy)
	caughtUp(t, b, "cert-c", 1)
	checkCanaries(t, b, id, canaries, false) // all of it: the test can fail
	checkCanaries(t, c, id, canaries, true)

	status := irxv1.Status_STATUS_IN_PROGRESS
	for _, class := range everyClass {
		a.setPolicy(t, forwardAllBut("cert-b", 2, class))
		aPolicy++
		caughtUp(t, a, "cert-b", aPolicy)
		caughtUp(t, b, "cert-c", 1)
		checkCanaries(t, b, id, canaries, false, class)
		checkCanaries(t, c, id, canaries, true, class)

		// A new version, then every version, again.
		if _, err := a.clients[0].incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{
			Incident: &irxv1.Incident{Id: id, Status: status}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}},
		}); err != nil {
			t.Fatal(err)
		}
		status = 3 - status // between NEW and IN_PROGRESS
		caughtUp(t, a, "cert-b", aPolicy)
		caughtUp(t, b, "cert-c", 1)
		checkCanaries(t, b, id, canaries, false, class)
		checkCanaries(t, c, id, canaries, true, class)
	}
	a.setPolicy(t, forwardAllBut("cert-b", 2))
	aPolicy++
	caughtUp(t, a, "cert-b", aPolicy)
	caughtUp(t, b, "cert-c", 1)
	checkCanaries(t, b, id, canaries, false)
	checkCanaries(t, c, id, canaries, true)

	// A later version takes back the consent to name the site and marks
	// the contact private: no version at B or C keeps them.
	current, err := get(a.clients[0], id)
	if err != nil {
		t.Fatal(err)
	}
	contacts := current.GetContacts()
	contacts[0].Restriction = irxv1.Restriction_RESTRICTION_PRIVATE
	if _, err := a.clients[0].incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{
		Incident: &irxv1.Incident{Id: id, Contacts: contacts, DisclosureConsent: &irxv1.DisclosureConsent{
			ResponseTeams: &irxv1.ConsentScope{Hosts: true, Contact: true},
		}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"contacts", "disclosure_consent"}},
	}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, a, "cert-b", aPolicy)
	caughtUp(t, b, "cert-c", 1)
	revoked := []string{"Cnry Contact Name", "cnry-contact@example.org", "+1 555 0199", "Cnry Site Name", "cnry-site.example", "cnry-victim.example"}
	for _, tm := range []*team{b, c} {
		for _, inc := range everyCopy(t, tm, id) {
			data, _ := proto.Marshal(inc)
			for _, v := range revoked {
				if strings.Contains(string(data), v) {
					t.Errorf("%s's copy of %s v%d still holds %q after a later version took it back", tm.id, id, inc.GetVersion(), v)
				}
			}
		}
	}

	// The audit: what A says B holds of each version is what B holds.
	ex, err := a.audit[0].ExplainDisclosure(ctxT(t), &irxv1.ExplainDisclosureRequest{PeerTeamId: "cert-b", IncidentId: id})
	if err != nil {
		t.Fatal(err)
	}
	versions, err := b.clients[0].incidents.ListIncidentVersions(ctxT(t), &irxv1.ListIncidentVersionsRequest{Id: id, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.GetHeldVersions()) != len(versions.GetIncidents()) {
		t.Fatalf("A's audit says B holds %d versions; B holds %d", len(ex.GetHeldVersions()), len(versions.GetIncidents()))
	}
	for i, held := range ex.GetHeldVersions() {
		mine, err := federation.ViewDigest(versions.GetIncidents()[i])
		if err != nil {
			t.Fatal(err)
		}
		if held.GetVersion() != versions.GetIncidents()[i].GetVersion() || held.GetCurrent().GetDigest() != mine ||
			held.GetCurrent().GetDisclosure().GetDigest() != mine {
			t.Errorf("version %d: A recomputes %s (recorded %s), B computes %s", held.GetVersion(),
				held.GetCurrent().GetDigest(), held.GetCurrent().GetDisclosure().GetDigest(), mine)
		}
		if held.GetVersion() == 1 && len(held.GetSuperseded()) < len(everyClass) {
			t.Errorf("version 1 was replaced %d times, want at least %d", len(held.GetSuperseded()), len(everyClass))
		}
	}
	st, err := b.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.GetPeer().GetStatus(); s.GetRejected() != 0 || s.GetReceivedReplacements() == 0 {
		t.Errorf("B's status of A: %v", s)
	}
}

// TestRedisclosureAcrossLeaderChanges: A narrows its policy for B while B
// holds 3,000 of its records, and both teams lose their leader while the
// redisclosure is under way: the new leaders carry it on from the progress
// in the replicated state, and in the end no copy at B holds what the new
// policy takes back, none was refused, and none is missing.
func TestRedisclosureAcrossLeaderChanges(t *testing.T) {
	a := startTeam(t, "cert-a", 3)
	b := startTeam(t, "cert-b", 3)
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	a.setPolicy(t, forwardAllBut("cert-b", 1))
	const records = 3000
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= records; n = next.Add(1) {
				inc := shareable(int(n), irxv1.Tlp_TLP_GREEN)
				inc.DisclosureConsent = &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := a.clients[w%3].incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: inc, RequestId: fmt.Sprintf("r-%d", n)})
				cancel()
				if err != nil {
					t.Errorf("create %d: %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	caughtUp(t, a, "cert-b", 1)

	aLeader, _ := roles(t, a.nodes)
	bLeader, _ := roles(t, b.nodes)
	a.setPolicy(t, forwardAllBut("cert-b", 1, privateSite))
	time.Sleep(200 * time.Millisecond)
	mid, err := a.peers[(aLeader+1)%3].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.nodes[aLeader].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := b.nodes[bLeader].Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("leaders killed with the redisclosure under policy v%d pending (0: done), %d of A's feed not acknowledged",
		mid.GetPeer().GetStatus().GetRedisclosurePolicyVersion(), mid.GetPeer().GetStatus().GetOutboundLagRecords())
	survivor := func(tm *team, dead int) *team {
		i := (dead + 1) % 3
		return &team{id: tm.id, nodes: tm.nodes[i : i+1], clients: tm.clients[i : i+1], peers: tm.peers[i : i+1], policy: tm.policy[i : i+1], audit: tm.audit[i : i+1]}
	}
	a2, b2 := survivor(a, aLeader), survivor(b, bLeader)
	caughtUp(t, a2, "cert-b", 2)

	held := listOrigin(t, b2.clients[0], "cert-a")
	if len(held) != records {
		t.Fatalf("B holds %d records of A, want %d", len(held), records)
	}
	for _, inc := range held {
		if len(inc.GetVictimHosts()) > 0 || len(inc.GetDescriptions()) > 0 {
			t.Fatalf("B's copy of %s keeps private site information the new policy takes back: %v", inc.GetId(), inc.GetVictimHosts())
		}
	}
	st, err := b2.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.GetPeer().GetStatus(); s.GetRejected() != 0 || s.GetReceivedReplacements() < records {
		t.Fatalf("B's status of A: %v", s)
	}
}
