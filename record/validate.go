package record

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// MaxIncidentBytes is the largest encoded incident the team accepts. A real
// incident record is a few KiB; logs and evidence beyond this belong in an
// evidence store referenced by Evidence.location.
const MaxIncidentBytes = 256 << 10

// Violation names one field that is wrong and says why.
type Violation struct {
	Field       string // path from the request, e.g. "incident.victim_hosts[0].addresses[1]"
	Description string
	// Line and Column locate the value in the YAML source it came from,
	// 1-based; 0 when it did not come from YAML.
	Line, Column int
}

func (v Violation) String() string {
	if v.Line > 0 {
		return fmt.Sprintf("line %d, column %d: %s: %s", v.Line, v.Column, v.Field, v.Description)
	}
	return v.Field + ": " + v.Description
}

// ValidationError lists every violation found, so a client can fix them in
// one round trip. It is of class errdefs.ErrInvalidArgument.
type ValidationError struct {
	// What was invalid, for the message: "incident" when empty.
	What       string
	Violations []Violation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.String()
	}
	what := e.What
	if what == "" {
		what = "incident"
	}
	return "invalid " + what + ": " + strings.Join(parts, "; ")
}

func (e *ValidationError) Unwrap() error { return errdefs.ErrInvalidArgument }

// Invalid is a ValidationError of one field.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Violations: []Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

type violations []Violation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}

// Validate checks an incident's content. prefix is the path of the incident
// in the request (e.g. "incident"), used in violation field names. Output-only
// fields are not checked here; the state machine owns them.
func Validate(inc *irxv1.Incident, prefix string) error {
	var vs violations
	if inc == nil {
		vs.add(prefix, "is required")
		return vs.err()
	}
	if n := proto.Size(inc); n > MaxIncidentBytes {
		vs.add(prefix, "is %d bytes encoded; the limit is %d", n, MaxIncidentBytes)
		return vs.err()
	}
	p := func(field string) string { return prefix + "." + field }

	checkEnums(inc.ProtoReflect(), prefix, &vs)

	if inc.GetTlp() == irxv1.Tlp_TLP_UNSPECIFIED {
		vs.add(p("tlp"), "is required: one of TLP_CLEAR, TLP_GREEN, TLP_AMBER, TLP_AMBER_STRICT, TLP_RED")
	}
	if inc.GetTaxonomy() == nil {
		vs.add(p("taxonomy"), "is required: a Reference Security Incident Taxonomy class and type")
	} else {
		checkTaxonomy(inc.GetTaxonomy(), fieldPath{prefix, "taxonomy", -1}, &vs)
	}
	for i, t := range inc.GetAdditionalTaxonomies() {
		checkTaxonomy(t, fieldPath{prefix, "additional_taxonomies", i}, &vs)
	}
	for i, r := range inc.GetNamedRecipients() {
		if err := ValidateTeamID(r); err != nil {
			vs.add(fmt.Sprintf("%s[%d]", p("named_recipients"), i), "%v", err)
		}
	}
	for i, a := range inc.GetAlternativeIds() {
		f := fieldPath{prefix, "alternative_ids", i}
		if strings.TrimSpace(a.GetTeamId()) == "" {
			vs.add(f.sub("team_id"), "is required")
		}
		if strings.TrimSpace(a.GetTicket()) == "" {
			vs.add(f.sub("ticket"), "is required")
		}
	}
	checkTimes(inc, prefix, &vs)
	for i, d := range inc.GetDescriptions() {
		if l := d.GetLang(); l != "" && !ValidLanguageTag(l) {
			vs.add(fieldPath{prefix, "descriptions", i}.sub("lang"),
				"%q is not a BCP 47 language tag (RFC 5646: letters and digits in hyphen-separated subtags), e.g. \"en\", \"de-CH\"", l)
		}
	}
	if d := inc.GetReportingSite().GetDomain(); d != "" && !validName(d) {
		vs.notAName(p("reporting_site.domain"), d, "domain name", "an address or URL is not a domain")
	}
	if c := inc.GetReportingSite().GetCountry(); c != "" && !ValidCountry(c) {
		vs.add(p("reporting_site.country"), "%q is not an ISO 3166-1 alpha-2 country code (two capital letters the standard assigns, e.g. \"NL\", \"DE\")", c)
	}
	for i, c := range inc.GetContacts() {
		if d := c.GetConstituencyDomain(); d != "" && !validName(d) {
			vs.notAName(fieldPath{prefix, "contacts", i}.sub("constituency_domain"), d, "domain name", "an address or URL is not a domain")
		}
	}
	for i, h := range inc.GetVictimHosts() {
		checkHost(h, fieldPath{prefix, "victim_hosts", i}, &vs)
	}
	for i, h := range inc.GetAttackingHosts() {
		checkHost(h, fieldPath{prefix, "attacking_hosts", i}, &vs)
	}
	for i, ind := range inc.GetIndicators() {
		checkIndicator(ind, fieldPath{prefix, "indicators", i}, &vs)
	}
	for i, id := range inc.GetRelatedActivity().GetIncidentIds() {
		if _, err := ParseID(id); err != nil {
			vs.add(fmt.Sprintf("%s[%d]", p("related_activity.incident_ids"), i), "%v", err)
		}
	}
	for i, a := range inc.GetAssessments() {
		if a.GetConfidence() > 100 {
			vs.add(fmt.Sprintf("%s[%d].confidence", p("assessments"), i), "must be 0 to 100")
		}
		if c := a.GetMonetaryImpact().GetCurrency(); c != "" && !ValidCurrency(c) {
			vs.add(fieldPath{prefix, "assessments", i}.sub("monetary_impact.currency"),
				"%q is not a current ISO 4217 currency code (three capital letters, e.g. \"EUR\", \"USD\")", c)
		}
		checkCounters(a.GetCounters(), fieldPath{prefix, "assessments", i}, &vs)
	}
	for i, l := range inc.GetLogExcerpts() {
		if m := l.GetMediaType(); m != "" && !ValidMediaType(m) {
			vs.add(fieldPath{prefix, "log_excerpts", i}.sub("media_type"),
				"%q is not a media type: type/subtype as RFC 6838 names them (e.g. \"text/plain\"), without parameters", m)
		}
	}
	for i, e := range inc.GetEvidence() {
		if s := e.GetSha256(); s != "" && !isHex(s, 64) {
			vs.add(fmt.Sprintf("%s[%d].sha256", p("evidence"), i), "must be 64 hex digits")
		}
		if e.GetSizeBytes() < 0 {
			vs.add(fmt.Sprintf("%s[%d].size_bytes", p("evidence"), i), "must not be negative")
		}
	}
	return vs.err()
}

