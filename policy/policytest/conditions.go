package policytest

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// conditions evaluates the record-level conditions of policy/doc.go in
// their order, every one of them, and reports whether all hold.
func (r *run) conditions() bool {
	inc, p := r.inc, r.p
	record := irxv1.ReasonCode_REASON_CODE_RECORD
	if inc == nil {
		r.reason(record, false, "no record")
		return false
	}
	if wt := inc.GetWithdrawTime(); wt != nil {
		r.reason(record, false, "the record was withdrawn at "+wt.AsTime().UTC().Format(time.RFC3339Nano)+"; a withdrawn record is never disclosed")
		return false
	}
	tlp, restr := inc.GetTlp(), inc.GetRestriction()
	if tlp < irxv1.Tlp_TLP_CLEAR || tlp > irxv1.Tlp_TLP_RED {
		r.reason(record, false, "the record has no valid TLP marking ("+tlp.String()+"); unmarked records are not disclosed")
		return false
	}
	if _, ok := restrictionName(restr); !ok {
		r.reason(record, false, "the record's restriction "+strconv.Itoa(int(restr))+" is not a restriction; not disclosed")
		return false
	}
	r.reason(record, true, "the record has a TLP marking and a valid restriction")
	r.granted = r.consent()

	all := true
	check := func(code irxv1.ReasonCode, ok bool, yes, no string) {
		if ok {
			r.reason(code, true, yes)
			return
		}
		r.reason(code, false, no)
		all = false
	}
	peer := r.peer
	prov := inc.GetProvenance()
	idTeam, _, _ := strings.Cut(inc.GetId(), ":")
	origin := prov.GetOriginTeam()
	if origin == "" {
		origin = idTeam
	}
	loop := irxv1.ReasonCode_REASON_CODE_LOOP
	switch {
	case peer == origin || peer == idTeam:
		check(loop, false, "", peer+" is the record's origin; records never go back to their origin")
	case peer == prov.GetReceivedFrom() || slices.Contains(prov.GetPath(), peer):
		check(loop, false, "", peer+" is on the record's path; records never go back to a team they crossed")
	default:
		check(loop, true, peer+" is neither the record's origin nor a team it already crossed", "")
	}

	ceiling := p.GetTlpCeiling()
	check(irxv1.ReasonCode_REASON_CODE_TLP_CEILING, tlp <= ceiling,
		fmt.Sprintf("%s is within %s's ceiling %s", tlpName(tlp), peer, tlpName(ceiling)),
		fmt.Sprintf("%s is above %s's ceiling %s", tlpName(tlp), peer, tlpName(ceiling)))
	if tlp == irxv1.Tlp_TLP_RED {
		check(irxv1.ReasonCode_REASON_CODE_TLP_RED_RECIPIENT, slices.Contains(inc.GetNamedRecipients(), peer),
			"TLP:RED: "+peer+" is a named recipient of the record",
			"TLP:RED: "+peer+" is not a named recipient of the record; RED goes to named recipients only")
	}

	eff := restr
	if eff == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		eff = irxv1.Restriction_RESTRICTION_PRIVATE
	}
	said := map[irxv1.Restriction]string{
		irxv1.Restriction_RESTRICTION_UNSPECIFIED:  "restriction not set, hence private (the IODEF default): the record does not leave the team",
		irxv1.Restriction_RESTRICTION_PUBLIC:       "restriction public: anyone may receive the record",
		irxv1.Restriction_RESTRICTION_PARTNER:      "restriction partner: every peer under a sharing agreement may receive the record",
		irxv1.Restriction_RESTRICTION_NEED_TO_KNOW: "restriction need-to-know: the record touches " + peer + "'s constituency",
		irxv1.Restriction_RESTRICTION_PRIVATE:      "restriction private: the record does not leave the team",
	}
	no := said[restr]
	if restr == irxv1.Restriction_RESTRICTION_NEED_TO_KNOW {
		no = "restriction need-to-know: the record does not touch " + peer + "'s constituency (or it declares none)"
	}
	check(irxv1.ReasonCode_REASON_CODE_RESTRICTION, r.permitted(eff), said[restr], no)

	if foreign(inc) {
		reshare := irxv1.ReasonCode_REASON_CODE_RESHARE
		check(reshare, tlp <= irxv1.Tlp_TLP_GREEN,
			fmt.Sprintf("a foreign %s record may be passed on within the community", tlpName(tlp)),
			fmt.Sprintf("a foreign %s record is never passed on (TLP 2.0: no further disclosure beyond its recipient)", tlpName(tlp)))
		ok, msg := upstreamTerms(prov.GetReshare(), upstreamName(prov, origin))
		check(reshare, ok, msg, msg)
		hops, limit := transfers(inc), hopLimit(p)
		msg = fmt.Sprintf("the record crossed %d team(s) after its origin; passing it to %s makes %d transfer(s) of at most %d",
			len(prov.GetPath()), peer, hops, limit)
		check(irxv1.ReasonCode_REASON_CODE_HOP_LIMIT, hops <= limit, msg, msg)
	}
	if p.GetNeedToKnow() {
		check(irxv1.ReasonCode_REASON_CODE_NEED_TO_KNOW, r.needToKnow(),
			"need-to-know: the record touches "+peer+"'s constituency",
			"need-to-know: no host address, ASN or domain of the record is in "+peer+"'s constituency")
	}
	if deny := p.GetTaxonomyDeny(); len(deny) > 0 {
		entry, tax, hit := firstMatch(deny, inc)
		check(irxv1.ReasonCode_REASON_CODE_TAXONOMY_DENY, !hit, "no taxonomy of the record is on the deny list",
			fmt.Sprintf("taxonomy %s/%s is denied by taxonomy_deny entry %s", tax.GetClass(), tax.GetType(), entry))
	}
	if allow := p.GetTaxonomyAllow(); len(allow) > 0 {
		_, _, hit := firstMatch(allow, inc)
		check(irxv1.ReasonCode_REASON_CODE_TAXONOMY_ALLOW, hit, "a taxonomy of the record is on the allow list", "no taxonomy of the record is on the allow list")
	}
	r.reason(irxv1.ReasonCode_REASON_CODE_CONSENT, true, r.consentSaid())
	return all
}

