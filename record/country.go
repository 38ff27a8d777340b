package record

import (
	"strings"
	"sync"
)

// iso3166Alpha2 is ISO 3166-1's officially assigned alpha-2 codes (249),
// as the ISO 3166 Maintenance Agency lists them in its Online Browsing
// Platform (https://www.iso.org/obp/ui/#search/code/), by first letter.
// Exceptionally, transitionally, indeterminately reserved and
// user-assigned codes (EU, UK, XK, AA, ZZ, ...) are not countries here.
// The same 249 are in the IANA time zone database's iso3166.tab and in
// Debian's iso-codes; TestCountryList compares with the former when the
// host has it. A code the Agency assigns later is refused until it is
// added here, on every node of a team and at its partners, like a schema
// change.
const iso3166Alpha2 = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ " +
	"BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ " +
	"DE DJ DK DM DO DZ " +
	"EC EE EG EH ER ES ET " +
	"FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY " +
	"HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT " +
	"JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ " +
	"LA LB LC LI LK LR LS LT LU LV LY " +
	"MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ " +
	"OM " +
	"PA PE PF PG PH PK PL PM PN PR PS PT PW PY " +
	"QA " +
	"RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ " +
	"TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ " +
	"VA VC VE VG VI VN VU " +
	"WF WS " +
	"YE YT " +
	"ZA ZM ZW"

var countries = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool, 249)
	for _, c := range strings.Fields(iso3166Alpha2) {
		m[c] = true
	}
	return m
})

// ValidCountry reports whether code is an ISO 3166-1 alpha-2 country code
// the standard assigns, as it writes them (two upper-case letters, e.g.
// "NL").
func ValidCountry(code string) bool { return countries()[code] }

// Countries returns the ISO 3166-1 alpha-2 codes, sorted.
func Countries() []string { return strings.Fields(iso3166Alpha2) }
