package policy_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/policy"
	"github.com/irxfed/irx/policy/policytest"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Shorthands for the enums the tests use most.
const (
	forward      = irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD
	strip        = irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP
	pseudonymise = irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE
	generalise   = irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE

	privateUser   = irxv1.InfoClass_INFO_CLASS_PRIVATE_USER
	intruder      = irxv1.InfoClass_INFO_CLASS_INTRUDER
	privateSite   = irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE
	vulnerability = irxv1.InfoClass_INFO_CLASS_VULNERABILITY
	embarrassing  = irxv1.InfoClass_INFO_CLASS_EMBARRASSING
	statistical   = irxv1.InfoClass_INFO_CLASS_STATISTICAL
	contact       = irxv1.InfoClass_INFO_CLASS_CONTACT
	handling      = irxv1.InfoClass_INFO_CLASS_HANDLING

	kept    = irxv1.FieldOutcome_FIELD_OUTCOME_KEPT
	changed = irxv1.FieldOutcome_FIELD_OUTCOME_CHANGED
	removed = irxv1.FieldOutcome_FIELD_OUTCOME_REMOVED

	public     = irxv1.Restriction_RESTRICTION_PUBLIC
	partner    = irxv1.Restriction_RESTRICTION_PARTNER
	needToKnow = irxv1.Restriction_RESTRICTION_NEED_TO_KNOW
	private    = irxv1.Restriction_RESTRICTION_PRIVATE
	inherit    = irxv1.Restriction_RESTRICTION_UNSPECIFIED
)

// tb is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

func keyFor(peer string) []byte {
	k := make([]byte, 32)
	copy(k, "test key for "+peer+" ........................")
	return k
}

func rule(class irxv1.InfoClass, action irxv1.DisclosureAction) *irxv1.ClassRule {
	return &irxv1.ClassRule{InfoClass: class, Action: action}
}

func genRule(class irxv1.InfoClass, v4, v6 uint32) *irxv1.ClassRule {
	return &irxv1.ClassRule{InfoClass: class, Action: generalise, Ipv4PrefixLength: &v4, Ipv6PrefixLength: &v6}
}

// realisticPolicy is a response team's agreement as a CSIRT would write it:
// intruder information and vulnerabilities flow, the victim site is
// pseudonymised, contacts, embarrassing and private user information stay.
func realisticPolicy() *irxv1.DisclosurePolicy {
	return &irxv1.DisclosurePolicy{
		PeerTeamId:     "cert-b",
		RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling:     irxv1.Tlp_TLP_AMBER,
		Rules: []*irxv1.ClassRule{
			rule(intruder, forward),
			rule(privateSite, pseudonymise),
			rule(vulnerability, forward),
			rule(statistical, forward),
			rule(contact, strip),
			rule(embarrassing, strip),
			rule(privateUser, strip),
		},
		Constituency: &irxv1.Constituency{Cidrs: []string{"198.51.100.0/24", "2001:db8:b::/48"}, Asns: []uint32{64511}, Domains: []string{"cert-b.example"}},
		NeedToKnow:   true,
		MaxHops:      2,
		Version:      7,
	}
}