// fieldPath names a field of the record, or an element of a list field. It
// is rendered only when a violation names it: most records are valid, and
// formatting every element's path cost more than checking the element.
type fieldPath struct {
	prefix string // the record's path in the request, e.g. "incident"
	name   string // e.g. "victim_hosts"
	index  int    // -1: the field itself
}

func (f fieldPath) String() string {
	if f.index < 0 {
		return f.prefix + "." + f.name
	}
	return fmt.Sprintf("%s.%s[%d]", f.prefix, f.name, f.index)
}

// sub names a field of the message f names.
func (f fieldPath) sub(name string) string { return f.String() + "." + name }

func checkTaxonomy(t *irxv1.Taxonomy, field fieldPath, vs *violations) {
	types, ok := taxonomy[t.GetClass()]
	switch {
	case !ok:
		vs.add(field.sub("class"), "%q is not a taxonomy class; one of %s", t.GetClass(), strings.Join(TaxonomyClasses(), ", "))
	case !ValidTaxonomy(t.GetClass(), t.GetType()):
		vs.add(field.sub("type"), "%q is not a type of class %q; one of %s", t.GetType(), t.GetClass(), strings.Join(types, ", "))
	}
}

// checkEnums rejects enum numbers the schema does not define, anywhere in
// the record: proto3 accepts them on the wire, but no policy rule or index
// can mean anything by them. It also rejects timestamps outside what
// google.protobuf.Timestamp allows (years 1 to 9999, nanos 0 to 999999999),
// wherever they are: the JSON encoding (grpcurl) and AsTime cannot represent
// them, so a stored one would break every later read of the record.
func checkEnums(m protoreflect.Message, path string, vs *violations) {
	if inc, ok := m.Interface().(*irxv1.Incident); ok && knownValues(inc) {
		return
	}
	w := &enumWalker{vs: vs, root: path, stack: make([]pathElem, 0, 8)}
	w.walk(m, plans.of(m.Descriptor()))
}

// plans holds, per message type, the walk checkEnums makes. It is derived
// from the compiled-in schema and never changes, so one copy serves the
// process.
var plans = &enumPlans{byName: map[protoreflect.FullName]*enumPlan{}}

type enumPlans struct {
	mu     sync.RWMutex
	byName map[protoreflect.FullName]*enumPlan
}

// enumPlan lists the fields of one message type that can hold an enum or a
// timestamp at or below them. Visiting only those, instead of every set
// field, is what keeps validation cheap: most of a record is strings.
type enumPlan struct {
	fields []plannedField
}

