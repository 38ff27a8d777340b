package policy_test

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// basePolicy forwards everything (and includes the realistic constituency)
// so a test changes only what it is about.
func basePolicy(mods ...func(*irxv1.DisclosurePolicy)) *irxv1.DisclosurePolicy {
	p := &irxv1.DisclosurePolicy{
		PeerTeamId:     "cert-b",
		RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling:     irxv1.Tlp_TLP_RED,
		MaxHops:        3,
	}
	for c := privateUser; c <= contact; c++ {
		p.Rules = append(p.Rules, rule(c, forward))
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func setRule(class irxv1.InfoClass, r *irxv1.ClassRule) func(*irxv1.DisclosurePolicy) {
	return func(p *irxv1.DisclosurePolicy) {
		for i, x := range p.Rules {
			if x.GetInfoClass() == class {
				if r == nil {
					p.Rules = append(p.Rules[:i], p.Rules[i+1:]...)
				} else {
					p.Rules[i] = r
				}
				return
			}
		}
		if r != nil {
			p.Rules = append(p.Rules, r)
		}
	}
}

// smallIncident is a valid record with one of everything the tests look
// at; its consent lets response teams have everything.
func smallIncident(mods ...func(*irxv1.Incident)) *irxv1.Incident {
	inc := &irxv1.Incident{
		Id: "cert-a:7", Version: 1, Restriction: partner, Tlp: irxv1.Tlp_TLP_AMBER,
		Status:     irxv1.Status_STATUS_NEW,
		Taxonomy:   &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
		StartTime:  ts("2026-10-30T13:45:07.5Z"),
		EndTime:    ts("2026-10-31T01:00:00Z"),
		CreateTime: ts("2026-10-30T14:00:00Z"),
		ReportingSite: &irxv1.ReportingSite{
			Name: "Example University", Domain: "uni.example", Description: "a university",
		},
		Contacts: []*irxv1.Contact{{Role: irxv1.ContactRole_CONTACT_ROLE_REPORTER, Name: "Ada Admin", Email: "ada@mail.uni.example", HomeTelephone: "+31 20 555 0199"}},
		VictimHosts: []*irxv1.Host{{
			Hostname: "mx1.mail.uni.example", Addresses: []string{"192.0.2.17", "2001:db8:1:2::17"}, Domain: "mail.uni.example",
			Asn: 64500, Platform: "Debian 12", InformationAtRisk: "student records",
			Services: []*irxv1.Service{{IpProtocol: 6, Port: 22, Application: "ssh"}},
		}},
		AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.23"}, Asn: 64496, Hostname: "scan.bad.example"}},
		Indicators: []*irxv1.Indicator{
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.23", Description: "scanner", FirstSeenTime: ts("2026-10-29T22:10:00Z")},
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2.bad.example"},
		},
		LogExcerpts:       []*irxv1.LogExcerpt{{Source: "sshd", Content: "Accepted password for jdoe", MediaType: "text/plain"}},
		Assessments:       []*irxv1.Assessment{{Occurrence: irxv1.Occurrence_OCCURRENCE_ACTUAL, MonetaryImpact: &irxv1.MonetaryImpact{Currency: "EUR", AmountMinor: 1250000}}},
		DisclosureConsent: &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}},
		Provenance:        &irxv1.Provenance{OriginTeam: "cert-a"},
	}
	for _, m := range mods {
		m(inc)
	}
	return inc
}

func disclose(t *testing.T, inc *irxv1.Incident, p *irxv1.DisclosurePolicy) (*irxv1.Incident, *irxv1.Explanation) {
	t.Helper()
	before := proto.Clone(inc)
	view, ex := discloseChecked(t, inc, p)
	if !proto.Equal(before, inc) {
		t.Fatal("Disclose modified its input")
	}
	if (view != nil) != ex.GetDisclosed() {
		t.Fatalf("view present %v but explanation disclosed %v", view != nil, ex.GetDisclosed())
	}
	validView(t, view)
	return view, ex
}

func decision(ex *irxv1.Explanation, path string) *irxv1.FieldDecision {
	for _, d := range ex.GetFields() {
		for _, p := range d.GetPaths() {
			if p == path {
				return d
			}
		}
	}
	return nil
}

func reason(ex *irxv1.Explanation, code irxv1.ReasonCode) *irxv1.Reason {
	for _, r := range ex.GetReasons() {
		if r.GetCode() == code {
			return r
		}
	}
	return nil
}

func wantDecision(t *testing.T, ex *irxv1.Explanation, path string, outcome irxv1.FieldOutcome, cause irxv1.DecisionCause) {
	t.Helper()
	d := decision(ex, path)
	if d == nil {
		t.Fatalf("no decision for %s; have:\n%s", path, decisionsText(ex))
	}
	if d.GetOutcome() != outcome || cause != 0 && d.GetCause() != cause {
		t.Errorf("%s: %v/%v (%s), want %v/%v", path, d.GetOutcome(), d.GetCause(), d.GetRule(), outcome, cause)
	}
}

func decisionsText(ex *irxv1.Explanation) string {
	var b strings.Builder
	for _, d := range ex.GetFields() {
		fmt.Fprintf(&b, "  %v %v %v %v %q\n", d.GetPaths(), d.GetInfoClass(), d.GetOutcome(), d.GetCause(), d.GetRule())
	}
	return b.String()
}

