package iodef

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The mapping of an Incident element and its parts, except the hosts
// (hosts.go) and the indicators (indicators.go).

// mapIncident maps the Incident element n; nil when it cannot (m.errs
// says why).
func (m *mapper) mapIncident(n *element) *irxv1.Incident {
	inc := &irxv1.Incident{}
	m.inc = inc
	if v, _, ok := enumAttr(m, n, "purpose", purposeEnum); ok {
		inc.Purpose = v
	}
	if v, _, ok := enumAttr(m, n, "status", statusEnum); ok {
		inc.Status = v
	}
	if l := n.lang(); l != "" {
		m.lang = l
	}
	r, docTLP := m.restriction(n, irxv1.Restriction_RESTRICTION_UNSPECIFIED)
	inc.Restriction = r
	m.incRestr = r
	if r == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		m.incRestr = irxv1.Restriction_RESTRICTION_PRIVATE // the default the team applies
	}

	// Our team assigns the ticket; the sender's IncidentID is its
	// alternative id, its name the sender's team.
	if id := m.child(n, "IncidentID"); id != nil {
		if alt := m.incidentID(id, m.incRestr); alt != nil {
			inc.AlternativeIds = append(inc.AlternativeIds, alt)
		}
	} else {
		m.errf(n, "", "has no IncidentID (RFC 7970 requires one)")
	}
	for _, a := range m.children(n, "AlternativeID") {
		ar, _ := m.restriction(a, m.incRestr)
		for _, id := range m.children(a, "IncidentID") {
			if alt := m.incidentID(id, ar); alt != nil {
				inc.AlternativeIds = append(inc.AlternativeIds, alt)
			}
		}
	}
	for _, ra := range m.children(n, "RelatedActivity") {
		m.relatedActivity(ra, m.incRestr)
	}

	times := []struct {
		name string
		dst  **timestamppb.Timestamp
	}{
		{"DetectTime", &inc.DetectTime}, {"StartTime", &inc.StartTime}, {"EndTime", &inc.EndTime},
		{"RecoveryTime", &inc.RecoveryTime}, {"ReportTime", &inc.ReportTime},
	}
	for _, t := range times {
		if k := m.child(n, t.name); k != nil {
			*t.dst = m.timestamp(k)
		}
	}
	// irx sets its own generation time on every version; the sender's is
	// kept beside it.
	if k := m.child(n, "GenerationTime"); k != nil {
		inc.SenderGenerationTime = m.timestamp(k)
	}

	m.descriptions(n, m.incRestr)
	for _, k := range m.children(n, "Discovery") {
		m.discovery(k, m.incRestr)
	}
	for _, k := range m.children(n, "Assessment") {
		m.assessment(k, m.incRestr)
	}
	for _, k := range m.children(n, "Method") {
		m.method(k, m.incRestr)
	}
	for _, k := range m.children(n, "Contact") {
		m.contact(k, m.incRestr, "")
	}
	for _, k := range m.children(n, "EventData") {
		m.eventData(k, m.incRestr)
	}
	for _, k := range m.children(n, "IndicatorData") {
		for _, ind := range m.children(k, "Indicator") {
			m.indicator(ind, m.incRestr)
		}
	}
	for _, k := range m.children(n, "History") {
		hr, _ := m.restriction(k, m.incRestr)
		for _, item := range m.children(k, "HistoryItem") {
			m.historyItem(item, hr)
		}
	}

	if inc.StartTime != nil && inc.EndTime != nil && inc.EndTime.AsTime().Before(inc.StartTime.AsTime()) {
		m.errf(m.child(n, "EndTime"), "", "is before StartTime")
	}

	// irx's own fields and the parts it kept, as an export by irx writes
	// them.
	m.mergeResidual(n, inc)
	for _, k := range m.children(n, "AdditionalData") {
		if a := k.findAttr("meaning"); a != nil && strings.TrimSpace(a.value) == noTimeMeaning {
			a.used = true
			k.attr("dtype")
			k.attr("name")
			inc.SenderGenerationTime = nil // the writer's, not the sender's
			continue
		}
		if !m.readExtra(k) && !k.used {
			k.used = false
		}
	}
	if inc.Tlp != irxv1.Tlp_TLP_UNSPECIFIED {
		docTLP = inc.Tlp
	}

	// TLP: the document's own marking (derived by tlpOfRestriction); the
	// default where it says nothing.
	opts := m.opts
	word := ""
	if a := n.findAttr("restriction"); a != nil {
		word = strings.TrimSpace(a.value)
	}
	t, ok := tlpOfRestriction[word]
	switch {
	case docTLP != 0:
		inc.Tlp = docTLP
		m.derived = append(m.derived, "tlp")
	case ok:
		inc.Tlp = t
		m.derived = append(m.derived, "tlp")
	case opts.DefaultTLP != 0:
		inc.Tlp = opts.DefaultTLP
		m.defaulted = append(m.defaulted, "tlp")
	default:
		inc.Tlp = rfcDefaultTLP
		m.derived = append(m.derived, "tlp")
	}
	if (docTLP != 0 || ok) && opts.DefaultTLP != 0 && opts.DefaultTLP != inc.Tlp {
		m.note(n, "restriction", word, "%s kept over the default %s", tlpLabel(inc.Tlp), tlpLabel(opts.DefaultTLP))
	}
	// Taxonomy: the document's categories, else what its impacts and
	// methods imply, else the default.
	taxa := m.taxa
	if len(taxa) == 0 {
		taxa = m.impliedTaxa
	}
	switch {
	case inc.Taxonomy != nil:
		m.derived = append(m.derived, "taxonomy") // irx's own, as exported
	case len(taxa) > 0:
		inc.Taxonomy = taxa[0]
		inc.AdditionalTaxonomies = taxa[1:]
		m.derived = append(m.derived, "taxonomy")
	case opts.DefaultTaxonomy != nil:
		inc.Taxonomy = proto.Clone(opts.DefaultTaxonomy).(*irxv1.Taxonomy)
		m.defaulted = append(m.defaulted, "taxonomy")
	default:
		m.fail(n, "", ErrNoTaxonomy, "no Reference Security Incident Taxonomy entry can be derived from the document "+
			"(Assessment/IncidentCategory, an impact type, a Method/Reference such as rsit:class=\"type\"): pass %s", opts.taxonomyName())
	}
	if len(m.errs) > 0 {
		return nil
	}
	// What the team would refuse is refused here, naming the element: the
	// checks above cover the record's rules; this is the backstop (and the
	// size limit).
	if err := record.Validate(inc, "incident"); err != nil {
		m.errf(n, "", "the incident made from it is invalid: %v", err)
		return nil
	}
	if _, err := proto.Marshal(inc); err != nil {
		m.errf(n, "", "the incident made from it cannot be encoded: %v", err)
		return nil
	}
	return inc
}

