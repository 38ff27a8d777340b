package policy

import (
	"net/netip"
	"strings"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// WarningRecipient decides whether a peer receives a warning under our
// policy p for it: default deny (no policy, no warning); the warning's TLP
// must be a marking a warning may carry (not RED) and within the policy's
// ceiling; and, unless the warning is for all peers, it must touch the
// constituency the policy declares for the peer (an affected prefix that
// overlaps one of its prefixes, one of its ASNs, a domain equal to, above
// or under one of its domains). why says which condition decided.
func WarningRecipient(w *irxv1.Warning, p *irxv1.DisclosurePolicy) (ok bool, why string) {
	switch {
	case p == nil || p.GetVersion() == 0:
		return false, "no policy for the peer"
	case w.GetTlp() < irxv1.Tlp_TLP_CLEAR || w.GetTlp() > irxv1.Tlp_TLP_AMBER_STRICT:
		return false, "a warning's TLP must be CLEAR to AMBER+STRICT"
	case p.GetTlpCeiling() < irxv1.Tlp_TLP_CLEAR || p.GetTlpCeiling() > irxv1.Tlp_TLP_RED || tlpRank(w.GetTlp()) > tlpRank(p.GetTlpCeiling()):
		return false, "the warning's TLP is above the peer's ceiling"
	case w.GetAllPeers():
		return true, "for all peers"
	case touches(w, p.GetConstituency()):
		return true, "touches the peer's constituency"
	}
	return false, "does not touch the peer's constituency"
}

func touches(w *irxv1.Warning, c *irxv1.Constituency) bool {
	for _, a := range w.GetAffectedCidrs() {
		pa, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		for _, b := range c.GetCidrs() {
			if pb, err := netip.ParsePrefix(b); err == nil && pa.Overlaps(pb) {
				return true
			}
		}
	}
	for _, a := range w.GetAffectedAsns() {
		for _, b := range c.GetAsns() {
			if a == b {
				return true
			}
		}
	}
	for _, a := range w.GetAffectedDomains() {
		a = strings.ToLower(strings.TrimSuffix(a, "."))
		for _, b := range c.GetDomains() {
			b = strings.ToLower(strings.TrimSuffix(b, "."))
			if a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a) {
				return true
			}
		}
	}
	return false
}