func mustCompile(t tb, p *irxv1.DisclosurePolicy) *policy.Compiled {
	t.Helper()
	c, err := policy.Compile(p, keyFor(p.GetPeerTeamId()))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

// realisticIncident is an SSH brute-force campaign as a team records it:
// about 2 KiB encoded, 20 hosts (4 victims, 16 attackers) and 30
// indicators.
func realisticIncident() *irxv1.Incident {
	inc := &irxv1.Incident{
		Id: "cert-a:1042", Version: 3,
		Purpose: irxv1.Purpose_PURPOSE_MITIGATION, Status: irxv1.Status_STATUS_IN_PROGRESS,
		Restriction: partner, Tlp: irxv1.Tlp_TLP_AMBER,
		Taxonomy:             &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"},
		AdditionalTaxonomies: []*irxv1.Taxonomy{{Class: "intrusions", Type: "unprivileged-account-compromise"}},
		Priority:             irxv1.Priority_PRIORITY_HIGH,
		DetectTime:           ts("2026-10-30T02:14:07Z"),
		StartTime:            ts("2026-10-30T01:58:00Z"),
		ReportTime:           ts("2026-10-30T07:31:12Z"),
		GenerationTime:       ts("2026-10-31T09:00:00Z"),
		CreateTime:           ts("2026-10-30T07:31:12Z"),
		Descriptions:         []*irxv1.Description{{Lang: "en", Text: "SSH password spraying against the mail cluster; one account taken over."}},
		ReportingSite:        &irxv1.ReportingSite{Name: "Example University", Domain: "uni.example"},
		Contacts:             []*irxv1.Contact{{Role: irxv1.ContactRole_CONTACT_ROLE_REPORTER, Type: irxv1.ContactType_CONTACT_TYPE_PERSON, Name: "Ada Admin", Email: "ada@uni.example", Telephone: "+31 20 555 0101"}},
		Methods:              []*irxv1.Method{{Description: "credential stuffing over SSH", Weaknesses: []string{"CWE-307"}, AttackPatterns: []string{"CAPEC-49"}}},
		Assessments:          []*irxv1.Assessment{{Occurrence: irxv1.Occurrence_OCCURRENCE_ACTUAL, Confidence: 80}},
		Discoveries:          []*irxv1.Discovery{{Source: irxv1.DiscoverySource_DISCOVERY_SOURCE_NIDPS, Description: "NIDS alert"}},
		LogExcerpts:          []*irxv1.LogExcerpt{{Source: "sshd on mx1", Content: "Accepted password for jdoe from 198.51.100.23"}},
		History:              []*irxv1.HistoryItem{{Action: irxv1.HistoryAction_HISTORY_ACTION_BLOCK_NETWORK, Time: ts("2026-10-30T08:00:00Z"), TeamId: "cert-a"}},
		DisclosureConsent:    &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true, Hosts: true}},
		Provenance:           &irxv1.Provenance{OriginTeam: "cert-a"},
		RelatedActivity:      &irxv1.RelatedActivity{Campaigns: []string{"autumn-spray"}},
	}
	for i := 0; i < 4; i++ {
		inc.VictimHosts = append(inc.VictimHosts, &irxv1.Host{
			Hostname:        fmt.Sprintf("mx%d.uni.example", i+1),
			Addresses:       []string{fmt.Sprintf("192.0.2.%d", 10+i)},
			Domain:          "uni.example",
			AtReportingSite: true,
			Compromised:     i == 0,
			Services:        []*irxv1.Service{{IpProtocol: 6, Port: 22, Application: "ssh"}},
		})
	}
	seen := ts("2026-10-30T02:00:00Z")
	for i := 0; i < 16; i++ {
		addr := fmt.Sprintf("198.51.100.%d", 20+i)
		inc.AttackingHosts = append(inc.AttackingHosts, &irxv1.Host{Addresses: []string{addr}, Asn: 64496 + uint32(i%4)})
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: addr, FirstSeenTime: seen, Confidence: 90})
	}
	for i := 0; i < 6; i++ {
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: fmt.Sprintf("c2-%d.bad.example", i), FirstSeenTime: seen, Confidence: 70})
	}
	for i := 0; i < 4; i++ {
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: fmt.Sprintf("http://c2-%d.bad.example/k", i), Confidence: 60})
	}
	for i := 0; i < 4; i++ {
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: fmt.Sprintf("%064x", 0xfeed0000+i)})
	}
	return inc
}

// validView fails the test if a view is not a record the node accepts.
func validView(t tb, view *irxv1.Incident) {
	t.Helper()
	if view == nil {
		return
	}
	if err := record.Validate(view, "view"); err != nil {
		var ve *record.ValidationError
		errors.As(err, &ve)
		t.Fatalf("view is not a valid incident: %v\nview: %v", err, view)
	}
}

func marshal(t tb, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// discloseChecked is policy.Disclose under p for its peer (the key of
// keyFor), failing the test unless the view and the explanation are byte
// for byte what the reference implementation gives.
func discloseChecked(t tb, inc *irxv1.Incident, p *irxv1.DisclosurePolicy) (*irxv1.Incident, *irxv1.Explanation) {
	t.Helper()
	return discloseCompiled(t, inc, mustCompile(t, p), p)
}

// discloseCompiled is discloseChecked for a policy already compiled (c is
// p compiled with keyFor(p.PeerTeamId)).
func discloseCompiled(t tb, inc *irxv1.Incident, c *policy.Compiled, p *irxv1.DisclosurePolicy) (*irxv1.Incident, *irxv1.Explanation) {
	t.Helper()
	view, ex := policy.Disclose(inc, c)
	sameAsReference(t, inc, p, view, ex)
	return view, ex
}

// sameAsReference fails the test unless view and ex are byte for byte what
// policytest.Disclose gives for inc under p.
func sameAsReference(t tb, inc *irxv1.Incident, p *irxv1.DisclosurePolicy, view *irxv1.Incident, ex *irxv1.Explanation) {
	t.Helper()
	rv, rex := policytest.Disclose(inc, p, keyFor(p.GetPeerTeamId()))
	if !bytes.Equal(marshal(t, view), marshal(t, rv)) {
		t.Fatalf("the engine's view differs from the reference's:\n%s", firstDifference(prototext.Format(view), prototext.Format(rv)))
	}
	if !bytes.Equal(marshal(t, ex), marshal(t, rex)) {
		t.Fatalf("the engine's explanation differs from the reference's:\n%s", firstDifference(prototext.Format(ex), prototext.Format(rex)))
	}
}

// firstDifference shows where two texts part: a few lines of context, then
// the engine's line and the reference's.
func firstDifference(engine, reference string) string {
	a, b := strings.Split(engine, "\n"), strings.Split(reference, "\n")
	for i := 0; i < max(len(a), len(b)); i++ {
		var la, lb string
		if i < len(a) {
			la = a[i]
		}
		if i < len(b) {
			lb = b[i]
		}
		if la != lb {
			from := max(i-6, 0)
			ctx := strings.Join(a[from:i], "\n")
			return fmt.Sprintf("%s\n- engine:    %s\n+ reference: %s", ctx, la, lb)
		}
	}
	return "(the texts are equal; the encodings differ)"
}