// incidentID maps an IncidentID to an alternative id: name is the team
// that issued the ticket.
func (m *mapper) incidentID(n *element, inherited irxv1.Restriction) *irxv1.AlternativeId {
	team, ok := n.attr("name")
	ticket := n.textValue()
	switch {
	case !ok || team == "":
		m.errf(n, "name", "is required: the team (CSIRT) that issued the id")
		return nil
	case ticket == "":
		m.errf(n, "", "is empty: want the ticket")
		return nil
	}
	r, _ := m.restriction(n, inherited)
	return &irxv1.AlternativeId{
		TeamId: team, Ticket: ticket,
		// RFC 7970: IncidentID and AlternativeID are CSIRTs' tracking numbers.
		Kind:        irxv1.AlternativeIdKind_ALTERNATIVE_ID_KIND_RESPONSE_TEAM,
		Restriction: m.part(r),
	}
}

func (m *mapper) relatedActivity(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	if m.unrestrictable(n, r) {
		return
	}
	ra := m.inc.RelatedActivity
	if ra == nil {
		ra = &irxv1.RelatedActivity{}
	}
	for _, id := range m.children(n, "IncidentID") {
		team, _ := id.attr("name")
		full := team + ":" + id.textValue()
		if _, err := record.ParseID(full); err != nil {
			// irx relates incidents by "<team-id>:<ticket>" only.
			id.used = false
			continue
		}
		if _, ok := id.attr("restriction"); ok {
			if ir, _ := m.restriction(id, r); m.unrestrictable(id, ir) {
				continue
			}
		}
		ra.IncidentIds = append(ra.IncidentIds, full)
	}
	named := func(kind, idName string, dst *[]string, descs *[]*irxv1.NamedDescription) {
		for _, k := range m.children(n, kind) {
			kr, _ := m.restriction(k, r)
			if m.unrestrictable(k, kr) {
				continue
			}
			ids := m.children(k, idName)
			var names []string
			for _, id := range ids {
				if s := id.textValue(); s != "" {
					names = append(names, s)
				}
			}
			d := m.child(k, "Description")
			switch {
			case d == nil:
			case len(names) == 0:
				// No identifier: the description names it.
				if s := d.textValue(); s != "" {
					names = append(names, s)
				}
			default:
				if s := d.textValue(); s != "" {
					*descs = append(*descs, &irxv1.NamedDescription{Name: names[0], Description: s})
				}
			}
			if len(names) == 0 {
				k.used = false
				continue
			}
			*dst = append(*dst, names...)
		}
	}
	named("ThreatActor", "ThreatActorID", &ra.ThreatActors, &ra.ThreatActorDescriptions)
	named("Campaign", "CampaignID", &ra.Campaigns, &ra.CampaignDescriptions)
	m.mergeResidual(n, ra)
	sortNamed(ra.ThreatActorDescriptions, ra.ThreatActors)
	sortNamed(ra.CampaignDescriptions, ra.Campaigns)
	if len(ra.IncidentIds)+len(ra.ThreatActors)+len(ra.Campaigns) > 0 {
		m.inc.RelatedActivity = ra
	}
}

