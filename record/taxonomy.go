package record

import (
	"slices"
	"sort"
)

// taxonomy is the Reference Security Incident Taxonomy (the successor of the
// eCSIRT.net mkVI taxonomy), class -> types, in its machine-readable form.
// It is data the validator reads, never mutated.
var taxonomy = map[string][]string{
	"abusive-content":              {"spam", "harmful-speech", "violence"},
	"malicious-code":               {"infected-system", "c2-server", "malware-distribution", "malware-configuration"},
	"information-gathering":        {"scanner", "sniffing", "social-engineering"},
	"intrusion-attempts":           {"ids-alert", "brute-force", "exploit"},
	"intrusions":                   {"privileged-account-compromise", "unprivileged-account-compromise", "application-compromise", "system-compromise", "burglary"},
	"availability":                 {"dos", "ddos", "misconfiguration", "sabotage", "outage"},
	"information-content-security": {"unauthorised-information-access", "unauthorised-information-modification", "data-loss", "data-leak"},
	"fraud":                        {"unauthorised-use-of-resources", "copyright", "masquerade", "phishing"},
	"vulnerable":                   {"weak-crypto", "ddos-amplifier", "potentially-unwanted-accessible", "information-disclosure", "vulnerable-system"},
	"other":                        {"other", "undetermined"},
	"test":                         {"test"},
}

// TaxonomyClasses returns the taxonomy's classes, sorted.
func TaxonomyClasses() []string {
	classes := make([]string, 0, len(taxonomy))
	for c := range taxonomy {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	return classes
}

// TaxonomyTypes returns the types of class, or nil for an unknown class.
func TaxonomyTypes(class string) []string { return slices.Clone(taxonomy[class]) }

// ValidTaxonomy reports whether class/type is an entry of the taxonomy.
func ValidTaxonomy(class, typ string) bool { return slices.Contains(taxonomy[class], typ) }

// ValidTaxonomyClass reports whether class is a class of the taxonomy.
func ValidTaxonomyClass(class string) bool {
	_, ok := taxonomy[class]
	return ok
}
