package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// texts are the explanation's sentences, composed once per Compile so a
// call to Disclose formats nothing on its common paths.
type texts struct {
	record      string
	loopOK      string
	tlpWithin   [6]string // by record TLP
	tlpAbove    [6]string
	redNamed    string
	redNotNamed string
	restriction [5]string // record-level reason by restriction (0: unset, hence private)
	ntkDenied   string    // restriction need-to-know without a constituency match
	reshareOK   [6]string // a foreign record's TLP allows passing it on
	reshareNo   [6]string
	ntkOK       string
	ntkFail     string
	denyOK      string
	allowOK     string
	consent     [8]string // reason by granted consent bits
	gate        [8]string // rule of a field removed for lack of consent, by its gate
	// partRestriction is the rule of a part removed by its restriction:
	// [own=0 / inherited=1][restriction].
	partRestriction [2][5]string
	unrepresentable [numClasses]string
	notACode        [numClasses]string
	placeholder     [numClasses]string
	unknown         string
}

func (c *Compiled) buildTexts() {
	t := &c.text
	peer := c.peer
	t.record = "the record has a TLP marking and a valid restriction"
	t.loopOK = peer + " is neither the record's origin nor a team it already crossed"
	for tlp := irxv1.Tlp_TLP_CLEAR; tlp <= irxv1.Tlp_TLP_RED; tlp++ {
		t.tlpWithin[tlp] = fmt.Sprintf("%s is within %s's ceiling %s", tlpName(tlp), peer, tlpName(c.ceiling))
		t.tlpAbove[tlp] = fmt.Sprintf("%s is above %s's ceiling %s", tlpName(tlp), peer, tlpName(c.ceiling))
		switch {
		case tlp <= irxv1.Tlp_TLP_GREEN:
			t.reshareOK[tlp] = fmt.Sprintf("a foreign %s record may be passed on within the community", tlpName(tlp))
		default:
			t.reshareNo[tlp] = fmt.Sprintf("a foreign %s record is never passed on (TLP 2.0: no further disclosure beyond its recipient)", tlpName(tlp))
		}
	}
	t.redNamed = "TLP:RED: " + peer + " is a named recipient of the record"
	t.redNotNamed = "TLP:RED: " + peer + " is not a named recipient of the record; RED goes to named recipients only"
	t.restriction[irxv1.Restriction_RESTRICTION_UNSPECIFIED] = "restriction not set, hence private (the IODEF default): the record does not leave the team"
	t.restriction[irxv1.Restriction_RESTRICTION_PUBLIC] = "restriction public: anyone may receive the record"
	t.restriction[irxv1.Restriction_RESTRICTION_PARTNER] = "restriction partner: every peer under a sharing agreement may receive the record"
	t.restriction[irxv1.Restriction_RESTRICTION_NEED_TO_KNOW] = "restriction need-to-know: the record touches " + peer + "'s constituency"
	t.restriction[irxv1.Restriction_RESTRICTION_PRIVATE] = "restriction private: the record does not leave the team"
	t.ntkDenied = "restriction need-to-know: the record does not touch " + peer + "'s constituency (or it declares none)"
	t.ntkOK = "need-to-know: the record touches " + peer + "'s constituency"
	t.ntkFail = "need-to-know: no host address, ASN or domain of the record is in " + peer + "'s constituency"
	t.denyOK = "no taxonomy of the record is on the deny list"
	t.allowOK = "a taxonomy of the record is on the allow list"
	row := consentRow(c.recipient)
	for g := consentBits(0); g < 8; g++ {
		if row == "" {
			t.consent[g] = "vendors have no row in the reporter's consent table: the reporter's domain, hosts and contact information are withheld"
			continue
		}
		word := func(b consentBits) string {
			if g&b != 0 {
				return "yes"
			}
			return "no"
		}
		t.consent[g] = fmt.Sprintf("reporter's consent for %s: domain %s, hosts %s, contact %s; what is not consented to is withheld",
			row, word(consentDomain), word(consentHosts), word(consentContact))
	}
	who := row
	if who == "" {
		who = "vendors (no consent row)"
	}
	t.gate[consentDomain] = "the reporter did not consent to giving its domain to " + who
	t.gate[consentHosts] = "the reporter did not consent to giving its hosts to " + who
	t.gate[consentContact] = "the reporter did not consent to giving its contact information to " + who
	for r := irxv1.Restriction_RESTRICTION_UNSPECIFIED; r <= irxv1.Restriction_RESTRICTION_PRIVATE; r++ {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.String(), "RESTRICTION_"), "_", "-"))
		why := "the part does not leave the team"
		if r == irxv1.Restriction_RESTRICTION_NEED_TO_KNOW {
			why = "the record does not touch " + peer + "'s constituency"
		}
		t.partRestriction[0][r] = fmt.Sprintf("restriction %s on this part: %s", name, why)
		t.partRestriction[1][r] = fmt.Sprintf("restriction %s inherited from an enclosing part: %s", name, why)
	}
	for ci := 0; ci < numClasses; ci++ {
		class := irxv1.InfoClass(ci)
		t.unrepresentable[ci] = className(class) + ": generalise has no coarser form of this value; removed"
		t.notACode[ci] = className(class) + ": a code (language tag, media type, currency or country code, taxonomy entry) is kept as it is, and this value is not one; removed"
		_, _, rule := c.actionOf(class)
		t.placeholder[ci] = fmt.Sprintf("%s; the schema requires a taxonomy, so %s/%s stands in", rule, placeholderTaxonomyClass, placeholderTaxonomyType)
	}
	t.unknown = "fields unknown to this schema version have no information class: never disclosed (default deny)"
}

