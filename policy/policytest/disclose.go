// Package policytest is a reference implementation of policy.Disclose, for
// tests: the semantics that policy/doc.go documents, written as plainly as
// possible — a protoreflect walk over the record that builds a new view,
// with no unsafe, no pooling, no memoisation and nothing shared with the
// input — so that the fast engine can be compared with it byte for byte
// (view and explanation) over generated and fuzzed records.
//
// It is slow and allocates freely. Only tests import it; it imports policy
// for nothing but Validate and the exported constants.
package policytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"net/netip"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Disclose computes what the peer of p receives of inc, and why, given the
// peer's pseudonymisation key: what policy.Disclose(inc, c) gives for c, err
// := policy.Compile(p, key). A policy Compile refuses discloses nothing.
func Disclose(inc *irxv1.Incident, p *irxv1.DisclosurePolicy, key []byte) (*irxv1.Incident, *irxv1.Explanation) {
	if policy.Validate(p) != nil || len(key) < policy.MinKeyLength {
		return nil, &irxv1.Explanation{IncidentId: inc.GetId(), IncidentVersion: inc.GetVersion(), Reasons: []*irxv1.Reason{{
			Code: irxv1.ReasonCode_REASON_CODE_RECORD, Message: "no compiled policy for the peer: nothing is disclosed (default deny)",
		}}}
	}
	r := &run{inc: inc, p: p, peer: p.GetPeerTeamId(), mac: hmac.New(sha256.New, key)}
	ex := &irxv1.Explanation{
		PeerTeamId: p.GetPeerTeamId(), PolicyVersion: p.GetVersion(),
		IncidentId: inc.GetId(), IncidentVersion: inc.GetVersion(),
	}
	ok := r.conditions()
	ex.Reasons = r.reasons
	if !ok {
		return nil, ex
	}
	view := &irxv1.Incident{}
	r.message(inc.ProtoReflect(), view.ProtoReflect(), place{restriction: inc.GetRestriction(), top: true})
	ex.Disclosed = true
	ex.Fields = r.fieldDecisions()
	ex.Reshare = r.terms()
	return view, ex
}

// run is one call of Disclose.
type run struct {
	inc     *irxv1.Incident
	p       *irxv1.DisclosurePolicy
	peer    string
	mac     hash.Hash
	granted map[string]bool // consent columns: "domain", "hosts", "contact"
	reasons []*irxv1.Reason
	decs    []decision
}

type decision struct {
	path    string
	class   irxv1.InfoClass
	action  irxv1.DisclosureAction
	outcome irxv1.FieldOutcome
	cause   irxv1.DecisionCause
	rule    string
}

const (
	kept    = irxv1.FieldOutcome_FIELD_OUTCOME_KEPT
	changed = irxv1.FieldOutcome_FIELD_OUTCOME_CHANGED
	removed = irxv1.FieldOutcome_FIELD_OUTCOME_REMOVED

	forward      = irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD
	strip        = irxv1.DisclosureAction_DISCLOSURE_ACTION_STRIP
	pseudonymise = irxv1.DisclosureAction_DISCLOSURE_ACTION_PSEUDONYMISE
	generalise   = irxv1.DisclosureAction_DISCLOSURE_ACTION_GENERALISE

	handling = irxv1.InfoClass_INFO_CLASS_HANDLING
)

// place is where the walk is: what a message's fields inherit.
type place struct {
	path        string            // of the message; "" for the Incident
	class       irxv1.InfoClass   // of the field that holds it
	restriction irxv1.Restriction // its effective restriction
	victim      bool              // beneath Incident.victim_hosts
	top         bool              // the message is the Incident
}

func (at place) field(name protoreflect.Name) string {
	if at.path == "" {
		return string(name)
	}
	return at.path + "." + string(name)
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// result is how a field came out; cause and rule are set when they are not
// the class rule's.
type result struct {
	outcome irxv1.FieldOutcome
	cause   irxv1.DecisionCause
	rule    string
}

// message fills out, a new message of in's type, with what the peer
// receives of in's fields, and reports whether anything changed.
func (r *run) message(in, out protoreflect.Message, at place) irxv1.FieldOutcome {
	outcome := kept
	if len(in.GetUnknown()) > 0 {
		r.unknown(at.field("(unknown)"))
		outcome = changed
	}
	fields := in.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if in.Has(fd) && r.field(in, out, fd, at) != kept {
			outcome = changed
		}
	}
	return outcome
}

