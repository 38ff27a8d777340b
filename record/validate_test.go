package record

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

var t0 = time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)

// fullIncident is a valid incident that sets every part Validate looks at,
// so each test case below breaks exactly one rule.
func fullIncident() *irxv1.Incident {
	return &irxv1.Incident{
		AlternativeIds: []*irxv1.AlternativeId{
			{TeamId: "cert-b", Ticket: "INC-77", Kind: irxv1.AlternativeIdKind_ALTERNATIVE_ID_KIND_RESPONSE_TEAM},
			{TeamId: "Police HQ", Ticket: "2026/881", Kind: irxv1.AlternativeIdKind_ALTERNATIVE_ID_KIND_LAW_ENFORCEMENT},
		},
		Purpose:              irxv1.Purpose_PURPOSE_MITIGATION,
		Status:               irxv1.Status_STATUS_IN_PROGRESS,
		Restriction:          irxv1.Restriction_RESTRICTION_NEED_TO_KNOW,
		Tlp:                  irxv1.Tlp_TLP_AMBER,
		NamedRecipients:      []string{"cert-b", "cert.example.org"},
		Taxonomy:             &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
		AdditionalTaxonomies: []*irxv1.Taxonomy{{Class: "malicious-code", Type: "c2-server"}, {Class: "test", Type: "test"}},
		Priority:             irxv1.Priority_PRIORITY_HIGH,
		DetectTime:           timestamppb.New(t0.Add(-2 * time.Hour)),
		StartTime:            timestamppb.New(t0.Add(-3 * time.Hour)),
		EndTime:              timestamppb.New(t0.Add(-1 * time.Hour)),
		RecoveryTime:         timestamppb.New(t0),
		ReportTime:           timestamppb.New(t0),
		Descriptions:         []*irxv1.Description{{Lang: "en", Text: "web server defaced"}},
		ReportingSite:        &irxv1.ReportingSite{Name: "Example Ltd", Domain: "example.org"},
		Contacts: []*irxv1.Contact{{
			Role: irxv1.ContactRole_CONTACT_ROLE_REPORTER, Type: irxv1.ContactType_CONTACT_TYPE_PERSON,
			Name: "A. Reporter", Email: "reporter@example.org", ConstituencyDomain: "example.org",
		}},
		VictimHosts: []*irxv1.Host{{
			Hostname:  "www.example.org",
			Addresses: []string{"192.0.2.10", "2001:db8::10", "192.0.2.0/24"},
			Services:  []*irxv1.Service{{IpProtocol: 6, Port: 443, Application: "https"}, {IpProtocol: 255, Port: 65535}},
			Category:  irxv1.SystemCategory_SYSTEM_CATEGORY_UNSPECIFIED,
		}},
		AttackingHosts: []*irxv1.Host{{Asn: 64500}, {Domain: "evil.example"}, {Addresses: []string{"198.51.100.7"}}},
		Indicators: []*irxv1.Indicator{
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7", Confidence: 100},
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.0/24"},
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV6, Value: "2001:db8::/48"},
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: strings.Repeat("aB", 32)},
			{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "evil.example",
				FirstSeenTime: timestamppb.New(t0.Add(-time.Hour)), LastSeenTime: timestamppb.New(t0)},
		},
		Methods: []*irxv1.Method{{Description: "php upload", Vulnerabilities: []*irxv1.Vulnerability{{Cve: "CVE-2024-3094"}}}},
		Assessments: []*irxv1.Assessment{{
			Occurrence:     irxv1.Occurrence_OCCURRENCE_ACTUAL,
			SystemImpacts:  []*irxv1.SystemImpact{{Severity: irxv1.Severity_SEVERITY_HIGH, Type: "takeover-system"}},
			MonetaryImpact: &irxv1.MonetaryImpact{Currency: "EUR", AmountMinor: 1250000},
			Confidence:     100,
		}},
		Discoveries: []*irxv1.Discovery{{Source: irxv1.DiscoverySource_DISCOVERY_SOURCE_SIEM}},
		Compromise:  &irxv1.Compromise{RootAccess: true},
		LogExcerpts: []*irxv1.LogExcerpt{{Source: "sshd", Time: timestamppb.New(t0), Content: "Accepted password", MediaType: "text/plain"}},
		Evidence: []*irxv1.Evidence{
			{Description: "disk image", Sha256: strings.Repeat("0f", 32), SizeBytes: 1 << 30, CollectTime: timestamppb.New(t0)},
			{Description: "notes"},
		},
		History: []*irxv1.HistoryItem{{Action: irxv1.HistoryAction_HISTORY_ACTION_BLOCK_HOST, Time: timestamppb.New(t0), TeamId: "cert-a"}},
		RelatedActivity: &irxv1.RelatedActivity{
			ThreatActors: []string{"APT-0"},
			IncidentIds:  []string{"cert-b:12", "cert-a:1"},
		},
		AssistanceRequested: "help",
		DisclosureConsent:   &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{Domain: true}},
	}
}