func (r *run) reason(code irxv1.ReasonCode, ok bool, msg string) {
	r.reasons = append(r.reasons, &irxv1.Reason{Code: code, Satisfied: ok, Message: msg})
}

// foreign: a record this team received (it names whom from, or a path).
func foreign(inc *irxv1.Incident) bool {
	return inc.GetProvenance().GetReceivedFrom() != "" || len(inc.GetProvenance().GetPath()) > 0
}

// transfers is the number of team-to-team transfers from the origin once
// the peer holds the record.
func transfers(inc *irxv1.Incident) int { return len(inc.GetProvenance().GetPath()) + 1 }

func hopLimit(p *irxv1.DisclosurePolicy) int { return int(max(p.GetMaxHops(), 1)) }

func upstreamName(prov *irxv1.Provenance, origin string) string {
	switch path := prov.GetPath(); {
	case prov.GetReceivedFrom() != "":
		return prov.GetReceivedFrom()
	case len(path) >= 2:
		return path[len(path)-2]
	case origin != "":
		return origin
	}
	return "the upstream team"
}

// upstreamTerms reads the terms a foreign record came with.
func upstreamTerms(up *irxv1.ReshareTerms, from string) (bool, string) {
	switch {
	case up == nil:
		return false, from + " granted no re-share terms; a foreign record without them is not passed on (default deny)"
	case !up.GetMayReshare():
		return false, from + " granted no re-share"
	case grantedScope(up) == irxv1.ReshareScope_RESHARE_SCOPE_NONE:
		return false, from + " granted re-share with scope " + scopeName(up.GetScope()) + ", which allows no further disclosure"
	case up.GetHopsLeft() == 0:
		return false, from + " granted re-share with no transfer left"
	}
	return true, fmt.Sprintf("%s's terms allow %d more transfer(s), scope %s", from, up.GetHopsLeft(), scopeName(up.GetScope()))
}