func (r *run) unknown(path string) {
	r.decs = append(r.decs, decision{path, irxv1.InfoClass_INFO_CLASS_UNSPECIFIED, strip, removed,
		irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY, "fields unknown to this schema version have no information class: never disclosed (default deny)"})
}

// field discloses one set field. Its decision comes before those of what it
// holds: at once where the class changes (every field of the Incident is
// such a place), else only when it is removed.
func (r *run) field(in, out protoreflect.Message, fd protoreflect.FieldDescriptor, at place) irxv1.FieldOutcome {
	class := ownClass(fd)
	if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
		class = at.class
	}
	path := at.field(fd.Name())
	action, cause, rule := r.actionOf(class)
	boundary := at.top || class != at.class && class != handling
	mine := len(r.decs)
	if boundary {
		r.decs = append(r.decs, decision{path, class, action, kept, cause, rule})
	}
	res := r.value(in, out, fd, fieldPlace{place: at, path: path, class: class, action: action, cause: cause, rule: rule})
	switch {
	case boundary:
		d := &r.decs[mine]
		d.outcome = res.outcome
		if res.cause != 0 {
			d.cause, d.rule = res.cause, res.rule
		}
	case res.outcome == removed:
		d := decision{path, class, action, removed, res.cause, res.rule}
		r.decs = append(r.decs[:mine], append([]decision{d}, r.decs[mine:]...)...)
	}
	return res.outcome
}

// fieldPlace is a field being disclosed: where it is and its class's rule.
type fieldPlace struct {
	place
	path   string
	class  irxv1.InfoClass
	action irxv1.DisclosureAction
	cause  irxv1.DecisionCause
	rule   string
}

func (r *run) value(in, out protoreflect.Message, fd protoreflect.FieldDescriptor, f fieldPlace) result {
	gate := consentGate(fd, f.victim)
	switch {
	case fd.FullName() == "irx.v1.Incident.taxonomy" && f.action == strip:
		// The schema requires a taxonomy; this one claims nothing.
		out.Set(fd, protoreflect.ValueOfMessage((&irxv1.Taxonomy{Class: "other", Type: "undetermined"}).ProtoReflect()))
		return result{changed, irxv1.DecisionCause_DECISION_CAUSE_PLACEHOLDER, f.rule + "; the schema requires a taxonomy, so other/undetermined stands in"}
	case f.action == strip:
		return result{removed, f.cause, f.rule}
	case gate != "" && !r.granted[gate]:
		what := gate
		if gate == "contact" {
			what = "contact information"
		}
		return result{removed, irxv1.DecisionCause_DECISION_CAUSE_CONSENT, "the reporter did not consent to giving its " + what + " to " + r.consentWho()}
	case isTimestamp(fd):
		return r.timestamp(in, out, fd, f)
	case fd.Message() != nil && fd.IsList():
		return r.parts(in, out, fd, f)
	case fd.Message() != nil:
		return r.part(in, out, fd, f)
	case fd.IsList():
		return r.leaves(in, out, fd, f)
	}
	v, res := r.leaf(in, fd, in.Get(fd), f)
	if res.outcome != removed {
		out.Set(fd, v)
	}
	return res
}

// part discloses a message field.
func (r *run) part(in, out protoreflect.Message, fd protoreflect.FieldDescriptor, f fieldPlace) result {
	sub := in.Get(fd).Message()
	eff, ok, why := r.admits(sub, f.restriction)
	if !ok {
		return result{removed, irxv1.DecisionCause_DECISION_CAUSE_RESTRICTION, why}
	}
	beneath := len(r.decs)
	nm := out.NewField(fd).Message()
	outcome := r.message(sub, nm, r.inside(f, fd, f.path, eff))
	if rule, lost := lostCompleteness(sub, nm); lost {
		r.decs = r.decs[:beneath] // the part goes whole: one decision says why
		return result{removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE, rule}
	}
	out.Set(fd, protoreflect.ValueOfMessage(nm))
	return result{outcome: outcome}
}