// descriptions maps n's Description children to the incident's.
func (m *mapper) descriptions(n *element, r irxv1.Restriction) {
	for _, d := range m.children(n, "Description") {
		lang := d.lang()
		if lang == "" {
			lang = m.lang
		}
		if lang != "" && !record.ValidLanguageTag(lang) {
			// xml:lang is free text to XML; irx keeps only BCP 47 tags,
			// the text is worth keeping without one.
			m.note(d, "xml:lang", lang, "not a BCP 47 language tag: the text is kept without a language")
			lang = ""
		}
		if text := d.textValue(); text != "" {
			m.inc.Descriptions = append(m.inc.Descriptions, &irxv1.Description{Lang: lang, Text: text, Restriction: m.part(r)})
		}
	}
}

func (m *mapper) discovery(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	if m.unrestrictable(n, r) {
		return
	}
	d := &irxv1.Discovery{}
	if v, _, ok := enumAttr(m, n, "source", discoverySourceEnum); ok {
		d.Source = v
	}
	d.Description = m.firstText(n, "Description")
	m.inc.Discoveries = append(m.inc.Discoveries, d)
}

func (m *mapper) assessment(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	a := &irxv1.Assessment{Restriction: m.part(r)}
	if v, _, ok := enumAttr(m, n, "occurrence", occurrenceEnum); ok {
		a.Occurrence = v
	}
	for _, c := range m.children(n, "IncidentCategory") {
		if t, ok := rsitEntry(c.textValue(), true); ok {
			m.addTaxonomy(t)
		} else {
			c.used = false
		}
	}
	for _, k := range m.children(n, "SystemImpact") {
		si := &irxv1.SystemImpact{}
		if v, _, ok := enumAttr(m, k, "severity", severityEnum); ok {
			si.Severity = v
		}
		if v, _, ok := enumAttr(m, k, "completion", completionEnum); ok {
			si.Successful = v
		}
		si.Type = m.impactType(k, systemImpactTypeEnum)
		si.Description = m.firstText(k, "Description")
		m.imply(taxonomyOfSystemImpact[si.Type])
		if len(k.attrs) == 0 && len(k.children) == 0 {
			continue // says nothing: what an export writes where the schema wants an impact
		}
		a.SystemImpacts = append(a.SystemImpacts, si)
	}
	if m.v1 {
		for _, k := range m.children(n, "Impact") {
			a.SystemImpacts = append(a.SystemImpacts, m.v1Impact(k))
		}
	}
	for _, k := range m.children(n, "BusinessImpact") {
		bi := &irxv1.BusinessImpact{}
		if v, _, ok := enumAttr(m, k, "severity", businessSeverityEnum); ok {
			bi.Severity = v
		}
		bi.Type = m.impactType(k, businessImpactTypeEnum)
		m.imply(taxonomyOfBusinessImpact[bi.Type])
		bi.Description = m.firstText(k, "Description")
		a.BusinessImpacts = append(a.BusinessImpacts, bi)
	}
	for _, k := range m.children(n, "MonetaryImpact") {
		if a.MonetaryImpact != nil {
			k.used = false // irx keeps one
			continue
		}
		a.MonetaryImpact = m.monetaryImpact(k)
	}
	if c := m.child(n, "Confidence"); c != nil {
		a.Confidence, _ = m.confidence(c)
	}
	for _, k := range m.children(n, "Counter") {
		if c := m.counter(k); c != nil {
			a.Counters = append(a.Counters, c)
		}
	}
	m.mergeResidual(n, a)
	if a.Occurrence != 0 || len(a.SystemImpacts)+len(a.BusinessImpacts) > 0 || a.MonetaryImpact != nil || a.Confidence != 0 || len(a.Counters) > 0 {
		m.inc.Assessments = append(m.inc.Assessments, a)
	}
}

