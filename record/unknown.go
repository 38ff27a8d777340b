package record

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// UnknownFieldViolation describes the unknown fields raw of a message of
// type name found at field (the path of the message in the request).
func UnknownFieldViolation(field string, name protoreflect.FullName, raw []byte) Violation {
	num, _, n := protowire.ConsumeTag(raw)
	desc := fmt.Sprintf("holds field number %d, which %s does not define: this node does not know it; send only the fields of its schema", num, name)
	if n < 0 {
		desc = fmt.Sprintf("holds bytes that %s does not define", name)
	}
	return Violation{Field: field, Description: desc}
}

// FirstUnknownField finds a field the schema does not define anywhere in
// the incident (kept by protobuf as unknown bytes, which would be stored
// and served back), and names it. It is written out over the incident's
// types: the operator API checks every create with it, and a reflective
// walk cost more than the rest of the receiving node's work on a create.
// TestFirstUnknownFieldCoversSchema puts unknown bytes in every message
// of the schema, one at a time, and fails on any this does not find.
func FirstUnknownField(inc *irxv1.Incident, prefix string) (Violation, bool) {
	c := &unknownCheck{}
	top := loc{prefix: prefix}
	if inc == nil {
		return Violation{}, false
	}
	unknownAt(c, inc, top, "", -1)
	for i, x := range inc.GetAlternativeIds() {
		unknownAt(c, x, top, "alternative_ids", i)
	}
	unknownAt(c, inc.GetTaxonomy(), top, "taxonomy", -1)
	for i, x := range inc.GetAdditionalTaxonomies() {
		unknownAt(c, x, top, "additional_taxonomies", i)
	}
	for _, f := range [...]struct {
		name string
		ts   protoreflect.ProtoMessage
	}{
		{"detect_time", inc.GetDetectTime()}, {"start_time", inc.GetStartTime()}, {"end_time", inc.GetEndTime()},
		{"recovery_time", inc.GetRecoveryTime()}, {"report_time", inc.GetReportTime()},
		{"generation_time", inc.GetGenerationTime()}, {"create_time", inc.GetCreateTime()},
		{"withdraw_time", inc.GetWithdrawTime()},
	} {
		unknownAtAny(c, f.ts, top, f.name, -1)
	}
	for i, x := range inc.GetDescriptions() {
		unknownAt(c, x, top, "descriptions", i)
	}
	unknownAt(c, inc.GetReportingSite(), top, "reporting_site", -1)
	for i, x := range inc.GetContacts() {
		unknownAt(c, x, top, "contacts", i)
		for j, h := range x.GetRegistryHandles() {
			unknownAt(c, h, top.in("contacts", i), "registry_handles", j)
		}
	}
	for _, hosts := range [...]struct {
		name  string
		hosts []*irxv1.Host
	}{{"victim_hosts", inc.GetVictimHosts()}, {"attacking_hosts", inc.GetAttackingHosts()}} {
		for i, h := range hosts.hosts {
			unknownAt(c, h, top, hosts.name, i)
			for j, s := range h.GetServices() {
				unknownAt(c, s, top.in(hosts.name, i), "services", j)
			}
			for j, x := range h.GetCounters() {
				unknownAt(c, x, top.in(hosts.name, i), "counters", j)
			}
			unknownAt(c, h.GetNameResolvedTime(), top.in(hosts.name, i), "name_resolved_time", -1)
		}
	}
	for i, x := range inc.GetIndicators() {
		unknownAt(c, x, top, "indicators", i)
		unknownAt(c, x.GetFirstSeenTime(), top.in("indicators", i), "first_seen_time", -1)
		unknownAt(c, x.GetLastSeenTime(), top.in("indicators", i), "last_seen_time", -1)
		unknownAt(c, x.GetIodefId(), top.in("indicators", i), "iodef_id", -1)
	}
	for i, m := range inc.GetMethods() {
		unknownAt(c, m, top, "methods", i)
		for j, v := range m.GetVulnerabilities() {
			unknownAt(c, v, top.in("methods", i), "vulnerabilities", j)
		}
		for j, x := range m.GetReferenceDescriptions() {
			unknownAt(c, x, top.in("methods", i), "reference_descriptions", j)
		}
	}
	for i, a := range inc.GetAssessments() {
		unknownAt(c, a, top, "assessments", i)
		at := top.in("assessments", i)
		for j, x := range a.GetSystemImpacts() {
			unknownAt(c, x, at, "system_impacts", j)
		}
		for j, x := range a.GetBusinessImpacts() {
			unknownAt(c, x, at, "business_impacts", j)
		}
		unknownAt(c, a.GetMonetaryImpact(), at, "monetary_impact", -1)
		for j, x := range a.GetCounters() {
			unknownAt(c, x, at, "counters", j)
		}
	}
	for i, x := range inc.GetDiscoveries() {
		unknownAt(c, x, top, "discoveries", i)
	}
	unknownAt(c, inc.GetCompromise(), top, "compromise", -1)
	if s := inc.GetSiteSecurity(); s != nil {
		unknownAt(c, s, top, "site_security", -1)
		for j, x := range s.GetTools() {
			unknownAt(c, x, top.in("site_security", -1), "tools", j)
		}
	}
	for i, x := range inc.GetLogExcerpts() {
		unknownAt(c, x, top, "log_excerpts", i)
		unknownAt(c, x.GetTime(), top.in("log_excerpts", i), "time", -1)
	}
	for i, x := range inc.GetEvidence() {
		unknownAt(c, x, top, "evidence", i)
		unknownAt(c, x.GetCollectTime(), top.in("evidence", i), "collect_time", -1)
	}
	for i, x := range inc.GetHistory() {
		unknownAt(c, x, top, "history", i)
		unknownAt(c, x.GetTime(), top.in("history", i), "time", -1)
	}
	if r := inc.GetRelatedActivity(); r != nil {
		unknownAt(c, r, top, "related_activity", -1)
		for j, x := range r.GetThreatActorDescriptions() {
			unknownAt(c, x, top.in("related_activity", -1), "threat_actor_descriptions", j)
		}
		for j, x := range r.GetCampaignDescriptions() {
			unknownAt(c, x, top.in("related_activity", -1), "campaign_descriptions", j)
		}
	}
	if d := inc.GetDisclosureConsent(); d != nil {
		unknownAt(c, d, top, "disclosure_consent", -1)
		at := top.in("disclosure_consent", -1)
		unknownAt(c, d.GetSitesInvolved(), at, "sites_involved", -1)
		unknownAt(c, d.GetResponseTeams(), at, "response_teams", -1)
		unknownAt(c, d.GetLawEnforcement(), at, "law_enforcement", -1)
	}
	if p := inc.GetProvenance(); p != nil {
		unknownAt(c, p, top, "provenance", -1)
		at := top.in("provenance", -1)
		unknownAt(c, p.GetReceiveTime(), at, "receive_time", -1)
		unknownAt(c, p.GetReshare(), at, "reshare", -1)
		for j, x := range p.GetTransfers() {
			unknownAt(c, x, at, "transfers", j)
		}
	}
	unknownAt(c, inc.GetSenderGenerationTime(), top, "sender_generation_time", -1)
	for i, x := range inc.GetExpectations() {
		unknownAt(c, x, top, "expectations", i)
		unknownAt(c, x.GetStartTime(), top.in("expectations", i), "start_time", -1)
		unknownAt(c, x.GetEndTime(), top.in("expectations", i), "end_time", -1)
	}
	for _, f := range iodefExtraLists(inc) {
		for i, x := range f.list {
			unknownAt(c, x, top, f.name, i)
		}
	}
	return c.v, c.found
}