func TestForwardKeepsEverything(t *testing.T) {
	inc := smallIncident()
	view, ex := disclose(t, inc, basePolicy())
	if !proto.Equal(view, inc) {
		t.Errorf("forward-all view differs from the record:\n%v\nwant\n%v", view, inc)
	}
	for _, d := range ex.GetFields() {
		if d.GetOutcome() != kept {
			t.Errorf("%v: %v, want kept", d.GetPaths(), d.GetOutcome())
		}
	}
	wantDecision(t, ex, "indicators", kept, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
	wantDecision(t, ex, "tlp", kept, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
	if got := ex.GetReshare(); got.GetScope() != irxv1.ReshareScope_RESHARE_SCOPE_NONE || got.GetMayReshare() || got.GetHopsLeft() != 0 {
		t.Errorf("TLP:AMBER re-share terms %v, want none", got)
	}
}

func TestStripAndDefaultDeny(t *testing.T) {
	inc := smallIncident()
	view, ex := disclose(t, inc, basePolicy(setRule(privateSite, rule(privateSite, strip)), setRule(embarrassing, nil)))
	if view.GetVictimHosts() != nil || view.GetReportingSite() != nil {
		t.Errorf("private site information left: %v %v", view.GetVictimHosts(), view.GetReportingSite())
	}
	wantDecision(t, ex, "victim_hosts", removed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
	if view.GetAssessments() != nil {
		t.Error("embarrassing (no rule) was disclosed")
	}
	wantDecision(t, ex, "assessments", removed, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY)
	// Handling travels regardless; attacking hosts are intruder, not site.
	if view.GetTlp() != inc.GetTlp() || view.GetId() != inc.GetId() || len(view.GetAttackingHosts()) != 1 {
		t.Error("handling or intruder information lost")
	}
}

func TestStripContainerRemovesNestedOtherClass(t *testing.T) {
	// Contact strip, private user forward: the contact's home telephone
	// (private user) goes with its contact.
	view, ex := disclose(t, smallIncident(), basePolicy(setRule(contact, rule(contact, strip))))
	if view.GetContacts() != nil {
		t.Fatal("contacts disclosed")
	}
	wantDecision(t, ex, "contacts", removed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
	// The other way round: contact forward, private user strip.
	view, ex = disclose(t, smallIncident(), basePolicy(setRule(privateUser, rule(privateUser, strip))))
	if c := view.GetContacts(); len(c) != 1 || c[0].GetHomeTelephone() != "" || c[0].GetName() != "Ada Admin" {
		t.Fatalf("contacts %v, want the contact without its home telephone", c)
	}
	wantDecision(t, ex, "contacts", changed, 0)
	wantDecision(t, ex, "contacts[0].home_telephone", removed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
}

func TestPseudonymise(t *testing.T) {
	inc := smallIncident(func(inc *irxv1.Incident) {
		// The same value twice in one class: one token.
		inc.VictimHosts = append(inc.VictimHosts, &irxv1.Host{Hostname: "mx2.mail.uni.example", Domain: "mail.uni.example", Addresses: []string{"192.0.2.17", "198.51.100.23"}})
		inc.Evidence = []*irxv1.Evidence{{Sha256: strings.Repeat("ab", 32), Description: "disk image"}}
		inc.RelatedActivity = &irxv1.RelatedActivity{IncidentIds: []string{"cert-c:12"}, ThreatActors: []string{"APT-X"}}
	})
	p := basePolicy(setRule(privateSite, rule(privateSite, pseudonymise)), setRule(intruder, rule(intruder, pseudonymise)))
	view, ex := disclose(t, inc, p)
	h := view.GetVictimHosts()
	if len(h) != 2 {
		t.Fatalf("victim hosts %v", h)
	}
	tok := func(s string) bool { return strings.HasPrefix(s, "pseud:") && len(s) == len("pseud:")+26 }
	if !tok(h[0].GetHostname()) || !tok(h[0].GetDomain()) || !tok(h[0].GetPlatform()) || !tok(h[0].GetServices()[0].GetApplication()) {
		t.Errorf("strings not pseudonymised: %v", h[0])
	}
	if h[0].GetDomain() != h[1].GetDomain() || h[0].GetAddresses()[0] != h[1].GetAddresses()[0] {
		t.Error("the same value gave different tokens within one class")
	}
	if h[0].GetHostname() == h[1].GetHostname() {
		t.Error("different values gave the same token")
	}
	a4, a6 := netip.MustParseAddr(h[0].GetAddresses()[0]), netip.MustParseAddr(h[0].GetAddresses()[1])
	if !netip.MustParsePrefix("240.0.0.0/4").Contains(a4) || !netip.MustParsePrefix("100::/64").Contains(a6) {
		t.Errorf("address pseudonyms %v %v, want in 240.0.0.0/4 and 100::/64", a4, a6)
	}
	if asn := h[0].GetAsn(); asn < 4200000000 || asn > 4294967294 {
		t.Errorf("ASN pseudonym %d, want a private-use ASN", asn)
	}
	// Structure stays: ports, protocols, enums, times.
	if s := h[0].GetServices()[0]; s.GetPort() != 22 || s.GetIpProtocol() != 6 {
		t.Errorf("service numbers changed: %v", s)
	}
	if h[0].GetInformationAtRisk() != "student records" {
		t.Error("embarrassing (forward) inside a pseudonymised host changed")
	}
	wantDecision(t, ex, "victim_hosts[0].information_at_risk", kept, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
	wantDecision(t, ex, "victim_hosts", changed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
	// Intruder: the indicator keeps its format.
	ind := view.GetIndicators()
	if !netip.MustParsePrefix("240.0.0.0/4").Contains(netip.MustParseAddr(ind[0].GetValue())) || !tok(ind[1].GetValue()) {
		t.Errorf("indicator pseudonyms %q %q", ind[0].GetValue(), ind[1].GetValue())
	}
	if ind[0].GetValue() != view.GetAttackingHosts()[0].GetAddresses()[0] {
		t.Error("the same address in one class (an attacker and its indicator) gave different tokens")
	}
	if ind[0].GetValue() == h[1].GetAddresses()[1] {
		t.Error("the same address in two classes (intruder, private site) gave the same token")
	}
	if ind[0].GetFirstSeenTime().AsTime() != inc.GetIndicators()[0].GetFirstSeenTime().AsTime() {
		t.Error("pseudonymise changed a time")
	}
	if e := view.GetEvidence()[0].GetSha256(); len(e) != 64 || e == inc.GetEvidence()[0].GetSha256() {
		t.Errorf("evidence digest %q, want a 64-digit pseudonym", e)
	}
	if id := view.GetRelatedActivity().GetIncidentIds()[0]; !strings.HasPrefix(id, "pseud:") {
		t.Errorf("related incident id %q", id)
	}
	// Stable for one peer, different for another.
	view2, _ := policy.Disclose(inc, mustCompile(t, p))
	if !bytes.Equal(marshal(t, view), marshal(t, view2)) {
		t.Error("pseudonyms not stable across Compile with the same key")
	}
	other := proto.Clone(p).(*irxv1.DisclosurePolicy)
	other.PeerTeamId = "cert-c"
	view3, _ := policy.Disclose(inc, mustCompile(t, other))
	if view3.GetVictimHosts()[0].GetHostname() == h[0].GetHostname() || view3.GetVictimHosts()[0].GetAddresses()[0] == h[0].GetAddresses()[0] {
		t.Error("two peers got the same pseudonym")
	}
}

func TestGeneralise(t *testing.T) {
	inc := smallIncident()
	p := basePolicy(
		setRule(privateSite, genRule(privateSite, 16, 32)),
		setRule(statistical, rule(statistical, generalise)),
		setRule(contact, rule(contact, generalise)),
		setRule(intruder, rule(intruder, generalise)), // default /24, /48
	)
	view, ex := disclose(t, inc, p)
	h := view.GetVictimHosts()[0]
	if got := h.GetAddresses(); len(got) != 2 || got[0] != "192.0.0.0/16" || got[1] != "2001:db8::/32" {
		t.Errorf("victim addresses %v, want [192.0.0.0/16 2001:db8::/32]", got)
	}
	// Names to their last two labels; an ASN has no coarser form.
	if h.GetHostname() != "uni.example" || h.GetDomain() != "uni.example" || h.GetAsn() != 0 {
		t.Errorf("victim names %q %q asn %d", h.GetHostname(), h.GetDomain(), h.GetAsn())
	}
	wantDecision(t, ex, "victim_hosts[0].asn", removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE)
	if h.GetPlatform() != "" || h.GetServices()[0].GetApplication() != "" || h.GetServices()[0].GetPort() != 22 {
		t.Errorf("free text must go, numbers stay: %v", h)
	}
	wantDecision(t, ex, "victim_hosts[0].platform", removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE)
	if got := view.GetAttackingHosts()[0].GetAddresses()[0]; got != "198.51.100.0/24" {
		t.Errorf("attacker address %q, want the default /24", got)
	}
	if got := view.GetIndicators()[0].GetValue(); got != "198.51.100.0/24" {
		t.Errorf("indicator %q", got)
	}
	if got := view.GetIndicators()[1].GetValue(); got != "bad.example" {
		t.Errorf("domain indicator %q", got)
	}
	if got := view.GetStartTime(); got.GetSeconds()%86400 != 0 || got.GetNanos() != 0 || got.AsTime().Format("2006-01-02") != "2026-10-30" {
		t.Errorf("start time %v, want 2026-10-30T00:00:00Z", got.AsTime())
	}
	if got := view.GetContacts()[0].GetEmail(); got != "@mail.uni.example" {
		t.Errorf("e-mail %q", got)
	}
	if view.GetContacts()[0].GetName() != "" {
		t.Error("contact name survived generalise")
	}
	// Taxonomy entries are codes: generalise keeps them.
	if !proto.Equal(view.GetTaxonomy(), inc.GetTaxonomy()) {
		t.Errorf("taxonomy %v", view.GetTaxonomy())
	}
	// Statistical stripped: the required taxonomy is a placeholder.
	inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: "fraud", Type: "phishing"}}
	view, ex = disclose(t, inc, basePolicy(setRule(statistical, rule(statistical, strip))))
	if tx := view.GetTaxonomy(); tx.GetClass() != "other" || tx.GetType() != "undetermined" || view.GetAdditionalTaxonomies() != nil || view.GetStartTime() != nil {
		t.Errorf("taxonomy %v %v, want the placeholder and nothing else", tx, view.GetAdditionalTaxonomies())
	}
	wantDecision(t, ex, "taxonomy", changed, irxv1.DecisionCause_DECISION_CAUSE_PLACEHOLDER)
	wantDecision(t, ex, "additional_taxonomies", removed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)
}

func TestGeneraliseEdges(t *testing.T) {
	for _, tc := range []struct {
		name, hostname, want string
		addresses            []string
		wantAddrs            []string
	}{
		{"two labels stay", "uni.example", "uni.example", nil, nil},
		{"single label goes", "mx1", "", []string{"192.0.2.1"}, []string{"192.0.2.0/24"}},
		// Validation refuses an IP address as a host name; a record
		// stored before it did still discloses nothing of it.
		{"IP in a name is no name", "192.0.2.99", "", []string{"192.0.2.1"}, []string{"192.0.2.0/24"}},
		{"trailing dot", "a.b.example.", "b.example", nil, nil},
		{"shorter prefix kept", "a.b.example", "b.example", []string{"10.0.0.0/8", "2001:db8::/32"}, []string{"10.0.0.0/8", "2001:db8::/32"}},
		{"mapped IPv4 is IPv4", "a.b.example", "b.example", []string{"::ffff:192.0.2.7"}, []string{"192.0.2.0/24"}},
		{"host bits of a prefix cleared", "a.b.example", "b.example", []string{"192.0.2.77/30"}, []string{"192.0.2.0/24"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) {
				inc.VictimHosts = []*irxv1.Host{{Hostname: tc.hostname, Addresses: tc.addresses}}
			})
			view, _ := disclose(t, inc, basePolicy(setRule(privateSite, rule(privateSite, generalise))))
			h := view.GetVictimHosts()
			if len(h) != 1 || h[0].GetHostname() != tc.want || fmt.Sprint(h[0].GetAddresses()) != fmt.Sprint(tc.wantAddrs) {
				t.Errorf("got %v, want hostname %q addresses %v", h, tc.want, tc.wantAddrs)
			}
		})
	}
	// A host left with nothing identifying is removed; an indicator whose
	// value cannot be generalised too.
	inc := smallIncident(func(inc *irxv1.Incident) {
		inc.VictimHosts = []*irxv1.Host{{Hostname: "mx1"}, {Hostname: "mx2.uni.example"}}
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: strings.Repeat("0f", 32)})
	})
	view, ex := disclose(t, inc, basePolicy(setRule(privateSite, rule(privateSite, generalise)), setRule(intruder, rule(intruder, generalise))))
	if h := view.GetVictimHosts(); len(h) != 1 || h[0].GetHostname() != "uni.example" {
		t.Errorf("victim hosts %v", h)
	}
	wantDecision(t, ex, "victim_hosts[0]", removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE)
	wantDecision(t, ex, "indicators[2]", removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE)
	if n := len(view.GetIndicators()); n != 2 {
		t.Errorf("%d indicators, want 2", n)
	}
}

// TestGeneraliseKeepsOnlyNames: generalise keeps the last two labels of a
// name, "@domain" of an e-mail address and the host of a URL only when what
// is kept is a host name and nothing else; otherwise the value is removed,
// with its own decision. (The values refused here are ones the record
// validator refuses too; a record stored before it did must not leak them.)
func TestGeneraliseKeepsOnlyNames(t *testing.T) {
	const everyPartOfAURL = "https://user:pw@cdn.c2.bad.example:8443/k?q#f"
	unrepresentable := irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE
	for _, tc := range []struct {
		name  string
		mod   func(inc *irxv1.Incident)
		path  string
		get   func(view *irxv1.Incident) string
		want  string // "" : removed
		cause irxv1.DecisionCause
	}{
		{"host name with a remark", func(inc *irxv1.Incident) { inc.AttackingHosts[0].Hostname = "srv.x.example owner=secret" },
			"attacking_hosts[0].hostname", func(v *irxv1.Incident) string { return v.GetAttackingHosts()[0].GetHostname() }, "", unrepresentable},
		{"domain field holding an address and port", func(inc *irxv1.Incident) { inc.VictimHosts[0].Domain = "192.0.2.241:22" },
			"victim_hosts[0].domain", func(v *irxv1.Incident) string { return v.GetVictimHosts()[0].GetDomain() }, "", unrepresentable},
		{"domain field holding an address", func(inc *irxv1.Incident) { inc.VictimHosts[0].Domain = "192.0.2.241" },
			"victim_hosts[0].domain", func(v *irxv1.Incident) string { return v.GetVictimHosts()[0].GetDomain() }, "", unrepresentable},
		{"domain indicator with a path", func(inc *irxv1.Incident) { inc.Indicators[1].Value = "evil.example/secret-path" },
			"indicators[1]", func(v *irxv1.Incident) string { return indicatorValue(v, irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN) }, "", irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE},
		{"domain indicator", func(inc *irxv1.Incident) { inc.Indicators[1].Value = "a.c2.bad.example." },
			"indicators[1]", func(v *irxv1.Incident) string { return indicatorValue(v, irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN) }, "bad.example", 0},
		{"site domain with a remark", func(inc *irxv1.Incident) { inc.ReportingSite.Domain = "uni.example (main campus)" },
			"reporting_site.domain", func(v *irxv1.Incident) string { return v.GetReportingSite().GetDomain() }, "", unrepresentable},
		{"constituency domain, last label numeric", func(inc *irxv1.Incident) { inc.Contacts[0].ConstituencyDomain = "cert.example.123" },
			"contacts[0].constituency_domain", func(v *irxv1.Incident) string { return v.GetContacts()[0].GetConstituencyDomain() }, "", unrepresentable},
		{"e-mail with text after the domain", func(inc *irxv1.Incident) { inc.Contacts[0].Email = "ada@mail.uni.example, owner=secret" },
			"contacts[0].email", func(v *irxv1.Incident) string { return v.GetContacts()[0].GetEmail() }, "", unrepresentable},
		{"e-mail to an address literal", func(inc *irxv1.Incident) { inc.Contacts[0].Email = "ada@[192.0.2.1]" },
			"contacts[0].email", func(v *irxv1.Incident) string { return v.GetContacts()[0].GetEmail() }, "", unrepresentable},
		{"e-mail", func(inc *irxv1.Incident) { inc.Contacts[0].Email = "a@b@mail.uni.example" },
			"contacts[0].email", func(v *irxv1.Incident) string { return v.GetContacts()[0].GetEmail() }, "@mail.uni.example", 0},
		{"URL", func(inc *irxv1.Incident) { inc.Indicators[1] = urlIndicator(everyPartOfAURL) },
			"indicators[1]", func(v *irxv1.Incident) string { return indicatorValue(v, irxv1.IndicatorKind_INDICATOR_KIND_URL) }, "bad.example", 0},
		{"URL of an address", func(inc *irxv1.Incident) { inc.Indicators[1] = urlIndicator("http://[2001:db8:5::7]:80/x") },
			"indicators[1]", func(v *irxv1.Incident) string { return indicatorValue(v, irxv1.IndicatorKind_INDICATOR_KIND_URL) }, "2001:db8:5::/48", 0},
		{"URL whose host has a remark", func(inc *irxv1.Incident) { inc.Indicators[1] = urlIndicator("evil.example owner=secret/x") },
			"indicators[1]", func(v *irxv1.Incident) string { return indicatorValue(v, irxv1.IndicatorKind_INDICATOR_KIND_URL) }, "", irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE},
		{"URL with a backslash", func(inc *irxv1.Incident) { inc.Indicators[1] = urlIndicator(`http://evil.example\secret`) },
			"indicators[1]", func(v *irxv1.Incident) string { return indicatorValue(v, irxv1.IndicatorKind_INDICATOR_KIND_URL) }, "", irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(tc.mod)
			p := basePolicy(setRule(privateSite, rule(privateSite, generalise)), setRule(intruder, rule(intruder, generalise)),
				setRule(contact, rule(contact, generalise)))
			view, ex := disclose(t, inc, p)
			if got := tc.get(view); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				wantDecision(t, ex, tc.path, removed, tc.cause)
			}
		})
	}
}