type plannedField struct {
	fd        protoreflect.FieldDescriptor
	timestamp bool
	sub       *enumPlan // the message's plan; nil for enums and timestamps
}

func (p *enumPlans) of(md protoreflect.MessageDescriptor) *enumPlan {
	p.mu.RLock()
	plan, ok := p.byName[md.FullName()]
	p.mu.RUnlock()
	if ok {
		return plan
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.build(md, map[protoreflect.FullName]bool{})
}

// build makes md's plan; building marks the types on the current path, so
// a recursive type refers to its own (still filling) plan. Called with mu
// held.
func (p *enumPlans) build(md protoreflect.MessageDescriptor, building map[protoreflect.FullName]bool) *enumPlan {
	if plan, ok := p.byName[md.FullName()]; ok {
		return plan
	}
	plan := &enumPlan{}
	p.byName[md.FullName()] = plan
	building[md.FullName()] = true
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			// The incident schema has no maps.
		case fd.Kind() == protoreflect.EnumKind:
			plan.fields = append(plan.fields, plannedField{fd: fd})
		case fd.Message() == nil:
		case fd.Message().FullName() == timestampName:
			plan.fields = append(plan.fields, plannedField{fd: fd, timestamp: true})
		default:
			name := fd.Message().FullName()
			sub := p.build(fd.Message(), building)
			if len(sub.fields) > 0 || building[name] {
				plan.fields = append(plan.fields, plannedField{fd: fd, sub: sub})
			}
		}
	}
	delete(building, md.FullName())
	return plan
}

var timestampName = (&timestamppb.Timestamp{}).ProtoReflect().Descriptor().FullName()

// enumWalker walks a record once, keeping the path to the current field on
// a stack that is rendered only when a violation needs it: building paths,
// or even path nodes, for every valid field costs more than the checks.
type enumWalker struct {
	vs    *violations
	root  string
	stack []pathElem
}

type pathElem struct {
	name  protoreflect.Name
	index int // -1: not a list element
}

func (w *enumWalker) path() string {
	var b strings.Builder
	b.WriteString(w.root)
	for _, e := range w.stack {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(e.name))
		if e.index >= 0 {
			fmt.Fprintf(&b, "[%d]", e.index)
		}
	}
	return b.String()
}

func (w *enumWalker) walk(m protoreflect.Message, plan *enumPlan) {
	for i := range plan.fields {
		f := &plan.fields[i]
		if !m.Has(f.fd) {
			continue
		}
		v := m.Get(f.fd)
		if f.fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.stack = append(w.stack, pathElem{f.fd.Name(), i})
				w.check(f, l.Get(i))
				w.stack = w.stack[:len(w.stack)-1]
			}
			continue
		}
		w.stack = append(w.stack, pathElem{f.fd.Name(), -1})
		w.check(f, v)
		w.stack = w.stack[:len(w.stack)-1]
	}
}

func (w *enumWalker) check(f *plannedField, v protoreflect.Value) {
	switch {
	case f.timestamp:
		ts, ok := v.Message().Interface().(*timestamppb.Timestamp)
		if !ok {
			return // a dynamic message of the same type; the record types are generated
		}
		if err := ts.CheckValid(); err != nil {
			w.vs.add(w.path(), "%v", err)
		}
	case f.sub != nil:
		w.walk(v.Message(), f.sub)
	default:
		if f.fd.Enum().Values().ByNumber(v.Enum()) == nil {
			w.vs.add(w.path(), "%d is not a value of %s", v.Enum(), f.fd.Enum().Name())
		}
	}
}

// checkTimes checks the order of the IODEF times; checkEnums has already
// reported every invalid timestamp.
func checkTimes(inc *irxv1.Incident, prefix string, vs *violations) {
	if inc.StartTime != nil && inc.EndTime != nil && inc.GetStartTime().IsValid() && inc.GetEndTime().IsValid() &&
		inc.GetEndTime().AsTime().Before(inc.GetStartTime().AsTime()) {
		vs.add(prefix+".end_time", "is before start_time")
	}
}

// checkCounters checks the counters of the part at field.
func checkCounters(cs []*irxv1.Counter, field fieldPath, vs *violations) {
	for i, c := range cs {
		if c.GetValue() < 0 {
			vs.add(fmt.Sprintf("%s[%d].value", field.sub("counters"), i), "must be 0 or more: a count")
		}
	}
}