// impactType is the type attribute of an impact, as IODEF names it (irx
// keeps the string); an extended type is kept by its ext-type name.
func (m *mapper) impactType(n *element, e enumeration[string]) string {
	v, raw, ok := enumAttr(m, n, "type", e)
	if !ok {
		return ""
	}
	if raw == "ext-value" {
		if ext, ok := n.attr("ext-type"); ok && ext != "" {
			return ext
		}
	}
	return v
}

func (m *mapper) monetaryImpact(n *element) *irxv1.MonetaryImpact {
	cur, ok := n.attr("currency")
	if !ok {
		// An amount in no currency says nothing irx can keep.
		n.used = false
		return nil
	}
	cur = strings.ToUpper(cur)
	if !record.ValidCurrency(cur) {
		m.errf(n, "currency", "%q is not a current ISO 4217 currency code", cur)
		return nil
	}
	s := n.textValue()
	f, err := strconv.ParseFloat(s, 64)
	exp, ok := record.CurrencyMinorUnits(cur)
	if !ok {
		exp = 2 // the list gives none (gold, units of account): cents, as before
	}
	minor := f * math.Pow10(exp)
	if err != nil || math.IsNaN(f) || f < 0 || minor > 9e18 {
		m.errf(n, "", "%q is not an amount of money", s)
		return nil
	}
	return &irxv1.MonetaryImpact{Currency: cur, AmountMinor: int64(math.Round(minor))}
}