// parts discloses a repeated message field, element by element. A list
// none of whose elements is left is removed, with the cause and rule of the
// last element's removal.
func (r *run) parts(in, out protoreflect.Message, fd protoreflect.FieldDescriptor, f fieldPlace) result {
	list := in.Get(fd).List()
	nl := out.NewField(fd).List()
	res := result{outcome: kept}
	var last result
	for j := 0; j < list.Len(); j++ {
		e := list.Get(j).Message()
		if !e.IsValid() {
			res.outcome = changed // a nil element: nothing to disclose
			continue
		}
		path := index(f.path, j)
		eff, ok, why := r.admits(e, f.restriction)
		if !ok {
			last = result{removed, irxv1.DecisionCause_DECISION_CAUSE_RESTRICTION, why}
			r.decs = append(r.decs, decision{path, f.class, f.action, removed, last.cause, last.rule})
			res.outcome = changed
			continue
		}
		beneath := len(r.decs)
		ne := nl.NewElement().Message()
		outcome := r.message(e, ne, r.inside(f, fd, path, eff))
		if rule, lost := lostCompleteness(e, ne); lost {
			r.decs = r.decs[:beneath]
			last = result{removed, irxv1.DecisionCause_DECISION_CAUSE_INCOMPLETE, rule}
			r.decs = append(r.decs, decision{path, f.class, f.action, removed, last.cause, last.rule})
			res.outcome = changed
			continue
		}
		if outcome != kept {
			res.outcome = changed
		}
		nl.Append(protoreflect.ValueOfMessage(ne))
	}
	if nl.Len() == 0 {
		return result{removed, last.cause, last.rule}
	}
	out.Set(fd, protoreflect.ValueOfList(nl))
	return res
}

// inside is the place of a message held by field fd.
func (r *run) inside(f fieldPlace, fd protoreflect.FieldDescriptor, path string, eff irxv1.Restriction) place {
	return place{path: path, class: f.class, restriction: eff, victim: f.victim || fd.FullName() == "irx.v1.Incident.victim_hosts"}
}

// leaves discloses a repeated scalar field, value by value. A removed
// value has its own decision when the list held others.
func (r *run) leaves(in, out protoreflect.Message, fd protoreflect.FieldDescriptor, f fieldPlace) result {
	list := in.Get(fd).List()
	nl := out.NewField(fd).List()
	res := result{outcome: kept}
	var last result
	for j := 0; j < list.Len(); j++ {
		v, lr := r.leaf(in, fd, list.Get(j), f)
		if lr.outcome == removed {
			last, res.outcome = lr, changed
			if list.Len() > 1 {
				r.decs = append(r.decs, decision{index(f.path, j), f.class, f.action, removed, lr.cause, lr.rule})
			}
			continue
		}
		if lr.outcome != kept {
			res.outcome = changed
		}
		nl.Append(v)
	}
	if nl.Len() == 0 {
		return result{removed, last.cause, last.rule}
	}
	out.Set(fd, protoreflect.ValueOfList(nl))
	return res
}

// timestamp discloses a google.protobuf.Timestamp: generalise keeps the day
// (UTC midnight); fields unknown to the Timestamp schema never leave.
func (r *run) timestamp(in, out protoreflect.Message, fd protoreflect.FieldDescriptor, f fieldPlace) result {
	t := in.Get(fd).Message()
	ts, _ := t.Interface().(*timestamppb.Timestamp)
	sec, nanos := ts.GetSeconds(), ts.GetNanos()
	outcome := kept
	if len(t.GetUnknown()) > 0 {
		r.unknown(f.path + ".(unknown)")
		outcome = changed
	}
	if f.action == generalise {
		day := sec - ((sec%86400)+86400)%86400
		if day != sec || nanos != 0 {
			outcome = changed
		}
		sec, nanos = day, 0
	}
	out.Set(fd, protoreflect.ValueOfMessage((&timestamppb.Timestamp{Seconds: sec, Nanos: nanos}).ProtoReflect()))
	return result{outcome: outcome}
}

