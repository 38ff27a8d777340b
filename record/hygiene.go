package record

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// The characters a record may not hold. Whatever a client writes is later
// shown to someone: in a terminal (irxctl, grpcurl), in a log line, in a
// partner's tooling. Control characters rewrite what a terminal shows (ESC
// starts an ANSI sequence, CR returns over a line, NUL ends a C string)
// and bidirectional overrides make text read differently from what it is
// ("Trojan Source", CVE-2021-42574), so they are refused where text
// enters the team (CheckRecordText), not escaped where it is shown: every
// consumer would have to get the escaping right.
//
// Two rules, by the kind of field:
//
//   - Identifiers and other one-line values (ids, names, host names,
//     addresses, indicator values, e-mail, request ids, team ids): valid
//     UTF-8 without any C0 control (U+0000 to U+001F), DEL, C1 control
//     (U+0080 to U+009F), bidirectional formatting character (U+202A to
//     U+202E, U+2066 to U+2069) or directional mark (U+200E, U+200F,
//     U+061C).
//   - Free text (descriptions, log excerpts, reasons): the same, except
//     that tab, line feed and carriage return are allowed, and so are the
//     directional marks, which right-to-left scripts need and which,
//     unlike overrides and isolates, do not reorder what follows them.

// TextKind says which rule a string field follows.
type TextKind int

const (
	// Identifier is a one-line value: no control character at all.
	Identifier TextKind = iota
	// FreeText may hold tabs and line breaks, and directional marks.
	FreeText
)

// CheckText returns why s may not be stored in a field of kind k, or ""
// when it may. The description names the first offending character and
// its position, so a client can find it.
func CheckText(s string, k TextKind) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			continue // most text is printable ASCII: one comparison per byte
		}
		if c < 0x80 {
			if k == FreeText && (c == '\t' || c == '\n' || c == '\r') {
				continue
			}
			return fmt.Sprintf("holds the control character %s at byte %d; %s", runeName(rune(c)), i, allowedHint(k))
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("is not valid UTF-8 at byte %d", i)
		}
		if why := forbiddenRune(r, k); why != "" {
			return fmt.Sprintf("holds %s %s at byte %d; %s", why, runeName(r), i, allowedHint(k))
		}
		i += size - 1
	}
	return ""
}

// forbiddenRune says what r is when a field of kind k may not hold it (a
// non-ASCII rune).
func forbiddenRune(r rune, k TextKind) string {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return "the C1 control character"
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return "the bidirectional formatting character"
	case (r == 0x200e || r == 0x200f || r == 0x061c) && k == Identifier:
		return "the directional mark"
	}
	return ""
}

func runeName(r rune) string {
	switch r {
	case 0:
		return "NUL (U+0000)"
	case 0x1b:
		return "ESC (U+001B)"
	case '\t':
		return "tab (U+0009)"
	case '\n':
		return "line feed (U+000A)"
	case '\r':
		return "carriage return (U+000D)"
	case 0x7f:
		return "DEL (U+007F)"
	}
	return fmt.Sprintf("U+%04X", r)
}

func allowedHint(k TextKind) string {
	if k == FreeText {
		return "free text may hold tabs and line breaks, but no other control or bidirectional formatting character"
	}
	return "a one-line value may hold no control, bidirectional formatting or directional character"
}

// freeTextFields are the string fields of the record that hold free text;
// every other string field is an identifier or one-line value.
// checkRecordStrings must agree (TestRecordStringsCoverSchema).
var freeTextFields = map[protoreflect.FullName]bool{
	"irx.v1.Description.text":              true,
	"irx.v1.ReportingSite.description":     true,
	"irx.v1.Indicator.description":         true,
	"irx.v1.Method.description":            true,
	"irx.v1.Method.configuration_error":    true,
	"irx.v1.Vulnerability.description":     true,
	"irx.v1.SystemImpact.description":      true,
	"irx.v1.BusinessImpact.description":    true,
	"irx.v1.Discovery.description":         true,
	"irx.v1.SiteSecurity.logs":             true,
	"irx.v1.SiteSecurity.log_reliability":  true,
	"irx.v1.LogExcerpt.content":            true,
	"irx.v1.Evidence.description":          true,
	"irx.v1.HistoryItem.description":       true,
	"irx.v1.Host.information_at_risk":      true,
	"irx.v1.Incident.assistance_requested": true,
	"irx.v1.Incident.withdraw_reason":      true,
	"irx.v1.Expectation.description":       true,
	"irx.v1.IodefExtra.xml":                true,
	"irx.v1.Contact.description":           true,
	"irx.v1.NamedDescription.description":  true,
	"irx.v1.Counter.meaning":               true,
}