func urlIndicator(v string) *irxv1.Indicator {
	return &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: v}
}

// indicatorValue is the value of the view's indicator of kind, "" if none.
func indicatorValue(view *irxv1.Incident, kind irxv1.IndicatorKind) string {
	for _, ind := range view.GetIndicators() {
		if ind.GetKind() == kind {
			return ind.GetValue()
		}
	}
	return ""
}

// TestCodesKeptOnlyWhenCodes: pseudonymise and generalise keep a code as
// it is, but only a code of its vocabulary; a free string in a code field
// (a record stored before validation knew the vocabulary) is removed.
func TestCodesKeptOnlyWhenCodes(t *testing.T) {
	stored := smallIncident(func(inc *irxv1.Incident) {
		inc.Descriptions = []*irxv1.Description{{Lang: "en owner=secret", Text: "a"}, {Lang: "de-CH", Text: "b"}}
		inc.LogExcerpts = []*irxv1.LogExcerpt{{Content: "x", MediaType: "text/plain; charset=secret"}, {Content: "y", MediaType: "application/json"}}
		inc.Assessments[0].MonetaryImpact.Currency = "EUR secret"
		inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: "fraud", Type: "phishing"}, {Class: "fraud", Type: "secret"}}
	})
	for _, action := range []irxv1.DisclosureAction{pseudonymise, generalise} {
		t.Run(actionName(action), func(t *testing.T) {
			p := basePolicy(setRule(privateSite, rule(privateSite, action)), setRule(privateUser, rule(privateUser, action)),
				setRule(embarrassing, rule(embarrassing, action)), setRule(statistical, rule(statistical, action)))
			view, ex := disclose(t, stored, p)
			if b := marshal(t, view); bytes.Contains(b, []byte("secret")) {
				t.Fatalf("a free string in a code field was disclosed:\n%v", view)
			}
			d, l := view.GetDescriptions(), view.GetLogExcerpts()
			if d[0].GetLang() != "" || d[1].GetLang() != "de-CH" || l[0].GetMediaType() != "" || l[1].GetMediaType() != "application/json" {
				t.Errorf("descriptions %v, log excerpts %v", d, l)
			}
			if c := view.GetAssessments()[0].GetMonetaryImpact().GetCurrency(); c != "" {
				t.Errorf("currency %q", c)
			}
			// A taxonomy entry without its type is no entry: removed whole.
			if tx := view.GetAdditionalTaxonomies(); len(tx) != 1 || tx[0].GetType() != "phishing" {
				t.Errorf("taxonomies %v", tx)
			}
			wantDecision(t, ex, "additional_taxonomies[1]", removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE)
			for _, path := range []string{"descriptions[0].lang", "log_excerpts[0].media_type", "assessments[0].monetary_impact.currency"} {
				wantDecision(t, ex, path, removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE)
			}
		})
	}
}

