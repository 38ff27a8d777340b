package iodef

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// EncodeOptions supply what a record may not say.
type EncodeOptions struct {
	// Team names the team that writes the document: the Contact of an
	// incident that has none (IODEF requires one) and the IncidentID of a
	// record that has no id yet. Empty: "irx".
	Team string
	// GenerationTime is the document's GenerationTime for a record that
	// has neither a sender's nor its own generation time. Zero: such a
	// record is refused, so that the output stays byte-stable.
	GenerationTime time.Time
}

// Encode writes incidents as one IODEF v2 document (RFC 7970), valid
// against iodef-2.0.xsd. The output depends only on the records and opts:
// the same input writes the same bytes.
//
// What IODEF has an element for is written as that element; what it has
// none for (irx's own fields, such as the priority or the disclosure
// consent) is written as AdditionalData in irx's terms (dtype "json",
// meaning "urn:irx:v1:" and the message name), and what Decode kept
// verbatim from an imported document is written back as AdditionalData
// (dtype "xml", name the element's original path), so that Decode reads
// back the same record.
func Encode(w io.Writer, incidents []*irxv1.Incident, opts EncodeOptions) error {
	root, err := encodeTree(incidents, opts)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(xml.Header)
	writeElement(bw, root, "", 0)
	bw.WriteString("\n")
	return bw.Flush()
}

// encodeTree maps incidents to the element tree of an IODEF v2 document:
// the one place where the record-to-IODEF mapping lives (the XML and the
// JSON binding serialise the same tree). Children are in the order of the
// schema's sequences, with element and attribute names as in the schema.
func encodeTree(incidents []*irxv1.Incident, opts EncodeOptions) (*element, error) {
	if len(incidents) == 0 {
		return nil, errors.New("iodef: no incident to encode: an IODEF document holds at least one")
	}
	if opts.Team == "" {
		opts.Team = "irx"
	}
	root := newElement("IODEF-Document")
	root.setAttr("version", "2.00")
	root.setAttr("xml:lang", "en")
	for i, inc := range incidents {
		if inc == nil {
			return nil, fmt.Errorf("iodef: incident %d is nil", i+1)
		}
		e := &encoder{opts: opts, inc: inc, index: i + 1}
		n, err := e.incident()
		if err != nil {
			return nil, fmt.Errorf("iodef: incident %d (%s): %w", i+1, inc.GetId(), err)
		}
		root.add(n)
	}
	return root, nil
}

// newElement is an empty IODEF v2 element.
func newElement(local string) *element {
	return &element{name: xml.Name{Space: iodefV2NS, Local: local}}
}

// setAttr sets an attribute; "xml:lang" is XML's lang.
func (n *element) setAttr(name, value string) *element {
	xn := xml.Name{Local: name}
	if rest, ok := strings.CutPrefix(name, "xml:"); ok {
		xn = xml.Name{Space: xmlNS, Local: rest}
	}
	n.attrs = append(n.attrs, &attribute{name: xn, value: value})
	return n
}

func (n *element) add(kids ...*element) *element {
	for _, k := range kids {
		if k != nil {
			k.parent = n
			n.children = append(n.children, k)
		}
	}
	return n
}

// textElement is an IODEF element holding text.
func textElement(local, text string) *element {
	n := newElement(local)
	n.text = []byte(text)
	return n
}

func timeElement(local string, ts *timestamppb.Timestamp) *element {
	if ts == nil {
		return nil
	}
	return textElement(local, formatTime(ts))
}