func (m *mapper) method(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	mt := &irxv1.Method{Restriction: m.part(r)}
	for _, ref := range m.children(n, "Reference") {
		m.reference(ref, mt)
	}
	mt.Description = m.firstText(n, "Description")
	// RFC 7203 structured references: the enumeration id is the ID
	// attribute.
	for _, k := range m.childrenNS(n, iodefSciNS, "AttackPattern") {
		if id, ok := k.attr("ID"); ok && id != "" {
			mt.AttackPatterns = append(mt.AttackPatterns, strings.ToUpper(id))
		} else {
			k.used = false
		}
	}
	for _, k := range m.childrenNS(n, iodefSciNS, "Weakness") {
		if id, ok := k.attr("ID"); ok && id != "" {
			mt.Weaknesses = append(mt.Weaknesses, strings.ToUpper(id))
		} else {
			k.used = false
		}
	}
	for _, k := range m.childrenNS(n, iodefSciNS, "Vulnerability") {
		if id, ok := k.attr("ID"); ok && cvePattern.MatchString(id) {
			mt.Vulnerabilities = append(mt.Vulnerabilities, &irxv1.Vulnerability{Cve: strings.ToUpper(id)})
		} else {
			k.used = false
		}
	}
	m.mergeResidual(n, mt)
	sortNamed(mt.ReferenceDescriptions, mt.Weaknesses, mt.AttackPatterns, mt.References)
	for _, p := range mt.AttackPatterns {
		m.imply(taxonomyOfAttackPattern[p])
	}
	if mt.Description != "" || len(mt.References)+len(mt.Vulnerabilities)+len(mt.Weaknesses)+len(mt.AttackPatterns)+len(mt.ReferenceDescriptions) > 0 {
		m.inc.Methods = append(m.inc.Methods, mt)
	} else if len(n.children) > 0 && !anyUsed(n.children) {
		n.used = false
	}
}

// reference maps a Reference: a CVE, CWE or CAPEC id goes where irx keeps
// those, an RSIT entry becomes the taxonomy, anything else and every URL a
// reference. Its Description is the CVE's description, or the reference's
// (Method.reference_descriptions, by the name or else the first URL); a
// Reference with neither name nor URL is its first Description, the
// second describing it, as an export writes one.
func (m *mapper) reference(n *element, mt *irxv1.Method) {
	var name string
	if rn := m.child(n, "ReferenceName"); rn != nil { // RFC 5070
		name = rn.textValue()
	}
	for _, rn := range m.childrenNS(n, iodefEnumNS, "ReferenceName") { // RFC 7970, RFC 7495
		if name != "" {
			rn.used = false
			continue
		}
		rn.attr("specIndex")
		if id := m.childrenNS(rn, iodefEnumNS, "ID"); len(id) > 0 {
			name = id[0].textValue()
		} else {
			name = rn.textValue()
		}
	}
	descs := m.children(n, "Description")
	// described is the name the reference is kept by, "" when irx keeps
	// no description of it.
	described := ""
	switch {
	case name == "":
	case cvePattern.MatchString(name):
		v := &irxv1.Vulnerability{Cve: strings.ToUpper(name)}
		if len(descs) > 0 {
			v.Description = descs[0].textValue()
			descs = descs[1:]
		}
		mt.Vulnerabilities = append(mt.Vulnerabilities, v)
	case cwePattern.MatchString(name):
		described = strings.ToUpper(name)
		mt.Weaknesses = append(mt.Weaknesses, described)
	case capecPattern.MatchString(name):
		described = strings.ToUpper(name)
		mt.AttackPatterns = append(mt.AttackPatterns, described)
	default:
		if t, ok := rsitEntry(name, false); ok {
			m.addTaxonomy(t)
		} else {
			described = name
			mt.References = append(mt.References, name)
		}
	}
	urls := m.children(n, "URL")
	for _, u := range urls {
		if s := u.textValue(); s != "" {
			mt.References = append(mt.References, s)
			if name == "" && described == "" {
				described = s
			}
		}
	}
	if name == "" && len(urls) == 0 && len(descs) > 0 {
		if s := descs[0].textValue(); s != "" {
			// A reference described in words.
			mt.References = append(mt.References, s)
			described = s
		}
		descs = descs[1:]
	}
	if described != "" && len(descs) > 0 {
		if s := descs[0].textValue(); s != "" {
			mt.ReferenceDescriptions = append(mt.ReferenceDescriptions, &irxv1.NamedDescription{Name: described, Description: s})
		}
		descs = descs[1:]
	}
	for _, d := range descs {
		d.used = false // of an RSIT entry, or one description more than irx keeps
	}
}