func actionName(a irxv1.DisclosureAction) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "DISCLOSURE_ACTION_"))
}

// TestGeneraliseNumbers: under generalise an ASN (of a host or an
// indicator) is removed, magnitudes keep their first significant digit,
// ports, protocols and confidences are kept; pseudonymise keeps the
// magnitudes as they are.
func TestGeneraliseNumbers(t *testing.T) {
	inc := smallIncident(func(inc *irxv1.Incident) {
		inc.Assessments[0].Confidence = 87
		inc.Assessments = append(inc.Assessments,
			&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "EUR", AmountMinor: -156000}},
			&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "EUR", AmountMinor: 9}},
			&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "EUR", AmountMinor: math.MinInt64}})
		inc.Evidence = []*irxv1.Evidence{{Description: "disk", SizeBytes: 1 << 30}, {Description: "pcap", SizeBytes: math.MaxInt64}}
		inc.Compromise = &irxv1.Compromise{SnifferInstalled: true, SnifferSessionsLogged: 47}
		inc.Indicators = append(inc.Indicators,
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_ASN, Value: "AS64511", Confidence: 55})
		inc.VictimHosts = append(inc.VictimHosts, &irxv1.Host{Asn: 64501, InformationAtRisk: "payroll"})
	})
	all := func(a irxv1.DisclosureAction) *irxv1.DisclosurePolicy {
		return basePolicy(func(p *irxv1.DisclosurePolicy) {
			for _, r := range p.Rules {
				r.Action = a
			}
		})
	}
	view, ex := disclose(t, inc, all(generalise))
	var amounts []int64
	for _, a := range view.GetAssessments() {
		amounts = append(amounts, a.GetMonetaryImpact().GetAmountMinor())
	}
	if want := []int64{1000000, -100000, 9, -9000000000000000000}; fmt.Sprint(amounts) != fmt.Sprint(want) {
		t.Errorf("amounts %v, want %v", amounts, want)
	}
	if e := view.GetEvidence(); e[0].GetSizeBytes() != 1000000000 || e[1].GetSizeBytes() != 9000000000000000000 {
		t.Errorf("sizes %v", e)
	}
	if n := view.GetCompromise().GetSnifferSessionsLogged(); n != 40 {
		t.Errorf("sniffer sessions %d, want 40", n)
	}
	wantDecision(t, ex, "assessments", changed, 0)
	if h := view.GetVictimHosts(); len(h) != 1 || h[0].GetAsn() != 0 || h[0].GetServices()[0].GetPort() != 22 || h[0].GetServices()[0].GetIpProtocol() != 6 {
		t.Errorf("victim hosts %v: the ASN must go, the service numbers stay", h)
	}
	wantDecision(t, ex, "victim_hosts[0].asn", removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE)
	// A host with only an ASN has nothing left: removed whole, with one
	// decision and nothing listed beneath it.
	wantDecision(t, ex, "victim_hosts[1]", removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE)
	for _, path := range []string{"victim_hosts[1].asn", "victim_hosts[1].information_at_risk"} {
		if d := decision(ex, path); d != nil {
			t.Errorf("%s of a removed host has a decision: %v", path, d)
		}
	}
	if v := indicatorValue(view, irxv1.IndicatorKind_INDICATOR_KIND_ASN); v != "" {
		t.Errorf("ASN indicator %q disclosed under generalise", v)
	}
	if view.GetAssessments()[0].GetConfidence() != 87 {
		t.Error("a confidence changed")
	}

	view, _ = disclose(t, inc, all(pseudonymise))
	if a := view.GetAssessments()[0].GetMonetaryImpact().GetAmountMinor(); a != 1250000 || view.GetCompromise().GetSnifferSessionsLogged() != 47 {
		t.Errorf("pseudonymise changed a magnitude: %d", a)
	}
}

// TestDecisionsOrder: a field's decision comes before those beneath it,
// also when it is removed after its values were.
func TestDecisionsOrder(t *testing.T) {
	inc := smallIncident(func(inc *irxv1.Incident) {
		inc.Methods = []*irxv1.Method{{Description: "d", Weaknesses: []string{"CWE-307", "CWE-521"}}}
	})
	_, ex := disclose(t, inc, basePolicy(setRule(vulnerability, rule(vulnerability, generalise))))
	d := decision(ex, "methods[0].weaknesses")
	if d == nil {
		t.Fatalf("no decision for the weaknesses:\n%s", decisionsText(ex))
	}
	if want := []string{"methods[0].description", "methods[0].weaknesses", "methods[0].weaknesses[0]", "methods[0].weaknesses[1]"}; fmt.Sprint(d.GetPaths()) != fmt.Sprint(want) {
		t.Errorf("paths %v, want %v", d.GetPaths(), want)
	}
}

// TestIncompleteParts: a part the rules leave without what the validator
// requires of it is removed whole; one that came so (a record stored
// before a rule existed) goes on as the rules leave it, whether the engine
// shares it or rebuilds it.
func TestIncompleteParts(t *testing.T) {
	inc := smallIncident(func(inc *irxv1.Incident) {
		inc.AttackingHosts = append(inc.AttackingHosts, &irxv1.Host{Platform: "no identifier"})
		inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: "fraud"}, {Class: "fraud", Type: "phishing"}, {Class: "fraud", Type: "none such"}}
	})
	for _, tc := range []struct {
		name    string
		action  irxv1.DisclosureAction
		hosts   int
		removed []string
	}{
		{"shared", forward, 2, nil},
		{"rebuilt", pseudonymise, 2, []string{"additional_taxonomies[2]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := basePolicy(setRule(intruder, rule(intruder, tc.action)), setRule(statistical, rule(statistical, tc.action)))
			view, ex := discloseChecked(t, inc, p)
			if n := len(view.GetAttackingHosts()); n != tc.hosts {
				t.Errorf("%d attacking hosts, want %d", n, tc.hosts)
			}
			if tx := view.GetAdditionalTaxonomies(); len(tx) != 3-len(tc.removed) || tx[0].GetClass() != "fraud" || tx[0].GetType() != "" {
				t.Errorf("additional taxonomies %v", tx)
			}
			for _, path := range tc.removed {
				wantDecision(t, ex, path, removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE)
			}
		})
	}
}

func TestRestrictionInheritance(t *testing.T) {
	ind := func(v string, r irxv1.Restriction) *irxv1.Indicator {
		return &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: v, Restriction: r}
	}
	ntkPolicy := func(match bool) func(*irxv1.DisclosurePolicy) {
		return func(p *irxv1.DisclosurePolicy) {
			p.Constituency = &irxv1.Constituency{Cidrs: []string{"203.0.113.0/24"}}
			if match {
				p.Constituency.Cidrs = []string{"198.51.100.0/24"} // the attacking host
			}
		}
	}
	for _, tc := range []struct {
		name      string
		record    irxv1.Restriction
		parts     []irxv1.Restriction
		ntk       bool
		disclosed bool
		kept      []string // indicator values in the view
	}{
		{"unset record is private", inherit, []irxv1.Restriction{public}, true, false, nil},
		{"private record: no part leaves", private, []irxv1.Restriction{public, partner}, true, false, nil},
		{"partner record, parts inherit", partner, []irxv1.Restriction{inherit, inherit}, false, true, []string{"p0.example", "p1.example"}},
		{"private parts never leave", partner, []irxv1.Restriction{private, inherit, public}, false, true, []string{"p1.example", "p2.example"}},
		{"need-to-know part without a match", partner, []irxv1.Restriction{needToKnow, inherit}, false, true, []string{"p1.example"}},
		{"need-to-know part with a match", partner, []irxv1.Restriction{needToKnow, inherit}, true, true, []string{"p0.example", "p1.example"}},
		{"need-to-know record without a match", needToKnow, []irxv1.Restriction{public}, false, false, nil},
		{"need-to-know record with a match, parts inherit", needToKnow, []irxv1.Restriction{inherit, private}, true, true, []string{"p0.example"}},
		{"public record, partner part", public, []irxv1.Restriction{partner}, false, true, []string{"p0.example"}},
		{"unknown restriction value", partner, []irxv1.Restriction{9, inherit}, false, true, []string{"p1.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) {
				inc.Restriction = tc.record
				inc.Indicators = nil
				for i, r := range tc.parts {
					inc.Indicators = append(inc.Indicators, ind(fmt.Sprintf("p%d.example", i), r))
				}
			})
			p := basePolicy(ntkPolicy(tc.ntk))
			view, ex := discloseChecked(t, inc, p)
			if (view != nil) != tc.disclosed {
				t.Fatalf("disclosed %v, want %v; reasons %v", view != nil, tc.disclosed, ex.GetReasons())
			}
			if r := reason(ex, irxv1.ReasonCode_REASON_CODE_RESTRICTION); r.GetSatisfied() != tc.disclosed {
				t.Errorf("restriction reason %v", r)
			}
			var got []string
			for _, i := range view.GetIndicators() {
				got = append(got, i.GetValue())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.kept) {
				t.Errorf("indicators %v, want %v", got, tc.kept)
			}
			for i, r := range tc.parts {
				path := fmt.Sprintf("indicators[%d]", i)
				d := decision(ex, path)
				keptPart := false
				for _, k := range tc.kept {
					keptPart = keptPart || k == fmt.Sprintf("p%d.example", i)
				}
				if view != nil && !keptPart && (d == nil || d.GetCause() != irxv1.DecisionCause_DECISION_CAUSE_RESTRICTION) {
					t.Errorf("%s (%v) removed without a restriction decision: %v", path, r, d)
				}
			}
		})
	}
}