// consentRow is the row of the consent table that applies to a recipient
// class; "" for vendors, who have none.
func consentRow(rc irxv1.RecipientClass) string {
	switch rc {
	case irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM:
		return "response teams"
	case irxv1.RecipientClass_RECIPIENT_CLASS_SITE:
		return "sites involved"
	case irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT:
		return "law enforcement"
	}
	return ""
}

// grantedConsent reads the reporter's consent row for the recipient class.
// Absent consent is a refusal.
func grantedConsent(inc *irxv1.Incident, rc irxv1.RecipientClass) consentBits {
	dc := inc.GetDisclosureConsent()
	var row *irxv1.ConsentScope
	switch rc {
	case irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM:
		row = dc.GetResponseTeams()
	case irxv1.RecipientClass_RECIPIENT_CLASS_SITE:
		row = dc.GetSitesInvolved()
	case irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT:
		row = dc.GetLawEnforcement()
	}
	var g consentBits
	if row.GetDomain() {
		g |= consentDomain
	}
	if row.GetHosts() {
		g |= consentHosts
	}
	if row.GetContact() {
		g |= consentContact
	}
	return g
}

type reasonRec struct {
	code irxv1.ReasonCode
	ok   bool
	msg  string
}

func (w *walker) reason(code irxv1.ReasonCode, ok bool, msg string) {
	if w.nReasons < len(w.reasons) {
		w.reasons[w.nReasons] = reasonRec{code, ok, msg}
		w.nReasons++
	}
}

