package record

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// knownValues reports whether every enum in inc holds a value the schema
// defines and every timestamp is one google.protobuf.Timestamp allows: what
// checkEnums checks, through the generated getters instead of protobuf
// reflection, which cost two-thirds of Validate (a reflective Has and Get
// per planned field). It only ever answers for the whole record: when it
// says false, checkEnums walks the record reflectively to name each
// violation, so the messages are the walk's. TestKnownValuesCoversThePlan
// derives every enum and timestamp of the schema from its descriptors and
// fails when a field is added that this function does not check.
func knownValues(inc *irxv1.Incident) bool {
	if !known(inc.GetPurpose(), irxv1.Purpose_name) || !known(inc.GetStatus(), irxv1.Status_name) ||
		!restricted(inc.GetRestriction()) || !known(inc.GetTlp(), irxv1.Tlp_name) ||
		!known(inc.GetPriority(), irxv1.Priority_name) || !known(inc.GetReportingSite().GetSector(), irxv1.Sector_name) ||
		!validTimes(inc.GetDetectTime(), inc.GetStartTime(), inc.GetEndTime(), inc.GetRecoveryTime(),
			inc.GetReportTime(), inc.GetGenerationTime(), inc.GetCreateTime(), inc.GetWithdrawTime()) {
		return false
	}
	for _, a := range inc.GetAlternativeIds() {
		if !known(a.GetKind(), irxv1.AlternativeIdKind_name) || !restricted(a.GetRestriction()) {
			return false
		}
	}
	for _, d := range inc.GetDescriptions() {
		if !restricted(d.GetRestriction()) {
			return false
		}
	}
	for _, c := range inc.GetContacts() {
		if !known(c.GetRole(), irxv1.ContactRole_name) || !known(c.GetType(), irxv1.ContactType_name) || !restricted(c.GetRestriction()) {
			return false
		}
	}
	for _, hosts := range [][]*irxv1.Host{inc.GetVictimHosts(), inc.GetAttackingHosts()} {
		for _, h := range hosts {
			if !known(h.GetCategory(), irxv1.SystemCategory_name) || !restricted(h.GetRestriction()) || !validTimes(h.GetNameResolvedTime()) {
				return false
			}
		}
	}
	for _, i := range inc.GetIndicators() {
		if !known(i.GetKind(), irxv1.IndicatorKind_name) || !validTimes(i.GetFirstSeenTime(), i.GetLastSeenTime()) ||
			!restricted(i.GetRestriction()) {
			return false
		}
	}
	for _, m := range inc.GetMethods() {
		if !restricted(m.GetRestriction()) {
			return false
		}
	}
	for _, a := range inc.GetAssessments() {
		if !known(a.GetOccurrence(), irxv1.Occurrence_name) || !restricted(a.GetRestriction()) {
			return false
		}
		for _, s := range a.GetSystemImpacts() {
			if !known(s.GetSeverity(), irxv1.Severity_name) {
				return false
			}
		}
		for _, b := range a.GetBusinessImpacts() {
			if !known(b.GetSeverity(), irxv1.Severity_name) {
				return false
			}
		}
	}
	for _, d := range inc.GetDiscoveries() {
		if !known(d.GetSource(), irxv1.DiscoverySource_name) {
			return false
		}
	}
	for _, l := range inc.GetLogExcerpts() {
		if !validTimes(l.GetTime()) || !restricted(l.GetRestriction()) {
			return false
		}
	}
	for _, e := range inc.GetEvidence() {
		if !validTimes(e.GetCollectTime()) || !restricted(e.GetRestriction()) {
			return false
		}
	}
	for _, h := range inc.GetHistory() {
		if !known(h.GetAction(), irxv1.HistoryAction_name) || !validTimes(h.GetTime()) || !restricted(h.GetRestriction()) {
			return false
		}
	}
	if !validTimes(inc.GetSenderGenerationTime()) {
		return false
	}
	for _, x := range inc.GetExpectations() {
		if !known(x.GetSeverity(), irxv1.Severity_name) || !validTimes(x.GetStartTime(), x.GetEndTime()) || !restricted(x.GetRestriction()) {
			return false
		}
	}
	for _, f := range iodefExtraLists(inc) {
		for _, x := range f.list {
			if !restricted(x.GetRestriction()) {
				return false
			}
		}
	}
	p := inc.GetProvenance()
	return validTimes(p.GetReceiveTime()) && known(p.GetReshare().GetScope(), irxv1.ReshareScope_name)
}

// known reports whether v is a value of its enum, as names (the generated
// X_name map) lists them.
func known[E ~int32](v E, names map[int32]string) bool {
	_, ok := names[int32(v)]
	return ok
}

func restricted(r irxv1.Restriction) bool { return known(r, irxv1.Restriction_name) }

// validTimes reports whether every timestamp given is absent or valid.
func validTimes(ts ...*timestamppb.Timestamp) bool {
	for _, t := range ts {
		if t != nil && !t.IsValid() {
			return false
		}
	}
	return true
}