func TestInheritedRestrictionRuleText(t *testing.T) {
	// A need-to-know record whose part inherits: the part's decision says
	// where its restriction came from.
	inc := smallIncident(func(inc *irxv1.Incident) {
		inc.Restriction = public
		inc.Indicators[0].Restriction = needToKnow
	})
	_, ex := disclose(t, inc, basePolicy())
	d := decision(ex, "indicators[0]")
	if d == nil || !strings.Contains(d.GetRule(), "need-to-know on this part") {
		t.Errorf("decision %v", d)
	}
}

func TestTLPCeiling(t *testing.T) {
	for _, tc := range []struct {
		record, ceiling irxv1.Tlp
		named           bool
		want            bool
	}{
		{irxv1.Tlp_TLP_CLEAR, irxv1.Tlp_TLP_CLEAR, false, true},
		{irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_CLEAR, false, false},
		{irxv1.Tlp_TLP_AMBER, irxv1.Tlp_TLP_AMBER, false, true},
		{irxv1.Tlp_TLP_AMBER_STRICT, irxv1.Tlp_TLP_AMBER, false, false},
		{irxv1.Tlp_TLP_RED, irxv1.Tlp_TLP_RED, false, false},
		{irxv1.Tlp_TLP_RED, irxv1.Tlp_TLP_RED, true, true},
		{irxv1.Tlp_TLP_RED, irxv1.Tlp_TLP_AMBER_STRICT, true, false},
		{irxv1.Tlp_TLP_UNSPECIFIED, irxv1.Tlp_TLP_RED, true, false},
	} {
		t.Run(fmt.Sprintf("%v_under_%v_named_%v", tc.record, tc.ceiling, tc.named), func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) {
				inc.Tlp = tc.record
				if tc.named {
					inc.NamedRecipients = []string{"cert-x", "cert-b"}
				}
			})
			view, ex := discloseChecked(t, inc, basePolicy(func(p *irxv1.DisclosurePolicy) { p.TlpCeiling = tc.ceiling }))
			if (view != nil) != tc.want {
				t.Fatalf("disclosed %v, want %v: %v", view != nil, tc.want, ex.GetReasons())
			}
			if tc.record == irxv1.Tlp_TLP_UNSPECIFIED {
				if r := reason(ex, irxv1.ReasonCode_REASON_CODE_RECORD); r.GetSatisfied() {
					t.Error("unmarked record accepted")
				}
				return
			}
			if r := reason(ex, irxv1.ReasonCode_REASON_CODE_TLP_CEILING); r.GetSatisfied() != (tc.record <= tc.ceiling) {
				t.Errorf("ceiling reason %v", r)
			}
			if r := reason(ex, irxv1.ReasonCode_REASON_CODE_TLP_RED_RECIPIENT); (r != nil) != (tc.record == irxv1.Tlp_TLP_RED) || r != nil && r.GetSatisfied() != tc.named {
				t.Errorf("RED recipient reason %v", r)
			}
		})
	}
}

func TestConsent(t *testing.T) {
	type want struct {
		siteName, hostnames, hosts, contacts bool
	}
	for _, tc := range []struct {
		name      string
		recipient irxv1.RecipientClass
		consent   *irxv1.DisclosureConsent
		want      want
	}{
		{"no consent at all", irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM, nil, want{}},
		{"hosts without domain", irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
			&irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Hosts: true}}, want{hosts: true}},
		{"domain without hosts", irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
			&irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true}}, want{siteName: true}},
		{"all, for response teams", irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
			&irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}}, want{true, true, true, true}},
		{"another row does not count", irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT,
			&irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}}, want{}},
		{"law enforcement row", irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT,
			&irxv1.DisclosureConsent{LawEnforcement: &irxv1.ConsentScope{Contact: true}}, want{contacts: true}},
		{"sites row", irxv1.RecipientClass_RECIPIENT_CLASS_SITE,
			&irxv1.DisclosureConsent{SitesInvolved: &irxv1.ConsentScope{Domain: true, Hosts: true}}, want{siteName: true, hostnames: true, hosts: true}},
		{"vendors have no row", irxv1.RecipientClass_RECIPIENT_CLASS_VENDOR,
			&irxv1.DisclosureConsent{SitesInvolved: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}, ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}, LawEnforcement: &irxv1.ConsentScope{Domain: true, Hosts: true, Contact: true}}, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) { inc.DisclosureConsent = tc.consent })
			// Pseudonymised: consent gates what a token would still disclose.
			p := basePolicy(func(p *irxv1.DisclosurePolicy) { p.RecipientClass = tc.recipient }, setRule(privateSite, rule(privateSite, pseudonymise)))
			view, ex := disclose(t, inc, p)
			got := want{
				siteName:  view.GetReportingSite().GetName() != "" && view.GetReportingSite().GetDomain() != "",
				hosts:     len(view.GetVictimHosts()) > 0,
				hostnames: len(view.GetVictimHosts()) > 0 && view.GetVictimHosts()[0].GetHostname() != "",
				contacts:  len(view.GetContacts()) > 0,
			}
			if got.hosts && !tc.want.hostnames && view.GetVictimHosts()[0].GetDomain() != "" {
				t.Error("victim host domain disclosed without domain consent")
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v\n%s", got, tc.want, decisionsText(ex))
			}
			if view.GetReportingSite().GetDescription() == "" {
				t.Error("consent removed the site description, which it does not govern")
			}
			if !tc.want.contacts {
				wantDecision(t, ex, "contacts", removed, irxv1.DecisionCause_DECISION_CAUSE_CONSENT)
			}
			if !tc.want.hosts {
				wantDecision(t, ex, "victim_hosts", removed, irxv1.DecisionCause_DECISION_CAUSE_CONSENT)
			} else if !tc.want.hostnames {
				wantDecision(t, ex, "victim_hosts[0].hostname", removed, irxv1.DecisionCause_DECISION_CAUSE_CONSENT)
			}
			if r := reason(ex, irxv1.ReasonCode_REASON_CODE_CONSENT); r == nil || !r.GetSatisfied() {
				t.Errorf("consent reason %v", r)
			}
			// Attacking hosts are not the reporter's: never gated.
			if len(view.GetAttackingHosts()) != 1 || view.GetAttackingHosts()[0].GetHostname() == "" {
				t.Error("consent gated an attacking host")
			}
		})
	}
}

