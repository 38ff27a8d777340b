package policy

import (
	"testing"

	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func TestWarningRecipient(t *testing.T) {
	pol := func(ceiling irxv1.Tlp, c *irxv1.Constituency) *irxv1.DisclosurePolicy {
		return &irxv1.DisclosurePolicy{PeerTeamId: "cert-b", Version: 1, TlpCeiling: ceiling, Constituency: c}
	}
	b := &irxv1.Constituency{Cidrs: []string{"198.51.100.0/24"}, Asns: []uint32{64500}, Domains: []string{"cert-b.example"}}
	for _, c := range []struct {
		name string
		w    *irxv1.Warning
		p    *irxv1.DisclosurePolicy
		want bool
	}{
		{"no policy", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_CLEAR, AllPeers: true}, nil, false},
		{"policy version 0", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_CLEAR, AllPeers: true}, &irxv1.DisclosurePolicy{TlpCeiling: irxv1.Tlp_TLP_RED}, false},
		{"all peers", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_GREEN, AllPeers: true}, pol(irxv1.Tlp_TLP_GREEN, nil), true},
		{"above the ceiling", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AllPeers: true}, pol(irxv1.Tlp_TLP_GREEN, b), false},
		{"red never", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_RED, AllPeers: true}, pol(irxv1.Tlp_TLP_RED, b), false},
		{"prefix inside", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedCidrs: []string{"198.51.100.0/25"}}, pol(irxv1.Tlp_TLP_AMBER, b), true},
		{"prefix around", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedCidrs: []string{"198.51.0.0/16"}}, pol(irxv1.Tlp_TLP_AMBER, b), true},
		{"prefix elsewhere", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedCidrs: []string{"203.0.113.0/24"}}, pol(irxv1.Tlp_TLP_AMBER, b), false},
		{"asn", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedAsns: []uint32{64500}}, pol(irxv1.Tlp_TLP_AMBER, b), true},
		{"sub-domain", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedDomains: []string{"VPN.cert-b.example."}}, pol(irxv1.Tlp_TLP_AMBER, b), true},
		{"other domain", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedDomains: []string{"xcert-b.example"}}, pol(irxv1.Tlp_TLP_AMBER, b), false},
		{"no constituency", &irxv1.Warning{Tlp: irxv1.Tlp_TLP_AMBER, AffectedCidrs: []string{"198.51.100.0/24"}}, pol(irxv1.Tlp_TLP_AMBER, nil), false},
	} {
		if got, why := WarningRecipient(c.w, c.p); got != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, got, why, c.want)
		}
	}
}

// No warning ever goes to a peer without a policy, above its ceiling, or
// marked RED.
func TestWarningRecipientNeverAboveTheCeiling(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tlp := irxv1.Tlp(rapid.Int32Range(0, 7).Draw(t, "tlp"))
		ceiling := irxv1.Tlp(rapid.Int32Range(0, 7).Draw(t, "ceiling"))
		version := rapid.Int64Range(0, 2).Draw(t, "version")
		w := &irxv1.Warning{Tlp: tlp, AllPeers: rapid.Bool().Draw(t, "all"), AffectedCidrs: []string{"198.51.100.0/24"}}
		p := &irxv1.DisclosurePolicy{Version: version, TlpCeiling: ceiling, Constituency: &irxv1.Constituency{Cidrs: []string{"198.51.100.0/24"}}}
		if ok, _ := WarningRecipient(w, p); ok && (version == 0 || tlp < irxv1.Tlp_TLP_CLEAR || tlp >= irxv1.Tlp_TLP_RED || ceiling < tlp || ceiling > irxv1.Tlp_TLP_RED) {
			t.Fatalf("%v sent under %v", w, p)
		}
	})
}
