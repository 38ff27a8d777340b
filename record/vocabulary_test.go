package record

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestValidLanguageTag(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		want bool
	}{
		// RFC 5646 appendix A's examples, and case variants.
		{"de", true}, {"fr", true}, {"ja", true}, {"i-enochian", true}, {"I-KLINGON", true},
		{"zh-Hant", true}, {"zh-Hans", true}, {"sr-Cyrl", true}, {"sr-Latn", true},
		{"zh-cmn-Hans-CN", true}, {"cmn-Hans-CN", true}, {"zh-yue-HK", true}, {"yue-HK", true},
		{"zh-Hans-CN", true}, {"sr-Latn-RS", true}, {"sl-rozaj", true}, {"sl-rozaj-biske", true},
		{"sl-nedis", true}, {"de-CH-1901", true}, {"sl-IT-nedis", true}, {"hy-Latn-IT-arevela", true},
		{"de-DE", true}, {"en-US", true}, {"es-419", true}, {"de-CH-x-phonebk", true},
		{"az-Arab-x-AZE-derbend", true}, {"x-whatever", true}, {"qaa-Qaaa-QM-x-southern", true},
		{"de-Qaaa", true}, {"sr-Latn-QM", true}, {"sr-Qaaa-RS", true}, {"en-US-u-islamcal", true},
		{"zh-CN-a-myext-x-private", true}, {"en-a-myext-b-another", true}, {"en-GB-oed", true},
		{"zh-min-nan", true}, {"art-lojban", true}, {"EN-us", true}, {"abcd", true}, {"abcdefgh", true},
		// Well-formed though not valid (a repeated singleton): the registry and
		// uniqueness rules are not checked.
		{"ar-a-aaa-b-bbb-a-ccc", true},
		// Not well-formed: the grammar's limits, separators, free text.
		{"", false}, {"e", false}, {"en_US", false}, {"en-", false}, {"-en", false}, {"en--US", false},
		{"en US", false}, {"English language", false}, {"en-US; owner=secret", false}, {"abcdefghi", false},
		{"a1", false}, {"de-419-DE", false}, {"a-DE", false},
		{"en-a", false}, {"en-a-b", false}, {"x", false}, {"x-", false}, {"x-toolongxx", false},
		{"en-x", false}, {"en-x-", false}, {"zh-abc-def-ghi-jkl", false}, {"en-Latn-Latn", false},
		{"cnry0001", false}, {"de-1901-", false}, {"\u00e9n", false}, {"en\x00", false},
	} {
		if got := ValidLanguageTag(tc.tag); got != tc.want {
			t.Errorf("ValidLanguageTag(%q) = %v, want %v", tc.tag, got, tc.want)
		}
	}
}

func TestValidMediaType(t *testing.T) {
	for _, tc := range []struct {
		mt   string
		want bool
	}{
		{"text/plain", true}, {"TEXT/Plain", true}, {"application/json", true}, {"application/vnd.tcpdump.pcap", true},
		{"application/ld+json", true}, {"application/x-pcapng", true}, {"image/svg+xml", true}, {"a/b", true},
		{"application/" + strings.Repeat("a", 127), true},
		{"", false}, {"text", false}, {"text/", false}, {"/plain", false}, {"text/plain; charset=utf-8", false},
		{"text/plain;charset=utf-8", false}, {"text/plain ", false}, {" text/plain", false}, {"text/plain/x", false},
		{"text/.plain", false}, {"-text/plain", false}, {"text/pl ain", false}, {"application/" + strings.Repeat("a", 128), false},
		{"text/plain\n", false}, {"text/plaïn", false}, {"cnry0001", false},
	} {
		if got := ValidMediaType(tc.mt); got != tc.want {
			t.Errorf("ValidMediaType(%q) = %v, want %v", tc.mt, got, tc.want)
		}
	}
}