// violationFields returns the sorted field paths of err, failing unless err
// is a *ValidationError (or nil).
func violationFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if len(verr.Violations) == 0 {
		t.Fatalf("ValidationError with no violations")
	}
	var fields []string
	for _, v := range verr.Violations {
		if v.Description == "" {
			t.Errorf("violation of %s has no description", v.Field)
		}
		if !strings.Contains(err.Error(), v.Field+": "+v.Description) {
			t.Errorf("Error() %q does not mention %s", err.Error(), v.Field)
		}
		fields = append(fields, v.Field)
	}
	slices.Sort(fields)
	return fields
}

func TestValidateFullIncident(t *testing.T) {
	if err := Validate(fullIncident(), "incident"); err != nil {
		t.Fatalf("Validate(full incident) = %v", err)
	}
	minimal := &irxv1.Incident{Tlp: irxv1.Tlp_TLP_CLEAR, Taxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"}}
	if err := Validate(minimal, "incident"); err != nil {
		t.Fatalf("Validate(minimal incident) = %v", err)
	}
}

func TestValidateRules(t *testing.T) {
	badTime := &timestamppb.Timestamp{Seconds: 1, Nanos: -1}
	tooLate := &timestamppb.Timestamp{Seconds: 253402300800} // 10000-01-01
	tests := []struct {
		name   string
		mutate func(*irxv1.Incident)
		want   []string // nil: valid
	}{
		// TLP.
		{"tlp missing", func(i *irxv1.Incident) { i.Tlp = irxv1.Tlp_TLP_UNSPECIFIED }, []string{"incident.tlp"}},
		{"tlp red", func(i *irxv1.Incident) { i.Tlp = irxv1.Tlp_TLP_RED }, nil},
		{"tlp undefined", func(i *irxv1.Incident) { i.Tlp = 99 }, []string{"incident.tlp"}},

		// Taxonomy.
		{"taxonomy missing", func(i *irxv1.Incident) { i.Taxonomy = nil }, []string{"incident.taxonomy"}},
		{"taxonomy empty", func(i *irxv1.Incident) { i.Taxonomy = &irxv1.Taxonomy{} }, []string{"incident.taxonomy.class"}},
		{"taxonomy unknown class", func(i *irxv1.Incident) { i.Taxonomy.Class = "intrusion" }, []string{"incident.taxonomy.class"}},
		{"taxonomy type of another class", func(i *irxv1.Incident) { i.Taxonomy.Type = "phishing" }, []string{"incident.taxonomy.type"}},
		{"taxonomy type missing", func(i *irxv1.Incident) { i.Taxonomy.Type = "" }, []string{"incident.taxonomy.type"}},
		{"additional taxonomies", func(i *irxv1.Incident) {
			i.AdditionalTaxonomies = []*irxv1.Taxonomy{
				{Class: "fraud", Type: "phishing"}, {Class: "Fraud", Type: "phishing"}, {Class: "fraud", Type: "spam"}, {},
			}
		}, []string{"incident.additional_taxonomies[1].class", "incident.additional_taxonomies[2].type", "incident.additional_taxonomies[3].class"}},

		// Counters count.
		{"counters", func(i *irxv1.Incident) {
			i.VictimHosts[0].Counters = []*irxv1.Counter{{Value: 38000, Unit: "mbit", Type: "peak"}, {Value: -1, Unit: "packet"}}
			i.Assessments = []*irxv1.Assessment{{Counters: []*irxv1.Counter{{Value: -5, Unit: "host"}}}}
		}, []string{"incident.assessments[0].counters[0].value", "incident.victim_hosts[0].counters[1].value"}},

		// Named recipients are team ids.
		{"named recipients", func(i *irxv1.Incident) {
			i.NamedRecipients = []string{"cert-b", "CERT-C", "", "cert_d", "cert.e"}
		}, []string{"incident.named_recipients[1]", "incident.named_recipients[2]", "incident.named_recipients[3]"}},

		// Alternative ids need both parts.
		{"alternative ids", func(i *irxv1.Incident) {
			i.AlternativeIds = []*irxv1.AlternativeId{{TeamId: "cert-b", Ticket: "1"}, {TeamId: "  ", Ticket: ""}, {TeamId: "x"}}
		}, []string{"incident.alternative_ids[1].team_id", "incident.alternative_ids[1].ticket", "incident.alternative_ids[2].ticket"}},

		// Undefined enum numbers, anywhere in the tree.
		{"status undefined", func(i *irxv1.Incident) { i.Status = 42 }, []string{"incident.status"}},
		{"purpose undefined", func(i *irxv1.Incident) { i.Purpose = -1 }, []string{"incident.purpose"}},
		{"restriction undefined", func(i *irxv1.Incident) { i.Restriction = 5 }, []string{"incident.restriction"}},
		{"priority undefined", func(i *irxv1.Incident) { i.Priority = 5 }, []string{"incident.priority"}},
		{"sector undefined", func(i *irxv1.Incident) {
			i.ReportingSite = &irxv1.ReportingSite{Sector: 20, Country: "NL"}
		}, []string{"incident.reporting_site.sector"}},
		{"country not assigned", func(i *irxv1.Incident) {
			i.ReportingSite = &irxv1.ReportingSite{Sector: irxv1.Sector_SECTOR_HEALTH, Country: "XK"}
		}, []string{"incident.reporting_site.country"}},
		{"country in lower case", func(i *irxv1.Incident) { i.ReportingSite = &irxv1.ReportingSite{Country: "nl"} },
			[]string{"incident.reporting_site.country"}},
		{"country by name", func(i *irxv1.Incident) { i.ReportingSite = &irxv1.ReportingSite{Country: "NLD"} },
			[]string{"incident.reporting_site.country"}},
		{"victim host restriction undefined", func(i *irxv1.Incident) { i.VictimHosts[0].Restriction = 99 },
			[]string{"incident.victim_hosts[0].restriction"}},
		{"attacking host category undefined", func(i *irxv1.Incident) { i.AttackingHosts[2].Category = 4 },
			[]string{"incident.attacking_hosts[2].category"}},
		{"alternative id kind undefined", func(i *irxv1.Incident) { i.AlternativeIds[1].Kind = 5 },
			[]string{"incident.alternative_ids[1].kind"}},
		{"contact enums undefined", func(i *irxv1.Incident) {
			i.Contacts[0].Role = 16
			i.Contacts[0].Type = 3
		}, []string{"incident.contacts[0].role", "incident.contacts[0].type"}},
		{"indicator kind undefined", func(i *irxv1.Incident) { i.Indicators[4].Kind = 10 },
			[]string{"incident.indicators[4].kind"}},
		{"deep severity undefined", func(i *irxv1.Incident) {
			i.Assessments[0].SystemImpacts = append(i.Assessments[0].SystemImpacts, &irxv1.SystemImpact{Severity: 9})
			i.Assessments[0].BusinessImpacts = []*irxv1.BusinessImpact{{Severity: irxv1.Severity_SEVERITY_LOW}, {Severity: -3}}
		}, []string{"incident.assessments[0].business_impacts[1].severity", "incident.assessments[0].system_impacts[1].severity"}},
		{"occurrence undefined", func(i *irxv1.Incident) { i.Assessments[0].Occurrence = 3 }, []string{"incident.assessments[0].occurrence"}},
		{"discovery source undefined", func(i *irxv1.Incident) { i.Discoveries[0].Source = 20 }, []string{"incident.discoveries[0].source"}},
		{"history action undefined", func(i *irxv1.Incident) { i.History[0].Action = 17 }, []string{"incident.history[0].action"}},
		{"nested restrictions undefined", func(i *irxv1.Incident) {
			i.Descriptions[0].Restriction = 7
			i.Methods[0].Restriction = 7
			i.LogExcerpts[0].Restriction = 7
			i.Evidence[1].Restriction = 7
		}, []string{"incident.descriptions[0].restriction", "incident.evidence[1].restriction",
			"incident.log_excerpts[0].restriction", "incident.methods[0].restriction"}},

		// The IODEF times.
		{"start time invalid", func(i *irxv1.Incident) { i.StartTime = badTime }, []string{"incident.start_time"}},
		{"detect time after 9999", func(i *irxv1.Incident) { i.DetectTime = tooLate }, []string{"incident.detect_time"}},
		{"recovery and report invalid", func(i *irxv1.Incident) {
			i.RecoveryTime = badTime
			i.ReportTime = tooLate
		}, []string{"incident.recovery_time", "incident.report_time"}},
		{"end before start", func(i *irxv1.Incident) { i.EndTime = timestamppb.New(t0.Add(-4 * time.Hour)) }, []string{"incident.end_time"}},
		{"end one nanosecond before start", func(i *irxv1.Incident) {
			i.EndTime = timestamppb.New(i.StartTime.AsTime().Add(-time.Nanosecond))
		}, []string{"incident.end_time"}},
		{"end equal to start", func(i *irxv1.Incident) { i.EndTime = proto.Clone(i.StartTime).(*timestamppb.Timestamp) }, nil},
		{"end without start", func(i *irxv1.Incident) { i.StartTime = nil }, nil},
		// Every timestamp in the record must be one protobuf can represent:
		// JSON encoding (grpcurl) and AsTime fail on the others.
		{"nested times invalid", func(i *irxv1.Incident) {
			i.Indicators[4].FirstSeenTime = badTime
			i.Indicators[4].LastSeenTime = tooLate
			i.LogExcerpts[0].Time = badTime
			i.Evidence[0].CollectTime = tooLate
			i.History[0].Time = &timestamppb.Timestamp{Nanos: 1e9}
		}, []string{"incident.evidence[0].collect_time", "incident.history[0].time",
			"incident.indicators[4].first_seen_time", "incident.indicators[4].last_seen_time", "incident.log_excerpts[0].time"}},
		{"invalid end is not also before start", func(i *irxv1.Incident) { i.EndTime = &timestamppb.Timestamp{Seconds: -62135596801} },
			[]string{"incident.end_time"}},

		// Hosts.
		{"victim host without identifier", func(i *irxv1.Incident) {
			i.VictimHosts = append(i.VictimHosts, &irxv1.Host{Platform: "linux", Compromised: true})
		}, []string{"incident.victim_hosts[1]"}},
		{"attacking host without identifier", func(i *irxv1.Incident) {
			i.AttackingHosts[1] = &irxv1.Host{Services: []*irxv1.Service{{Port: 22}}}
		}, []string{"incident.attacking_hosts[1]"}},
		{"bad addresses", func(i *irxv1.Incident) {
			i.VictimHosts[0].Addresses = []string{"192.0.2.1", "not-an-ip", "fe80::1%eth0", "10.0.0.0/33", "2001:db8::/32", "192.0.2.256", ""}
		}, []string{"incident.victim_hosts[0].addresses[1]", "incident.victim_hosts[0].addresses[2]",
			"incident.victim_hosts[0].addresses[3]", "incident.victim_hosts[0].addresses[5]", "incident.victim_hosts[0].addresses[6]"}},
		{"bad port and protocol", func(i *irxv1.Incident) {
			i.AttackingHosts[0].Services = []*irxv1.Service{{Port: 65535, IpProtocol: 17}, {Port: 65536}, {IpProtocol: 256}}
		}, []string{"incident.attacking_hosts[0].services[1].port", "incident.attacking_hosts[0].services[2].ip_protocol"}},

		// Names: what the disclosure engine generalises to the last two
		// labels must be a name and nothing else.
		{"host names", func(i *irxv1.Incident) {
			i.VictimHosts = append(i.VictimHosts,
				&irxv1.Host{Hostname: "srv.x.example owner=secret"},
				&irxv1.Host{Hostname: "192.0.2.241", Domain: "192.0.2.241:22"},
				&irxv1.Host{Hostname: "https://evil.example/x", Domain: "example.org."},
				&irxv1.Host{Hostname: "mx1", Domain: "xn--bcher-kva.example"})
			i.AttackingHosts[1].Domain = "evil.example/secret-path"
		}, []string{"incident.attacking_hosts[1].domain", "incident.victim_hosts[1].hostname", "incident.victim_hosts[2].domain",
			"incident.victim_hosts[2].hostname", "incident.victim_hosts[3].hostname"}},
		{"site and constituency domains", func(i *irxv1.Incident) {
			i.ReportingSite.Domain = "example.org owner=secret"
			i.Contacts = append(i.Contacts, &irxv1.Contact{ConstituencyDomain: "2001:db8::1"}, &irxv1.Contact{ConstituencyDomain: "cert.example"})
		}, []string{"incident.contacts[1].constituency_domain", "incident.reporting_site.domain"}},
		{"domain indicator", func(i *irxv1.Incident) {
			i.Indicators[4].Value = "evil.example/secret-path"
		}, []string{"incident.indicators[4].value"}},
		{"pseudonyms stand in for names", func(i *irxv1.Incident) {
			const tok = "pseud:abcdefghijklmnopqrstuvwxyz"
			i.VictimHosts[0].Hostname, i.VictimHosts[0].Domain, i.ReportingSite.Domain = tok, tok, tok
			i.Contacts[0].ConstituencyDomain, i.Indicators[4].Value = tok, tok
		}, nil},
		{"a pseudonym's shape only", func(i *irxv1.Incident) {
			i.VictimHosts[0].Hostname = "pseud:abcdefghijklmnopqrstuvwxyz secret"
		}, []string{"incident.victim_hosts[0].hostname"}},

		// Codes the disclosure engine keeps as they are: their vocabulary
		// only.
		{"language tags", func(i *irxv1.Incident) {
			i.Descriptions = append(i.Descriptions, &irxv1.Description{Lang: "en_US"}, &irxv1.Description{Lang: "de-CH-1901"},
				&irxv1.Description{Lang: "en owner=secret"}, &irxv1.Description{Text: "no language"})
		}, []string{"incident.descriptions[1].lang", "incident.descriptions[3].lang"}},
		{"media type with a parameter", func(i *irxv1.Incident) {
			i.LogExcerpts = append(i.LogExcerpts, &irxv1.LogExcerpt{MediaType: "text/plain; charset=secret"}, &irxv1.LogExcerpt{MediaType: "application/vnd.tcpdump.pcap"})
		}, []string{"incident.log_excerpts[1].media_type"}},
		{"currencies", func(i *irxv1.Incident) {
			i.Assessments = append(i.Assessments,
				&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "eur"}},
				&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "JPY", AmountMinor: 5}},
				&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "EUR secret"}},
				&irxv1.Assessment{MonetaryImpact: &irxv1.MonetaryImpact{Currency: "ABC"}})
		}, []string{"incident.assessments[1].monetary_impact.currency", "incident.assessments[3].monetary_impact.currency",
			"incident.assessments[4].monetary_impact.currency"}},

		// Indicators.
		{"ipv4 indicator holding ipv6", func(i *irxv1.Incident) { i.Indicators[0].Value = "2001:db8::1" }, []string{"incident.indicators[0].value"}},
		{"ipv4 indicator holding a name", func(i *irxv1.Incident) { i.Indicators[1].Value = "evil.example" }, []string{"incident.indicators[1].value"}},
		{"ipv6 indicator holding ipv4", func(i *irxv1.Incident) { i.Indicators[2].Value = "198.51.100.7" }, []string{"incident.indicators[2].value"}},
		{"ipv6 indicator holding ipv4-mapped", func(i *irxv1.Incident) { i.Indicators[2].Value = "::ffff:198.51.100.7" }, []string{"incident.indicators[2].value"}},
		{"ipv6 indicator holding a zone", func(i *irxv1.Incident) { i.Indicators[2].Value = "fe80::1%eth0" }, []string{"incident.indicators[2].value"}},
		{"hash not hex", func(i *irxv1.Incident) { i.Indicators[3].Value = "sha256:abcd" }, []string{"incident.indicators[3].value"}},
		{"hash odd length", func(i *irxv1.Incident) { i.Indicators[3].Value = "abc" }, []string{"incident.indicators[3].value"}},
		{"md5 hash accepted", func(i *irxv1.Incident) { i.Indicators[3].Value = "d41d8cd98f00b204e9800998ecf8427e" }, nil},
		{"indicator kind and value missing", func(i *irxv1.Incident) { i.Indicators[4] = &irxv1.Indicator{Value: " \t"} },
			[]string{"incident.indicators[4].kind", "incident.indicators[4].value"}},
		{"indicator confidence over 100", func(i *irxv1.Incident) { i.Indicators[4].Confidence = 101 }, []string{"incident.indicators[4].confidence"}},

		// Related incident ids.
		{"related incident ids", func(i *irxv1.Incident) {
			i.RelatedActivity.IncidentIds = []string{"cert-b:1", "cert-b", "cert-b:01", "Cert:1"}
		}, []string{"incident.related_activity.incident_ids[1]", "incident.related_activity.incident_ids[2]", "incident.related_activity.incident_ids[3]"}},

		// Assessments and evidence.
		{"assessment confidence over 100", func(i *irxv1.Incident) { i.Assessments[0].Confidence = 101 }, []string{"incident.assessments[0].confidence"}},
		{"evidence sha256 too short", func(i *irxv1.Incident) { i.Evidence[0].Sha256 = strings.Repeat("0f", 31) + "0" }, []string{"incident.evidence[0].sha256"}},
		{"evidence sha256 not hex", func(i *irxv1.Incident) { i.Evidence[1].Sha256 = strings.Repeat("zz", 32) }, []string{"incident.evidence[1].sha256"}},
		{"evidence negative size", func(i *irxv1.Incident) { i.Evidence[1].SizeBytes = -1 }, []string{"incident.evidence[1].size_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc := fullIncident()
			tt.mutate(inc)
			before := proto.Clone(inc)
			got := violationFields(t, Validate(inc, "incident"))
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations = %q, want %q", got, tt.want)
			}
			if !proto.Equal(before, inc) {
				t.Errorf("Validate modified the incident")
			}
		})
	}
}