// IsFreeText reports whether the string field fd holds free text.
func IsFreeText(fd protoreflect.FieldDescriptor) bool { return freeTextFields[fd.FullName()] }

// loc names a string of the record, up to two levels of lists above it
// (incident.methods[0].vulnerabilities[1].cve). It is a value rendered only
// for a violation: a valid record costs no path.
type loc struct {
	prefix string
	a      string
	ai     int
	b      string
	bi     int
}

func (l loc) String() string {
	var b strings.Builder
	b.WriteString(l.prefix)
	for _, e := range [...]struct {
		name string
		i    int
	}{{l.a, l.ai}, {l.b, l.bi}} {
		if e.name == "" {
			break
		}
		b.WriteByte('.')
		b.WriteString(e.name)
		if e.i >= 0 {
			fmt.Fprintf(&b, "[%d]", e.i)
		}
	}
	return b.String()
}

// in is l with one more level.
func (l loc) in(name string, i int) loc {
	if l.a == "" {
		l.a, l.ai = name, i
	} else {
		l.b, l.bi = name, i
	}
	return l
}

type textCheck struct{ vs *violations }

func (t textCheck) one(v string, k TextKind, at loc, field string) {
	if why := CheckText(v, k); why != "" {
		t.vs.add(at.String()+"."+field, "%s", why)
	}
}

func (t textCheck) list(vs []string, k TextKind, at loc, field string) {
	for i, v := range vs {
		if why := CheckText(v, k); why != "" {
			t.vs.add(fmt.Sprintf("%s.%s[%d]", at, field, i), "%s", why)
		}
	}
}

func (t textCheck) counters(cs []*irxv1.Counter, at loc) {
	for i, c := range cs {
		at := at.in("counters", i)
		t.one(c.GetUnit(), Identifier, at, "unit")
		t.one(c.GetType(), Identifier, at, "type")
		t.one(c.GetDuration(), Identifier, at, "duration")
		t.one(c.GetMeaning(), FreeText, at, "meaning")
	}
}

func (t textCheck) named(ns []*irxv1.NamedDescription, at loc, field string) {
	for i, n := range ns {
		t.one(n.GetName(), Identifier, at.in(field, i), "name")
		t.one(n.GetDescription(), FreeText, at.in(field, i), "description")
	}
}

// CheckRecordText applies CheckText to every string of the incident, by
// its kind, and returns the violations, named by their path under prefix.
//
// It is not part of Validate, which the state machine also runs when it
// applies an entry: a node replaying entries an older release accepted
// would refuse them where the other nodes applied them, and the team's
// states would differ (docs/operations.md, upgrades). The edges that take
// a record from outside the team (the operator API, a peer's hand-off)
// call it before anything is proposed.
func CheckRecordText(inc *irxv1.Incident, prefix string) []Violation {
	var vs violations
	checkRecordStrings(inc, prefix, &vs)
	return vs
}

// checkRecordStrings is written out field by field rather than walked by
// reflection, which cost several times the rest of validation on the
// create path. TestRecordStringsCoverSchema puts a bad character in every
// string field of the schema, one at a time, and fails on any this does
// not name, so a field added to the schema cannot be missed.
func checkRecordStrings(inc *irxv1.Incident, prefix string, vs *violations) {
	// In parts: one function of every field took a 4 KiB stack frame,
	// which grew the stack of every API call that checked a record.
	t, top := textCheck{vs}, loc{prefix: prefix}
	checkHeadStrings(t, top, inc)
	checkContactStrings(t, top, inc)
	checkHostStrings(t, top, inc)
	checkActivityStrings(t, top, inc)
	checkResponseStrings(t, top, inc)
	checkTailStrings(t, top, inc)
}

