package iodef

import (
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func TestTaxonomyDerivation(t *testing.T) {
	for _, tc := range []struct {
		text      string
		typeAlone bool
		want      string // "" for none
	}{
		{"availability/ddos", false, "availability/ddos"},
		{" Availability:DDoS ", false, "availability/ddos"},
		{`rsit:fraud="phishing"`, false, "fraud/phishing"},
		{`fraud="phishing"`, false, "fraud/phishing"},
		{"rsit:scanner", false, "information-gathering/scanner"},
		{"phishing", true, "fraud/phishing"},
		{"phishing", false, ""}, // a reference named "phishing" is a reference
		{"malware/c2-server", true, ""},
		{"availability/phishing", true, ""},
		{"Denial of service", true, ""},
		{"", true, ""},
	} {
		got, ok := rsitEntry(tc.text, tc.typeAlone)
		label := ""
		if got != nil {
			label = got.GetClass() + "/" + got.GetType()
		}
		if ok != (tc.want != "") || label != tc.want {
			t.Errorf("rsitEntry(%q, %v) = %q, %v; want %q", tc.text, tc.typeAlone, label, ok, tc.want)
		}
	}
}

// TestDiscoverySourcesAllMapped: every discovery source of RFC 7970 but
// ext-value names an irx value, so none is imported as unspecified.
func TestDiscoverySourcesAllMapped(t *testing.T) {
	for _, v := range discoverySourceEnum.values {
		got, ok := discoverySourceEnum.to[v]
		if v == "ext-value" {
			if ok {
				t.Errorf("ext-value maps to %v", got)
			}
			continue
		}
		if !ok || got == irxv1.DiscoverySource_DISCOVERY_SOURCE_UNSPECIFIED {
			t.Errorf("discovery source %q maps to %v", v, got)
		}
	}
	if got := keptEnum("x", []string{"a", "b"}).to; len(got) != 2 || got["a"] != "a" || got["b"] != "b" {
		t.Errorf("keptEnum maps %v", got)
	}
}

// TestVocabularyTables: every value a table maps is one IODEF defines, so
// no mapping is dead and the messages that list the values are complete.
func TestVocabularyTables(t *testing.T) {
	check := func(what string, values []string, mapped []string) {
		t.Helper()
		defined := map[string]bool{}
		for _, v := range values {
			if defined[v] {
				t.Errorf("%s: %q listed twice", what, v)
			}
			defined[v] = true
		}
		for _, v := range mapped {
			if !defined[v] {
				t.Errorf("%s: %q is mapped but not an IODEF value", what, v)
			}
		}
	}
	for _, e := range []enumeration[string]{telephoneTypeEnum, emailTypeEnum, systemImpactTypeEnum, businessImpactTypeEnum,
		systemCategoryEnum, addressCategoryEnum, nodeRoleEnum, confidenceRatingEnum, recordDtypeEnum, hashScopeEnum} {
		check(e.what, e.values, keys(e.to))
	}
	check(purposeEnum.what, purposeEnum.values, keys(purposeEnum.to))
	check(statusEnum.what, statusEnum.values, keys(statusEnum.to))
	check(contactRoleEnum.what, contactRoleEnum.values, keys(contactRoleEnum.to))
	check(contactTypeEnum.what, contactTypeEnum.values, keys(contactTypeEnum.to))
	check(discoverySourceEnum.what, discoverySourceEnum.values, keys(discoverySourceEnum.to))
	check(occurrenceEnum.what, occurrenceEnum.values, keys(occurrenceEnum.to))
	check(severityEnum.what, severityEnum.values, keys(severityEnum.to))
	check(businessSeverityEnum.what, businessSeverityEnum.values, keys(businessSeverityEnum.to))
	check(completionEnum.what, completionEnum.values, keys(completionEnum.to))
	check(historyActionEnum.what, historyActionEnum.values, keys(historyActionEnum.to))
	check(bulkObservableTypeEnum.what, bulkObservableTypeEnum.values, keys(bulkObservableTypeEnum.to))
	check(restrictionEnum.what, restrictionEnum.values, keys(restrictionEnum.to))
}

func keys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