// conditions evaluates the record-level conditions in a fixed order,
// records each with its result, and reports whether all hold. Every
// condition is evaluated (not only up to the first failure) so the
// explanation names every reason a record was withheld.
func (w *walker) conditions() bool {
	c, inc, t := w.c, w.inc, &w.c.text
	if inc == nil {
		w.reason(irxv1.ReasonCode_REASON_CODE_RECORD, false, "no record")
		return false
	}
	if wt := inc.GetWithdrawTime(); wt != nil {
		// Peers that held the record were told to delete it; any version
		// disclosed now would undo that, whatever else the policy says.
		w.reason(irxv1.ReasonCode_REASON_CODE_RECORD, false,
			"the record was withdrawn at "+wt.AsTime().UTC().Format(time.RFC3339Nano)+"; a withdrawn record is never disclosed")
		return false
	}
	tlp, restr := inc.GetTlp(), inc.GetRestriction()
	switch {
	case tlp < irxv1.Tlp_TLP_CLEAR || tlp > irxv1.Tlp_TLP_RED:
		w.reason(irxv1.ReasonCode_REASON_CODE_RECORD, false, "the record has no valid TLP marking ("+tlp.String()+"); unmarked records are not disclosed")
		return false
	case restr < irxv1.Restriction_RESTRICTION_UNSPECIFIED || restr > irxv1.Restriction_RESTRICTION_PRIVATE:
		w.reason(irxv1.ReasonCode_REASON_CODE_RECORD, false, "the record's restriction "+strconv.Itoa(int(restr))+" is not a restriction; not disclosed")
		return false
	}
	w.reason(irxv1.ReasonCode_REASON_CODE_RECORD, true, t.record)
	ok := true
	check := func(code irxv1.ReasonCode, pass bool, yes, no string) {
		if pass {
			w.reason(code, true, yes)
		} else {
			w.reason(code, false, no)
			ok = false
		}
	}

	prov := inc.GetProvenance()
	idTeam, _, _ := strings.Cut(inc.GetId(), ":")
	origin := prov.GetOriginTeam()
	if origin == "" {
		origin = idTeam
	}
	switch {
	case c.peer == origin || c.peer == idTeam:
		// Either may name the origin; on a record where they differ
		// (which the node never stores), trust neither alone.
		check(irxv1.ReasonCode_REASON_CODE_LOOP, false, "", c.peer+" is the record's origin; records never go back to their origin")
	case c.peer == prov.GetReceivedFrom() || slices.Contains(prov.GetPath(), c.peer):
		check(irxv1.ReasonCode_REASON_CODE_LOOP, false, "", c.peer+" is on the record's path; records never go back to a team they crossed")
	default:
		check(irxv1.ReasonCode_REASON_CODE_LOOP, true, t.loopOK, "")
	}

	check(irxv1.ReasonCode_REASON_CODE_TLP_CEILING, tlp <= c.ceiling, t.tlpWithin[tlp], t.tlpAbove[tlp])
	if tlp == irxv1.Tlp_TLP_RED {
		check(irxv1.ReasonCode_REASON_CODE_TLP_RED_RECIPIENT, slices.Contains(inc.GetNamedRecipients(), c.peer), t.redNamed, t.redNotNamed)
	}

	eff := restr
	if eff == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		eff = irxv1.Restriction_RESTRICTION_PRIVATE
	}
	no := t.restriction[restr]
	if restr == irxv1.Restriction_RESTRICTION_NEED_TO_KNOW {
		no = t.ntkDenied
	}
	check(irxv1.ReasonCode_REASON_CODE_RESTRICTION, w.permitted(eff), t.restriction[restr], no)

	// A foreign record is one this team received: passing it on is a
	// re-share, which its TLP, the terms the team it came from granted us
	// and the hop limit govern.
	hops := len(prov.GetPath()) + 1 // transfers from the origin once the peer holds it
	limit := int(max(c.maxHops, 1))
	foreign := prov.GetReceivedFrom() != "" || len(prov.GetPath()) > 0
	upstream := prov.GetReshare()
	if foreign {
		check(irxv1.ReasonCode_REASON_CODE_RESHARE, tlp <= irxv1.Tlp_TLP_GREEN, t.reshareOK[tlp], t.reshareNo[tlp])
		granted, msg := upstreamAllows(upstream, upstreamOf(prov, origin))
		check(irxv1.ReasonCode_REASON_CODE_RESHARE, granted, msg, msg)
		msg = fmt.Sprintf("the record crossed %d team(s) after its origin; passing it to %s makes %d transfer(s) of at most %d", len(prov.GetPath()), c.peer, hops, limit)
		check(irxv1.ReasonCode_REASON_CODE_HOP_LIMIT, hops <= limit, msg, msg)
	}

	if c.needToKnow {
		check(irxv1.ReasonCode_REASON_CODE_NEED_TO_KNOW, w.ntk(), t.ntkOK, t.ntkFail)
	}
	if len(c.deny) > 0 {
		if e, tax, hit := firstMatch(c.deny, inc); hit {
			check(irxv1.ReasonCode_REASON_CODE_TAXONOMY_DENY, false, "", fmt.Sprintf("taxonomy %s/%s is denied by taxonomy_deny entry %s", tax.GetClass(), tax.GetType(), e))
		} else {
			check(irxv1.ReasonCode_REASON_CODE_TAXONOMY_DENY, true, t.denyOK, "")
		}
	}
	if len(c.allow) > 0 {
		_, _, hit := firstMatch(c.allow, inc)
		check(irxv1.ReasonCode_REASON_CODE_TAXONOMY_ALLOW, hit, t.allowOK, "no taxonomy of the record is on the allow list")
	}
	w.granted = grantedConsent(inc, c.recipient)
	w.reason(irxv1.ReasonCode_REASON_CODE_CONSENT, true, t.consent[w.granted])

	// Re-share terms: TLP decides whether at all, the hop limit how far.
	// A team cannot grant more than it was granted, so a foreign record's
	// terms are also bounded by those it came with: what TLP alone would
	// allow may be wider than what the origin or a team on the path
	// decided.
	switch {
	case tlp == irxv1.Tlp_TLP_CLEAR:
		w.reshare = irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED
	case tlp == irxv1.Tlp_TLP_GREEN:
		w.reshare = irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY
	default:
		w.reshare = irxv1.ReshareScope_RESHARE_SCOPE_NONE
	}
	if foreign {
		w.reshare = min(w.reshare, scopeOf(upstream))
	}
	if w.reshare != irxv1.ReshareScope_RESHARE_SCOPE_NONE && hops < limit {
		w.hopsLeft = uint32(limit - hops)
		if foreign {
			// The transfer to the peer spends one of the hops we were
			// left; max keeps an exhausted grant (already refused
			// above) from wrapping around.
			w.hopsLeft = min(w.hopsLeft, max(upstream.GetHopsLeft(), 1)-1)
		}
	}
	return ok
}

