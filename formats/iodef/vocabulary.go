package iodef

import (
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// This file is the vocabulary: IODEF's enumerations (RFC 7970 section 10.2,
// the IANA registries it set up) against irx's, its restrictions against
// irx's restrictions and TLP, and the texts that name a Reference Security
// Incident Taxonomy entry or a CVE, CWE or CAPEC id.

// An enumeration is an IODEF enumerated attribute: every value IODEF
// defines, in the RFC's order (the order messages list them in), and the
// irx value of those irx has an equivalent for.
type enumeration[T any] struct {
	what   string
	values []string
	to     map[string]T
}

var (
	purposeEnum = enumeration[irxv1.Purpose]{
		what:   "purpose",
		values: []string{"traceback", "mitigation", "reporting", "watch", "other", "ext-value"},
		to: map[string]irxv1.Purpose{
			"traceback": irxv1.Purpose_PURPOSE_TRACEBACK, "mitigation": irxv1.Purpose_PURPOSE_MITIGATION,
			"reporting": irxv1.Purpose_PURPOSE_REPORTING, "watch": irxv1.Purpose_PURPOSE_WATCH,
			// An extended purpose is "something else"; its name is listed.
			"other": irxv1.Purpose_PURPOSE_OTHER, "ext-value": irxv1.Purpose_PURPOSE_OTHER,
		},
	}
	statusEnum = enumeration[irxv1.Status]{
		what:   "status",
		values: []string{"new", "in-progress", "forwarded", "resolved", "future", "ext-value"},
		to: map[string]irxv1.Status{
			"new": irxv1.Status_STATUS_NEW, "in-progress": irxv1.Status_STATUS_IN_PROGRESS,
			"forwarded": irxv1.Status_STATUS_FORWARDED, "resolved": irxv1.Status_STATUS_RESOLVED,
			"future": irxv1.Status_STATUS_FUTURE,
		},
	}
	contactRoleEnum = enumeration[irxv1.ContactRole]{
		what: "contact role",
		values: []string{"creator", "reporter", "admin", "tech", "provider", "user", "billing", "legal", "abuse", "irt",
			"cc", "cc-irt", "leo", "vendor", "vendor-support", "victim", "victim-notified", "ext-value"},
		to: map[string]irxv1.ContactRole{
			"creator": irxv1.ContactRole_CONTACT_ROLE_CREATOR, "reporter": irxv1.ContactRole_CONTACT_ROLE_REPORTER,
			"admin": irxv1.ContactRole_CONTACT_ROLE_ADMIN, "tech": irxv1.ContactRole_CONTACT_ROLE_TECH,
			"provider": irxv1.ContactRole_CONTACT_ROLE_PROVIDER, "user": irxv1.ContactRole_CONTACT_ROLE_USER,
			"billing": irxv1.ContactRole_CONTACT_ROLE_BILLING, "legal": irxv1.ContactRole_CONTACT_ROLE_LEGAL,
			"irt": irxv1.ContactRole_CONTACT_ROLE_IRT,
			// RFC 7970: "a CSIRT ... coordinating activity"; irx: "A CSIRT
			// coordinating the incident".
			"cc-irt": irxv1.ContactRole_CONTACT_ROLE_CERT,
			"leo":    irxv1.ContactRole_CONTACT_ROLE_LEO, "vendor": irxv1.ContactRole_CONTACT_ROLE_VENDOR,
			"vendor-support": irxv1.ContactRole_CONTACT_ROLE_VENDOR_SUPPORT, "victim": irxv1.ContactRole_CONTACT_ROLE_VICTIM,
			"victim-notified": irxv1.ContactRole_CONTACT_ROLE_VICTIM_NOTIFIED,
		},
	}
	contactTypeEnum = enumeration[irxv1.ContactType]{
		what:   "contact type",
		values: []string{"person", "organization", "ext-value"},
		to: map[string]irxv1.ContactType{
			"person": irxv1.ContactType_CONTACT_TYPE_PERSON, "organization": irxv1.ContactType_CONTACT_TYPE_ORGANIZATION,
		},
	}
	telephoneTypeEnum = enumeration[string]{
		what:   "telephone type",
		values: []string{"wired", "mobile", "fax", "hotline", "ext-value"},
		to:     map[string]string{"fax": "fax"},
	}
	emailTypeEnum = enumeration[string]{
		what:   "email type",
		values: []string{"direct", "hotline", "ext-value"},
		to:     map[string]string{},
	}
	discoverySourceEnum = discoverySources("discovery source", []string{"nidps", "hips", "siem", "av", "third-party-monitoring", "incident", "os-log", "application-log",
		"device-log", "network-flow", "passive-dns", "investigation", "audit", "internal-notification",
		"external-notification", "leo", "partner", "actor", "unknown", "ext-value"})
	occurrenceEnum = enumeration[irxv1.Occurrence]{
		what:   "occurrence",
		values: []string{"actual", "potential"},
		to:     map[string]irxv1.Occurrence{"actual": irxv1.Occurrence_OCCURRENCE_ACTUAL, "potential": irxv1.Occurrence_OCCURRENCE_POTENTIAL},
	}
	severityEnum = enumeration[irxv1.Severity]{
		what:   "severity",
		values: []string{"low", "medium", "high"},
		to:     map[string]irxv1.Severity{"low": irxv1.Severity_SEVERITY_LOW, "medium": irxv1.Severity_SEVERITY_MEDIUM, "high": irxv1.Severity_SEVERITY_HIGH},
	}
	businessSeverityEnum = enumeration[irxv1.Severity]{
		what:   "business impact severity",
		values: []string{"none", "low", "medium", "high", "unknown", "ext-value"},
		to: map[string]irxv1.Severity{
			"low": irxv1.Severity_SEVERITY_LOW, "medium": irxv1.Severity_SEVERITY_MEDIUM, "high": irxv1.Severity_SEVERITY_HIGH,
			"unknown": irxv1.Severity_SEVERITY_UNSPECIFIED, // what unset means
		},
	}
	completionEnum = enumeration[bool]{
		what:   "completion",
		values: []string{"failed", "succeeded"},
		to:     map[string]bool{"failed": false, "succeeded": true},
	}
	systemImpactTypeEnum = keptEnum("system impact type", []string{"takeover-account", "takeover-service", "takeover-system", "cps-manipulation", "cps-damage",
		"availability-data", "availability-account", "availability-service", "availability-system", "damaged-system",
		"damaged-data", "breach-proprietary", "breach-privacy", "breach-credential", "breach-configuration",
		"integrity-data", "integrity-configuration", "integrity-hardware", "traffic-redirection", "monitoring-traffic",
		"monitoring-host", "policy", "unknown", "ext-value"})
	businessImpactTypeEnum = keptEnum("business impact type", []string{"breach-proprietary", "breach-privacy", "breach-credential", "loss-of-integrity", "loss-of-service",
		"theft-financial", "theft-service", "degraded-reputation", "asset-damage", "asset-manipulation", "legal",
		"extortion", "unknown", "ext-value"})
	systemCategoryEnum = enumeration[string]{
		what:   "system category",
		values: []string{"source", "target", "intermediate", "sensor", "infrastructure", "ext-value"},
		to: map[string]string{"source": "source", "target": "target", "intermediate": "intermediate",
			"sensor": "sensor", "infrastructure": "infrastructure"},
	}
	// ipv6-net-mask is RFC 5070's; RFC 7970 has ipv6-net-masked.
	addressCategoryEnum = keptEnum("address category", []string{"asn", "atm", "e-mail", "mac", "ipv4-addr", "ipv4-net", "ipv4-net-masked", "ipv4-net-mask",
		"ipv6-addr", "ipv6-net", "ipv6-net-masked", "ipv6-net-mask", "site-uri", "ext-value"})
	nodeRoleEnum = keptEnum("node role category", []string{"client", "client-enterprise", "client-partner", "client-remote", "client-kiosk", "client-mobile",
		"server-internal", "server-public", "www", "mail", "webmail", "messaging", "streaming", "voice", "file", "ftp",
		"p2p", "name", "directory", "credential", "print", "application", "database", "backup", "dhcp", "assessment",
		"source-control", "config-management", "monitoring", "infra", "infra-firewall", "infra-router",
		"infra-switch", "camera", "proxy", "remote-access", "log", "virtualization", "pos", "scada",
		"scada-supervisory", "sinkhole", "honeypot", "anonymization", "c2-server", "malware-distribution",
		"drop-server", "hop-point", "reflector", "phishing-site", "spear-phishing-site", "recruiting-site",
		"fraudulent-site", "ext-value"})
	historyActionEnum = enumeration[irxv1.HistoryAction]{
		what: "action",
		values: []string{"nothing", "contact-source-site", "contact-target-site", "contact-sender", "investigate",
			"block-host", "block-network", "block-port", "rate-limit-host", "rate-limit-network", "rate-limit-port",
			"redirect-traffic", "honeypot", "upgrade-software", "rebuild-asset", "harden-asset", "remediate-other",
			"status-triage", "status-new-info", "watch-and-report", "training", "defined-coa", "other", "ext-value"},
		to: map[string]irxv1.HistoryAction{
			"nothing": irxv1.HistoryAction_HISTORY_ACTION_NOTHING, "contact-source-site": irxv1.HistoryAction_HISTORY_ACTION_CONTACT_SOURCE_SITE,
			"contact-target-site": irxv1.HistoryAction_HISTORY_ACTION_CONTACT_TARGET_SITE, "contact-sender": irxv1.HistoryAction_HISTORY_ACTION_CONTACT_SENDER,
			"investigate": irxv1.HistoryAction_HISTORY_ACTION_INVESTIGATE, "block-host": irxv1.HistoryAction_HISTORY_ACTION_BLOCK_HOST,
			"block-network": irxv1.HistoryAction_HISTORY_ACTION_BLOCK_NETWORK, "block-port": irxv1.HistoryAction_HISTORY_ACTION_BLOCK_PORT,
			"rate-limit-host": irxv1.HistoryAction_HISTORY_ACTION_RATE_LIMIT_HOST, "remediate-other": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"status-triage": irxv1.HistoryAction_HISTORY_ACTION_STATUS_TRIAGE, "status-new-info": irxv1.HistoryAction_HISTORY_ACTION_STATUS_NEW_INFO,
			"watch-and-report": irxv1.HistoryAction_HISTORY_ACTION_WATCH_AND_REPORT, "other": irxv1.HistoryAction_HISTORY_ACTION_OTHER,
			// Remediations irx has no value of its own for are "another
			// remediation"; the rest "something else". Both are noted.
			"rate-limit-network": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER, "rate-limit-port": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"redirect-traffic": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER, "honeypot": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"upgrade-software": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER, "rebuild-asset": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"harden-asset": irxv1.HistoryAction_HISTORY_ACTION_REMEDIATE_OTHER,
			"training":     irxv1.HistoryAction_HISTORY_ACTION_OTHER, "defined-coa": irxv1.HistoryAction_HISTORY_ACTION_OTHER,
			"ext-value": irxv1.HistoryAction_HISTORY_ACTION_OTHER,
		},
	}
	confidenceRatingEnum = enumeration[string]{
		what:   "confidence rating",
		values: []string{"low", "medium", "high", "numeric", "unknown", "ext-value"},
		to:     map[string]string{"low": "low", "medium": "medium", "high": "high", "numeric": "numeric", "unknown": "unknown"},
	}
	recordDtypeEnum = enumeration[string]{
		what: "dtype",
		values: []string{"boolean", "byte", "bytes", "character", "date-time", "integer", "ntpstamp", "portlist", "real",
			"string", "file", "path", "frame", "packet", "ipv4-packet", "ipv6-packet", "url", "csv", "winreg", "xml",
			"json", "ext-value"},
		// Log lines are text; binary and structured items are not.
		to: map[string]string{"string": "text/plain", "csv": "text/csv", "json": "application/json"},
	}
	hashScopeEnum = enumeration[string]{
		what: "hash scope",
		values: []string{"file-contents", "file-pe-section", "file-pe-iat", "file-pe-resource", "file-pdf-object",
			"email-hash", "email-headers-hash", "email-body-hash", "ext-value"},
		to: map[string]string{"file-contents": "file-contents"},
	}
	bulkObservableTypeEnum = enumeration[irxv1.IndicatorKind]{
		what: "bulk observable type",
		values: []string{"asn", "atm", "e-mail", "ipv4-addr", "ipv4-net", "ipv4-net-mask", "ipv6-addr", "ipv6-net",
			"ipv6-net-mask", "mac", "site-uri", "domain-name", "domain-to-ipv4", "domain-to-ipv6",
			"domain-to-ipv4-timestamp", "domain-to-ipv6-timestamp", "ipv4-port", "ipv6-port", "windows-reg-key",
			"file-hash", "email-x-mailer", "email-subject", "http-user-agent", "http-request-uri", "mutex", "file-path",
			"user-name", "ext-value"},
		to: map[string]irxv1.IndicatorKind{
			"asn": irxv1.IndicatorKind_INDICATOR_KIND_ASN, "e-mail": irxv1.IndicatorKind_INDICATOR_KIND_EMAIL,
			"ipv4-addr": irxv1.IndicatorKind_INDICATOR_KIND_IPV4, "ipv4-net": irxv1.IndicatorKind_INDICATOR_KIND_IPV4,
			"ipv6-addr": irxv1.IndicatorKind_INDICATOR_KIND_IPV6, "ipv6-net": irxv1.IndicatorKind_INDICATOR_KIND_IPV6,
			"site-uri": irxv1.IndicatorKind_INDICATOR_KIND_URL, "domain-name": irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN,
			"file-hash": irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, "file-path": irxv1.IndicatorKind_INDICATOR_KIND_FILE_NAME,
		},
	}
)

// keptEnum is an IODEF enumeration whose values irx keeps as IODEF's
// strings.
func keptEnum(what string, values []string) enumeration[string] {
	to := make(map[string]string, len(values))
	for _, v := range values {
		to[v] = v
	}
	return enumeration[string]{what: what, values: values, to: to}
}

// discoverySources maps RFC 7970's discovery sources to irx's values of
// the same name.
func discoverySources(what string, values []string) enumeration[irxv1.DiscoverySource] {
	to := make(map[string]irxv1.DiscoverySource, len(values))
	for _, v := range values {
		if v == "ext-value" {
			continue
		}
		name := "DISCOVERY_SOURCE_" + strings.ToUpper(strings.ReplaceAll(v, "-", "_"))
		to[v] = irxv1.DiscoverySource(irxv1.DiscoverySource_value[name])
	}
	return enumeration[irxv1.DiscoverySource]{what: what, values: values, to: to}
}

// --- restrictions and TLP ---

// A marking is what an IODEF restriction says in irx: a restriction, and a
// TLP when the value is a TLP colour.
type marking struct {
	restriction irxv1.Restriction
	tlp         irxv1.Tlp
}

// restrictionEnum maps IODEF's restriction values. RFC 7970 section 3.3.1:
// white, green, amber and red are the same as public, partner,
// need-to-know and private. In irx.v1.Tlp, IODEF's "white" is TLP_CLEAR and
// its "amber" TLP_AMBER_STRICT. "default" (the parties' own agreement) and
// "ext-value" are not in the table: what they mean depends on where they
// stand (see mapper.restriction).
var restrictionEnum = enumeration[marking]{
	what:   "restriction",
	values: []string{"default", "public", "partner", "need-to-know", "private", "white", "green", "amber", "red", "ext-value"},
	to: map[string]marking{
		"public":       {restriction: irxv1.Restriction_RESTRICTION_PUBLIC},
		"partner":      {restriction: irxv1.Restriction_RESTRICTION_PARTNER},
		"need-to-know": {restriction: irxv1.Restriction_RESTRICTION_NEED_TO_KNOW},
		"private":      {restriction: irxv1.Restriction_RESTRICTION_PRIVATE},
		"white":        {irxv1.Restriction_RESTRICTION_PUBLIC, irxv1.Tlp_TLP_CLEAR},
		"green":        {irxv1.Restriction_RESTRICTION_PARTNER, irxv1.Tlp_TLP_GREEN},
		"amber":        {irxv1.Restriction_RESTRICTION_NEED_TO_KNOW, irxv1.Tlp_TLP_AMBER_STRICT},
		"red":          {irxv1.Restriction_RESTRICTION_PRIVATE, irxv1.Tlp_TLP_RED},
	},
}

// restrictionRank orders restrictions from the least to the most strict.
func restrictionRank(r irxv1.Restriction) int {
	switch r {
	case irxv1.Restriction_RESTRICTION_PUBLIC:
		return 1
	case irxv1.Restriction_RESTRICTION_PARTNER:
		return 2
	case irxv1.Restriction_RESTRICTION_NEED_TO_KNOW:
		return 3
	}
	return 4 // private, and unspecified, which defaults to private
}

// --- ids in texts ---

var (
	cvePattern   = regexp.MustCompile(`^(?i)CVE-\d{4}-\d{4,}$`)
	cwePattern   = regexp.MustCompile(`^(?i)CWE-\d+$`)
	capecPattern = regexp.MustCompile(`^(?i)CAPEC-\d+$`)
)

// rsitEntry reads a Reference Security Incident Taxonomy entry from a text:
// "class/type", "class:type" or the MISP machine tag rsit:class="type";
// with typeAlone, also a type by itself (each type belongs to one class).
func rsitEntry(s string, typeAlone bool) (*irxv1.Taxonomy, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	tagged := false
	if rest, ok := strings.CutPrefix(s, "rsit:"); ok {
		s, tagged = rest, true
	}
	var class, typ string
	switch {
	case strings.Contains(s, "="):
		class, typ, _ = strings.Cut(s, "=")
		typ = strings.Trim(typ, `"`)
	case strings.Contains(s, "/"):
		class, typ, _ = strings.Cut(s, "/")
	case strings.Contains(s, ":"):
		class, typ, _ = strings.Cut(s, ":")
	case typeAlone || tagged:
		typ = s
		for _, c := range record.TaxonomyClasses() {
			if slices.Contains(record.TaxonomyTypes(c), typ) {
				if class != "" {
					return nil, false // ambiguous
				}
				class = c
			}
		}
	}
	class, typ = strings.TrimSpace(class), strings.TrimSpace(typ)
	if !record.ValidTaxonomy(class, typ) {
		return nil, false
	}
	return &irxv1.Taxonomy{Class: class, Type: typ}, true
}

// --- irx values in messages ---

// tlpLabel is FIRST's notation of a TLP ("TLP:AMBER+STRICT").
func tlpLabel(t irxv1.Tlp) string {
	if t == irxv1.Tlp_TLP_UNSPECIFIED {
		return "-"
	}
	name := strings.TrimPrefix(t.String(), "TLP_")
	return "TLP:" + strings.ReplaceAll(name, "_", "+")
}

// enumLabel is an irx enum value as IODEF would write it:
// "remediate-other" for HISTORY_ACTION_REMEDIATE_OTHER.
func enumLabel(e protoreflect.Enum, prefix string) string {
	if e.Number() == 0 {
		return "-"
	}
	name := strings.TrimPrefix(string(e.Descriptor().Values().ByNumber(e.Number()).Name()), prefix)
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// --- the information class of kept parts ---

// extraClassOf is the RFC 2350 class of an IODEF element irx keeps
// verbatim, by the element's name; a part takes the class of its closest
// element listed (System decides by its category, see extraClass). What
// is not listed is private user information.
var extraClassOf = map[string]irxv1.InfoClass{
	// Who to talk to.
	"Contact": irxv1.InfoClass_INFO_CLASS_CONTACT, "ContactName": irxv1.InfoClass_INFO_CLASS_CONTACT,
	"ContactTitle": irxv1.InfoClass_INFO_CLASS_CONTACT, "RegistryHandle": irxv1.InfoClass_INFO_CLASS_CONTACT,
	"Email": irxv1.InfoClass_INFO_CLASS_CONTACT, "Telephone": irxv1.InfoClass_INFO_CLASS_CONTACT,
	"Timezone": irxv1.InfoClass_INFO_CLASS_CONTACT, "DomainContacts": irxv1.InfoClass_INFO_CLASS_CONTACT,
	// The intruder: what to look for, who is behind it.
	"Indicator": irxv1.InfoClass_INFO_CLASS_INTRUDER, "IndicatorData": irxv1.InfoClass_INFO_CLASS_INTRUDER,
	"ThreatActor": irxv1.InfoClass_INFO_CLASS_INTRUDER, "Campaign": irxv1.InfoClass_INFO_CLASS_INTRUDER,
	"RelatedActivity": irxv1.InfoClass_INFO_CLASS_INTRUDER, "DetectionPattern": irxv1.InfoClass_INFO_CLASS_INTRUDER,
	// How it worked.
	"Method": irxv1.InfoClass_INFO_CLASS_VULNERABILITY, "Reference": irxv1.InfoClass_INFO_CLASS_VULNERABILITY,
	"Vulnerability": irxv1.InfoClass_INFO_CLASS_VULNERABILITY, "Weakness": irxv1.InfoClass_INFO_CLASS_VULNERABILITY,
	"AttackPattern": irxv1.InfoClass_INFO_CLASS_VULNERABILITY,
	// What it cost the site.
	"Assessment": irxv1.InfoClass_INFO_CLASS_EMBARRASSING, "Impact": irxv1.InfoClass_INFO_CLASS_EMBARRASSING,
	"SystemImpact": irxv1.InfoClass_INFO_CLASS_EMBARRASSING, "BusinessImpact": irxv1.InfoClass_INFO_CLASS_EMBARRASSING,
	"TimeImpact": irxv1.InfoClass_INFO_CLASS_EMBARRASSING, "MonetaryImpact": irxv1.InfoClass_INFO_CLASS_EMBARRASSING,
	"IntendedImpact": irxv1.InfoClass_INFO_CLASS_EMBARRASSING, "MitigatingFactor": irxv1.InfoClass_INFO_CLASS_EMBARRASSING,
	"Cause": irxv1.InfoClass_INFO_CLASS_EMBARRASSING,
	// Counts and categories.
	"Counter": irxv1.InfoClass_INFO_CLASS_STATISTICAL, "IncidentCategory": irxv1.InfoClass_INFO_CLASS_STATISTICAL,
	// The site: where, what it runs, what it did, what it asks.
	"Node": irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE, "Location": irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE,
	"PostalAddress": irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE, "Discovery": irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE,
	"History": irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE, "Expectation": irxv1.InfoClass_INFO_CLASS_PRIVATE_SITE,
	// Log records name users: private user information (also the default).
	"Record": irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, "RecordData": irxv1.InfoClass_INFO_CLASS_PRIVATE_USER,
}

// The words of IODEF's Counter attributes (RFC 7970 section 3.18.3), but
// ext-value.
var (
	counterTypes     = []string{"count", "peak", "average"}
	counterUnits     = []string{"byte", "mbit", "packet", "flow", "session", "alert", "message", "event", "host", "site", "organization"}
	counterDurations = []string{"second", "minute", "hour", "day", "month", "quarter", "year", "forever"}
)