// checkHeadStrings: id to reporting site.
func checkHeadStrings(t textCheck, top loc, inc *irxv1.Incident) {
	const id, text = Identifier, FreeText
	t.one(inc.GetId(), id, top, "id")
	for i, a := range inc.GetAlternativeIds() {
		at := top.in("alternative_ids", i)
		t.one(a.GetTeamId(), id, at, "team_id")
		t.one(a.GetTicket(), id, at, "ticket")
	}
	t.list(inc.GetNamedRecipients(), id, top, "named_recipients")
	if x := inc.GetTaxonomy(); x != nil {
		at := top.in("taxonomy", -1)
		t.one(x.GetClass(), id, at, "class")
		t.one(x.GetType(), id, at, "type")
	}
	for i, x := range inc.GetAdditionalTaxonomies() {
		at := top.in("additional_taxonomies", i)
		t.one(x.GetClass(), id, at, "class")
		t.one(x.GetType(), id, at, "type")
	}
	for i, d := range inc.GetDescriptions() {
		at := top.in("descriptions", i)
		t.one(d.GetLang(), id, at, "lang")
		t.one(d.GetText(), text, at, "text")
	}
	if r := inc.GetReportingSite(); r != nil {
		at := top.in("reporting_site", -1)
		t.one(r.GetName(), id, at, "name")
		t.one(r.GetDomain(), id, at, "domain")
		t.one(r.GetDescription(), text, at, "description")
		t.one(r.GetCountry(), id, at, "country")
	}
}

// checkContactStrings: the contacts.
func checkContactStrings(t textCheck, top loc, inc *irxv1.Incident) {
	const id, text = Identifier, FreeText
	for i, c := range inc.GetContacts() {
		at := top.in("contacts", i)
		for _, f := range [...]struct{ v, name string }{
			{c.GetName(), "name"}, {c.GetOrganization(), "organization"}, {c.GetEmail(), "email"},
			{c.GetTelephone(), "telephone"}, {c.GetFax(), "fax"}, {c.GetPager(), "pager"},
			{c.GetHomeTelephone(), "home_telephone"}, {c.GetConstituencyDomain(), "constituency_domain"},
			{c.GetReferenceNumber(), "reference_number"}, {c.GetPgpFingerprint(), "pgp_fingerprint"},
			{c.GetPostalAddress(), "postal_address"}, {c.GetTimezone(), "timezone"},
		} {
			t.one(f.v, id, at, f.name)
		}
		t.one(c.GetDescription(), text, at, "description")
		for j, h := range c.GetRegistryHandles() {
			t.one(h.GetRegistry(), id, at.in("registry_handles", j), "registry")
			t.one(h.GetHandle(), id, at.in("registry_handles", j), "handle")
		}
	}
}

// checkHostStrings: the victim and attacking hosts.
func checkHostStrings(t textCheck, top loc, inc *irxv1.Incident) {
	const id, text = Identifier, FreeText
	for _, hosts := range [...]struct {
		name  string
		hosts []*irxv1.Host
	}{{"victim_hosts", inc.GetVictimHosts()}, {"attacking_hosts", inc.GetAttackingHosts()}} {
		for i, h := range hosts.hosts {
			at := top.in(hosts.name, i)
			for _, f := range [...]struct{ v, name string }{
				{h.GetHostname(), "hostname"}, {h.GetDomain(), "domain"}, {h.GetSite(), "site"},
				{h.GetPlatform(), "platform"}, {h.GetPatchLevel(), "patch_level"},
				{h.GetNetworkLocation(), "network_location"}, {h.GetTimezone(), "timezone"},
				{h.GetSpoofed(), "spoofed"},
			} {
				t.one(f.v, id, at, f.name)
			}
			t.list(h.GetAddresses(), id, at, "addresses")
			t.list(h.GetFunctions(), id, at, "functions")
			t.list(h.GetUrls(), id, at, "urls")
			t.list(h.GetEmails(), id, at, "emails")
			t.list(h.GetLocations(), id, at, "locations")
			t.one(h.GetInformationAtRisk(), text, at, "information_at_risk")
			for j, s := range h.GetServices() {
				t.one(s.GetApplication(), id, at.in("services", j), "application")
				t.one(s.GetPortlist(), id, at.in("services", j), "portlist")
			}
			t.counters(h.GetCounters(), at)
		}
	}
}