// upstreamOf names the team a foreign record came from, for the
// explanation. received_from says it; without it, the holder is the last
// team on the path, so the sender is the one before it, or the origin.
func upstreamOf(prov *irxv1.Provenance, origin string) string {
	if from := prov.GetReceivedFrom(); from != "" {
		return from
	}
	if p := prov.GetPath(); len(p) >= 2 {
		return p[len(p)-2]
	}
	if origin != "" {
		return origin
	}
	return "the upstream team"
}

// upstreamAllows reads the terms a foreign record came with: whether they
// let this team pass it on, and a sentence saying what was granted. Terms
// that are absent, or that contradict themselves (may_reshare with a
// scope of none), are a refusal: a record that has crossed teams goes on
// only where every team before us said it may.
func upstreamAllows(up *irxv1.ReshareTerms, from string) (bool, string) {
	switch {
	case up == nil:
		return false, from + " granted no re-share terms; a foreign record without them is not passed on (default deny)"
	case !up.GetMayReshare():
		return false, from + " granted no re-share"
	case scopeOf(up) == irxv1.ReshareScope_RESHARE_SCOPE_NONE:
		return false, from + " granted re-share with scope " + scopeName(up.GetScope()) + ", which allows no further disclosure"
	case up.GetHopsLeft() == 0:
		return false, from + " granted re-share with no transfer left"
	}
	return true, fmt.Sprintf("%s's terms allow %d more transfer(s), scope %s", from, up.GetHopsLeft(), scopeName(up.GetScope()))
}

// scopeOf is the scope granted by terms, an unset or unknown scope being
// the narrowest.
func scopeOf(up *irxv1.ReshareTerms) irxv1.ReshareScope {
	switch s := up.GetScope(); s {
	case irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY, irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED:
		return s
	}
	return irxv1.ReshareScope_RESHARE_SCOPE_NONE
}

func scopeName(s irxv1.ReshareScope) string {
	switch s {
	case irxv1.ReshareScope_RESHARE_SCOPE_UNSPECIFIED:
		return "unset"
	case irxv1.ReshareScope_RESHARE_SCOPE_NONE:
		return "none"
	case irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY:
		return "community"
	case irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED:
		return "unlimited"
	}
	return strconv.Itoa(int(s))
}

// firstMatch finds the first taxonomy of the record (primary, then
// additional) that an entry matches.
func firstMatch(entries []taxEntry, inc *irxv1.Incident) (taxEntry, *irxv1.Taxonomy, bool) {
	try := func(t *irxv1.Taxonomy) (taxEntry, bool) {
		for _, e := range entries {
			if e.matches(t) {
				return e, true
			}
		}
		return taxEntry{}, false
	}
	if e, ok := try(inc.GetTaxonomy()); ok {
		return e, inc.GetTaxonomy(), true
	}
	for _, t := range inc.GetAdditionalTaxonomies() {
		if e, ok := try(t); ok {
			return e, t, true
		}
	}
	return taxEntry{}, nil, false
}

// permitted is the IODEF restriction rule for this peer: public and partner
// admit every peer (a peer is by definition a party to a sharing
// agreement), need-to-know admits a peer whose constituency the record
// touches, private admits none. Unknown values admit none.
func (w *walker) permitted(r irxv1.Restriction) bool {
	switch r {
	case irxv1.Restriction_RESTRICTION_PUBLIC, irxv1.Restriction_RESTRICTION_PARTNER:
		return true
	case irxv1.Restriction_RESTRICTION_NEED_TO_KNOW:
		return w.ntk()
	}
	return false
}

// ntk reports, computing it at most once per call, whether the record
// touches the peer's constituency.
func (w *walker) ntk() bool {
	if !w.ntkDone {
		w.ntkHolds = w.c.touches(w.inc)
		w.ntkDone = true
	}
	return w.ntkHolds
}

