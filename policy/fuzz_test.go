package policy_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// fuzzPolicies are the policies FuzzDisclose applies: every action on every
// class, and the conditions.
func fuzzPolicies() []*irxv1.DisclosurePolicy {
	all := func(a irxv1.DisclosureAction) *irxv1.DisclosurePolicy {
		return basePolicy(func(p *irxv1.DisclosurePolicy) {
			for _, r := range p.Rules {
				r.Action = a
			}
		})
	}
	nothing := basePolicy(func(p *irxv1.DisclosurePolicy) { p.Rules = nil })
	gen := all(generalise)
	for _, r := range gen.Rules {
		if r.GetInfoClass() == intruder || r.GetInfoClass() == privateSite {
			v4, v6 := uint32(12), uint32(20)
			r.Ipv4PrefixLength, r.Ipv6PrefixLength = &v4, &v6
		}
	}
	vendor := realisticPolicy()
	vendor.RecipientClass = irxv1.RecipientClass_RECIPIENT_CLASS_VENDOR
	vendor.TaxonomyDeny = []string{"test"}
	return []*irxv1.DisclosurePolicy{realisticPolicy(), all(forward), nothing, gen, all(pseudonymise), vendor}
}

func FuzzDisclose(f *testing.F) {
	f.Add(marshal(f, realisticIncident()), uint8(0))
	f.Add(marshal(f, smallIncident()), uint8(1))
	f.Add(marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Restriction = needToKnow
		inc.Tlp = irxv1.Tlp_TLP_RED
		inc.NamedRecipients = []string{"cert-b"}
		inc.Indicators[0].Restriction = private
		inc.AttackingHosts[0].ProtoReflect().SetUnknown([]byte{0x9a, 0x06, 0x01, 'x'})
	})), uint8(3))
	f.Add(marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-z", Path: []string{"cert-a"},
			Reshare: &irxv1.ReshareTerms{MayReshare: true, Scope: irxv1.ReshareScope_RESHARE_SCOPE_COMMUNITY, HopsLeft: 2}}
		inc.Tlp = irxv1.Tlp_TLP_GREEN
	})), uint8(4))
	f.Add(marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", ReceivedFrom: "cert-y", Path: []string{"cert-y", "cert-a"},
			Reshare: &irxv1.ReshareTerms{MayReshare: true, Scope: irxv1.ReshareScope_RESHARE_SCOPE_UNLIMITED, HopsLeft: 1}}
		inc.Tlp = irxv1.Tlp_TLP_CLEAR
	})), uint8(1))
	f.Add(marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-a"}}
		inc.Tlp = irxv1.Tlp_TLP_CLEAR
	})), uint8(1))
	f.Add(marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Tlp = irxv1.Tlp_TLP_CLEAR
		inc.WithdrawTime, inc.WithdrawReason = ts("2026-11-01T00:00:00Z"), "reported in error"
	})), uint8(1))
	// A record stored before validation knew the vocabularies, and values
	// at the edges of every format the engine reads, under every policy.
	edges := marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Descriptions = []*irxv1.Description{{Lang: "en owner=secret", Text: "x"}, {Lang: "de-CH", Text: "y"}}
		inc.LogExcerpts[0].MediaType = "text/plain; charset=secret"
		inc.Assessments[0].MonetaryImpact.Currency = "EUR secret"
		inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: "intrusions", Type: "phishing"}, {Class: "nope", Type: "test"}}
		inc.VictimHosts = append(inc.VictimHosts,
			&irxv1.Host{Hostname: "srv.x.example owner=secret", Domain: "192.0.2.241:22", Asn: 64501},
			&irxv1.Host{Hostname: "a.b.example..", Domain: "x..example", Addresses: []string{"::ffff:192.0.2.9/120"}},
			&irxv1.Host{Hostname: "192.0.2.99", InformationAtRisk: "payroll"})
		inc.Indicators = append(inc.Indicators,
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "evil.example/secret-path"},
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: "https://u:p@[2001:db8::7]:8443/a?b#c"},
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: "evil.example owner=secret/x"},
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_EMAIL, Value: "a@b@mail.example secret"},
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_ASN, Value: "As64511"},
			&irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_NAME, Value: "x.exe"})
		inc.Contacts[0].Email = "ada@[192.0.2.1]"
		inc.Evidence = []*irxv1.Evidence{{SizeBytes: -9223372036854775808, Sha256: "zz"}, {SizeBytes: 1073741824}}
		inc.Compromise = &irxv1.Compromise{SnifferSessionsLogged: 4294967295}
		inc.StartTime.ProtoReflect().SetUnknown([]byte{0x9a, 0x06, 0x01, 'x'})
	}))
	odd := marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Restriction = public
		inc.VictimHosts[0].Restriction = 9
		inc.AttackingHosts = []*irxv1.Host{{Platform: "no identifier"}, {Asn: 64511, Restriction: needToKnow}}
		inc.AdditionalTaxonomies = []*irxv1.Taxonomy{{Class: "fraud"}}
	}))
	loop := marshal(f, smallIncident(func(inc *irxv1.Incident) {
		inc.Provenance = &irxv1.Provenance{OriginTeam: "cert-z"}
		inc.Id = "cert-b:3"
	}))
	policies := fuzzPolicies()
	for sel := range policies {
		f.Add(edges, uint8(sel))
		f.Add(odd, uint8(sel))
		f.Add(loop, uint8(sel))
	}
	compiled := make([]*policy.Compiled, len(policies))
	for i, p := range policies {
		compiled[i] = mustCompile(f, p)
	}
	nothing := compiled[2]
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		inc := &irxv1.Incident{}
		if err := proto.Unmarshal(data, inc); err != nil {
			return
		}
		before := marshal(t, inc)
		i := int(sel) % len(policies)
		c := compiled[i]
		// The fast engine and the reference agree byte for byte.
		view, ex := discloseCompiled(t, inc, c, policies[i])
		if (view != nil) != ex.GetDisclosed() {
			t.Fatalf("view %v but disclosed %v", view != nil, ex.GetDisclosed())
		}
		if !bytes.Equal(before, marshal(t, inc)) {
			t.Fatal("Disclose changed its input")
		}
		view2, ex2 := policy.Disclose(inc, c)
		if !bytes.Equal(marshal(t, view), marshal(t, view2)) || !bytes.Equal(marshal(t, ex), marshal(t, ex2)) {
			t.Fatal("not deterministic")
		}
		if view == nil {
			return
		}
		if inc.GetWithdrawTime() != nil {
			t.Fatal("a withdrawn record was disclosed")
		}
		// A team never grants more than it was granted.
		if prov := inc.GetProvenance(); prov.GetReceivedFrom() != "" || len(prov.GetPath()) > 0 {
			up, rs := prov.GetReshare(), ex.GetReshare()
			if !up.GetMayReshare() || int64(rs.GetHopsLeft()) > int64(up.GetHopsLeft())-1 || rs.GetScope() > up.GetScope() {
				t.Fatalf("foreign record disclosed with terms %v on upstream terms %v", rs, up)
			}
		}
		noUnknown(t, view.ProtoReflect(), "view")
		if record.Validate(inc, "incident") == nil {
			if err := record.Validate(view, "view"); err != nil {
				t.Fatalf("valid record, invalid view: %v", err)
			}
		}
		// Under a policy with no rules only handling information and the
		// taxonomy placeholder may leave.
		if c == nothing {
			view.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
				if fieldClass(fd) != handling && fd.Name() != "taxonomy" {
					t.Fatalf("%s (%v) disclosed under a policy with no rules", fd.Name(), fieldClass(fd))
				}
				return true
			})
			if tx := view.GetTaxonomy(); tx != nil && (tx.GetClass() != "other" || tx.GetType() != "undetermined") {
				t.Fatalf("taxonomy %v disclosed under a policy with no rules", tx)
			}
		}
	})
}