func TestNeedToKnow(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *irxv1.Constituency
		mod  func(*irxv1.Incident)
		want bool
	}{
		{"cidr contains a victim address", &irxv1.Constituency{Cidrs: []string{"192.0.2.0/28"}}, nil, false},
		{"cidr contains a victim address exactly", &irxv1.Constituency{Cidrs: []string{"192.0.2.16/28"}}, nil, true},
		{"ipv6 cidr", &irxv1.Constituency{Cidrs: []string{"2001:db8:1::/48"}}, nil, true},
		{"asn of an attacker", &irxv1.Constituency{Asns: []uint32{64496}}, nil, true},
		{"domain above a host name", &irxv1.Constituency{Domains: []string{"UNI.example"}}, nil, true},
		{"domain is not a suffix match", &irxv1.Constituency{Domains: []string{"ni.example"}}, nil, false},
		{"domain indicator", &irxv1.Constituency{Domains: []string{"bad.example"}}, func(inc *irxv1.Incident) {
			inc.AttackingHosts, inc.VictimHosts, inc.ReportingSite = nil, nil, nil
		}, true},
		{"url indicator", &irxv1.Constituency{Domains: []string{"evil.example"}}, func(inc *irxv1.Incident) {
			inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: "https://x@cdn.evil.example:8443/a?b"})
		}, true},
		{"email indicator", &irxv1.Constituency{Domains: []string{"mail.example"}}, func(inc *irxv1.Incident) {
			inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_EMAIL, Value: "phish@mail.example"})
		}, true},
		{"a private part does not count", &irxv1.Constituency{Asns: []uint32{64496}}, func(inc *irxv1.Incident) {
			inc.AttackingHosts[0].Restriction = private
		}, false},
		{"a prefix wider than the constituency does not count", &irxv1.Constituency{Cidrs: []string{"10.1.0.0/16"}}, func(inc *irxv1.Incident) {
			inc.AttackingHosts[0].Addresses = []string{"10.0.0.0/8"}
		}, false},
		{"a part with no valid restriction does not count", &irxv1.Constituency{Asns: []uint32{64496}}, func(inc *irxv1.Incident) {
			inc.AttackingHosts[0].Restriction = 9 // admits no peer, as private
		}, false},
		{"asn indicator, AS in any case", &irxv1.Constituency{Asns: []uint32{64999}}, func(inc *irxv1.Incident) {
			inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_ASN, Value: "as64999"})
		}, true},
		{"a name is compared without ASCII case only", &irxv1.Constituency{Domains: []string{"kx.example"}}, func(inc *irxv1.Incident) {
			inc.AttackingHosts[0].Hostname = "\u212ax.example" // KELVIN SIGN, which Unicode folds to k
		}, false},
		{"a name is compared without ASCII case", &irxv1.Constituency{Domains: []string{"kx.example"}}, func(inc *irxv1.Incident) {
			inc.AttackingHosts[0].Hostname = "WWW.KX.Example."
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident()
			if tc.mod != nil {
				tc.mod(inc)
			}
			p := basePolicy(func(p *irxv1.DisclosurePolicy) { p.NeedToKnow, p.Constituency = true, tc.c })
			view, ex := discloseChecked(t, inc, p)
			if (view != nil) != tc.want {
				t.Errorf("disclosed %v, want %v: %v", view != nil, tc.want, ex.GetReasons())
			}
			if r := reason(ex, irxv1.ReasonCode_REASON_CODE_NEED_TO_KNOW); r.GetSatisfied() != tc.want {
				t.Errorf("need-to-know reason %v", r)
			}
		})
	}
}

// TestTLPConsentNeedToKnow is the interplay: each condition withholds on
// its own, consent never withholds the record, and the record-level
// conditions are all reported.
func TestTLPConsentNeedToKnow(t *testing.T) {
	for _, tlp := range []irxv1.Tlp{irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_AMBER, irxv1.Tlp_TLP_RED} {
		for _, named := range []bool{false, true} {
			for _, hostsConsent := range []bool{false, true} {
				for _, ntk := range []bool{false, true} {
					name := fmt.Sprintf("%v/named=%v/hosts=%v/ntk=%v", tlp, named, hostsConsent, ntk)
					t.Run(name, func(t *testing.T) {
						inc := smallIncident(func(inc *irxv1.Incident) {
							inc.Tlp = tlp
							if named {
								inc.NamedRecipients = []string{"cert-b"}
							}
							inc.DisclosureConsent = &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Hosts: hostsConsent}}
						})
						p := basePolicy(func(p *irxv1.DisclosurePolicy) {
							p.TlpCeiling = irxv1.Tlp_TLP_RED
							p.NeedToKnow = true
							p.Constituency = &irxv1.Constituency{Cidrs: []string{"203.0.113.0/24"}}
							if ntk {
								p.Constituency.Cidrs = []string{"198.51.100.0/24"}
							}
						})
						view, ex := disclose(t, inc, p)
						want := ntk && (tlp != irxv1.Tlp_TLP_RED || named)
						if (view != nil) != want {
							t.Fatalf("disclosed %v, want %v: %v", view != nil, want, ex.GetReasons())
						}
						if r := reason(ex, irxv1.ReasonCode_REASON_CODE_NEED_TO_KNOW); r.GetSatisfied() != ntk {
							t.Errorf("need-to-know reason %v", r)
						}
						if r := reason(ex, irxv1.ReasonCode_REASON_CODE_TLP_RED_RECIPIENT); tlp == irxv1.Tlp_TLP_RED && r.GetSatisfied() != named {
							t.Errorf("RED reason %v", r)
						}
						if view != nil && (len(view.GetVictimHosts()) > 0) != hostsConsent {
							t.Errorf("victim hosts present %v with hosts consent %v", len(view.GetVictimHosts()) > 0, hostsConsent)
						}
					})
				}
			}
		}
	}
}

func TestTaxonomyLists(t *testing.T) {
	inc := smallIncident(func(inc *irxv1.Incident) {
		inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: "malicious-code", Type: "c2-server"}}
	})
	for _, tc := range []struct {
		allow, deny []string
		want        bool
	}{
		{nil, nil, true},
		{nil, []string{"intrusions"}, false},
		{nil, []string{"intrusions/burglary"}, true},
		{nil, []string{"malicious-code/c2-server"}, false},
		{[]string{"malicious-code"}, nil, true},
		{[]string{"fraud", "vulnerable/weak-crypto"}, nil, false},
		{[]string{"intrusions"}, []string{"malicious-code"}, false},
	} {
		t.Run(fmt.Sprintf("allow=%v/deny=%v", tc.allow, tc.deny), func(t *testing.T) {
			p := basePolicy(func(p *irxv1.DisclosurePolicy) { p.TaxonomyAllow, p.TaxonomyDeny = tc.allow, tc.deny })
			view, ex := discloseChecked(t, inc, p)
			if (view != nil) != tc.want {
				t.Errorf("disclosed %v, want %v: %v", view != nil, tc.want, ex.GetReasons())
			}
		})
	}
}

const (
	scopeNone      = irxv1.ReshareScope_RESHARE_SCOPE_NONE
	community      = irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY
	unlimited      = irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED
	reshareReason  = irxv1.ReasonCode_REASON_CODE_RESHARE
	hopLimitReason = irxv1.ReasonCode_REASON_CODE_HOP_LIMIT
)

// grant is the terms a team passing a record on grants its receiver.
func grant(scope irxv1.ReshareScope, hopsLeft uint32) *irxv1.ReshareTerms {
	return &irxv1.ReshareTerms{MayReshare: hopsLeft > 0, Scope: scope, HopsLeft: hopsLeft}
}

func TestLoopAndReshare(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tlp         irxv1.Tlp
		prov        *irxv1.Provenance
		id          string
		maxHops     uint32
		want        bool
		scope       irxv1.ReshareScope
		hopsLeft    uint32
		failingCode irxv1.ReasonCode
	}{
		{"local clear", irxv1.Tlp_TLP_CLEAR, &irxv1.Provenance{OriginTeam: "cert-a"}, "", 3, true, irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED, 2, 0},
		{"local green", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-a"}, "", 2, true, irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY, 1, 0},
		{"local green, no hops", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-a"}, "", 0, true, irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY, 0, 0},
		{"local amber", irxv1.Tlp_TLP_AMBER, &irxv1.Provenance{OriginTeam: "cert-a"}, "", 5, true, irxv1.ReshareScope_RESHARE_SCOPE_NONE, 0, 0},
		{"local amber strict", irxv1.Tlp_TLP_AMBER_STRICT, &irxv1.Provenance{OriginTeam: "cert-a"}, "", 5, true, irxv1.ReshareScope_RESHARE_SCOPE_NONE, 0, 0},
		{"back to the origin", irxv1.Tlp_TLP_CLEAR, &irxv1.Provenance{OriginTeam: "cert-b", ReceivedFrom: "cert-b", Path: []string{"cert-a"}}, "cert-b:4", 5, false, 0, 0, irxv1.ReasonCode_REASON_CODE_LOOP},
		{"origin from the id", irxv1.Tlp_TLP_CLEAR, nil, "cert-b:4", 5, false, 0, 0, irxv1.ReasonCode_REASON_CODE_LOOP},
		{"origin by the id though provenance names another", irxv1.Tlp_TLP_CLEAR, &irxv1.Provenance{OriginTeam: "cert-a"}, "cert-b:4", 5, false, 0, 0, irxv1.ReasonCode_REASON_CODE_LOOP},
		{"back along the path", irxv1.Tlp_TLP_CLEAR, &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-y", Path: []string{"cert-b", "cert-y", "cert-a"}}, "cert-z:4", 5, false, 0, 0, irxv1.ReasonCode_REASON_CODE_LOOP},
		{"foreign green within hops", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: grant(community, 5)}, "cert-z:4", 3, true, irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY, 1, 0},
		{"foreign green at the limit", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: grant(community, 5)}, "cert-z:4", 2, true, irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY, 0, 0},
		{"foreign green over the limit", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: grant(community, 5)}, "cert-z:4", 1, false, 0, 0, irxv1.ReasonCode_REASON_CODE_HOP_LIMIT},
		{"foreign amber never", irxv1.Tlp_TLP_AMBER, &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: grant(community, 5)}, "cert-z:4", 5, false, 0, 0, irxv1.ReasonCode_REASON_CODE_RESHARE},
		{"foreign red never, even named", irxv1.Tlp_TLP_RED, &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: grant(community, 5)}, "cert-z:4", 5, false, 0, 0, irxv1.ReasonCode_REASON_CODE_RESHARE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) {
				inc.Tlp, inc.Provenance, inc.NamedRecipients = tc.tlp, tc.prov, []string{"cert-b"}
				if tc.id != "" {
					inc.Id = tc.id
				}
			})
			view, ex := disclose(t, inc, basePolicy(func(p *irxv1.DisclosurePolicy) { p.MaxHops = tc.maxHops }))
			if (view != nil) != tc.want {
				t.Fatalf("disclosed %v, want %v: %v", view != nil, tc.want, ex.GetReasons())
			}
			if !tc.want {
				if r := reason(ex, tc.failingCode); r == nil || r.GetSatisfied() {
					t.Errorf("reason %v: %v", tc.failingCode, r)
				}
				if ex.GetReshare() != nil || len(ex.GetFields()) != 0 {
					t.Error("a withheld record has field decisions or re-share terms")
				}
				return
			}
			rs := ex.GetReshare()
			if rs.GetScope() != tc.scope || rs.GetHopsLeft() != tc.hopsLeft || rs.GetMayReshare() != (tc.hopsLeft > 0) {
				t.Errorf("re-share %v, want scope %v hops %d", rs, tc.scope, tc.hopsLeft)
			}
		})
	}
}