// TestValidateReportsAllViolations checks that one call names every broken
// field, so a client can fix them in one round trip.
func TestValidateReportsAllViolations(t *testing.T) {
	inc := fullIncident()
	inc.Tlp = irxv1.Tlp_TLP_UNSPECIFIED
	inc.Taxonomy = &irxv1.Taxonomy{Class: "nope", Type: "nope"}
	inc.VictimHosts[0].Addresses[1] = "2001:db8::zz"
	inc.VictimHosts[0].Restriction = 99
	inc.Indicators[0].Value = "::1"
	inc.Indicators[3].Confidence = 1000
	inc.EndTime = timestamppb.New(t0.Add(-24 * time.Hour))
	inc.Evidence[0].Sha256 = "abc"
	want := []string{
		"incident.end_time",
		"incident.evidence[0].sha256",
		"incident.indicators[0].value",
		"incident.indicators[3].confidence",
		"incident.taxonomy.class",
		"incident.tlp",
		"incident.victim_hosts[0].addresses[1]",
		"incident.victim_hosts[0].restriction",
	}
	got := violationFields(t, Validate(inc, "incident"))
	if !slices.Equal(got, want) {
		t.Fatalf("violations = %q\nwant %q", got, want)
	}
}

func TestValidatePrefix(t *testing.T) {
	inc := fullIncident()
	inc.Tlp = 0
	inc.AttackingHosts[0] = &irxv1.Host{}
	got := violationFields(t, Validate(inc, "request.incident"))
	want := []string{"request.incident.attacking_hosts[0]", "request.incident.tlp"}
	if !slices.Equal(got, want) {
		t.Fatalf("violations = %q, want %q", got, want)
	}
}