// iodefExtraLists are the incident's lists of kept IODEF parts, one per
// information class, with their field names.
func iodefExtraLists(inc *irxv1.Incident) []struct {
	name string
	list []*irxv1.IodefExtra
} {
	return []struct {
		name string
		list []*irxv1.IodefExtra
	}{
		{"iodef_extras_private_user", inc.GetIodefExtrasPrivateUser()},
		{"iodef_extras_intruder", inc.GetIodefExtrasIntruder()},
		{"iodef_extras_private_site", inc.GetIodefExtrasPrivateSite()},
		{"iodef_extras_vulnerability", inc.GetIodefExtrasVulnerability()},
		{"iodef_extras_embarrassing", inc.GetIodefExtrasEmbarrassing()},
		{"iodef_extras_statistical", inc.GetIodefExtrasStatistical()},
		{"iodef_extras_contact", inc.GetIodefExtrasContact()},
	}
}

type unknownCheck struct {
	found bool
	v     Violation
}

// unknownAt notes m's unknown fields, if m is set and nothing was found
// before; m is the field (element i of it, i >= 0) of the message at.
func unknownAt[M interface {
	comparable
	ProtoReflect() protoreflect.Message
}](c *unknownCheck, m M, at loc, field string, i int) {
	var zero M
	if c.found || m == zero {
		return
	}
	if raw := m.ProtoReflect().GetUnknown(); len(raw) > 0 {
		c.found = true
		c.v = UnknownFieldViolation(at.field(field, i), m.ProtoReflect().Descriptor().FullName(), raw)
	}
}

func unknownAtAny(c *unknownCheck, m protoreflect.ProtoMessage, at loc, field string, i int) {
	if c.found || m == nil || !m.ProtoReflect().IsValid() {
		return
	}
	if raw := m.ProtoReflect().GetUnknown(); len(raw) > 0 {
		c.found = true
		c.v = UnknownFieldViolation(at.field(field, i), m.ProtoReflect().Descriptor().FullName(), raw)
	}
}

// field names the field (element i, i >= 0) of the message at l; "" is l
// itself.
func (l loc) field(name string, i int) string {
	s := l.String()
	if name == "" {
		return s
	}
	s += "." + name
	if i >= 0 {
		s += fmt.Sprintf("[%d]", i)
	}
	return s
}
