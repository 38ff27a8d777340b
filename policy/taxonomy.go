package policy

// taxonomy returns the types of a Reference Security Incident Taxonomy class
// (the successor of the eCSIRT.net mkVI taxonomy), in its machine-readable
// form. It is a local copy of node/record's list, which policy cannot import
// (imports point cmd -> federation -> node -> policy -> proto); a test in
// policy_test keeps the two equal.
func taxonomy(class string) ([]string, bool) {
	switch class {
	case "abusive-content":
		return []string{"spam", "harmful-speech", "violence"}, true
	case "malicious-code":
		return []string{"infected-system", "c2-server", "malware-distribution", "malware-configuration"}, true
	case "information-gathering":
		return []string{"scanner", "sniffing", "social-engineering"}, true
	case "intrusion-attempts":
		return []string{"ids-alert", "brute-force", "exploit"}, true
	case "intrusions":
		return []string{"privileged-account-compromise", "unprivileged-account-compromise", "application-compromise", "system-compromise", "burglary"}, true
	case "availability":
		return []string{"dos", "ddos", "misconfiguration", "sabotage", "outage"}, true
	case "information-content-security":
		return []string{"unauthorised-information-access", "unauthorised-information-modification", "data-loss", "data-leak"}, true
	case "fraud":
		return []string{"unauthorised-use-of-resources", "copyright", "masquerade", "phishing"}, true
	case "vulnerable":
		return []string{"weak-crypto", "ddos-amplifier", "potentially-unwanted-accessible", "information-disclosure", "vulnerable-system"}, true
	case "other":
		return []string{"other", "undetermined"}, true
	case "test":
		return []string{"test"}, true
	}
	return nil, false
}

// taxonomyClasses lists the taxonomy's classes, sorted.
func taxonomyClasses() []string {
	return []string{
		"abusive-content", "availability", "fraud", "information-content-security", "information-gathering",
		"intrusion-attempts", "intrusions", "malicious-code", "other", "test", "vulnerable",
	}
}

// The taxonomy entry a withheld primary taxonomy is replaced by: the schema
// requires one, and "undetermined" claims nothing.
const (
	placeholderTaxonomyClass = "other"
	placeholderTaxonomyType  = "undetermined"
)
