package record

import (
	"fmt"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Bounds of a retention policy.
const (
	MaxRetentionRules    = 64
	MaxRetentionRuleName = 64
	// MaxRetentionKeep keeps every term within what a time.Duration and
	// the state machine's time keys hold.
	MaxRetentionKeep = 100 * 365 * 24 * time.Hour
)

// HandlingClass reports whether rules may not purge class on its own:
// the record's handling information (id, version, status, markings,
// provenance) and its contacts are what a team needs to handle the
// incident at all, so they go only with the whole record.
func HandlingClass(c irxv1.InfoClass) bool {
	return c == irxv1.InfoClass_INFO_CLASS_HANDLING || c == irxv1.InfoClass_INFO_CLASS_CONTACT
}

// ValidateRetentionPolicy checks a retention policy's rules: each named
// (uniquely), of a known class that is not a handling class, of a known
// TLP, with a keep of at least minKeep (and more than zero). Violations
// name the rule's field (rules[i].keep).
func ValidateRetentionPolicy(p *irxv1.RetentionPolicy, minKeep time.Duration) error {
	var vs []Violation
	add := func(field, format string, args ...any) {
		vs = append(vs, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	if p == nil {
		return &ValidationError{Violations: []Violation{{Field: "policy", Description: "is required"}}}
	}
	rules := p.GetRules()
	if len(rules) > MaxRetentionRules {
		add("policy.rules", "holds %d rules; at most %d", len(rules), MaxRetentionRules)
	}
	names := map[string]int{}
	for i, r := range rules {
		f := fmt.Sprintf("policy.rules[%d]", i)
		switch name := r.GetName(); {
		case name == "":
			add(f+".name", "is required")
		case len(name) > MaxRetentionRuleName:
			add(f+".name", "is longer than %d bytes", MaxRetentionRuleName)
		case CheckText(name, Identifier) != "":
			add(f+".name", "%s", CheckText(name, Identifier))
		default:
			if j, dup := names[name]; dup {
				add(f+".name", "%q is also the name of rules[%d]", name, j)
			}
			names[name] = i
		}
		class := r.GetInfoClass()
		if _, known := irxv1.InfoClass_name[int32(class)]; !known {
			add(f+".info_class", "%d is not an information class", class)
		} else if HandlingClass(class) {
			add(f+".info_class", "%s is the handling class (what the team needs to handle the incident): it goes only with the whole record (a rule without info_class), which spares open incidents", class)
		}
		if _, known := irxv1.Tlp_name[int32(r.GetTlp())]; !known {
			add(f+".tlp", "%d is not a TLP", r.GetTlp())
		}
		keep := r.GetKeep()
		switch {
		case keep == nil:
			add(f+".keep", "is required")
		case keep.CheckValid() != nil || keep.AsDuration() <= 0:
			add(f+".keep", "must be a positive duration")
		case keep.AsDuration() > MaxRetentionKeep:
			add(f+".keep", "is longer than %s", MaxRetentionKeep)
		case keep.AsDuration() < minKeep:
			add(f+".keep", "%s is shorter than this team's floor (retention.min_keep) of %s", keep.AsDuration(), minKeep)
		}
	}
	if len(vs) > 0 {
		return &ValidationError{Violations: vs}
	}
	return nil
}