// sortNamed puts descriptions in the order of the names they describe in
// lists, one list after the other (the order an export writes them in), so
// that a record reads back as it was; a description of no name goes last.
func sortNamed(descs []*irxv1.NamedDescription, lists ...[]string) {
	if len(descs) < 2 {
		return
	}
	rank := map[string]int{}
	i := 0
	for _, l := range lists {
		for _, name := range l {
			if _, ok := rank[name]; !ok {
				rank[name] = i
			}
			i++
		}
	}
	key := func(d *irxv1.NamedDescription) int {
		if r, ok := rank[d.GetName()]; ok {
			return r
		}
		return i
	}
	slices.SortStableFunc(descs, func(a, b *irxv1.NamedDescription) int { return key(a) - key(b) })
}

// counter maps a Counter: IODEF v2's type and unit, or v1's type, which
// is v2's unit (a v1 count is a count). A value irx cannot keep as a count
// (a fraction) leaves it unused, so it is kept verbatim.
func (m *mapper) counter(n *element) *irxv1.Counter {
	v := n.textValue()
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		n.used = false
		n.why = "not a whole count"
		return nil
	}
	word := func(attr string) string {
		s, _ := n.attr(attr)
		if s == "ext-value" {
			ext, _ := n.attr("ext-" + attr)
			return ext
		}
		return s
	}
	c := &irxv1.Counter{Value: int64(f), Duration: word("duration")}
	c.Meaning, _ = n.attr("meaning")
	if m.v1 {
		c.Unit, c.Type = word("type"), "count"
	} else {
		c.Unit, c.Type = word("unit"), word("type")
	}
	return c
}

func (m *mapper) addTaxonomy(t *irxv1.Taxonomy) {
	for _, have := range m.taxa {
		if proto.Equal(have, t) {
			return
		}
	}
	m.taxa = append(m.taxa, t)
}

// contact maps a Contact and the contacts within it; org is the name of
// the organisation it belongs to, for a person within one.
func (m *mapper) contact(n *element, inherited irxv1.Restriction, org string) {
	r, _ := m.restriction(n, inherited)
	c := &irxv1.Contact{Restriction: m.part(r), Organization: org}
	if v, _, ok := enumAttr(m, n, "role", contactRoleEnum); ok {
		c.Role = v
	}
	if v, _, ok := enumAttr(m, n, "type", contactTypeEnum); ok {
		c.Type = v
	}
	// What an export writes for a role or type the record leaves unset.
	for _, attr := range []string{"role", "type"} {
		a, ext := n.findAttr(attr), n.findAttr("ext-"+attr)
		if a != nil && ext != nil && strings.TrimSpace(a.value) == "ext-value" && strings.TrimSpace(ext.value) == "unspecified" {
			a.used, ext.used = true, true
		}
	}
	name := m.firstText(n, "ContactName")
	if c.Type == irxv1.ContactType_CONTACT_TYPE_ORGANIZATION {
		c.Organization = name
	} else {
		c.Name = name
	}
	if e := m.child(n, "Email"); e != nil {
		enumAttr(m, e, "type", emailTypeEnum)
		if to := m.child(e, "EmailTo"); to != nil {
			c.Email = to.textValue()
		} else if m.v1 {
			c.Email = e.textValue() // RFC 5070: the address is the content
		}
	}
	for _, t := range m.children(n, "Telephone") {
		_, raw, _ := enumAttr(m, t, "type", telephoneTypeEnum)
		dst := &c.Telephone
		if raw == "fax" {
			dst = &c.Fax
		}
		if *dst != "" {
			t.used = false // irx keeps one of each
			continue
		}
		if num := m.child(t, "TelephoneNumber"); num != nil {
			*dst = num.textValue()
		} else if m.v1 {
			*dst = t.textValue()
		}
	}
	if m.v1 {
		if f := m.child(n, "Fax"); f != nil && c.Fax == "" {
			c.Fax = f.textValue()
		}
	}
	c.Description = m.firstText(n, "Description")
	for _, k := range m.children(n, "RegistryHandle") {
		registry, _ := k.attr("registry")
		if registry == "ext-value" {
			registry, _ = k.attr("ext-registry")
		}
		if h := k.textValue(); h != "" {
			c.RegistryHandles = append(c.RegistryHandles, &irxv1.RegistryHandle{Registry: registry, Handle: h})
		}
	}
	if pa := m.child(n, "PostalAddress"); pa != nil {
		if m.v1 {
			c.PostalAddress = pa.textValue()
		} else {
			c.PostalAddress = m.firstText(pa, "PAddress")
		}
	}
	c.Timezone = m.firstText(n, "Timezone")
	m.mergeResidual(n, c)
	m.inc.Contacts = append(m.inc.Contacts, c)
	within := org
	if c.Type == irxv1.ContactType_CONTACT_TYPE_ORGANIZATION && c.Organization != "" {
		within = c.Organization
	}
	for _, k := range m.children(n, "Contact") {
		m.contact(k, r, within)
	}
}