func TestValidateNil(t *testing.T) {
	got := violationFields(t, Validate(nil, "incident"))
	if !slices.Equal(got, []string{"incident"}) {
		t.Fatalf("violations = %q, want [incident]", got)
	}
}

func TestValidateOversize(t *testing.T) {
	inc := fullIncident()
	inc.Descriptions = append(inc.Descriptions, &irxv1.Description{Text: strings.Repeat("x", MaxIncidentBytes)})
	inc.Tlp = 0 // further violations are not reported for an oversize record
	got := violationFields(t, Validate(inc, "incident"))
	if !slices.Equal(got, []string{"incident"}) {
		t.Fatalf("violations = %q, want [incident]", got)
	}

	// Just under the limit is accepted.
	inc = fullIncident()
	inc.AssistanceRequested = ""
	room := MaxIncidentBytes - proto.Size(inc)
	inc.AssistanceRequested = strings.Repeat("y", room-5) // 2-byte tag + 3-byte length
	if n := proto.Size(inc); n != MaxIncidentBytes {
		t.Fatalf("test setup: size %d, want %d", n, MaxIncidentBytes)
	}
	if err := Validate(inc, "incident"); err != nil {
		t.Fatalf("Validate at exactly MaxIncidentBytes: %v", err)
	}
	inc.AssistanceRequested += "y"
	if got := violationFields(t, Validate(inc, "incident")); !slices.Equal(got, []string{"incident"}) {
		t.Fatalf("one byte over the limit: violations = %q, want [incident]", got)
	}
}

// TestValidateAllocations: a valid record costs validation next to no
// allocations, however many fields it checks: a violation's path is made
// only for a violation.
func TestValidateAllocations(t *testing.T) {
	inc := fullIncident()
	if err := Validate(inc, "incident"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Validate(inc, "incident") }); n > 8 {
		t.Errorf("Validate of a valid record: %.0f allocations", n)
	}
}

// BenchmarkValidate: a record with every part of the schema filled in.
func BenchmarkValidate(b *testing.B) {
	inc := fullIncident()
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(inc, "incident"); err != nil {
			b.Fatal(err)
		}
	}
}
