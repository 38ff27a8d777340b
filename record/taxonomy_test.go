package record

import (
	"slices"
	"sort"
	"strings"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// designTaxonomy is the "Reference Security Incident Taxonomy" paragraph of
// the design brief (DESIGN.md, Schema notes), copied verbatim so the table in
// taxonomy.go is checked against an independent spelling of it.
const designTaxonomy = `abusive-content (spam, harmful-speech, violence); malicious-code (infected-system, c2-server,
  malware-distribution, malware-configuration); information-gathering (scanner, sniffing,
  social-engineering); intrusion-attempts (ids-alert, brute-force, exploit); intrusions
  (privileged-account-compromise, unprivileged-account-compromise, application-compromise,
  system-compromise, burglary); availability (dos, ddos, misconfiguration, sabotage, outage);
  information-content-security (unauthorised-information-access, unauthorised-information-modification,
  data-loss, data-leak); fraud (unauthorised-use-of-resources, copyright, masquerade, phishing);
  vulnerable (weak-crypto, ddos-amplifier, potentially-unwanted-accessible, information-disclosure,
  vulnerable-system); other (other, undetermined); test (test).`

func parseDesignTaxonomy(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	text := strings.Join(strings.Fields(designTaxonomy), " ")
	text = strings.TrimSuffix(text, ".")
	for _, entry := range strings.Split(text, ";") {
		class, rest, ok := strings.Cut(strings.TrimSpace(entry), "(")
		if !ok || !strings.HasSuffix(rest, ")") {
			t.Fatalf("cannot parse taxonomy entry %q", entry)
		}
		for _, typ := range strings.Split(strings.TrimSuffix(rest, ")"), ",") {
			out[strings.TrimSpace(class)] = append(out[strings.TrimSpace(class)], strings.TrimSpace(typ))
		}
	}
	if len(out) != 11 {
		t.Fatalf("parsed %d classes from the design brief, want 11", len(out))
	}
	return out
}

func TestTaxonomyMatchesDesign(t *testing.T) {
	design := parseDesignTaxonomy(t)
	total := 0
	for class, types := range design {
		for _, typ := range types {
			total++
			if !ValidTaxonomy(class, typ) {
				t.Errorf("ValidTaxonomy(%q, %q) = false", class, typ)
			}
			inc := &irxv1.Incident{Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: class, Type: typ}}
			if err := Validate(inc, "incident"); err != nil {
				t.Errorf("Validate(%s/%s) = %v", class, typ, err)
			}
		}
		if got := TaxonomyTypes(class); !slices.Equal(got, types) {
			t.Errorf("TaxonomyTypes(%q) = %q, want %q", class, got, types)
		}
	}
	if total != 39 {
		t.Errorf("design brief lists %d class/type pairs, want 39", total)
	}
	// No class beyond the brief's.
	want := make([]string, 0, len(design))
	for c := range design {
		want = append(want, c)
	}
	sort.Strings(want)
	if got := TaxonomyClasses(); !slices.Equal(got, want) {
		t.Errorf("TaxonomyClasses() = %q, want %q", got, want)
	}
	if !sort.StringsAreSorted(TaxonomyClasses()) {
		t.Errorf("TaxonomyClasses() is not sorted")
	}
}

func TestTaxonomyNearMisses(t *testing.T) {
	misses := []struct{ class, typ string }{
		{"intrusions", "phishing"},           // a type of another class
		{"fraud", "system-compromise"},       // the reverse
		{"Intrusions", "system-compromise"},  // case
		{"intrusions", "System-Compromise"},  // case
		{"intrusion", "system-compromise"},   // singular class
		{"intrusions ", "system-compromise"}, // space
		{"intrusions", "system_compromise"},  // underscore
		{"malicious-code", "c&c"},            // mkVI spelling
		{"malicious code", "c2-server"},      // space for dash
		{"information-content-security", "data-leaks"},
		{"information-content-security", "unauthorized-information-access"}, // US spelling
		{"availability", "DoS"},
		{"vulnerable", ""},
		{"", "test"},
		{"", ""},
		{"test", "other"},
		{"other", "test"},
		{"intrusions\x00", "burglary"},
	}
	for _, m := range misses {
		if ValidTaxonomy(m.class, m.typ) {
			t.Errorf("ValidTaxonomy(%q, %q) = true", m.class, m.typ)
		}
		inc := &irxv1.Incident{Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: m.class, Type: m.typ}}
		if err := Validate(inc, "incident"); err == nil {
			t.Errorf("Validate accepted taxonomy %q/%q", m.class, m.typ)
		}
	}
	if TaxonomyTypes("intrusion") != nil {
		t.Errorf("TaxonomyTypes of an unknown class is not nil")
	}
}

// TestTaxonomyTypesIsACopy checks callers cannot change the table the
// validator reads.
func TestTaxonomyTypesIsACopy(t *testing.T) {
	types := TaxonomyTypes("fraud")
	types[0] = "anything"
	if ValidTaxonomy("fraud", "anything") || !ValidTaxonomy("fraud", "unauthorised-use-of-resources") {
		t.Fatalf("mutating TaxonomyTypes' result changed the taxonomy")
	}
	classes := TaxonomyClasses()
	classes[0] = "zzz"
	if TaxonomyClasses()[0] == "zzz" {
		t.Fatalf("mutating TaxonomyClasses' result changed the taxonomy")
	}
}