// touches reports whether a host address or prefix, ASN, or host or domain
// name of the record lies in the constituency. It looks at victim and
// attacking hosts, the reporting site's domain and the address, domain,
// URL, e-mail and ASN indicators, but not at parts whose effective
// restriction is private: a part that never leaves must not be what makes
// the rest leave.
func (c *Compiled) touches(inc *irxv1.Incident) bool {
	if len(c.cidrs) == 0 && len(c.asns) == 0 && len(c.domains) == 0 {
		return false
	}
	root := inc.GetRestriction()
	if root == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		root = irxv1.Restriction_RESTRICTION_PRIVATE
	}
	// private: the part never leaves (private, or not a restriction at
	// all), so it must not count.
	private := func(own irxv1.Restriction) bool {
		if own == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
			own = root
		}
		return own < irxv1.Restriction_RESTRICTION_PUBLIC || own > irxv1.Restriction_RESTRICTION_NEED_TO_KNOW
	}
	host := func(h *irxv1.Host) bool {
		if private(h.GetRestriction()) {
			return false
		}
		for _, a := range h.GetAddresses() {
			if c.hasAddress(a) {
				return true
			}
		}
		return c.hasASN(h.GetAsn()) || c.hasName(h.GetHostname()) || c.hasName(h.GetDomain())
	}
	for _, h := range inc.GetVictimHosts() {
		if host(h) {
			return true
		}
	}
	for _, h := range inc.GetAttackingHosts() {
		if host(h) {
			return true
		}
	}
	if !private(irxv1.Restriction_RESTRICTION_UNSPECIFIED) && c.hasName(inc.GetReportingSite().GetDomain()) {
		return true
	}
	for _, ind := range inc.GetIndicators() {
		if private(ind.GetRestriction()) {
			continue
		}
		v := ind.GetValue()
		switch ind.GetKind() {
		case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
			if c.hasAddress(v) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
			if c.hasName(v) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_URL:
			if h := urlHost(v); c.hasName(h) || c.hasAddress(h) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_EMAIL:
			if at := strings.LastIndexByte(v, '@'); at >= 0 && c.hasName(v[at+1:]) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_ASN:
			if n, ok := parseASN(v); ok && c.hasASN(n) {
				return true
			}
		}
	}
	return false
}

// parseASN reads an ASN indicator: "AS64500" (the prefix in any case) or
// "64500".
func parseASN(v string) (uint32, bool) {
	if len(v) > 2 && strings.EqualFold(v[:2], "AS") {
		v = v[2:]
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

// hasAddress reports whether an address, or all of a prefix, lies in a
// constituency prefix.
func (c *Compiled) hasAddress(s string) bool {
	if len(c.cidrs) == 0 {
		return false
	}
	p, ok := parseAddrOrPrefix(s)
	if !ok {
		return false
	}
	for _, cp := range c.cidrs {
		if cp.Bits() <= p.Bits() && cp.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func (c *Compiled) hasASN(a uint32) bool {
	if a == 0 {
		return false
	}
	_, found := slices.BinarySearch(c.asns, a)
	return found
}

// hasName reports whether a host or domain name is a constituency domain or
// beneath one, ignoring ASCII case as DNS does (RFC 4343): Unicode case
// folding would match names that are not the domain ("ſ" folds to "s").
func (c *Compiled) hasName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	for _, d := range c.domains {
		if len(name) == len(d) && equalFoldASCII(name, d) ||
			len(name) > len(d) && name[len(name)-len(d)-1] == '.' && equalFoldASCII(name[len(name)-len(d):], d) {
			return true
		}
	}
	return false
}

// equalFoldASCII compares a name with a lower-case domain, folding only
// ASCII letters.
func equalFoldASCII(name, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseAddrOrPrefix reads "192.0.2.1" (as a /32) or "192.0.2.0/24", with
// IPv4-mapped IPv6 addresses unmapped and zones dropped.
func parseAddrOrPrefix(s string) (netip.Prefix, bool) {
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if a := p.Addr(); a.Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				bits = 0
			}
			return netip.PrefixFrom(a.Unmap(), bits), true
		}
		return p, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), true
}

// urlHost is the host part of a URL ("https://user@host:8443/path" ->
// "host"; "[2001:db8::1]:443" -> "2001:db8::1"), or the string itself when
// it has no scheme.
func urlHost(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			return s[1:i]
		}
		return s
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
		s = s[:i]
	}
	return s
}
