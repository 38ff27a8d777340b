package policy

import (
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// A record's markings are what says who may receive it, as opposed to what
// it says: its TLP and named recipients, its IODEF restriction and those of
// its parts, and the reporter's consent. Each version carries its own, and a
// later version may narrow them: a TLP raised, consent taken back, a contact
// marked private. A peer that holds older versions must not keep, in them,
// what the latest version took back. So every version a peer holds is
// disclosed under the most restrictive markings of that version and the
// record's latest version (Narrowed), and disclosed again whenever the
// latest version changes them.

// Narrowed returns version under the most restrictive markings of itself
// and latest:
//
//   - TLP: the higher of the two (an invalid TLP, which is never disclosed,
//     counts as the highest);
//   - named recipients: when the result is TLP:RED, only teams named by
//     every version that is RED;
//   - restriction of the record: the stricter of the two (unspecified is
//     private);
//   - consent: a row's domain, hosts or contact is granted only if both
//     grant it;
//   - restriction of a part (an element of a list whose message has its own
//     IODEF restriction: contacts, hosts, descriptions, indicators...): the
//     stricter of its own effective restriction and that of the same part in
//     latest, the part that is equal to it but for its restriction. A part
//     that latest no longer holds unchanged takes the strictest effective
//     restriction of any part of the same list in latest, or latest's own
//     restriction when that list is empty: a part cannot escape a
//     restriction by being edited in the same change that restricts it.
//     Deleting a part from a later version does not take it back from the
//     older ones; marking it private does.
//
// What is not a marking (the content, the taxonomy, the provenance) is
// version's own. Narrowed never modifies its arguments; it returns version
// itself when latest narrows nothing, and otherwise a copy that shares
// nothing with version. When latest is nil or the same version, version is
// returned.
func Narrowed(version, latest *irxv1.Incident) *irxv1.Incident {
	if version == nil || latest == nil || version == latest || version.GetVersion() == latest.GetVersion() {
		return version
	}
	var out *irxv1.Incident
	mutable := func() *irxv1.Incident {
		if out == nil {
			out = proto.CloneOf(version)
		}
		return out
	}

	vTLP, lTLP := version.GetTlp(), latest.GetTlp()
	if tlpRank(lTLP) > tlpRank(vTLP) {
		mutable().Tlp = lTLP
	}
	if narrowedTLP := max(tlpRank(vTLP), tlpRank(lTLP)); narrowedTLP == tlpRank(irxv1.Tlp_TLP_RED) {
		named := version.GetNamedRecipients()
		switch {
		case vTLP != irxv1.Tlp_TLP_RED:
			named = latest.GetNamedRecipients()
		case lTLP == irxv1.Tlp_TLP_RED:
			named = slices.DeleteFunc(slices.Clone(named), func(team string) bool {
				return !slices.Contains(latest.GetNamedRecipients(), team)
			})
		}
		if !slices.Equal(named, version.GetNamedRecipients()) {
			mutable().NamedRecipients = slices.Clone(named)
		}
	}

	vRoot, lRoot := rootRestriction(version), rootRestriction(latest)
	root := vRoot
	if restrictionRank(lRoot) > restrictionRank(vRoot) {
		root = lRoot
		mutable().Restriction = lRoot
	}

	if consent := narrowedConsent(version.GetDisclosureConsent(), latest.GetDisclosureConsent()); consent != nil {
		mutable().DisclosureConsent = consent
	}

	narrowParts(version, latest, vRoot, lRoot, root, mutable)
	if out == nil {
		return version
	}
	return out
}

// tlpRank orders TLP markings by how far they restrict; values that are
// not TLP markings rank above RED, as Disclose withholds them.
func tlpRank(t irxv1.Tlp) int {
	if t < irxv1.Tlp_TLP_CLEAR || t > irxv1.Tlp_TLP_RED {
		return int(irxv1.Tlp_TLP_RED) + 1
	}
	return int(t)
}

// restrictionRank orders effective restrictions by how far they restrict;
// values that are not restrictions rank above private, as Disclose admits
// no peer for them.
func restrictionRank(r irxv1.Restriction) int {
	if r < irxv1.Restriction_RESTRICTION_PUBLIC || r > irxv1.Restriction_RESTRICTION_PRIVATE {
		return int(irxv1.Restriction_RESTRICTION_PRIVATE) + 1
	}
	return int(r)
}

// rootRestriction is a record's effective restriction: its own, private
// when unset (IODEF's default).
func rootRestriction(inc *irxv1.Incident) irxv1.Restriction {
	if r := inc.GetRestriction(); r != irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		return r
	}
	return irxv1.Restriction_RESTRICTION_PRIVATE
}