// checkActivityStrings: indicators to discoveries.
func checkActivityStrings(t textCheck, top loc, inc *irxv1.Incident) {
	const id, text = Identifier, FreeText
	for i, x := range inc.GetIndicators() {
		at := top.in("indicators", i)
		t.one(x.GetValue(), id, at, "value")
		t.one(x.GetDescription(), text, at, "description")
		if d := x.GetIodefId(); d != nil {
			at := at.in("iodef_id", -1)
			t.one(d.GetId(), id, at, "id")
			t.one(d.GetName(), id, at, "name")
			t.one(d.GetVersion(), id, at, "version")
		}
	}
	for i, m := range inc.GetMethods() {
		at := top.in("methods", i)
		t.one(m.GetDescription(), text, at, "description")
		t.one(m.GetConfigurationError(), text, at, "configuration_error")
		t.list(m.GetWeaknesses(), id, at, "weaknesses")
		t.list(m.GetAttackPatterns(), id, at, "attack_patterns")
		t.list(m.GetReferences(), id, at, "references")
		t.named(m.GetReferenceDescriptions(), at, "reference_descriptions")
		for j, v := range m.GetVulnerabilities() {
			vat := at.in("vulnerabilities", j)
			t.one(v.GetCve(), id, vat, "cve")
			t.one(v.GetProduct(), id, vat, "product")
			t.one(v.GetCvssVector(), id, vat, "cvss_vector")
			t.one(v.GetDescription(), text, vat, "description")
		}
	}
	for i, a := range inc.GetAssessments() {
		at := top.in("assessments", i)
		for j, x := range a.GetSystemImpacts() {
			t.one(x.GetType(), id, at.in("system_impacts", j), "type")
			t.one(x.GetDescription(), text, at.in("system_impacts", j), "description")
		}
		for j, x := range a.GetBusinessImpacts() {
			t.one(x.GetType(), id, at.in("business_impacts", j), "type")
			t.one(x.GetDescription(), text, at.in("business_impacts", j), "description")
		}
		if x := a.GetMonetaryImpact(); x != nil {
			t.one(x.GetCurrency(), id, at.in("monetary_impact", -1), "currency")
		}
		t.counters(a.GetCounters(), at)
	}
	for i, d := range inc.GetDiscoveries() {
		t.one(d.GetDescription(), text, top.in("discoveries", i), "description")
	}
}

// checkResponseStrings: compromise to related activity.
func checkResponseStrings(t textCheck, top loc, inc *irxv1.Incident) {
	const id, text = Identifier, FreeText
	if c := inc.GetCompromise(); c != nil {
		at := top.in("compromise", -1)
		t.list(c.GetSnifferOutputPaths(), id, at, "sniffer_output_paths")
		t.list(c.GetAttackedServices(), id, at, "attacked_services")
	}
	if s := inc.GetSiteSecurity(); s != nil {
		at := top.in("site_security", -1)
		for j, x := range s.GetTools() {
			tat := at.in("tools", j)
			t.one(x.GetName(), id, tat, "name")
			t.one(x.GetCategory(), id, tat, "category")
			t.one(x.GetFrequency(), id, tat, "frequency")
		}
		t.list(s.GetLogs(), text, at, "logs")
		t.one(s.GetLogReliability(), text, at, "log_reliability")
	}
	for i, l := range inc.GetLogExcerpts() {
		at := top.in("log_excerpts", i)
		t.one(l.GetSource(), id, at, "source")
		t.one(l.GetContent(), text, at, "content")
		t.one(l.GetMediaType(), id, at, "media_type")
	}
	for i, e := range inc.GetEvidence() {
		at := top.in("evidence", i)
		t.one(e.GetDescription(), text, at, "description")
		t.one(e.GetSha256(), id, at, "sha256")
		t.one(e.GetLocation(), id, at, "location")
		t.one(e.GetCustodian(), id, at, "custodian")
	}
	for i, h := range inc.GetHistory() {
		at := top.in("history", i)
		t.one(h.GetDescription(), text, at, "description")
		t.one(h.GetTeamId(), id, at, "team_id")
	}
	if r := inc.GetRelatedActivity(); r != nil {
		at := top.in("related_activity", -1)
		t.list(r.GetThreatActors(), id, at, "threat_actors")
		t.list(r.GetCampaigns(), id, at, "campaigns")
		t.named(r.GetThreatActorDescriptions(), at, "threat_actor_descriptions")
		t.named(r.GetCampaignDescriptions(), at, "campaign_descriptions")
		t.list(r.GetIncidentIds(), id, at, "incident_ids")
	}
}