func TestValidHostName(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"example.org", true}, {"mx1", true}, {"a.b.example.", true}, {"xn--bcher-kva.example", true},
		{"EXAMPLE.ORG", true}, {"3com.example", true}, {"a-b.example", true}, {"123.example", true},
		{long + ".example", true}, {strings.Repeat(long+".", 3) + strings.Repeat("a", 61), true}, // 253
		{"", false}, {".", false}, {"example..org", false}, {".example.org", false}, {"example.org..", false},
		{"srv.x.example owner=secret", false}, {"192.0.2.241:22", false}, {"192.0.2.241", false}, {"2001:db8::1", false},
		{"evil.example/secret-path", false}, {"https://evil.example", false}, {"-a.example", false}, {"a-.example", false},
		{"under_score.example", false}, {"bücher.example", false}, {long + "a.example", false},
		{strings.Repeat(long+".", 3) + strings.Repeat("a", 62), false}, // 254
		{"example.123", false}, {"pseud:abcdefghijklmnopqrstuvwxyz", false},
	} {
		if got := ValidHostName(tc.name); got != tc.want {
			t.Errorf("ValidHostName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCurrencyList: the committed ISO 4217 list parses, has the codes and
// minor units the standard gives, and is the file its SOURCES names.
func TestCurrencyList(t *testing.T) {
	m, err := parseISO4217(iso4217ListOne)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) < 150 || len(m) > 200 {
		t.Errorf("%d codes; List One has about 180", len(m))
	}
	for code, units := range map[string]int{"EUR": 2, "USD": 2, "JPY": 0, "BHD": 3, "CLF": 4, "UYW": 4, "XAU": -1, "XXX": -1, "CHF": 2} {
		if got, ok := m[code]; !ok || got != units {
			t.Errorf("%s: minor units %d (listed %v), want %d", code, got, ok, units)
		}
	}
	for _, code := range []string{"EUR", "JPY", "XTS", "ZWG"} {
		if !ValidCurrency(code) {
			t.Errorf("ValidCurrency(%q) = false", code)
		}
	}
	for _, code := range []string{"", "eur", "EURO", "EU", "XYZ", "DEM", "EUR ", "cnry0001"} {
		if ValidCurrency(code) {
			t.Errorf("ValidCurrency(%q) = true", code)
		}
	}
	if n, ok := CurrencyMinorUnits("KWD"); !ok || n != 3 {
		t.Errorf("CurrencyMinorUnits(KWD) = %d, %v", n, ok)
	}
	if _, ok := CurrencyMinorUnits("XAU"); ok {
		t.Error("CurrencyMinorUnits(XAU): the list gives none")
	}

	sources, err := os.ReadFile("iso4217/SOURCES")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(iso4217ListOne)
	if !strings.Contains(string(sources), hex.EncodeToString(sum[:])) {
		t.Errorf("iso4217/SOURCES does not give the SHA-256 of list-one.xml (%x): update it with the file", sum)
	}
}

func TestParseISO4217Refuses(t *testing.T) {
	for _, doc := range []string{
		"<ISO_4217><CcyTbl><CcyNtry><Ccy>eur</Ccy><CcyMnrUnts>2</CcyMnrUnts></CcyNtry></CcyTbl></ISO_4217>",
		"<ISO_4217><CcyTbl><CcyNtry><Ccy>EUR</Ccy><CcyMnrUnts>two</CcyMnrUnts></CcyNtry></CcyTbl></ISO_4217>",
		"<ISO_4217><CcyTbl><CcyNtry><Ccy>EUR</Ccy><CcyMnrUnts>2</CcyMnrUnts></CcyNtry></CcyTbl></ISO_4217>", // too few
		"<ISO_4217",
	} {
		if _, err := parseISO4217([]byte(doc)); err == nil {
			t.Errorf("parsed %q", doc)
		}
	}
}

func TestNameTokens(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"pseud:abcdefghijklmnopqrstuvwxyz", true}, {"pseud:234567abcdefghijklmnopqrst", true},
		{"pseud:abcdefghijklmnopqrstuvwxy", false}, {"pseud:abcdefghijklmnopqrstuvwxyza", false},
		{"pseud:ABCDEFGHIJKLMNOPQRSTUVWXYZ", false}, {"pseud:abcdefghijklmnopqrstuvwxy1", false},
		{"pseud:abcdefghijklmnopqrstuvwx z", false}, {"x:abcdefghijklmnopqrstuvwxyz", false},
	} {
		if got := isNameToken(tc.s); got != tc.want {
			t.Errorf("isNameToken(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// TestCountryList: the list holds the 249 codes, each two capital letters,
// and equals the IANA time zone database's iso3166.tab where the host has
// one.
func TestCountryList(t *testing.T) {
	codes := Countries()
	if len(codes) != 249 {
		t.Fatalf("%d country codes, want ISO 3166-1's 249", len(codes))
	}
	for i, c := range codes {
		if !isUpperAlpha(c, 2) || i > 0 && codes[i-1] >= c {
			t.Fatalf("code %q at %d: not two capital letters in order", c, i)
		}
	}
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"NL", true}, {"DE", true}, {"GB", true}, {"AX", true}, {"SS", true}, {"ZW", true},
		{"", false}, {"nl", false}, {"Nl", false}, {"NLD", false}, {"EU", false}, {"UK", false},
		{"XK", false}, {"ZZ", false}, {"AA", false}, {"N", false}, {" NL", false},
	} {
		if got := ValidCountry(tc.code); got != tc.want {
			t.Errorf("ValidCountry(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
	tab, err := os.ReadFile("/usr/share/zoneinfo/iso3166.tab")
	if err != nil {
		t.Skipf("no tzdata iso3166.tab to compare with: %v", err)
	}
	var want []string
	for _, line := range strings.Split(string(tab), "\n") {
		if code, _, ok := strings.Cut(line, "\t"); ok && !strings.HasPrefix(line, "#") {
			want = append(want, code)
		}
	}
	slices.Sort(want)
	if !slices.Equal(codes, want) {
		t.Errorf("the list differs from iso3166.tab:\nours   %v\ntzdata %v", codes, want)
	}
}