// grantedScope: community and unlimited mean what they say; anything else
// grants nothing.
func grantedScope(up *irxv1.ReshareTerms) irxv1.ReshareScope {
	if s := up.GetScope(); s == irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY || s == irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED {
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

// terms are the re-share terms the view goes out with.
func (r *run) terms() *irxv1.ReshareTerms {
	inc := r.inc
	scope := irxv1.ReshareScope_RESHARE_SCOPE_NONE
	switch inc.GetTlp() {
	case irxv1.Tlp_TLP_CLEAR:
		scope = irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED
	case irxv1.Tlp_TLP_GREEN:
		scope = irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY
	}
	up := inc.GetProvenance().GetReshare()
	if foreign(inc) {
		scope = min(scope, grantedScope(up))
	}
	var left int
	if hops, limit := transfers(inc), hopLimit(r.p); scope != irxv1.ReshareScope_RESHARE_SCOPE_NONE && hops < limit {
		left = limit - hops
		if foreign(inc) {
			left = min(left, int(up.GetHopsLeft())-1)
		}
	}
	left = max(left, 0)
	return &irxv1.ReshareTerms{MayReshare: left > 0, Scope: scope, HopsLeft: uint32(left)}
}

// firstMatch finds the first taxonomy of the record (primary, then
// additional) that an entry ("class" or "class/type") matches, and the
// first entry that matches it.
func firstMatch(entries []string, inc *irxv1.Incident) (string, *irxv1.Taxonomy, bool) {
	taxa := append([]*irxv1.Taxonomy{inc.GetTaxonomy()}, inc.GetAdditionalTaxonomies()...)
	for _, t := range taxa {
		if t == nil {
			continue
		}
		for _, e := range entries {
			class, typ, hasType := strings.Cut(e, "/")
			if class == t.GetClass() && (!hasType || typ == t.GetType()) {
				return e, t, true
			}
		}
	}
	return "", nil, false
}

// permitted is IODEF's restriction for a peer.
func (r *run) permitted(res irxv1.Restriction) bool {
	switch res {
	case irxv1.Restriction_RESTRICTION_PUBLIC, irxv1.Restriction_RESTRICTION_PARTNER:
		return true
	case irxv1.Restriction_RESTRICTION_NEED_TO_KNOW:
		return r.needToKnow()
	}
	return false
}

// needToKnow reports whether something of the record that may leave lies
// in the peer's constituency.
func (r *run) needToKnow() bool {
	c := r.p.GetConstituency()
	inc := r.inc
	root := inc.GetRestriction()
	if root == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
		root = irxv1.Restriction_RESTRICTION_PRIVATE
	}
	leaves := func(own irxv1.Restriction) bool {
		if own == irxv1.Restriction_RESTRICTION_UNSPECIFIED {
			own = root
		}
		return own == irxv1.Restriction_RESTRICTION_PUBLIC || own == irxv1.Restriction_RESTRICTION_PARTNER ||
			own == irxv1.Restriction_RESTRICTION_NEED_TO_KNOW
	}
	for _, h := range append(slices.Clone(inc.GetVictimHosts()), inc.GetAttackingHosts()...) {
		if !leaves(h.GetRestriction()) {
			continue
		}
		for _, a := range h.GetAddresses() {
			if inCIDRs(c, a) {
				return true
			}
		}
		if slices.Contains(c.GetAsns(), h.GetAsn()) && h.GetAsn() != 0 || inDomains(c, h.GetHostname()) || inDomains(c, h.GetDomain()) {
			return true
		}
	}
	if leaves(irxv1.Restriction_RESTRICTION_UNSPECIFIED) && inDomains(c, inc.GetReportingSite().GetDomain()) {
		return true
	}
	for _, ind := range inc.GetIndicators() {
		if !leaves(ind.GetRestriction()) {
			continue
		}
		v := ind.GetValue()
		switch ind.GetKind() {
		case irxv1.IndicatorKind_INDICATOR_KIND_IPV4, irxv1.IndicatorKind_INDICATOR_KIND_IPV6:
			if inCIDRs(c, v) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN:
			if inDomains(c, v) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_URL:
			if h := urlHost(v); inDomains(c, h) || inCIDRs(c, h) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_EMAIL:
			if at := strings.LastIndex(v, "@"); at >= 0 && inDomains(c, v[at+1:]) {
				return true
			}
		case irxv1.IndicatorKind_INDICATOR_KIND_ASN:
			digits := v
			if len(v) > 2 && strings.EqualFold(v[:2], "as") {
				digits = v[2:]
			}
			if n, err := strconv.ParseUint(digits, 10, 32); err == nil && n != 0 && slices.Contains(c.GetAsns(), uint32(n)) {
				return true
			}
		}
	}
	return false
}

// inCIDRs: an address, or all of a prefix, lies in a constituency CIDR.
func inCIDRs(c *irxv1.Constituency, s string) bool {
	p, ok := addressOrPrefix(s)
	if !ok {
		return false
	}
	for _, cidr := range c.GetCidrs() {
		cp := netip.MustParsePrefix(cidr) // policy.Validate parsed it
		if cp.Bits() <= p.Bits() && cp.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// inDomains: a name is a constituency domain or beneath one, whatever the
// case of its ASCII letters (as DNS compares names), with or without its
// final dot.
func inDomains(c *irxv1.Constituency, name string) bool {
	name = lowerASCII(strings.TrimSuffix(name, "."))
	if name == "" {
		return false
	}
	for _, d := range c.GetDomains() {
		d = lowerASCII(strings.TrimSuffix(d, "."))
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

// consent reads the reporter's consent row for the policy's recipient
// class; a missing row or column is a refusal.
func (r *run) consent() map[string]bool {
	var row *irxv1.ConsentScope
	dc := r.inc.GetDisclosureConsent()
	switch r.p.GetRecipientClass() {
	case irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM:
		row = dc.GetResponseTeams()
	case irxv1.RecipientClass_RECIPIENT_CLASS_SITE:
		row = dc.GetSitesInvolved()
	case irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT:
		row = dc.GetLawEnforcement()
	}
	return map[string]bool{"domain": row.GetDomain(), "hosts": row.GetHosts(), "contact": row.GetContact()}
}

func (r *run) consentRow() string {
	switch r.p.GetRecipientClass() {
	case irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM:
		return "response teams"
	case irxv1.RecipientClass_RECIPIENT_CLASS_SITE:
		return "sites involved"
	case irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT:
		return "law enforcement"
	}
	return ""
}

func (r *run) consentWho() string {
	if row := r.consentRow(); row != "" {
		return row
	}
	return "vendors (no consent row)"
}

func (r *run) consentSaid() string {
	row := r.consentRow()
	if row == "" {
		return "vendors have no row in the reporter's consent table: the reporter's domain, hosts and contact information are withheld"
	}
	yes := func(col string) string {
		if r.granted[col] {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprintf("reporter's consent for %s: domain %s, hosts %s, contact %s; what is not consented to is withheld",
		row, yes("domain"), yes("hosts"), yes("contact"))
}

// actionOf is a class's action, and the cause and rule the explanation
// gives for it.
func (r *run) actionOf(class irxv1.InfoClass) (irxv1.DisclosureAction, irxv1.DecisionCause, string) {
	switch {
	case class == handling:
		return forward, irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE, "handling: always forwarded, so the peer can honour the record's markings"
	case class <= irxv1.InfoClass_INFO_CLASS_UNSPECIFIED || class > handling:
		return strip, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY, "no information class: never disclosed (default deny)"
	}
	for i, rule := range r.p.GetRules() {
		if rule.GetInfoClass() == class {
			return rule.GetAction(), irxv1.DecisionCause_DECISION_CAUSE_CLASS_RULE,
				fmt.Sprintf("%s: %s (rules[%d])", className(class), r.actionText(rule, class), i)
		}
	}
	return strip, irxv1.DecisionCause_DECISION_CAUSE_DEFAULT_DENY, className(class) + ": no rule names this class; stripped (default deny)"
}

func (r *run) actionText(rule *irxv1.ClassRule, class irxv1.InfoClass) string {
	switch rule.GetAction() {
	case pseudonymise:
		return "pseudonymise: names, addresses and ASNs replaced by tokens keyed for this peer; enums, flags, numbers and times kept"
	case generalise:
		const rest = "times to the day, e-mail to @domain, names to their last two labels, amounts, sizes and counts to their first digit; ASNs and other text removed"
		if !holdsAddresses(class) {
			return "generalise: " + rest
		}
		v4, v6 := r.prefixLengths(class)
		return fmt.Sprintf("generalise: addresses to /%d (IPv4) and /%d (IPv6), %s", v4, v6, rest)
	}
	return strings.ToLower(strings.TrimPrefix(rule.GetAction().String(), "DISCLOSURE_ACTION_"))
}

// prefixLengths are the lengths generalise cuts a class's addresses to.
func (r *run) prefixLengths(class irxv1.InfoClass) (int, int) {
	v4, v6 := policy.DefaultIPv4PrefixLength, policy.DefaultIPv6PrefixLength
	for _, rule := range r.p.GetRules() {
		if rule.GetInfoClass() != class {
			continue
		}
		if rule.Ipv4PrefixLength != nil {
			v4 = int(rule.GetIpv4PrefixLength())
		}
		if rule.Ipv6PrefixLength != nil {
			v6 = int(rule.GetIpv6PrefixLength())
		}
	}
	return v4, v6
}

func className(c irxv1.InfoClass) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "INFO_CLASS_"))
}

func tlpName(t irxv1.Tlp) string {
	switch t {
	case irxv1.Tlp_TLP_CLEAR:
		return "TLP:CLEAR"
	case irxv1.Tlp_TLP_GREEN:
		return "TLP:GREEN"
	case irxv1.Tlp_TLP_AMBER:
		return "TLP:AMBER"
	case irxv1.Tlp_TLP_AMBER_STRICT:
		return "TLP:AMBER+STRICT"
	case irxv1.Tlp_TLP_RED:
		return "TLP:RED"
	}
	return "TLP " + strconv.Itoa(int(t))
}

// restrictionName is how the explanation writes a restriction
// ("need-to-know"); ok is false for a number that is none.
func restrictionName(r irxv1.Restriction) (string, bool) {
	switch r {
	case irxv1.Restriction_RESTRICTION_UNSPECIFIED:
		return "unspecified", true
	case irxv1.Restriction_RESTRICTION_PUBLIC:
		return "public", true
	case irxv1.Restriction_RESTRICTION_PARTNER:
		return "partner", true
	case irxv1.Restriction_RESTRICTION_NEED_TO_KNOW:
		return "need-to-know", true
	case irxv1.Restriction_RESTRICTION_PRIVATE:
		return "private", true
	}
	return "", false
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
