package policy_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

func TestSampleYAML(t *testing.T) {
	data, err := os.ReadFile("testdata/sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.ParseYAML(data)
	if err != nil {
		t.Fatalf("sample policy: %v", err)
	}
	if p.GetPeerTeamId() != "cert-b" || p.GetRecipientClass() != irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM ||
		p.GetTlpCeiling() != irxv1.Tlp_TLP_AMBER || !p.GetNeedToKnow() || p.GetMaxHops() != 2 {
		t.Errorf("sample policy read as %v", p)
	}
	if len(p.GetRules()) != 7 || p.GetRules()[3].GetInfoClass() != privateSite || p.GetRules()[3].GetAction() != generalise ||
		p.GetRules()[3].GetIpv4PrefixLength() != 24 || p.GetRules()[3].GetIpv6PrefixLength() != 48 {
		t.Errorf("rules %v", p.GetRules())
	}
	if c := p.GetConstituency(); len(c.GetCidrs()) != 2 || len(c.GetAsns()) != 1 || c.GetAsns()[0] != 64511 || c.GetDomains()[0] != "cert-b.example" {
		t.Errorf("constituency %v", c)
	}
	c := mustCompile(t, p)
	view, _ := policy.Disclose(realisticIncident(), c)
	validView(t, view)
	if view == nil || view.GetVictimHosts()[0].GetAddresses()[0] != "192.0.2.0/24" {
		t.Errorf("sample policy view: %v", view)
	}
}

func TestParseYAMLAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(*irxv1.DisclosurePolicy) bool
	}{
		{"full enum names", "peer_team_id: cert-b\nrecipient_class: RECIPIENT_CLASS_VENDOR\ntlp_ceiling: TLP_AMBER_STRICT\nrules:\n  INFO_CLASS_INTRUDER: DISCLOSURE_ACTION_FORWARD\n",
			func(p *irxv1.DisclosurePolicy) bool {
				return p.GetRecipientClass() == irxv1.RecipientClass_RECIPIENT_CLASS_VENDOR && p.GetTlpCeiling() == irxv1.Tlp_TLP_AMBER_STRICT && p.GetRules()[0].GetInfoClass() == intruder
			}},
		{"TLP spellings", "peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: TLP:AMBER+STRICT\n",
			func(p *irxv1.DisclosurePolicy) bool { return p.GetTlpCeiling() == irxv1.Tlp_TLP_AMBER_STRICT }},
		{"white is clear", "peer_team_id: cert-b\nrecipient_class: law-enforcement\ntlp_ceiling: white\n",
			func(p *irxv1.DisclosurePolicy) bool {
				return p.GetTlpCeiling() == irxv1.Tlp_TLP_CLEAR && p.GetRecipientClass() == irxv1.RecipientClass_RECIPIENT_CLASS_LAW_ENFORCEMENT
			}},
		{"American spelling, hyphens", "peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: red\nrules:\n  private-site: pseudonymize\n  private user: generalize\n",
			func(p *irxv1.DisclosurePolicy) bool {
				return p.GetRules()[0].GetAction() == pseudonymise && p.GetRules()[1].GetInfoClass() == privateUser && p.GetRules()[1].GetAction() == generalise
			}},
		{"handling forward is allowed", "peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: red\nrules: {handling: forward}\n",
			func(p *irxv1.DisclosurePolicy) bool { return p.GetRules()[0].GetInfoClass() == handling }},
		{"prefix zero", "peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: red\nrules:\n  intruder: {action: generalise, ipv4_prefix_length: 0, ipv6_prefix_length: 128}\n",
			func(p *irxv1.DisclosurePolicy) bool {
				return p.GetRules()[0].Ipv4PrefixLength != nil && p.GetRules()[0].GetIpv4PrefixLength() == 0 && p.GetRules()[0].GetIpv6PrefixLength() == 128
			}},
		{"empty lists", "peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: red\ntaxonomy_allow: []\nrules:\n",
			func(p *irxv1.DisclosurePolicy) bool { return len(p.GetTaxonomyAllow()) == 0 && len(p.GetRules()) == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.ParseYAML([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p) {
				t.Errorf("read as %v", p)
			}
		})
	}
}