// TestUpstreamReshareTerms: a foreign record goes on only where the team
// it came from let us pass it on, and never with wider terms than we got.
// cert-a holds the record; cert-b is the peer.
func TestUpstreamReshareTerms(t *testing.T) {
	fromZ := func(terms *irxv1.ReshareTerms) *irxv1.Provenance {
		return &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: terms}
	}
	viaY := func(terms *irxv1.ReshareTerms) *irxv1.Provenance {
		return &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-y", Path: []string{"cert-y", "cert-a"}, Reshare: terms}
	}
	for _, tc := range []struct {
		name     string
		tlp      irxv1.Tlp
		prov     *irxv1.Provenance
		maxHops  uint32
		want     bool
		scope    irxv1.ReshareScope
		hopsLeft uint32
		code     irxv1.ReasonCode // the reason that says it; unsatisfied when withheld
		message  string           // in that reason's message
	}{
		{"upstream hops 1: passed on, no further", irxv1.Tlp_TLP_GREEN, fromZ(grant(community, 1)), 5,
			true, community, 0, reshareReason, "cert-z's terms allow 1 more transfer(s), scope community"},
		{"upstream hops 0: withheld", irxv1.Tlp_TLP_GREEN, fromZ(&irxv1.ReshareTerms{MayReshare: true, Scope: community}), 5,
			false, 0, 0, reshareReason, "cert-z granted re-share with no transfer left"},
		{"upstream no re-share: withheld", irxv1.Tlp_TLP_GREEN, fromZ(&irxv1.ReshareTerms{Scope: community, HopsLeft: 3}), 5,
			false, 0, 0, reshareReason, "cert-z granted no re-share"},
		{"no terms: withheld", irxv1.Tlp_TLP_CLEAR, fromZ(nil), 5,
			false, 0, 0, reshareReason, "cert-z granted no re-share terms"},
		{"may_reshare with scope none: withheld", irxv1.Tlp_TLP_CLEAR, fromZ(&irxv1.ReshareTerms{MayReshare: true, Scope: scopeNone, HopsLeft: 3}), 5,
			false, 0, 0, reshareReason, "cert-z granted re-share with scope none"},
		{"may_reshare with scope unset: withheld", irxv1.Tlp_TLP_CLEAR, fromZ(&irxv1.ReshareTerms{MayReshare: true, HopsLeft: 3}), 5,
			false, 0, 0, reshareReason, "cert-z granted re-share with scope unset"},
		{"CLEAR narrowed to the upstream's community", irxv1.Tlp_TLP_CLEAR, fromZ(grant(community, 4)), 5,
			true, community, 3, reshareReason, "cert-z's terms allow 4 more transfer(s)"},
		{"GREEN stays community under unlimited upstream terms", irxv1.Tlp_TLP_GREEN, fromZ(grant(unlimited, 4)), 5,
			true, community, 3, reshareReason, "scope unlimited"},
		{"CLEAR under unlimited upstream terms", irxv1.Tlp_TLP_CLEAR, fromZ(grant(unlimited, 9)), 3,
			true, unlimited, 1, reshareReason, "cert-z's terms allow 9 more transfer(s)"},
		{"upstream hops tighter than the hop limit", irxv1.Tlp_TLP_GREEN, fromZ(grant(community, 2)), 6,
			true, community, 1, reshareReason, "allow 2 more"},
		{"hop limit tighter than upstream hops", irxv1.Tlp_TLP_GREEN, viaY(grant(community, 5)), 3,
			true, community, 0, hopLimitReason, "crossed 2 team(s)"},
		{"upstream is the team before us", irxv1.Tlp_TLP_GREEN, viaY(&irxv1.ReshareTerms{Scope: community}), 5,
			false, 0, 0, reshareReason, "cert-y granted no re-share"},
		{"no received_from: upstream read from the path", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-y", "cert-a"}}, 5,
			false, 0, 0, reshareReason, "cert-y granted no re-share terms"},
		{"no received_from, one hop: upstream is the origin", irxv1.Tlp_TLP_GREEN, &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-a"}, Reshare: grant(community, 2)}, 5,
			true, community, 1, reshareReason, "cert-z's terms allow 2 more"},
		{"local record: stray terms are not upstream terms", irxv1.Tlp_TLP_CLEAR, &irxv1.Provenance{OriginTeam: "cert-a", Reshare: &irxv1.ReshareTerms{}}, 3,
			true, unlimited, 2, irxv1.ReasonCode_REASON_CODE_LOOP, "neither the record's origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) {
				inc.Tlp, inc.Provenance = tc.tlp, tc.prov
				if tc.prov.GetOriginTeam() != "cert-a" {
					inc.Id = "cert-z:4"
				}
			})
			view, ex := disclose(t, inc, basePolicy(func(p *irxv1.DisclosurePolicy) { p.MaxHops = tc.maxHops }))
			if (view != nil) != tc.want {
				t.Fatalf("disclosed %v, want %v: %v", view != nil, tc.want, ex.GetReasons())
			}
			var said *irxv1.Reason
			for _, r := range ex.GetReasons() {
				if r.GetCode() == tc.code && strings.Contains(r.GetMessage(), tc.message) {
					said = r
				}
			}
			if said == nil || said.GetSatisfied() != tc.want {
				t.Errorf("no %s reason satisfied=%v saying %q: %v", tc.code, tc.want, tc.message, ex.GetReasons())
			}
			if !tc.want {
				if ex.GetReshare() != nil || len(ex.GetFields()) != 0 {
					t.Error("a withheld record has field decisions or re-share terms")
				}
				return
			}
			rs := ex.GetReshare()
			if rs.GetScope() != tc.scope || rs.GetHopsLeft() != tc.hopsLeft || rs.GetMayReshare() != (tc.hopsLeft > 0) {
				t.Errorf("re-share %v, want scope %v hops %d", rs, tc.scope, tc.hopsLeft)
			}
		})
	}
}

// TestWithdrawnNeverDisclosed: a withdrawn record is withheld whatever the
// policy, with one reason that says so and nothing of why it was withdrawn
// (a private-site field).
func TestWithdrawnNeverDisclosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		prov *irxv1.Provenance
	}{
		{"local", &irxv1.Provenance{OriginTeam: "cert-a"}},
		{"foreign, re-shareable", &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"}, Reshare: grant(unlimited, 5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := smallIncident(func(inc *irxv1.Incident) {
				inc.Tlp, inc.Restriction, inc.Provenance = irxv1.Tlp_TLP_CLEAR, public, tc.prov
				inc.WithdrawTime, inc.WithdrawReason = ts("2026-11-01T09:30:00Z"), "reported by mistake"
			})
			if tc.prov.GetOriginTeam() != "cert-a" {
				inc.Id = "cert-z:4"
			}
			before := proto.Clone(inc).(*irxv1.Incident)
			before.WithdrawTime, before.WithdrawReason = nil, ""
			if view, _ := disclose(t, before, basePolicy()); view == nil {
				t.Fatal("the record is withheld even before it is withdrawn: the test proves nothing")
			}
			view, ex := disclose(t, inc, basePolicy())
			if view != nil || ex.GetReshare() != nil || len(ex.GetFields()) != 0 {
				t.Fatalf("a withdrawn record was disclosed: %v", ex)
			}
			rs := ex.GetReasons()
			if len(rs) != 1 || rs[0].GetCode() != irxv1.ReasonCode_REASON_CODE_RECORD || rs[0].GetSatisfied() ||
				!strings.Contains(rs[0].GetMessage(), "withdrawn at 2026-11-01T09:30:00Z") {
				t.Errorf("reasons %v, want one unsatisfied record reason saying when it was withdrawn", rs)
			}
			if strings.Contains(prototext.Format(ex), "by mistake") {
				t.Error("the explanation repeats the withdraw reason")
			}
		})
	}
}

