package iodef

import irxv1 "github.com/irxfed/irx/proto/irx/v1"

// This file is the vocabulary of derivation: how a document's own words
// give an incident its TLP and its Reference Security Incident Taxonomy
// entry, so that a document needs no default. docs/iodef.md shows the same
// tables; TestDerivationTables checks every entry is a valid taxonomy
// entry and every key an IODEF value.

// tlpOfRestriction is the TLP of an Incident's restriction. The colours
// are TLP's own (RFC 7970 section 3.3.1); the words take the TLP of the
// colour RFC 7970 equates them with. "default" and an absent restriction
// are the parties' agreement: the team's default TLP, else RFC 7970's
// default restriction, private.
var tlpOfRestriction = map[string]irxv1.Tlp{
	"white": irxv1.Tlp_TLP_CLEAR, "public": irxv1.Tlp_TLP_CLEAR,
	"green": irxv1.Tlp_TLP_GREEN, "partner": irxv1.Tlp_TLP_GREEN,
	"amber": irxv1.Tlp_TLP_AMBER_STRICT, "need-to-know": irxv1.Tlp_TLP_AMBER_STRICT,
	"red": irxv1.Tlp_TLP_RED, "private": irxv1.Tlp_TLP_RED,
}

// rfcDefaultTLP is the TLP of an incident whose document says nothing and
// whose team configured no default: RFC 7970's default restriction,
// private.
const rfcDefaultTLP = irxv1.Tlp_TLP_RED

func tx(class, typ string) *irxv1.Taxonomy { return &irxv1.Taxonomy{Class: class, Type: typ} }

// taxonomyOfSystemImpact is the taxonomy entry an IODEF v2 SystemImpact
// type implies (RFC 7970 section 3.12.1). Types that say too little
// (policy, unknown, ext-value) imply none.
var taxonomyOfSystemImpact = map[string]*irxv1.Taxonomy{
	"takeover-account":        tx("intrusions", "unprivileged-account-compromise"),
	"takeover-service":        tx("intrusions", "application-compromise"),
	"takeover-system":         tx("intrusions", "system-compromise"),
	"cps-manipulation":        tx("intrusions", "system-compromise"),
	"cps-damage":              tx("availability", "sabotage"),
	"availability-data":       tx("availability", "outage"),
	"availability-account":    tx("availability", "dos"),
	"availability-service":    tx("availability", "dos"),
	"availability-system":     tx("availability", "dos"),
	"damaged-system":          tx("availability", "sabotage"),
	"damaged-data":            tx("information-content-security", "data-loss"),
	"breach-proprietary":      tx("information-content-security", "data-leak"),
	"breach-privacy":          tx("information-content-security", "data-leak"),
	"breach-credential":       tx("information-content-security", "unauthorised-information-access"),
	"breach-configuration":    tx("information-content-security", "unauthorised-information-access"),
	"integrity-data":          tx("information-content-security", "unauthorised-information-modification"),
	"integrity-configuration": tx("information-content-security", "unauthorised-information-modification"),
	"integrity-hardware":      tx("intrusions", "system-compromise"),
	"traffic-redirection":     tx("intrusions", "system-compromise"),
	"monitoring-traffic":      tx("information-gathering", "sniffing"),
	"monitoring-host":         tx("information-gathering", "sniffing"),
}

// taxonomyOfBusinessImpact: the same for BusinessImpact types (RFC 7970
// section 3.12.2).
var taxonomyOfBusinessImpact = map[string]*irxv1.Taxonomy{
	"breach-proprietary": tx("information-content-security", "data-leak"),
	"breach-privacy":     tx("information-content-security", "data-leak"),
	"breach-credential":  tx("information-content-security", "unauthorised-information-access"),
	"loss-of-integrity":  tx("information-content-security", "unauthorised-information-modification"),
	"loss-of-service":    tx("availability", "outage"),
	"theft-financial":    tx("fraud", "masquerade"),
	"theft-service":      tx("fraud", "unauthorised-use-of-resources"),
	"asset-damage":       tx("availability", "sabotage"),
}

// v1Impact maps an IODEF v1 Impact type (RFC 5070 section 3.10.1) to the
// v2 SystemImpact type irx keeps and the taxonomy entry it implies.
var v1Impact = map[string]struct {
	systemImpact string
	taxonomy     *irxv1.Taxonomy
}{
	"admin":              {"takeover-system", tx("intrusions", "privileged-account-compromise")},
	"dos":                {"availability-service", tx("availability", "dos")},
	"extortion":          {"ext-value:extortion", tx("fraud", "masquerade")},
	"file":               {"integrity-data", tx("information-content-security", "unauthorised-information-modification")},
	"info-leak":          {"breach-proprietary", tx("information-content-security", "data-leak")},
	"misconfiguration":   {"integrity-configuration", tx("vulnerable", "vulnerable-system")},
	"recon":              {"monitoring-host", tx("information-gathering", "scanner")},
	"social-engineering": {"ext-value:social-engineering", tx("information-gathering", "social-engineering")},
	"user":               {"takeover-account", tx("intrusions", "unprivileged-account-compromise")},
	"policy":             {"policy", nil},
	"unknown":            {"unknown", nil},
}

// taxonomyOfAttackPattern: the CAPEC attack patterns whose meaning is one
// taxonomy entry (MITRE CAPEC, the meta patterns and the commonest
// standard ones).
var taxonomyOfAttackPattern = map[string]*irxv1.Taxonomy{
	"CAPEC-98":  tx("fraud", "phishing"),
	"CAPEC-163": tx("fraud", "phishing"),   // spear phishing
	"CAPEC-125": tx("availability", "dos"), // flooding
	"CAPEC-490": tx("availability", "dos"), // amplification
	"CAPEC-112": tx("intrusion-attempts", "brute-force"),
	"CAPEC-49":  tx("intrusion-attempts", "brute-force"), // password brute forcing
	"CAPEC-169": tx("information-gathering", "scanner"),  // footprinting
	"CAPEC-300": tx("information-gathering", "scanner"),  // port scanning
	"CAPEC-66":  tx("intrusion-attempts", "exploit"),     // SQL injection
	"CAPEC-63":  tx("intrusion-attempts", "exploit"),     // cross-site scripting
	"CAPEC-549": tx("malicious-code", "infected-system"), // local execution of code
}
