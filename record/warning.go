package record

import (
	"fmt"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Bounds of a warning's fields.
const (
	MaxWarningTitle   = 200
	MaxWarningText    = 16 << 10
	MaxWarningEntries = 256 // of each list
	MaxWarningEntry   = 1024
)

// ValidateWarning checks a warning's content, naming each bad field under
// prefix ("warning"). now, when not zero, is the time its expiry must be
// after; a received warning is checked without it (the peer's clock
// decided).
func ValidateWarning(w *irxv1.Warning, prefix string, now time.Time) error {
	var vs violations
	f := func(name string) string { return prefix + "." + name }
	switch {
	case w.GetTitle() == "":
		vs.add(f("title"), "is required")
	case len(w.GetTitle()) > MaxWarningTitle:
		vs.add(f("title"), "is longer than %d bytes", MaxWarningTitle)
	default:
		if why := CheckText(w.GetTitle(), Identifier); why != "" {
			vs.add(f("title"), "%s", why)
		}
	}
	if len(w.GetText()) > MaxWarningText {
		vs.add(f("text"), "is longer than %d bytes", MaxWarningText)
	} else if why := CheckText(w.GetText(), FreeText); why != "" {
		vs.add(f("text"), "%s", why)
	}
	if _, ok := irxv1.WarningSeverity_name[int32(w.GetSeverity())]; !ok {
		vs.add(f("severity"), "is not a WarningSeverity")
	}
	switch w.GetTlp() {
	case irxv1.Tlp_TLP_CLEAR, irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_AMBER, irxv1.Tlp_TLP_AMBER_STRICT:
	case irxv1.Tlp_TLP_UNSPECIFIED:
		vs.add(f("tlp"), "is required: one of TLP_CLEAR, TLP_GREEN, TLP_AMBER, TLP_AMBER_STRICT")
	default:
		vs.add(f("tlp"), "must be TLP_CLEAR, TLP_GREEN, TLP_AMBER or TLP_AMBER_STRICT (TLP:RED names its recipients; a warning is not for that)")
	}
	switch exp := w.GetExpireTime(); {
	case exp == nil:
		vs.add(f("expire_time"), "is required")
	case !exp.IsValid():
		vs.add(f("expire_time"), "is not a valid time")
	case !now.IsZero() && !exp.AsTime().After(now):
		vs.add(f("expire_time"), "is in the past")
	}
	for _, v := range ValidateConstituency(&irxv1.Constituency{Cidrs: w.GetAffectedCidrs(), Asns: w.GetAffectedAsns(), Domains: w.GetAffectedDomains()}) {
		field := v.Field
		for _, m := range []struct{ from, to string }{{"cidrs", "affected_cidrs"}, {"asns", "affected_asns"}, {"domains", "affected_domains"}} {
			if len(field) > len(m.from) && field[:len(m.from)] == m.from {
				field = m.to + field[len(m.from):]
			}
		}
		vs.add(f(field), "%s", v.Description)
	}
	lists := []struct {
		name string
		n    int
	}{{"affected_cidrs", len(w.GetAffectedCidrs())}, {"affected_asns", len(w.GetAffectedAsns())}, {"affected_domains", len(w.GetAffectedDomains())},
		{"affected_products", len(w.GetAffectedProducts())}, {"recommended_actions", len(w.GetRecommendedActions())}}
	for _, l := range lists {
		if l.n > MaxWarningEntries {
			vs.add(f(l.name), "holds more than %d entries", MaxWarningEntries)
		}
	}
	for name, list := range map[string][]string{"affected_products": w.GetAffectedProducts(), "recommended_actions": w.GetRecommendedActions()} {
		for i, s := range list {
			field := f(fmt.Sprintf("%s[%d]", name, i))
			switch {
			case s == "":
				vs.add(field, "is empty")
			case len(s) > MaxWarningEntry:
				vs.add(field, "is longer than %d bytes", MaxWarningEntry)
			default:
				if why := CheckText(s, FreeText); why != "" {
					vs.add(field, "%s", why)
				}
			}
		}
	}
	if len(vs) > 0 {
		return &ValidationError{What: "warning", Violations: vs}
	}
	return nil
}