func noUnknown(t *testing.T, m protoreflect.Message, path string) {
	if len(m.GetUnknown()) > 0 {
		t.Fatalf("%s: unknown fields in the view", path)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				noUnknown(t, v.List().Get(i).Message(), path+"."+string(fd.Name()))
			}
		case fd.Message() != nil:
			noUnknown(t, v.Message(), path+"."+string(fd.Name()))
		}
		return true
	})
}

func FuzzParseYAML(f *testing.F) {
	sample, err := os.ReadFile("testdata/sample.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	for _, s := range []string{
		"peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: red\nrules: {intruder: {action: generalise, ipv4_prefix_length: 33}}\n",
		"peer_team_id: cert-b\nrecipient_class: site\ntlp_ceiling: red\nconstituency: {cidrs: [10.0.0.1/8], asns: [AS1]}\n",
		"peer_team_id: cert-b\nrecipient_class: vendor\ntlp_ceiling: green\ntaxonomy_allow: [intrusions/burglary]\ntaxonomy_deny: [intrusions]\n",
		"a: &x [1]\nb: *x\n",
		"---\n---\n",
		"rules:\n  handling: strip\n",
	} {
		f.Add([]byte(s))
	}
	key := keyFor("cert-b")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.ParseYAML(data)
		if err != nil {
			var pe *record.ValidationError
			if !errors.As(err, &pe) || len(pe.Violations) == 0 {
				t.Fatalf("error %T %v, want a *record.ValidationError with violations", err, err)
			}
			for _, fe := range pe.Violations {
				if fe.Field == "" || fe.Description == "" {
					t.Fatalf("error entry without field or message: %+v", fe)
				}
			}
			return
		}
		if err := policy.Validate(p); err != nil {
			t.Fatalf("ParseYAML accepted a policy Validate refuses: %v", err)
		}
		c, err := policy.Compile(p, key)
		if err != nil {
			t.Fatalf("ParseYAML accepted a policy Compile refuses: %v", err)
		}
		if view, _ := policy.Disclose(realisticIncident(), c); view != nil {
			validView(t, view)
		}
	})
}