func TestParseYAMLRefuses(t *testing.T) {
	const head = "peer_team_id: cert-b\nrecipient_class: response_team\ntlp_ceiling: amber\n" // lines 1-3
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error, "line N" among them
	}{
		{"unknown key", head + "peer: cert-c\n", []string{"line 4", "peer: unknown key"}},
		{"output only", head + "version: 3\n", []string{"line 4", "version: is output only"}},
		{"unknown class", head + "rules:\n  intruders: forward\n", []string{"line 5", "rules.intruders", "not an information class", "private_user"}},
		{"unknown action", head + "rules:\n  intruder: publish\n", []string{"line 5", "rules.intruder", `"publish" is not one of`}},
		{"ipv4 prefix too long", head + "rules:\n  private_site:\n    action: generalise\n    ipv4_prefix_length: 33\n", []string{"line 7", "rules.private_site.ipv4_prefix_length", "0 to 32"}},
		{"ipv6 prefix too long", head + "rules:\n  intruder: {action: generalise, ipv6_prefix_length: 129}\n", []string{"line 5", "rules.intruder.ipv6_prefix_length", "0 to 128"}},
		{"negative prefix", head + "rules:\n  intruder: {action: generalise, ipv4_prefix_length: -1}\n", []string{"line 5", "ipv4_prefix_length"}},
		{"prefix without generalise", head + "rules:\n  intruder:\n    action: pseudonymise\n    ipv4_prefix_length: 16\n", []string{"line 7", "rules.intruder.ipv4_prefix_length", "only applies to the generalise action"}},
		{"prefix on a class without addresses", head + "rules:\n  embarrassing: {action: generalise, ipv4_prefix_length: 16}\n", []string{"line 5", "rules.embarrassing.ipv4_prefix_length", "no address fields"}},
		{"handling stripped", head + "rules:\n  intruder: forward\n  handling: strip\n", []string{"line 6", "rules.handling:", "only forward is allowed"}},
		{"class twice", head + "rules:\n  intruder: forward\n  intruder: strip\n", []string{"line 6", "rules.intruder", "given twice (first on line 5)"}},
		{"same class two spellings", head + "rules:\n  private_site: forward\n  PRIVATE-SITE: strip\n", []string{"line 6", "one rule per class"}},
		{"unknown rule key", head + "rules:\n  intruder: {action: forward, prefix: 24}\n", []string{"line 5", "rules.intruder.prefix", "unknown key"}},
		{"bad cidr", head + "constituency:\n  cidrs: [198.51.100.0/24, 198.51.100.0/33]\n", []string{"line 5", "constituency.cidrs[1]", "not a CIDR prefix"}},
		{"host bits", head + "constituency:\n  cidrs:\n    - 198.51.100.7/24\n", []string{"line 6", "constituency.cidrs[0]", "did you mean 198.51.100.0/24"}},
		{"bad asn", head + "constituency:\n  asns: [ASx]\n", []string{"line 5", "constituency.asns[0]", "not an autonomous system number"}},
		{"bad domain", head + "constituency:\n  domains: [\"bad..example\"]\n", []string{"line 5", "constituency.domains[0]"}},
		{"need to know without constituency", head + "need_to_know: true\n", []string{"line 4", "need_to_know", "requires a constituency"}},
		{"need to know not a bool", head + "need_to_know: maybe\n", []string{"line 4", "need_to_know", "not true or false"}},
		{"unknown taxonomy class", head + "taxonomy_deny: [intrusion]\n", []string{"line 4", "taxonomy_deny[0]", `"intrusion" is not a taxonomy class`}},
		{"unknown taxonomy type", head + "taxonomy_allow:\n  - intrusions/nope\n", []string{"line 5", "taxonomy_allow[0]", "not a type of taxonomy class"}},
		{"allow that deny kills", head + "taxonomy_allow: [intrusions/burglary]\ntaxonomy_deny: [intrusions]\n", []string{"line 4", "taxonomy_allow[0]", "can never match"}},
		{"missing peer", "recipient_class: site\ntlp_ceiling: red\n", []string{"line 1", "peer_team_id: is required"}},
		{"bad peer", "peer_team_id: Cert_B\nrecipient_class: site\ntlp_ceiling: red\n", []string{"line 1", "peer_team_id", "only a-z"}},
		{"missing ceiling", "peer_team_id: cert-b\nrecipient_class: site\n", []string{"tlp_ceiling: is required"}},
		{"bad recipient", "peer_team_id: cert-b\nrecipient_class: partner\ntlp_ceiling: red\n", []string{"line 2", "recipient_class", "law_enforcement, response_team, site, vendor"}},
		{"max hops too high", head + "max_hops: 65\n", []string{"line 4", "max_hops", "more than 64"}},
		{"max hops negative", head + "max_hops: -1\n", []string{"line 4", "max_hops"}},
		{"rules not a mapping", head + "rules: [intruder]\n", []string{"line 4", "rules", "mapping"}},
		{"two documents", head + "---\n" + head, []string{"more than one YAML document"}},
		{"syntax", head + "rules: {intruder: forward\n", []string{"not valid YAML"}},
		{"alias", "x: &a cert-b\n", []string{"x: unknown key"}},
		{"alias value", head + "taxonomy_allow: &l [test]\ntaxonomy_deny: *l\n", []string{"line 5", "aliases are not supported"}},
		{"empty", "", []string{"line 1", "empty"}},
		{"not a mapping", "- a\n- b\n", []string{"line 1", "mapping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.ParseYAML([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted: %v", p)
			}
			var pe *record.ValidationError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v, want *record.ValidationError", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestValidateNamesProtoFields(t *testing.T) {
	v := uint32(40)
	err := policy.Validate(&irxv1.DisclosurePolicy{
		PeerTeamId: "cert-b", RecipientClass: 9, TlpCeiling: irxv1.Tlp_TLP_RED,
		Rules: []*irxv1.ClassRule{{InfoClass: privateSite, Action: generalise, Ipv4PrefixLength: &v}, {InfoClass: 0, Action: forward}, nil},
	})
	for _, w := range []string{"recipient_class: 9 is not a recipient class", "rules[0].ipv4_prefix_length: 40", "rules[1].info_class: is required", "rules[2]: is empty"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}