// eventData folds an EventData into the incident: irx keeps its parts at
// the incident, each with the restriction it had in the event.
func (m *mapper) eventData(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	m.descriptions(n, r)
	// The event's times are the incident's where it has none of its own
	// (irx keeps the times at the incident); others are kept verbatim.
	for _, t := range []struct {
		name string
		dst  **timestamppb.Timestamp
	}{
		{"DetectTime", &m.inc.DetectTime}, {"StartTime", &m.inc.StartTime}, {"EndTime", &m.inc.EndTime},
		{"RecoveryTime", &m.inc.RecoveryTime}, {"ReportTime", &m.inc.ReportTime},
	} {
		if k := m.child(n, t.name); k != nil {
			if *t.dst == nil {
				*t.dst = m.timestamp(k)
			} else {
				k.used = false
			}
		}
	}
	for _, k := range m.children(n, "Contact") {
		m.contact(k, r, "")
	}
	for _, k := range m.children(n, "Discovery") {
		m.discovery(k, r)
	}
	for _, k := range m.children(n, "Assessment") {
		m.assessment(k, r)
	}
	for _, k := range m.children(n, "Method") {
		m.method(k, r)
	}
	for _, flow := range m.children(n, "Flow") {
		for _, sys := range m.children(flow, "System") {
			m.system(sys, r)
		}
		if !anyUsed(flow.children) {
			flow.used = false
		}
	}
	for _, k := range m.children(n, "Expectation") {
		m.expectation(k, r)
	}
	for _, rec := range m.children(n, "Record") {
		rr, _ := m.restriction(rec, r)
		for _, rd := range m.children(rec, "RecordData") {
			m.recordData(rd, rr)
		}
	}
	for _, k := range m.children(n, "EventData") {
		m.eventData(k, r)
	}
}

func (m *mapper) recordData(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	le := &irxv1.LogExcerpt{Restriction: m.part(r)}
	if dt := m.child(n, "DateTime"); dt != nil {
		le.Time = m.timestamp(dt)
	}
	le.Source = m.firstText(n, "Description")
	var lines []string
	for _, item := range m.children(n, "RecordItem") {
		mt, _, ok := enumAttr(m, item, "dtype", recordDtypeEnum)
		if !ok || len(item.children) > 0 {
			item.used = false
			continue
		}
		text := item.textValue()
		if text == "" {
			continue
		}
		if le.Source == "" {
			le.Source, _ = item.attr("meaning")
		}
		switch {
		case le.MediaType == "":
			le.MediaType = mt
		case le.MediaType != mt:
			le.MediaType = "text/plain"
		}
		lines = append(lines, text)
	}
	if len(lines) == 0 {
		n.used = false
		return
	}
	le.Content = strings.Join(lines, "\n")
	m.mergeResidual(n, le)
	m.inc.LogExcerpts = append(m.inc.LogExcerpts, le)
}