func checkHost(h *irxv1.Host, field fieldPath, vs *violations) {
	checkCounters(h.GetCounters(), field, vs)
	if h.GetHostname() == "" && len(h.GetAddresses()) == 0 && h.GetDomain() == "" && h.GetAsn() == 0 {
		vs.add(field.String(), "needs at least one of hostname, addresses, domain or asn")
	}
	const hint = "an IP address belongs in addresses, a URL in a URL indicator"
	if n := h.GetHostname(); n != "" && !validName(n) {
		vs.notAName(field.sub("hostname"), n, "host name", hint)
	}
	if d := h.GetDomain(); d != "" && !validName(d) {
		vs.notAName(field.sub("domain"), d, "domain name", hint)
	}
	for i, a := range h.GetAddresses() {
		if !validAddressOrPrefix(a) {
			vs.add(fmt.Sprintf("%s[%d]", field.sub("addresses"), i), "%q is not an IP address or CIDR prefix", a)
		}
	}
	for i, s := range h.GetServices() {
		if s.GetPort() > 65535 {
			vs.add(fmt.Sprintf("%s[%d].port", field.sub("services"), i), "must be 0 to 65535")
		}
		if s.GetIpProtocol() > 255 {
			vs.add(fmt.Sprintf("%s[%d].ip_protocol", field.sub("services"), i), "must be 0 to 255")
		}
	}
}

func checkIndicator(ind *irxv1.Indicator, field fieldPath, vs *violations) {
	if ind.GetKind() == irxv1.IndicatorKind_INDICATOR_KIND_UNSPECIFIED {
		vs.add(field.sub("kind"), "is required")
	}
	v := ind.GetValue()
	if strings.TrimSpace(v) == "" {
		vs.add(field.sub("value"), "is required")
		return
	}
	switch ind.GetKind() {
	case irxv1.IndicatorKind_INDICATOR_KIND_IPV4:
		if a, ok := parseAddressOrPrefix(v); !ok || !a.Is4() {
			vs.add(field.sub("value"), "%q is not an IPv4 address or prefix", v)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
		if a, ok := parseAddressOrPrefix(v); !ok || !a.Is6() || a.Is4In6() {
			vs.add(field.sub("value"), "%q is not an IPv6 address or prefix", v)
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
		if !validName(v) {
			vs.notAName(field.sub("value"), v, "domain name", "an address is an IPv4 or IPv6 indicator, a URL a URL indicator")
		}
	case irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH:
		if !isHex(v, 0) {
			vs.add(field.sub("value"), "%q is not a hex digest", v)
		}
	}
	if ind.GetConfidence() > 100 {
		vs.add(field.sub("confidence"), "must be 0 to 100")
	}
}

// validName checks a field that holds a host or domain name. The
// disclosure engine generalises such a field to its last two labels, so
// anything else in it (a port, a path, a remark) must be refused here, not
// cut off there. A pseudonym token is accepted: it is what a peer's view
// holds where the origin's record had a name.
func validName(v string) bool { return ValidHostName(v) || isNameToken(v) }

// notAName reports a name field that validName refuses. (The field's path
// is made only then: most records are valid.)
func (vs *violations) notAName(field, v, what, hint string) {
	vs.add(field, "%q is not a %s: dot-separated labels of letters, digits and hyphens, 1 to 63 each and not all digits in the last "+
		"(internationalised names in their xn-- form); %s", v, what, hint)
}

func validAddressOrPrefix(s string) bool {
	_, ok := parseAddressOrPrefix(s)
	return ok
}

func parseAddressOrPrefix(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a, true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), true
	}
	return netip.Addr{}, false
}

// isHex reports whether s is hex digits; n > 0 also requires that length.
func isHex(s string, n int) bool {
	if s == "" || n > 0 && len(s) != n || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// MaxWithdrawReasonLength bounds the reason an operator gives for a
// withdrawal or a hand-off, which travels to every team that held the
// record.
const MaxWithdrawReasonLength = 4096

// CheckConsistency refuses a read consistency this version does not know:
// it would be read as the default, and a client that asked for something
// else must not silently get that.
func CheckConsistency(c irxv1.ReadConsistency) []Violation {
	if _, ok := irxv1.ReadConsistency_name[int32(c)]; !ok {
		return []Violation{{Field: "consistency", Description: fmt.Sprintf("%d is not a ReadConsistency", c)}}
	}
	return nil
}

// ValidView reports whether view, an incident a peer sent, is a valid
// record (with checkText, one that keeps the text rules of CheckRecordText
// too) and not a withdrawn stub: what a team's replicas may store without
// checking it again once the leader that proposes it found so
// (irx.v1.ApplyPeerFeedCommand.views_checked).
func ValidView(view *irxv1.Incident, checkText bool) bool {
	return view.GetWithdrawTime() == nil && view.GetWithdrawReason() == "" && Validate(view, "incident") == nil &&
		(!checkText || len(CheckRecordText(view, "incident")) == 0)
}