// leaf discloses one scalar value v of field fd of message in.
func (r *run) leaf(in protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value, f fieldPlace) (protoreflect.Value, result) {
	unrepresentable := result{removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE, className(f.class) + ": generalise has no coarser form of this value; removed"}
	if f.action == forward {
		return v, result{outcome: kept}
	}
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind:
		return v, result{outcome: kept}
	case protoreflect.StringKind:
		s := v.String()
		var out string
		var ok bool
		if voc := vocabularyOf(fd); voc != nil {
			if !voc(in, s) {
				return v, result{removed, irxv1.DecisionCause_DECISION_CAUSE_UNREPRESENTABLE,
					className(f.class) + ": a code (language tag, media type, currency or country code, taxonomy entry) is kept as it is, and this value is not one; removed"}
			}
			return v, result{outcome: kept}
		}
		if f.action == pseudonymise {
			out, ok = r.pseudonym(f.class, formatOf(in, fd), s), true
		} else {
			out, ok = r.generalised(in, fd, s, f.class)
		}
		if !ok {
			return v, unrepresentable
		}
		if out == s {
			return v, result{outcome: kept}
		}
		return protoreflect.ValueOfString(out), result{outcome: changed}
	}
	switch numberKind(fd) {
	case identifier:
		if f.action == pseudonymise {
			return protoreflect.ValueOfUint32(r.asnToken(f.class, uint32(v.Uint()))), result{outcome: changed}
		}
		return v, unrepresentable
	case magnitude:
		if f.action == generalise {
			cut := firstDigitValue(fd, v)
			if cut.Interface() != v.Interface() {
				return cut, result{outcome: changed}
			}
		}
	}
	return v, result{outcome: kept}
}

// admits applies a part's own restriction, or passes the inherited one on.
// It returns the part's effective restriction, and why not when it is not
// admitted.
func (r *run) admits(m protoreflect.Message, inherited irxv1.Restriction) (irxv1.Restriction, bool, string) {
	fd := m.Descriptor().Fields().ByName("restriction")
	if fd == nil || fd.Enum() == nil || fd.Enum().FullName() != "irx.v1.Restriction" {
		return inherited, true, ""
	}
	own := irxv1.Restriction(m.Get(fd).Enum())
	if own == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		return inherited, true, ""
	}
	if r.permitted(own) {
		return own, true, ""
	}
	if name, ok := restrictionName(own); ok {
		why := "the part does not leave the team"
		if own == irxv1.Restriction_RESTRICTION_NEED_TO_KNOW {
			why = "the record does not touch " + r.peer + "'s constituency"
		}
		return own, false, "restriction " + name + " on this part: " + why
	}
	return own, false, "restriction " + strconv.Itoa(int(own)) + " is not a restriction; the part is not disclosed"
}

// complete applies the record validator's completeness rules to a part of
// the view: a host needs a name, address, domain or ASN; an indicator a
// kind and a value; an alternative id a team and a ticket; a taxonomy entry
// a class and a type.
func complete(m protoreflect.Message) (string, bool) {
	has := func(name protoreflect.Name) bool { return m.Has(m.Descriptor().Fields().ByName(name)) }
	switch m.Descriptor().FullName() {
	case "irx.v1.Host":
		return "a host needs a name, address, domain or ASN, and the rules left none; the host is removed",
			has("hostname") || has("addresses") || has("domain") || has("asn")
	case "irx.v1.Indicator":
		return "an indicator needs a kind and a value, and the rules removed the value; the indicator is removed",
			has("kind") && has("value")
	case "irx.v1.AlternativeId":
		return "an alternative id needs a team and a ticket; removed", has("team_id") && has("ticket")
	case "irx.v1.Taxonomy":
		return "a taxonomy entry needs a class and a type of it, and this one has none left; removed", has("class") && has("type")
	}
	return "", true
}

// lostCompleteness reports whether the rules took from a part what the
// record validator requires of it (a part that came without it stays as it
// came), and the rule that says so.
func lostCompleteness(in, out protoreflect.Message) (string, bool) {
	rule, ok := complete(out)
	_, was := complete(in)
	return rule, !ok && was
}