// checkTailStrings: assistance requested to the IODEF extra lists.
func checkTailStrings(t textCheck, top loc, inc *irxv1.Incident) {
	const id, text = Identifier, FreeText
	t.one(inc.GetAssistanceRequested(), text, top, "assistance_requested")
	if p := inc.GetProvenance(); p != nil {
		at := top.in("provenance", -1)
		t.one(p.GetOriginTeam(), id, at, "origin_team")
		t.list(p.GetPath(), id, at, "path")
		t.one(p.GetReceivedFrom(), id, at, "received_from")
		for j, x := range p.GetTransfers() {
			t.one(x.GetTeamId(), id, at.in("transfers", j), "team_id")
		}
	}
	t.one(inc.GetWithdrawReason(), text, top, "withdraw_reason")
	for i, x := range inc.GetExpectations() {
		at := top.in("expectations", i)
		t.one(x.GetAction(), id, at, "action")
		t.one(x.GetDescription(), text, at, "description")
	}
	for _, f := range iodefExtraLists(inc) {
		for i, x := range f.list {
			at := top.in(f.name, i)
			t.one(x.GetPath(), id, at, "path")
			t.one(x.GetXml(), text, at, "xml")
		}
	}
}

// CheckFutureTimes refuses every time of the incident later than notAfter
// (the receiving node's clock plus the skew it allows, skew): a time that
// has not happened yet cannot be when something was detected, reported or
// collected. The state machine cannot make this check (it reads no clock,
// and nodes may allow different skews), so the edge makes it.
// TestFutureTimesCoverSchema fails when the schema gains a time not
// checked here.
func CheckFutureTimes(inc *irxv1.Incident, prefix string, notAfter time.Time, skew time.Duration) []Violation {
	var vs violations
	check := func(ts *timestamppb.Timestamp, at loc, field string, i int) {
		if ts == nil || !ts.IsValid() || !ts.AsTime().After(notAfter) {
			return
		}
		name := at.String() + "." + field
		if i >= 0 {
			name = fmt.Sprintf("%s[%d]", name, i)
		}
		vs.add(name, "%s is in the future: more than %v after this node's clock (%s)",
			ts.AsTime().UTC().Format(time.RFC3339), skew, notAfter.Add(-skew).UTC().Format(time.RFC3339))
	}
	top := loc{prefix: prefix}
	for _, f := range [...]struct {
		ts   *timestamppb.Timestamp
		name string
	}{
		{inc.GetDetectTime(), "detect_time"}, {inc.GetStartTime(), "start_time"}, {inc.GetEndTime(), "end_time"},
		{inc.GetRecoveryTime(), "recovery_time"}, {inc.GetReportTime(), "report_time"},
		{inc.GetGenerationTime(), "generation_time"}, {inc.GetCreateTime(), "create_time"},
		{inc.GetWithdrawTime(), "withdraw_time"},
	} {
		check(f.ts, top, f.name, -1)
	}
	for _, hosts := range [...]struct {
		name  string
		hosts []*irxv1.Host
	}{{"victim_hosts", inc.GetVictimHosts()}, {"attacking_hosts", inc.GetAttackingHosts()}} {
		for i, h := range hosts.hosts {
			check(h.GetNameResolvedTime(), top.in(hosts.name, i), "name_resolved_time", -1)
		}
	}
	for i, x := range inc.GetIndicators() {
		check(x.GetFirstSeenTime(), top.in("indicators", i), "first_seen_time", -1)
		check(x.GetLastSeenTime(), top.in("indicators", i), "last_seen_time", -1)
	}
	for i, x := range inc.GetLogExcerpts() {
		check(x.GetTime(), top.in("log_excerpts", i), "time", -1)
	}
	for i, x := range inc.GetEvidence() {
		check(x.GetCollectTime(), top.in("evidence", i), "collect_time", -1)
	}
	for i, x := range inc.GetHistory() {
		check(x.GetTime(), top.in("history", i), "time", -1)
	}
	check(inc.GetSenderGenerationTime(), top, "sender_generation_time", -1)
	for i, x := range inc.GetExpectations() {
		check(x.GetStartTime(), top.in("expectations", i), "start_time", -1)
		check(x.GetEndTime(), top.in("expectations", i), "end_time", -1)
	}
	check(inc.GetProvenance().GetReceiveTime(), top.in("provenance", -1), "receive_time", -1)
	return vs
}