// narrowedConsent is the consent both grant, or nil when that is v's own.
func narrowedConsent(v, l *irxv1.DisclosureConsent) *irxv1.DisclosureConsent {
	rows := func(c *irxv1.DisclosureConsent) [3]*irxv1.ConsentScope {
		return [3]*irxv1.ConsentScope{c.GetSitesInvolved(), c.GetResponseTeams(), c.GetLawEnforcement()}
	}
	vr, lr := rows(v), rows(l)
	var out [3]*irxv1.ConsentScope
	changed := false
	for i := range vr {
		both := &irxv1.ConsentScope{
			Domain:  vr[i].GetDomain() && lr[i].GetDomain(),
			Hosts:   vr[i].GetHosts() && lr[i].GetHosts(),
			Contact: vr[i].GetContact() && lr[i].GetContact(),
		}
		if both.GetDomain() != vr[i].GetDomain() || both.GetHosts() != vr[i].GetHosts() || both.GetContact() != vr[i].GetContact() {
			changed = true
		}
		if vr[i] != nil {
			out[i] = both
		}
	}
	if !changed {
		return nil
	}
	return &irxv1.DisclosureConsent{SitesInvolved: out[0], ResponseTeams: out[1], LawEnforcement: out[2]}
}

// narrowParts gives each part of version's restrictable lists the stricter
// of its own effective restriction and its counterpart's in latest (see
// Narrowed). vRoot and lRoot are the records' effective restrictions, root
// the narrowed record's.
func narrowParts(version, latest *irxv1.Incident, vRoot, lRoot, root irxv1.Restriction, mutable func() *irxv1.Incident) {
	vm, lm := version.ProtoReflect(), latest.ProtoReflect()
	fields := vm.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		restrictionField := partRestriction(fd)
		if restrictionField == nil || !vm.Has(fd) {
			continue
		}
		vl := vm.Get(fd).List()
		var ll protoreflect.List
		if lm.Has(fd) {
			ll = lm.Get(fd).List()
		}
		effective := func(part protoreflect.Message, inherited irxv1.Restriction) irxv1.Restriction {
			if r := irxv1.Restriction(part.Get(restrictionField).Enum()); r != irxv1.Restriction_RESTRICTION_UNSPECIFIED {
				return r
			}
			return inherited
		}
		// The strictest part of the list in latest bounds every part of
		// version; only when it is stricter than some part of version is
		// there anything to match.
		strictest := lRoot
		if ll != nil && ll.Len() > 0 {
			strictest = effective(ll.Get(0).Message(), lRoot)
			for j := 1; j < ll.Len(); j++ {
				if r := effective(ll.Get(j).Message(), lRoot); restrictionRank(r) > restrictionRank(strictest) {
					strictest = r
				}
			}
		}
		var counterparts map[string]irxv1.Restriction
		for j := range vl.Len() {
			part := vl.Get(j).Message()
			own := effective(part, vRoot)
			// What the part inherits in the narrowed record, if left alone.
			asIs := effective(part, root)
			if restrictionRank(strictest) <= restrictionRank(asIs) {
				continue
			}
			if counterparts == nil {
				counterparts = partsByContent(ll, restrictionField, lRoot, effective)
			}
			target := strictest
			if k, ok := contentKey(part, restrictionField); ok {
				if r, found := counterparts[k]; found {
					target = r
				}
			}
			if restrictionRank(own) > restrictionRank(target) {
				target = own
			}
			if restrictionRank(target) <= restrictionRank(asIs) {
				continue
			}
			out := mutable().ProtoReflect()
			out.Get(fd).List().Get(j).Message().Set(restrictionField, protoreflect.ValueOfEnum(protoreflect.EnumNumber(target)))
		}
	}
}

// partRestriction is the restriction field of the messages a repeated
// message field of the Incident holds, or nil when they have none.
func partRestriction(fd protoreflect.FieldDescriptor) protoreflect.FieldDescriptor {
	if !fd.IsList() || fd.Message() == nil {
		return nil
	}
	r := fd.Message().Fields().ByName("restriction")
	if r == nil || r.Enum() == nil || r.Enum().FullName() != "irx.v1.Restriction" {
		return nil
	}
	return r
}

// partsByContent maps the content of every part of l (without its
// restriction) to the strictest effective restriction among the parts
// with that content.
func partsByContent(l protoreflect.List, restrictionField protoreflect.FieldDescriptor, root irxv1.Restriction,
	effective func(protoreflect.Message, irxv1.Restriction) irxv1.Restriction) map[string]irxv1.Restriction {
	out := map[string]irxv1.Restriction{}
	if l == nil {
		return out
	}
	for j := range l.Len() {
		part := l.Get(j).Message()
		k, ok := contentKey(part, restrictionField)
		if !ok {
			continue
		}
		r := effective(part, root)
		if prev, found := out[k]; !found || restrictionRank(r) > restrictionRank(prev) {
			out[k] = r
		}
	}
	return out
}