func TestUnknownFieldsNeverLeave(t *testing.T) {
	inc := smallIncident()
	// Field 99 of an attacking host and of a timestamp, unknown to the schema.
	inc.AttackingHosts[0].ProtoReflect().SetUnknown([]byte{0x9a, 0x06, 0x06, 's', 'e', 'c', 'r', 'e', 't'})
	inc.Indicators[0].FirstSeenTime.ProtoReflect().SetUnknown([]byte{0x9a, 0x06, 0x06, 'h', 'i', 'd', 'd', 'e', 'n'})
	inc.ProtoReflect().SetUnknown([]byte{0x9a, 0x06, 0x03, 't', 'o', 'p'})
	view, ex := disclose(t, inc, basePolicy())
	b := marshal(t, view)
	for _, s := range []string{"secret", "hidden", "top"} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("unknown field content %q disclosed", s)
		}
	}
	wantDecision(t, ex, "attacking_hosts[0].(unknown)", removed, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY)
	wantDecision(t, ex, "(unknown)", removed, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY)
	wantDecision(t, ex, "indicators[0].first_seen_time.(unknown)", removed, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY)
	if view.GetIndicators()[0].GetFirstSeenTime().AsTime() != inc.GetIndicators()[0].GetFirstSeenTime().AsTime() {
		t.Error("time lost with its unknown fields")
	}
}

func TestDeterministic(t *testing.T) {
	inc := realisticIncident()
	p := realisticPolicy()
	v1, e1 := policy.Disclose(inc, mustCompile(t, p))
	for i := 0; i < 3; i++ {
		// A fresh Compile, and a round trip of the record through bytes,
		// as an audit recomputing a past disclosure would do.
		again := &irxv1.Incident{}
		if err := proto.Unmarshal(marshal(t, inc), again); err != nil {
			t.Fatal(err)
		}
		v2, e2 := policy.Disclose(again, mustCompile(t, p))
		if !bytes.Equal(marshal(t, v1), marshal(t, v2)) || !bytes.Equal(marshal(t, e1), marshal(t, e2)) {
			t.Fatal("same record and policy gave different bytes")
		}
	}
}

func TestViewSharesOnlyWhatIsUnchanged(t *testing.T) {
	inc := realisticIncident()
	view, _ := policy.Disclose(inc, mustCompile(t, realisticPolicy()))
	// Pseudonymised hosts are new messages: changing them cannot reach
	// the record.
	if view.GetVictimHosts()[0] == inc.GetVictimHosts()[0] {
		t.Fatal("a rebuilt victim host is the record's")
	}
	before := proto.Clone(inc)
	view.GetVictimHosts()[0].Hostname = "changed"
	view.GetVictimHosts()[0].Addresses[0] = "192.0.2.200"
	view.GetVictimHosts()[0].Services[0].Port = 1
	if !proto.Equal(before, inc) {
		t.Error("writing a rebuilt part of the view changed the record")
	}
}

func TestTimesGeneraliseOrder(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2026-10-30T23:59:59.999Z", "2026-10-30T00:00:00Z"},
		{"1969-12-31T23:00:00Z", "1969-12-31T00:00:00Z"},
		{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"},
		{"9999-12-31T23:59:59Z", "9999-12-31T00:00:00Z"},
	} {
		inc := smallIncident(func(inc *irxv1.Incident) { inc.StartTime, inc.EndTime = ts(tc.in), nil })
		view, _ := disclose(t, inc, basePolicy(setRule(statistical, rule(statistical, generalise))))
		if got := view.GetStartTime().AsTime().Format("2006-01-02T15:04:05Z07:00"); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCompileRefusesShortKeysAndHidesKeys(t *testing.T) {
	if _, err := policy.Compile(basePolicy(), make([]byte, 8)); err == nil {
		t.Fatal("short key accepted")
	}
	key := []byte("0123456789abcdef-secret-key-material")
	c, err := policy.Compile(basePolicy(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		if s := fmt.Sprintf(verb, c); strings.Contains(s, "secret") || strings.Contains(s, fmt.Sprintf("%x", key[:8])) {
			t.Errorf("%s prints key material: %s", verb, s)
		}
	}
	if _, err := policy.Compile(&irxv1.DisclosurePolicy{}, key); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("invalid policy: %v", err)
	}
	// Compile copies the key: changing the caller's slice changes nothing.
	inc := smallIncident()
	p := basePolicy(setRule(privateSite, rule(privateSite, pseudonymise)))
	c1, _ := policy.Compile(p, key)
	v1, _ := policy.Disclose(inc, c1)
	key[0] ^= 0xff
	v2, _ := policy.Disclose(inc, c1)
	if !proto.Equal(v1, v2) {
		t.Error("Compile kept a reference to the caller's key")
	}
}

func TestNilInputs(t *testing.T) {
	view, ex := discloseChecked(t, nil, basePolicy())
	if view != nil || ex.GetDisclosed() || reason(ex, irxv1.ReasonCode_REASON_CODE_RECORD).GetSatisfied() {
		t.Errorf("nil record: %v %v", view, ex)
	}
	view, ex = policy.Disclose(smallIncident(), nil)
	if view != nil || ex.GetDisclosed() {
		t.Errorf("nil policy: %v %v", view, ex)
	}
}

func TestExplanationText(t *testing.T) {
	// The explanation is for people too: print one for the realistic case.
	_, ex := policy.Disclose(realisticIncident(), mustCompile(t, realisticPolicy()))
	s := prototext.Format(ex)
	for _, want := range []string{"need-to-know", "TLP:AMBER is within cert-b's ceiling TLP:AMBER", "private_site: pseudonymise", "contact: strip", "reporter's consent for response teams: domain yes, hosts yes, contact no"} {
		if !strings.Contains(s, want) {
			t.Errorf("explanation lacks %q:\n%s", want, s)
		}
	}
}

func TestConcurrentDisclose(t *testing.T) {
	inc := realisticIncident()
	c := mustCompile(t, realisticPolicy())
	want, wantEx := policy.Disclose(inc, c)
	wb, web := marshal(t, want), marshal(t, wantEx)
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				v, e := policy.Disclose(inc, c)
				if !bytes.Equal(marshal(t, v), wb) || !bytes.Equal(marshal(t, e), web) {
					done <- fmt.Errorf("concurrent call %d differs", i)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSiteStatisticsFollowTheirOwnClass: the reporting site's sector and
// country are statistical within a private-site message. A nested class
// can make a field more private than its container, never less: a policy
// that strips private-site information sends no site at all; one that
// strips statistics sends the site without them; one that pseudonymises
// the site and forwards statistics keeps them as they are.
func TestSiteStatisticsFollowTheirOwnClass(t *testing.T) {
	inc := smallIncident(func(i *irxv1.Incident) {
		i.ReportingSite.Sector, i.ReportingSite.Country = irxv1.Sector_SECTOR_RESEARCH, "NL"
	})
	view, ex := disclose(t, inc, basePolicy(setRule(privateSite, rule(privateSite, strip))))
	if view.GetReportingSite() != nil {
		t.Errorf("private site stripped: reporting site %v", view.GetReportingSite())
	}
	wantDecision(t, ex, "reporting_site", removed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)

	view, ex = disclose(t, inc, basePolicy(setRule(statistical, rule(statistical, strip))))
	if s := view.GetReportingSite(); s.GetSector() != 0 || s.GetCountry() != "" || s.GetName() != "Example University" {
		t.Errorf("statistics stripped: reporting site %v", s)
	}
	wantDecision(t, ex, "reporting_site.country", removed, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE)

	view, _ = disclose(t, inc, basePolicy(setRule(privateSite, rule(privateSite, pseudonymise))))
	if s := view.GetReportingSite(); s.GetSector() != irxv1.Sector_SECTOR_RESEARCH || s.GetCountry() != "NL" || s.GetName() == "Example University" {
		t.Errorf("site pseudonymised, statistics forwarded: reporting site %v", s)
	}
	for _, action := range []irxv1.DisclosureAction{generalise, pseudonymise} {
		view, _ = disclose(t, inc, basePolicy(setRule(statistical, rule(statistical, action))))
		if s := view.GetReportingSite(); s.GetSector() != irxv1.Sector_SECTOR_RESEARCH || s.GetCountry() != "NL" {
			t.Errorf("statistics %v: reporting site %v, want the codes kept", action, s)
		}
	}
}