func (m *mapper) historyItem(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	h := &irxv1.HistoryItem{Restriction: m.part(r)}
	v, raw, ok := enumAttr(m, n, "action", historyActionEnum)
	if ok && raw == "ext-value" {
		// irx's own actions, as an export writes them.
		if ext := n.findAttr("ext-action"); ext != nil {
			word := strings.TrimSpace(ext.value)
			name := "HISTORY_ACTION_" + strings.ToUpper(strings.ReplaceAll(word, "-", "_"))
			if x, found := irxv1.HistoryAction_value[name]; found {
				v, raw, ext.used = irxv1.HistoryAction(x), word, true
			} else if word == "unspecified" {
				v, raw, ext.used = irxv1.HistoryAction_HISTORY_ACTION_UNSPECIFIED, word, true
			}
		}
	}
	if ok {
		h.Action = v
		if want := strings.ToUpper(strings.ReplaceAll(raw, "-", "_")); raw != "ext-value" && "HISTORY_ACTION_"+want != v.String() {
			m.note(n, "action", raw, "as %s", enumLabel(v, "HISTORY_ACTION_"))
		}
	}
	if dt := m.child(n, "DateTime"); dt != nil {
		h.Time = m.timestamp(dt)
	}
	h.Description = m.firstText(n, "Description")
	m.mergeResidual(n, h)
	for _, k := range m.children(n, "AdditionalData") {
		if a := k.findAttr("meaning"); a != nil && strings.TrimSpace(a.value) == noTimeMeaning {
			a.used = true
			k.attr("dtype")
			h.Time = nil // the writer's, not the record's
		} else if !k.used {
			k.used = false
		}
	}
	m.inc.History = append(m.inc.History, h)
}

func (m *mapper) expectation(n *element, inherited irxv1.Restriction) {
	r, _ := m.restriction(n, inherited)
	x := &irxv1.Expectation{Restriction: m.part(r)}
	if a := n.findAttr("action"); a != nil {
		a.used = true
		x.Action = strings.TrimSpace(a.value)
		if x.Action == "ext-value" {
			if ext, ok := n.attr("ext-action"); ok && ext != "" {
				x.Action = ext
			}
		}
	}
	if v, _, ok := enumAttr(m, n, "severity", severityEnum); ok {
		x.Severity = v
	}
	x.Description = m.firstText(n, "Description")
	if k := m.child(n, "StartTime"); k != nil {
		x.StartTime = m.timestamp(k)
	}
	if k := m.child(n, "EndTime"); k != nil {
		x.EndTime = m.timestamp(k)
	}
	m.inc.Expectations = append(m.inc.Expectations, x)
}

// v1Impact maps an IODEF v1 Impact (RFC 5070 section 3.10.1): its type
// to the v2 SystemImpact type of the v1Impact table, its text to the
// description.
func (m *mapper) v1Impact(n *element) *irxv1.SystemImpact {
	si := &irxv1.SystemImpact{Description: n.textValue()}
	if v, _, ok := enumAttr(m, n, "severity", severityEnum); ok {
		si.Severity = v
	}
	if v, _, ok := enumAttr(m, n, "completion", completionEnum); ok {
		si.Successful = v
	}
	if a := n.findAttr("type"); a != nil {
		a.used = true
		typ := strings.TrimSpace(a.value)
		if typ == "ext-value" {
			typ, _ = n.attr("ext-type")
		}
		if row, ok := v1Impact[typ]; ok {
			si.Type = strings.TrimPrefix(row.systemImpact, "ext-value:")
			m.imply(row.taxonomy)
		} else {
			si.Type = typ
		}
	}
	return si
}

// imply records a taxonomy entry an impact or a method implies.
func (m *mapper) imply(t *irxv1.Taxonomy) {
	if t == nil {
		return
	}
	for _, have := range m.impliedTaxa {
		if proto.Equal(have, t) {
			return
		}
	}
	m.impliedTaxa = append(m.impliedTaxa, proto.Clone(t).(*irxv1.Taxonomy))
}