// contentKey is the part's deterministic encoding without its restriction:
// two parts with equal keys are the same part, however marked. A part that
// cannot be encoded (invalid UTF-8 in a string, which validation refuses)
// has no key and so no counterpart: it takes its list's strictest
// restriction.
func contentKey(part protoreflect.Message, restrictionField protoreflect.FieldDescriptor) (string, bool) {
	if part.Has(restrictionField) {
		c := proto.Clone(part.Interface()).ProtoReflect()
		c.Clear(restrictionField)
		part = c
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(part.Interface())
	return string(b), err == nil
}

// DiscloseVersion is what the peer of c receives of version when latest is
// the record's latest version: Disclose under the markings of both
// (Narrowed). For the latest version itself it is Disclose.
func DiscloseVersion(version, latest *irxv1.Incident, c *Compiled) (*irxv1.Incident, *irxv1.Explanation) {
	return Disclose(Narrowed(version, latest), c)
}

// Within reports whether view discloses nothing that held does not: it is
// held with parts, values or permissions taken away, and nothing added or
// changed. A team uses it to accept a replacement of a version it holds
// that only narrows its copy, whatever terms the replacement names.
//
// Markings may only tighten: a TLP and restrictions (of the record and of
// each part, effective after inheritance) at least as strict, named
// recipients, re-share terms and consent no wider. Provenance must name
// the same origin, sender and path; its transfers, terms version and
// receive time are not compared. Every other value view holds must be in
// held, at the same place: a message within its counterpart, each element
// of a list within a distinct element of held's list, a list of strings a
// sub-multiset. The id and version must be equal.
func Within(view, held *irxv1.Incident) bool {
	if view.GetId() != held.GetId() || view.GetVersion() != held.GetVersion() {
		return false
	}
	if tlpRank(view.GetTlp()) < tlpRank(held.GetTlp()) {
		return false
	}
	vRoot, hRoot := rootRestriction(view), rootRestriction(held)
	if restrictionRank(vRoot) < restrictionRank(hRoot) {
		return false
	}
	for _, team := range view.GetNamedRecipients() {
		if !slices.Contains(held.GetNamedRecipients(), team) {
			return false
		}
	}
	if !provenanceWithin(view.GetProvenance(), held.GetProvenance()) {
		return false
	}
	skip := map[protoreflect.Name]bool{"tlp": true, "restriction": true, "named_recipients": true, "provenance": true}
	return messageWithin(view.ProtoReflect(), held.ProtoReflect(), skip, vRoot, hRoot)
}

func provenanceWithin(v, h *irxv1.Provenance) bool {
	if v.GetOriginTeam() != h.GetOriginTeam() || v.GetReceivedFrom() != h.GetReceivedFrom() || !slices.Equal(v.GetPath(), h.GetPath()) {
		return false
	}
	vr, hr := v.GetReshare(), h.GetReshare()
	return (!vr.GetMayReshare() || hr.GetMayReshare()) && vr.GetScope() <= hr.GetScope() && vr.GetHopsLeft() <= hr.GetHopsLeft()
}

// messageWithin compares every populated field of v but those in skip with
// h's; vInherit and hInherit are the restrictions parts of v and h inherit.
func messageWithin(v, h protoreflect.Message, skip map[protoreflect.Name]bool, vInherit, hInherit irxv1.Restriction) bool {
	if v.Descriptor() != h.Descriptor() || len(v.GetUnknown()) > 0 {
		return false
	}
	within := true
	v.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if skip[fd.Name()] {
			return true
		}
		if !h.Has(fd) {
			within = false
			return false
		}
		hv := h.Get(fd)
		switch {
		case fd.IsList() && fd.Message() != nil:
			within = listWithin(val.List(), hv.List(), partRestriction(fd), vInherit, hInherit)
		case fd.IsList():
			within = scalarsWithin(val.List(), hv.List())
		case fd.Message() != nil:
			within = messageWithin(val.Message(), hv.Message(), nil, vInherit, hInherit)
		default:
			within = val.Equal(hv)
		}
		return within
	})
	return within
}

// listWithin matches every element of v with a distinct element of h it
// is within, first fit in order. For parts with their own restriction
// (restriction non-nil), the part's effective restriction must be at least
// as strict as its counterpart's.
func listWithin(v, h protoreflect.List, restriction protoreflect.FieldDescriptor, vInherit, hInherit irxv1.Restriction) bool {
	used := make([]bool, h.Len())
	var skip map[protoreflect.Name]bool
	if restriction != nil {
		skip = map[protoreflect.Name]bool{restriction.Name(): true}
	}
	effective := func(m protoreflect.Message, inherited irxv1.Restriction) irxv1.Restriction {
		if r := irxv1.Restriction(m.Get(restriction).Enum()); r != irxv1.Restriction_RESTRICTION_UNSPECIFIED {
			return r
		}
		return inherited
	}
	for i := range v.Len() {
		vm, found := v.Get(i).Message(), false
		for j := range h.Len() {
			if used[j] {
				continue
			}
			hm := h.Get(j).Message()
			if restriction != nil && restrictionRank(effective(vm, vInherit)) < restrictionRank(effective(hm, hInherit)) {
				continue
			}
			if messageWithin(vm, hm, skip, vInherit, hInherit) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// scalarsWithin reports whether v's values are a sub-multiset of h's.
func scalarsWithin(v, h protoreflect.List) bool {
	used := make([]bool, h.Len())
	for i := range v.Len() {
		found := false
		for j := range h.Len() {
			if !used[j] && v.Get(i).Equal(h.Get(j)) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