// formatTime writes a time as RFC 3339 in UTC, with the fraction only
// when there is one: one spelling per instant.
func formatTime(ts *timestamppb.Timestamp) string {
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// restrictionWord is the IODEF restriction value of r, "" for unspecified.
func restrictionWord(r irxv1.Restriction) string {
	switch r {
	case irxv1.Restriction_RESTRICTION_PUBLIC:
		return "public"
	case irxv1.Restriction_RESTRICTION_PARTNER:
		return "partner"
	case irxv1.Restriction_RESTRICTION_NEED_TO_KNOW:
		return "need-to-know"
	case irxv1.Restriction_RESTRICTION_PRIVATE:
		return "private"
	}
	return ""
}

func setRestriction(n *element, r irxv1.Restriction) *element {
	if w := restrictionWord(r); w != "" {
		n.setAttr("restriction", w)
	}
	return n
}

// tlpColour is the IODEF restriction that is the TLP t, "" when IODEF has
// none (TLP:AMBER without +STRICT).
func tlpColour(t irxv1.Tlp) string {
	for word, mk := range restrictionEnum.to {
		if mk.tlp == t && t != irxv1.Tlp_TLP_UNSPECIFIED {
			return word
		}
	}
	return ""
}

// enumWord is the IODEF value of an irx enum value, found in e; ok is
// false when e has no value for it.
func enumWord[T comparable](e enumeration[T], v T) (string, bool) {
	for _, word := range e.values {
		if got, ok := e.to[word]; ok && got == v && word != "ext-value" {
			return word, true
		}
	}
	return "", false
}

// setEnum sets attr to the IODEF value of v, or to ext-value with the
// ext- attribute naming it when IODEF has none.
func setEnum[T comparable](n *element, attr string, e enumeration[T], v T, ext string) {
	if word, ok := enumWord(e, v); ok {
		n.setAttr(attr, word)
		return
	}
	n.setAttr(attr, "ext-value")
	n.setAttr("ext-"+attr, ext)
}

type encoder struct {
	opts  EncodeOptions
	inc   *irxv1.Incident
	index int
	// indicator ids written, to keep the document's xs:ID values unique
	ids map[string]bool
}

func (e *encoder) incident() (*element, error) {
	inc := e.inc
	n := newElement("Incident")
	purpose := inc.GetPurpose()
	if purpose == irxv1.Purpose_PURPOSE_UNSPECIFIED {
		purpose = irxv1.Purpose_PURPOSE_REPORTING // the record's default
	}
	setEnum(n, "purpose", purposeEnum, purpose, "other")
	if s := inc.GetStatus(); s != irxv1.Status_STATUS_UNSPECIFIED {
		setEnum(n, "status", statusEnum, s, strings.ToLower(s.String()))
	}
	// The restriction carries the TLP when it is a TLP colour of the same
	// restriction; otherwise the restriction, and the TLP goes with irx's
	// fields.
	tlpWritten := false
	if c := tlpColour(inc.GetTlp()); c != "" && restrictionEnum.to[c].restriction == inc.GetRestriction() {
		n.setAttr("restriction", c)
		tlpWritten = true
	} else {
		setRestriction(n, inc.GetRestriction())
	}

	// IncidentID: the record's id, else the first alternative id (what an
	// imported record was known by).
	alts := inc.GetAlternativeIds()
	team, ticket, _ := strings.Cut(inc.GetId(), ":")
	if inc.GetId() != "" {
		n.add(textElement("IncidentID", ticket).setAttr("name", team))
	} else if len(alts) > 0 {
		n.add(incidentIDElement(alts[0]))
		alts = alts[1:]
	} else {
		n.add(textElement("IncidentID", strconv.Itoa(e.index)).setAttr("name", e.opts.Team))
	}
	if len(alts) > 0 {
		a := newElement("AlternativeID")
		for _, alt := range alts {
			a.add(incidentIDElement(alt))
		}
		n.add(a)
	}
	related := e.relatedActivity()
	n.add(related)
	n.add(timeElement("DetectTime", inc.GetDetectTime()),
		timeElement("StartTime", inc.GetStartTime()),
		timeElement("EndTime", inc.GetEndTime()),
		timeElement("RecoveryTime", inc.GetRecoveryTime()),
		timeElement("ReportTime", inc.GetReportTime()))
	gen := inc.GetSenderGenerationTime()
	if gen == nil {
		gen = inc.GetGenerationTime()
	}
	genSupplied := gen == nil
	if genSupplied {
		if e.opts.GenerationTime.IsZero() {
			return nil, errors.New("has no generation time and EncodeOptions.GenerationTime is not set")
		}
		gen = timestamppb.New(e.opts.GenerationTime)
	}
	n.add(timeElement("GenerationTime", gen))

	// Descriptions without a restriction of their own are the incident's,
	// up to the first with one; from there on each goes in an EventData
	// that carries its restriction (Description has no restriction
	// attribute), so that their order is kept.
	var restricted []*irxv1.Description
	for _, d := range inc.GetDescriptions() {
		if d.GetRestriction() != irxv1.Restriction_RESTRICTION_UNSPECIFIED || len(restricted) > 0 {
			restricted = append(restricted, d)
			continue
		}
		n.add(descriptionElement(d.GetText(), d.GetLang()))
	}
	for _, d := range inc.GetDiscoveries() {
		n.add(discoveryElement(d))
	}
	taxa := append([]*irxv1.Taxonomy{}, inc.GetTaxonomy())
	if inc.GetTaxonomy() == nil {
		taxa = nil
	}
	taxa = append(taxa, inc.GetAdditionalTaxonomies()...)
	for i, a := range inc.GetAssessments() {
		if i == 0 {
			n.add(assessmentElement(a, taxa))
			taxa = nil
		} else {
			n.add(assessmentElement(a, nil))
		}
	}
	if len(taxa) > 0 {
		n.add(assessmentElement(&irxv1.Assessment{}, taxa))
	}
	for _, m := range inc.GetMethods() {
		n.add(methodElement(m))
	}
	contacts := inc.GetContacts()
	for _, c := range contacts {
		n.add(contactElement(c))
	}
	if len(contacts) == 0 {
		// IODEF requires a contact: the team that writes the document.
		n.add(newElement("Contact").setAttr("role", "creator").setAttr("type", "organization").
			add(textElement("ContactName", contactTeam(inc, e.opts.Team))))
	}
	for _, d := range restricted {
		n.add(setRestriction(newElement("EventData"), d.GetRestriction()).add(descriptionElement(d.GetText(), d.GetLang())))
	}
	if ev := e.hostsAndLogs(); ev != nil {
		n.add(ev)
	}
	for _, x := range inc.GetExpectations() {
		// An Expectation sits in an EventData; one each keeps its own
		// place in the list.
		n.add(newElement("EventData").add(expectationElement(x)))
	}
	if len(inc.GetIndicators()) > 0 {
		data := newElement("IndicatorData")
		for i, ind := range inc.GetIndicators() {
			data.add(e.indicatorElement(i+1, ind))
		}
		n.add(data)
	}
	if len(inc.GetHistory()) > 0 {
		h := newElement("History")
		for _, item := range inc.GetHistory() {
			h.add(historyElement(item, gen))
		}
		n.add(h)
	}
	// What IODEF has no element for, in irx's terms.
	skip := []string{"id", "version", "alternative_ids", "purpose", "status", "restriction",
		"taxonomy", "additional_taxonomies", "detect_time", "start_time", "end_time", "recovery_time",
		"report_time", "generation_time", "create_time", "descriptions", "contacts", "victim_hosts",
		"attacking_hosts", "indicators", "methods", "assessments", "discoveries", "log_excerpts", "history",
		"provenance", "withdraw_time", "withdraw_reason", "sender_generation_time", "expectations"}
	if related != nil {
		skip = append(skip, "related_activity")
	} // else it holds only descriptions of no name (or nothing): irx's
	skip = append(skip, extraFields...)
	if tlpWritten {
		skip = append(skip, "tlp")
	}
	if purpose != inc.GetPurpose() {
		skip = append(skip, "purpose")
	}
	n.add(residualElement(inc, skip...))
	if genSupplied {
		// The GenerationTime is the writer's, not the record's.
		n.add(additionalData("string", noTimeMeaning, "GenerationTime", ""))
	}
	// What Decode kept verbatim, where IODEF allows anything.
	for _, x := range extrasOf(inc) {
		ad, err := extraElement(x.extra, x.class)
		if err != nil {
			return nil, err
		}
		n.add(ad)
	}
	return n, nil
}

// contactTeam is the team named in the Contact an incident without one
// gets.
func contactTeam(inc *irxv1.Incident, team string) string {
	if id, err := record.ParseID(inc.GetId()); err == nil {
		return id.Team
	}
	if p := inc.GetProvenance().GetOriginTeam(); p != "" {
		return p
	}
	return team
}

func incidentIDElement(a *irxv1.AlternativeId) *element {
	n := textElement("IncidentID", a.GetTicket()).setAttr("name", a.GetTeamId())
	return setRestriction(n, a.GetRestriction())
}

func (e *encoder) relatedActivity() *element {
	ra := e.inc.GetRelatedActivity()
	if len(ra.GetIncidentIds())+len(ra.GetThreatActors())+len(ra.GetCampaigns()) == 0 {
		return nil
	}
	n := newElement("RelatedActivity")
	for _, id := range ra.GetIncidentIds() {
		team, ticket, _ := strings.Cut(id, ":")
		n.add(textElement("IncidentID", ticket).setAttr("name", team))
	}
	actors := describer(slices.Clone(ra.GetThreatActorDescriptions()))
	for _, a := range ra.GetThreatActors() {
		n.add(newElement("ThreatActor").add(textElement("ThreatActorID", a), actors.element(a)))
	}
	campaigns := describer(slices.Clone(ra.GetCampaignDescriptions()))
	for _, c := range ra.GetCampaigns() {
		n.add(newElement("Campaign").add(textElement("CampaignID", c), campaigns.element(c)))
	}
	// Descriptions of names the record does not list travel as irx's.
	rest := &irxv1.RelatedActivity{ThreatActorDescriptions: actors.unused(), CampaignDescriptions: campaigns.unused()}
	n.add(residualElement(rest))
	return n
}

// A describer writes the descriptions of names, each once. It is a copy:
// it forgets those it wrote.
type describer []*irxv1.NamedDescription

// element is the Description of name, nil if it has none or its
// description was written.
func (d describer) element(name string) *element {
	for i, x := range d {
		if x != nil && x.GetName() == name {
			d[i] = nil
			return descriptionElement(x.GetDescription(), "")
		}
	}
	return nil
}

// unused are the descriptions not written.
func (d describer) unused() []*irxv1.NamedDescription {
	var out []*irxv1.NamedDescription
	for _, x := range d {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

func descriptionElement(text, lang string) *element {
	d := textElement("Description", text)
	if lang != "" {
		d.setAttr("xml:lang", lang)
	}
	return d
}

func discoveryElement(d *irxv1.Discovery) *element {
	n := newElement("Discovery")
	if s := d.GetSource(); s != irxv1.DiscoverySource_DISCOVERY_SOURCE_UNSPECIFIED {
		setEnum(n, "source", discoverySourceEnum, s, strings.ToLower(s.String()))
	}
	if d.GetDescription() != "" {
		n.add(descriptionElement(d.GetDescription(), ""))
	}
	return n
}

// assessmentElement writes an Assessment, with taxa as its
// IncidentCategory elements ("class/type").
func assessmentElement(a *irxv1.Assessment, taxa []*irxv1.Taxonomy) *element {
	n := newElement("Assessment")
	if o := a.GetOccurrence(); o != irxv1.Occurrence_OCCURRENCE_UNSPECIFIED {
		setEnum(n, "occurrence", occurrenceEnum, o, "")
	}
	setRestriction(n, a.GetRestriction())
	for _, t := range taxa {
		n.add(textElement("IncidentCategory", t.GetClass()+"/"+t.GetType()))
	}
	impacts := 0
	for _, si := range a.GetSystemImpacts() {
		k := newElement("SystemImpact")
		if s := si.GetSeverity(); s != irxv1.Severity_SEVERITY_UNSPECIFIED {
			setEnum(k, "severity", severityEnum, s, "")
		}
		if si.GetSuccessful() {
			k.setAttr("completion", "succeeded")
		}
		setImpactType(k, systemImpactTypeEnum, si.GetType())
		if si.GetDescription() != "" {
			k.add(descriptionElement(si.GetDescription(), ""))
		}
		n.add(k)
		impacts++
	}
	for _, bi := range a.GetBusinessImpacts() {
		k := newElement("BusinessImpact")
		if s := bi.GetSeverity(); s != irxv1.Severity_SEVERITY_UNSPECIFIED {
			setEnum(k, "severity", businessSeverityEnum, s, "")
		}
		setImpactType(k, businessImpactTypeEnum, bi.GetType())
		if bi.GetDescription() != "" {
			k.add(descriptionElement(bi.GetDescription(), ""))
		}
		n.add(k)
		impacts++
	}
	// The schema wants an amount above zero: a zero travels as irx's.
	mapped := []string{"occurrence", "restriction", "system_impacts", "business_impacts", "confidence"}
	if mi := a.GetMonetaryImpact(); mi != nil && mi.GetAmountMinor() > 0 {
		mapped = append(mapped, "monetary_impact")
		n.add(textElement("MonetaryImpact", formatMinor(mi.GetAmountMinor(), mi.GetCurrency())).setAttr("currency", mi.GetCurrency()))
		impacts++
	}
	if impacts == 0 {
		// The schema wants an impact; a bare SystemImpact says nothing
		// (Decode reads it so).
		n.add(newElement("SystemImpact"))
	}
	for _, c := range a.GetCounters() {
		n.add(counterElement(c))
	}
	mapped = append(mapped, "counters")
	if c := a.GetConfidence(); c != 0 {
		n.add(confidenceElement(c))
	}
	n.add(residualElement(a, mapped...))
	return n
}

// setImpactType writes an impact's type: IODEF's value, or ext-value with
// the type irx keeps.
func setImpactType(n *element, e enumeration[string], typ string) {
	switch {
	case typ == "":
	case slices.Contains(e.values, typ) && typ != "ext-value":
		n.setAttr("type", typ)
	default:
		n.setAttr("type", "ext-value")
		n.setAttr("ext-type", typ)
	}
}

// formatMinor writes an amount in minor units as a decimal in the
// currency's major unit, exactly.
func formatMinor(minor int64, currency string) string {
	exp, ok := record.CurrencyMinorUnits(currency)
	if !ok {
		exp = 2
	}
	s := strconv.FormatInt(minor, 10)
	if exp == 0 {
		return s
	}
	for len(s) <= exp {
		s = "0" + s
	}
	return s[:len(s)-exp] + "." + s[len(s)-exp:]
}

// confidenceElement writes irx's 0 to 100 as IODEF's numeric confidence,
// a fraction (Decode reads a value up to 1 as one).
func confidenceElement(c uint32) *element {
	return textElement("Confidence", strconv.FormatFloat(float64(c)/100, 'f', -1, 64)).setAttr("rating", "numeric")
}

func methodElement(m *irxv1.Method) *element {
	n := setRestriction(newElement("Method"), m.GetRestriction())
	descs := describer(slices.Clone(m.GetReferenceDescriptions()))
	named := func(id string, desc *element) {
		r := newElement("Reference")
		rn := &element{name: xml.Name{Space: iodefEnumNS, Local: "ReferenceName"}}
		rn.setAttr("specIndex", specIndex(id))
		rn.add(&element{name: xml.Name{Space: iodefEnumNS, Local: "ID"}, text: []byte(id)})
		r.add(rn, desc)
		n.add(r)
	}
	for _, v := range m.GetVulnerabilities() {
		var desc *element
		if v.GetDescription() != "" {
			desc = descriptionElement(v.GetDescription(), "")
		}
		named(v.GetCve(), desc)
	}
	for _, w := range m.GetWeaknesses() {
		named(w, descs.element(w))
	}
	for _, p := range m.GetAttackPatterns() {
		named(p, descs.element(p))
	}
	for _, ref := range m.GetReferences() {
		r := newElement("Reference")
		if looksLikeURL(ref) {
			r.add(textElement("URL", ref))
		} else {
			r.add(descriptionElement(ref, "")) // Decode reads a second Description as its description
		}
		n.add(r.add(descs.element(ref)))
	}
	if m.GetDescription() != "" {
		n.add(descriptionElement(m.GetDescription(), ""))
	}
	rest := proto.CloneOf(m)
	rest.ReferenceDescriptions = descs.unused()
	skip := []string{"description", "weaknesses", "attack_patterns", "references", "restriction", "vulnerabilities"}
	n.add(residualElement(rest, skip...))
	return n
}

// specIndex is the RFC 7495 registry index of an id's enumeration: 1
// CVE, 2 CWE... as the IANA "Security External Enumeration" registry
// numbers them.
func specIndex(id string) string {
	switch {
	case cvePattern.MatchString(id):
		return "1"
	case cwePattern.MatchString(id):
		return "2"
	case capecPattern.MatchString(id):
		return "3"
	}
	return "0"
}

func looksLikeURL(s string) bool {
	scheme, rest, ok := strings.Cut(s, "://")
	return ok && scheme != "" && rest != "" && !strings.ContainsAny(s, " \t\n")
}

func contactElement(c *irxv1.Contact) *element {
	n := newElement("Contact")
	if r := c.GetRole(); r != irxv1.ContactRole_CONTACT_ROLE_UNSPECIFIED {
		setEnum(n, "role", contactRoleEnum, r, strings.ToLower(r.String()))
	} else {
		n.setAttr("role", "ext-value").setAttr("ext-role", "unspecified")
	}
	if t := c.GetType(); t != irxv1.ContactType_CONTACT_TYPE_UNSPECIFIED {
		setEnum(n, "type", contactTypeEnum, t, "")
	} else {
		n.setAttr("type", "ext-value").setAttr("ext-type", "unspecified")
	}
	setRestriction(n, c.GetRestriction())
	mapped := []string{"role", "type", "restriction", "email", "telephone", "fax"}
	name := c.GetName()
	if c.GetType() == irxv1.ContactType_CONTACT_TYPE_ORGANIZATION {
		name = c.GetOrganization()
		mapped = append(mapped, "organization")
		if c.GetName() == "" {
			mapped = append(mapped, "name")
		}
	} else {
		mapped = append(mapped, "name")
	}
	if name != "" {
		n.add(textElement("ContactName", name))
	}
	if c.GetDescription() != "" {
		n.add(descriptionElement(c.GetDescription(), ""))
	}
	for _, h := range c.GetRegistryHandles() {
		k := textElement("RegistryHandle", h.GetHandle())
		switch r := h.GetRegistry(); {
		case r == "":
		case slices.Contains(registryNames, r):
			k.setAttr("registry", r)
		default:
			k.setAttr("registry", "ext-value").setAttr("ext-registry", r)
		}
		n.add(k)
	}
	if c.GetPostalAddress() != "" {
		n.add(newElement("PostalAddress").add(textElement("PAddress", c.GetPostalAddress())))
	}
	mapped = append(mapped, "description", "registry_handles", "postal_address")
	if c.GetEmail() != "" {
		n.add(newElement("Email").add(textElement("EmailTo", c.GetEmail())))
	}
	if c.GetTelephone() != "" {
		n.add(newElement("Telephone").add(textElement("TelephoneNumber", c.GetTelephone())))
	}
	if c.GetFax() != "" {
		n.add(newElement("Telephone").setAttr("type", "fax").add(textElement("TelephoneNumber", c.GetFax())))
	}
	if tz := c.GetTimezone(); timezonePattern.MatchString(tz) {
		// Another form travels as irx's.
		n.add(textElement("Timezone", tz))
		mapped = append(mapped, "timezone")
	}
	n.add(residualElement(c, mapped...))
	return n
}

// hostsAndLogs is the EventData of the incident's hosts (a Flow of
// Systems) and log excerpts (a Record), or nil.
func (e *encoder) hostsAndLogs() *element {
	inc := e.inc
	if len(inc.GetVictimHosts())+len(inc.GetAttackingHosts())+len(inc.GetLogExcerpts()) == 0 {
		return nil
	}
	ev := newElement("EventData")
	if len(inc.GetVictimHosts())+len(inc.GetAttackingHosts()) > 0 {
		flow := newElement("Flow")
		for _, h := range inc.GetVictimHosts() {
			cat := "target"
			if h.GetCategory() == irxv1.SystemCategory_SYSTEM_CATEGORY_SENSOR {
				cat = "sensor"
			}
			flow.add(systemElement(h, cat))
		}
		for _, h := range inc.GetAttackingHosts() {
			cat := "source"
			switch h.GetCategory() {
			case irxv1.SystemCategory_SYSTEM_CATEGORY_INTERMEDIATE:
				cat = "intermediate"
			case irxv1.SystemCategory_SYSTEM_CATEGORY_INFRASTRUCTURE:
				cat = "infrastructure"
			}
			flow.add(systemElement(h, cat))
		}
		ev.add(flow)
	}
	if len(inc.GetLogExcerpts()) > 0 {
		rec := newElement("Record")
		for _, le := range inc.GetLogExcerpts() {
			rec.add(recordDataElement(le))
		}
		ev.add(rec)
	}
	return ev
}

func systemElement(h *irxv1.Host, category string) *element {
	n := newElement("System").setAttr("category", category)
	if h.GetSpoofed() != "" {
		n.setAttr("spoofed", h.GetSpoofed())
	}
	setRestriction(n, h.GetRestriction())
	node := newElement("Node")
	if h.GetHostname() != "" {
		node.add(domainDataElement(h.GetHostname()))
	}
	for _, a := range h.GetAddresses() {
		node.add(textElement("Address", a).setAttr("category", ipCategory(a)))
	}
	if h.GetAsn() != 0 {
		node.add(textElement("Address", strconv.FormatUint(uint64(h.GetAsn()), 10)).setAttr("category", "asn"))
	}
	for _, u := range h.GetUrls() {
		node.add(textElement("Address", u).setAttr("category", "site-uri"))
	}
	for _, e := range h.GetEmails() {
		node.add(textElement("Address", e).setAttr("category", "e-mail"))
	}
	if len(node.children) == 0 {
		// The schema wants a name or an address; a host irx knows has one
		// (record.Validate), this keeps the output valid regardless.
		node.add(domainDataElement("unknown.invalid"))
	}
	for _, l := range h.GetLocations() {
		node.add(textElement("Location", l))
	}
	for _, c := range h.GetCounters() {
		node.add(counterElement(c))
	}
	n.add(node)
	for _, f := range h.GetFunctions() {
		r := newElement("NodeRole")
		if slices.Contains(nodeRoleEnum.values, f) && f != "ext-value" {
			r.setAttr("category", f)
		} else {
			r.setAttr("category", "ext-value").setAttr("ext-category", f)
		}
		n.add(r)
	}
	for _, s := range h.GetServices() {
		n.add(serviceElement(s))
	}
	if h.GetPlatform() != "" {
		n.add(newElement("OperatingSystem").add(descriptionElement(h.GetPlatform(), "")))
	}
	// A portlist not in IODEF's form is not written (Decode makes none).
	n.add(residualElement(h, "hostname", "addresses", "asn", "functions", "services", "category", "restriction", "platform",
		"spoofed", "urls", "emails", "locations", "counters"))
	return n
}

// counterElement writes a Counter: a word IODEF has as itself, another as
// ext-value with the word, an empty unit or type as ext-value alone (the
// schema requires both; Decode reads it back as empty).
func counterElement(c *irxv1.Counter) *element {
	n := textElement("Counter", strconv.FormatInt(c.GetValue(), 10))
	word := func(attr, v string, values []string) {
		switch {
		case v == "" && attr == "duration":
		case slices.Contains(values, v):
			n.setAttr(attr, v)
		default:
			n.setAttr(attr, "ext-value")
			if v != "" {
				n.setAttr("ext-"+attr, v)
			}
		}
	}
	word("type", c.GetType(), counterTypes)
	word("unit", c.GetUnit(), counterUnits)
	if c.GetMeaning() != "" {
		n.setAttr("meaning", c.GetMeaning())
	}
	word("duration", c.GetDuration(), counterDurations)
	return n
}

func domainDataElement(name string) *element {
	return newElement("DomainData").add(textElement("Name", name))
}

// ipCategory is the Address category of an address or prefix as irx keeps
// it (record.Validate checks it is one).
func ipCategory(s string) string {
	_, v4, err := ipValue("", s)
	prefix := strings.Contains(s, "/")
	switch {
	case err != nil:
		return "ext-value"
	case v4 && prefix:
		return "ipv4-net"
	case v4:
		return "ipv4-addr"
	case prefix:
		return "ipv6-net"
	}
	return "ipv6-addr"
}

func serviceElement(s *irxv1.Service) *element {
	n := newElement("Service")
	if s.GetIpProtocol() != 0 || (s.GetPort() == 0 && s.GetApplication() == "" && s.GetPortlist() == "") {
		n.setAttr("ip-protocol", strconv.FormatUint(uint64(s.GetIpProtocol()), 10))
	}
	if s.GetApplication() != "" {
		n.add(newElement("ServiceName").add(textElement("IANAService", s.GetApplication())))
	}
	if s.GetPort() != 0 {
		n.add(textElement("Port", strconv.FormatUint(uint64(s.GetPort()), 10)))
	}
	if portlistPattern.MatchString(s.GetPortlist()) {
		n.add(textElement("Portlist", s.GetPortlist()))
	}
	return n
}

// dtypeOf is the RecordItem dtype of a media type.
func dtypeOf(mediaType string) string {
	for word, mt := range recordDtypeEnum.to {
		if mt == mediaType && word != "string" {
			return word
		}
	}
	return "string"
}

func recordDataElement(le *irxv1.LogExcerpt) *element {
	n := setRestriction(newElement("RecordData"), le.GetRestriction())
	n.add(timeElement("DateTime", le.GetTime()))
	if le.GetSource() != "" {
		n.add(descriptionElement(le.GetSource(), ""))
	}
	n.add(textElement("RecordItem", le.GetContent()).setAttr("dtype", dtypeOf(le.GetMediaType())))
	skip := []string{"time", "source", "content", "restriction"}
	if mt := le.GetMediaType(); mt == "" || recordDtypeEnum.to[dtypeOf(mt)] == mt {
		skip = append(skip, "media_type")
	}
	n.add(residualElement(le, skip...))
	return n
}

func expectationElement(x *irxv1.Expectation) *element {
	n := newElement("Expectation")
	switch a := x.GetAction(); {
	case a == "":
	case slices.Contains(historyActionEnum.values, a) && a != "ext-value":
		n.setAttr("action", a)
	default:
		n.setAttr("action", "ext-value").setAttr("ext-action", a)
	}
	if s := x.GetSeverity(); s != irxv1.Severity_SEVERITY_UNSPECIFIED {
		setEnum(n, "severity", severityEnum, s, "")
	}
	setRestriction(n, x.GetRestriction())
	if x.GetDescription() != "" {
		n.add(descriptionElement(x.GetDescription(), ""))
	}
	n.add(timeElement("StartTime", x.GetStartTime()), timeElement("EndTime", x.GetEndTime()))
	return n
}

func (e *encoder) indicatorElement(i int, ind *irxv1.Indicator) *element {
	n := setRestriction(newElement("Indicator"), ind.GetRestriction())
	id := ind.GetIodefId()
	idText, name, version := id.GetId(), id.GetName(), id.GetVersion()
	if e.ids == nil {
		e.ids = map[string]bool{}
	}
	if idText == "" || !isNCName(idText) || e.ids[idText] {
		idText = fmt.Sprintf("irx-%d-%d", e.index, i)
	}
	e.ids[idText] = true
	if name == "" {
		name = contactTeam(e.inc, e.opts.Team)
	}
	if version == "" {
		version = "1"
	}
	n.add(textElement("IndicatorID", idText).setAttr("name", name).setAttr("version", version))
	if ind.GetDescription() != "" {
		n.add(descriptionElement(ind.GetDescription(), ""))
	}
	n.add(timeElement("StartTime", ind.GetFirstSeenTime()), timeElement("EndTime", ind.GetLastSeenTime()))
	if c := ind.GetConfidence(); c != 0 {
		n.add(confidenceElement(c))
	}
	n.add(observableElement(ind.GetKind(), ind.GetValue()))
	return n
}

// observableElement writes one indicator value as the Observable IODEF
// has for its kind.
func observableElement(kind irxv1.IndicatorKind, v string) *element {
	obs := newElement("Observable")
	addr := func(cat string) { obs.add(textElement("Address", v).setAttr("category", cat)) }
	switch kind {
	case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
		addr(ipCategory(v))
	case irxv1.IndicatorKind_INDICATOR_KIND_URL:
		addr("site-uri")
	case irxv1.IndicatorKind_INDICATOR_KIND_EMAIL:
		addr("e-mail")
	case irxv1.IndicatorKind_INDICATOR_KIND_ASN:
		addr("asn")
	case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
		obs.add(domainDataElement(v))
	case irxv1.IndicatorKind_INDICATOR_KIND_FILE_NAME:
		obs.add(newElement("FileData").add(newElement("File").add(textElement("FileName", v))))
	case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
		raw, _ := hex.DecodeString(v)
		h := newElement("Hash")
		dm := &element{name: xml.Name{Space: xmldsigNS, Local: "DigestMethod"}}
		dm.setAttr("Algorithm", digestAlgorithm(len(raw)))
		h.add(dm, &element{name: xml.Name{Space: xmldsigNS, Local: "DigestValue"}, text: []byte(base64.StdEncoding.EncodeToString(raw))})
		obs.add(newElement("FileData").add(newElement("File").add(newElement("HashData").setAttr("scope", "file-contents").add(h))))
	default:
		// IODEF has no type for it: a bulk observable of irx's kind.
		b := newElement("BulkObservable").setAttr("type", "ext-value").setAttr("ext-type", otherIndicatorType)
		obs.add(b.add(textElement("BulkObservableList", v)))
	}
	return obs
}

// otherIndicatorType is the BulkObservable ext-type of an indicator of
// kind INDICATOR_KIND_OTHER.
const otherIndicatorType = "irx-other"

// digestAlgorithm is the XML Signature algorithm URI of a digest of n
// bytes.
func digestAlgorithm(n int) string {
	switch n {
	case 16:
		return "http://www.w3.org/2001/04/xmldsig-more#md5"
	case 20:
		return "http://www.w3.org/2000/09/xmldsig#sha1"
	case 48:
		return "http://www.w3.org/2001/04/xmldsig-more#sha384"
	case 64:
		return "http://www.w3.org/2001/04/xmlenc#sha512"
	}
	return "http://www.w3.org/2001/04/xmlenc#sha256"
}

func historyElement(h *irxv1.HistoryItem, fallback *timestamppb.Timestamp) *element {
	n := newElement("HistoryItem")
	a := h.GetAction()
	switch {
	case a == irxv1.HistoryAction_HISTORY_ACTION_UNSPECIFIED:
		n.setAttr("action", "ext-value").setAttr("ext-action", "unspecified")
	default:
		word := enumLabel(a, "HISTORY_ACTION_")
		if slices.Contains(historyActionEnum.values, word) {
			n.setAttr("action", word)
		} else {
			n.setAttr("action", "ext-value").setAttr("ext-action", word)
		}
	}
	setRestriction(n, h.GetRestriction())
	t := h.GetTime()
	skip := []string{"action", "description", "restriction", "time"}
	if t == nil {
		t = fallback // the schema wants a time; the record keeps none
	}
	n.add(timeElement("DateTime", t))
	if h.GetDescription() != "" {
		n.add(descriptionElement(h.GetDescription(), ""))
	}
	if h.GetTime() == nil {
		n.add(residualElement(&irxv1.HistoryItem{TeamId: h.GetTeamId()}, skip...))
		// The time is not the record's: say so, so Decode leaves it out.
		n.add(additionalData("string", noTimeMeaning, "", ""))
		return n
	}
	n.add(residualElement(h, skip...))
	return n
}

// noTimeMeaning marks a HistoryItem whose DateTime the writer supplied.
const noTimeMeaning = "urn:irx:v1:no-time"

func additionalData(dtype, meaning, name, text string) *element {
	n := textElement("AdditionalData", text).setAttr("dtype", dtype)
	if meaning != "" {
		n.setAttr("meaning", meaning)
	}
	if name != "" {
		n.setAttr("name", name)
	}
	return n
}

// isNCName reports whether s can be an xs:ID: a name without colons that
// does not start with a digit, '-' or '.'.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= 0xC0:
		case i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9' || r == 0xB7):
		default:
			return false
		}
	}
	return true
}

// registryNames are the registries IODEF names (RFC 7970
// registryhandle-registry-type).
var registryNames = []string{"internic", "apnic", "arin", "lacnic", "ripe", "afrinic", "local"}