// fieldDecisions groups the decisions: one FieldDecision per distinct
// class, action, outcome, cause and rule, in the order each first
// occurred, its paths in the order of the record.
func (r *run) fieldDecisions() []*irxv1.FieldDecision {
	type key struct {
		class   irxv1.InfoClass
		action  irxv1.DisclosureAction
		outcome irxv1.FieldOutcome
		cause   irxv1.DecisionCause
		rule    string
	}
	var out []*irxv1.FieldDecision
	group := map[key]*irxv1.FieldDecision{}
	for _, d := range r.decs {
		k := key{d.class, d.action, d.outcome, d.cause, d.rule}
		fd, ok := group[k]
		if !ok {
			fd = &irxv1.FieldDecision{InfoClass: d.class, Action: d.action, Outcome: d.outcome, Cause: d.cause, Rule: d.rule}
			group[k] = fd
			out = append(out, fd)
		}
		fd.Paths = append(fd.Paths, d.path)
	}
	return out
}

// --- the schema as the engine reads it ---

func ownClass(fd protoreflect.FieldDescriptor) irxv1.InfoClass {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return irxv1.InfoClass_INFO_CLASS_UNSPECIFIED
	}
	c, _ := proto.GetExtension(opts, irxv1.E_InfoClass).(irxv1.InfoClass)
	return c
}

func isTimestamp(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp"
}

// consentGate is the consent column a field needs: the reporter's contacts
// need "contact", its (victim) hosts "hosts", and the names of its site and
// of its hosts "domain".
func consentGate(fd protoreflect.FieldDescriptor, victim bool) string {
	switch fd.FullName() {
	case "irx.v1.Incident.contacts":
		return "contact"
	case "irx.v1.Incident.victim_hosts":
		return "hosts"
	case "irx.v1.ReportingSite.name", "irx.v1.ReportingSite.domain":
		return "domain"
	case "irx.v1.Host.hostname", "irx.v1.Host.domain":
		if victim {
			return "domain"
		}
	}
	return ""
}

type number int

const (
	scale      number = iota // ports, protocols, confidences, handling counters
	identifier               // an ASN
	magnitude                // an amount, a size, a count
)

func numberKind(fd protoreflect.FieldDescriptor) number {
	switch fd.FullName() {
	case "irx.v1.Host.asn":
		return identifier
	case "irx.v1.MonetaryImpact.amount_minor", "irx.v1.Evidence.size_bytes", "irx.v1.Compromise.sniffer_sessions_logged",
		"irx.v1.Counter.value":
		return magnitude
	}
	return scale
}

// firstDigitValue cuts a number to its first significant digit, toward
// zero, by way of its decimal digits.
func firstDigitValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	cut := func(digits string) string {
		out := []byte(digits)
		for i := 1; i < len(out); i++ {
			out[i] = '0'
		}
		return string(out)
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		n := v.Int()
		s := strconv.FormatInt(n, 10)
		sign := ""
		if n < 0 {
			sign, s = "-", s[1:]
		}
		c, _ := strconv.ParseInt(sign+cut(s), 10, 64)
		if fd.Kind() == protoreflect.Int64Kind || fd.Kind() == protoreflect.Sint64Kind || fd.Kind() == protoreflect.Sfixed64Kind {
			return protoreflect.ValueOfInt64(c)
		}
		return protoreflect.ValueOfInt32(int32(c))
	default:
		c, _ := strconv.ParseUint(cut(strconv.FormatUint(v.Uint(), 10)), 10, 64)
		if fd.Kind() == protoreflect.Uint64Kind || fd.Kind() == protoreflect.Fixed64Kind {
			return protoreflect.ValueOfUint64(c)
		}
		return protoreflect.ValueOfUint32(uint32(c))
	}
}

// addressOrPrefix reads "192.0.2.1" (as a /32) or "192.0.2.0/24"; an
// IPv4-mapped IPv6 value is read as IPv4, a zone is dropped.
func addressOrPrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			return netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)), true
		}
		return p, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return netip.Prefix{}, false
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), true
}
