package policy_test

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// forwardAll forwards every class to cert-b up to TLP:RED (named), so that
// only markings decide what a view holds.
func forwardAll() *irxv1.DisclosurePolicy {
	p := &irxv1.DisclosurePolicy{
		PeerTeamId: "cert-b", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM,
		TlpCeiling: irxv1.Tlp_TLP_RED,
	}
	for c := irxv1.InfoClass_INFO_CLASS_PRIVATE_USER; c <= irxv1.InfoClass_INFO_CLASS_CONTACT; c++ {
		p.Rules = append(p.Rules, rule(c, irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD))
	}
	return p
}

// markedRecord is version 1 of a record whose contacts, victim hosts,
// descriptions and indicators each hold a canary, with the restrictions
// given (0 inherits).
func markedRecord(restrictions ...irxv1.Restriction) *irxv1.Incident {
	inc := &irxv1.Incident{
		Id: "cert-a:1", Version: 1, Tlp: irxv1.Tlp_TLP_AMBER, Restriction: irxv1.Restriction_RESTRICTION_PARTNER,
		Taxonomy:   &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
		Provenance: &irxv1.Provenance{OriginTeam: "cert-a"},
		DisclosureConsent: &irxv1.DisclosureConsent{ResponseTeams: &irxv1.ConsentScope{
			Domain: true, Hosts: true, Contact: true,
		}},
		ReportingSite: &irxv1.ReportingSite{Name: "canary-site", Domain: "canary-site.example"},
	}
	for i, r := range restrictions {
		switch i % 4 {
		case 0:
			inc.Contacts = append(inc.Contacts, &irxv1.Contact{Name: fmt.Sprintf("canary-contact-%d", i), HomeTelephone: fmt.Sprintf("+1 555 %04d", i), Restriction: r})
		case 1:
			inc.VictimHosts = append(inc.VictimHosts, &irxv1.Host{Hostname: fmt.Sprintf("canary-host-%d.example", i), Restriction: r})
		case 2:
			inc.Descriptions = append(inc.Descriptions, &irxv1.Description{Lang: "en", Text: fmt.Sprintf("canary-text-%d", i), Restriction: r})
		default:
			inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: fmt.Sprintf("canary-ind-%d.example", i), Restriction: r})
		}
	}
	return inc
}

func viewOf(t tb, version, latest *irxv1.Incident) []byte {
	t.Helper()
	c := mustCompile(t, forwardAll())
	view, _ := policy.DiscloseVersion(version, latest, c)
	if view == nil {
		return nil
	}
	return marshal(t, view)
}

func TestNarrowedTakesBackAPartMarkedPrivateLater(t *testing.T) {
	v1 := markedRecord(0, 0, 0, 0, 0)
	v2 := proto.CloneOf(v1)
	v2.Version = 2
	v2.Contacts[0].Restriction = irxv1.Restriction_RESTRICTION_PRIVATE
	v2.Descriptions[0].Restriction = irxv1.Restriction_RESTRICTION_PRIVATE

	before := viewOf(t, v1, v1)
	for _, canary := range []string{"canary-contact-0", "+1 555 0000", "canary-text-2"} {
		if !bytes.Contains(before, []byte(canary)) {
			t.Fatalf("v1 alone does not disclose %q: the test proves nothing", canary)
		}
	}
	after := viewOf(t, v1, v2)
	for _, canary := range []string{"canary-contact-0", "+1 555 0000", "canary-text-2"} {
		if bytes.Contains(after, []byte(canary)) {
			t.Errorf("v1 under v2's markings still discloses %q", canary)
		}
	}
	// The other contact is in v2 as it was: the one made private does not
	// take it along.
	for _, kept := range []string{"canary-host-1.example", "canary-ind-3.example", "canary-contact-4"} {
		if !bytes.Contains(after, []byte(kept)) {
			t.Errorf("v1 under v2's markings lost %q, which v2 did not restrict", kept)
		}
	}
	if got := policy.Narrowed(v1, v2); got.GetContacts()[0].GetName() != "canary-contact-0" {
		t.Errorf("Narrowed changed the content of a part: %v", got.GetContacts()[0])
	}
	if v1.GetContacts()[0].GetRestriction() != 0 {
		t.Error("Narrowed modified its argument")
	}
}

func TestNarrowedTakesBackAPartEditedAndMarkedPrivate(t *testing.T) {
	v1 := markedRecord(0)
	v2 := proto.CloneOf(v1)
	v2.Version = 2
	v2.Contacts[0].Name = "someone else"
	v2.Contacts[0].Restriction = irxv1.Restriction_RESTRICTION_PRIVATE
	if bytes.Contains(viewOf(t, v1, v2), []byte("canary-contact-0")) {
		t.Error("a part edited and marked private in the same change escapes the restriction in the older version")
	}
}

func TestNarrowedTakesBackConsentAndRaisesTLP(t *testing.T) {
	v1 := markedRecord(0, 0)
	v2 := proto.CloneOf(v1)
	v2.Version = 2
	v2.DisclosureConsent.ResponseTeams.Contact = false
	v2.DisclosureConsent.ResponseTeams.Domain = false
	after := viewOf(t, v1, v2)
	for _, canary := range []string{"canary-contact-0", "canary-site.example"} {
		if bytes.Contains(after, []byte(canary)) {
			t.Errorf("consent withdrawn in v2, but v1 still discloses %q", canary)
		}
	}

	v3 := proto.CloneOf(v1)
	v3.Version = 3
	v3.Tlp = irxv1.Tlp_TLP_RED // named recipients: none, so cert-b may hold nothing
	if got := viewOf(t, v1, v3); got != nil {
		t.Error("v3 is TLP:RED without naming cert-b, yet v1 is still disclosed")
	}
	v3.NamedRecipients = []string{"cert-b"}
	if got := policy.Narrowed(v1, v3); got.GetTlp() != irxv1.Tlp_TLP_RED || len(got.GetNamedRecipients()) != 1 {
		t.Errorf("under RED markings naming cert-b: tlp %v named %v", got.GetTlp(), got.GetNamedRecipients())
	}
}

func TestNarrowedKeepsWhatLaterVersionsDoNotRestrict(t *testing.T) {
	v1 := markedRecord(0, 0, irxv1.Restriction_RESTRICTION_PUBLIC, 0)
	v2 := proto.CloneOf(v1)
	v2.Version = 2
	v2.Status = irxv1.Status_STATUS_RESOLVED
	v2.Tlp = irxv1.Tlp_TLP_GREEN                               // lowered: v1 keeps AMBER
	v2.Contacts = nil                                          // deleted: v1 keeps it
	v2.Restriction = irxv1.Restriction_RESTRICTION_PUBLIC      // loosened: v1 keeps PARTNER
	v2.DisclosureConsent.SitesInvolved = &irxv1.ConsentScope{} // a row v1 never granted
	if got := policy.Narrowed(v1, v2); got != v1 {
		t.Errorf("v2 narrows nothing, yet Narrowed made a new record:\n%v", got)
	}
	if got := policy.Narrowed(v1, v1); got != v1 {
		t.Error("Narrowed of a version with itself is not the version")
	}
}

// TestNarrowedProperties: for random markings of a version and a later one,
// the narrowed version has exactly the stricter of each marking, the
// version's own content, and Narrowed is idempotent; with every class
// forwarded, a part whose counterpart the later version makes private is in
// no view of the older one.
func TestNarrowedProperties(t *testing.T) {
	restrictions := []irxv1.Restriction{0, 0, 1, 2, 3, 4}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "parts")
		rs := make([]irxv1.Restriction, n)
		for i := range rs {
			rs[i] = rapid.SampledFrom(restrictions).Draw(t, "restriction")
		}
		v := markedRecord(rs...)
		v.Tlp = irxv1.Tlp(rapid.IntRange(1, 5).Draw(t, "tlp"))
		v.Restriction = rapid.SampledFrom(restrictions).Draw(t, "root")
		v.NamedRecipients = rapid.SampledFrom([][]string{nil, {"cert-b"}, {"cert-c"}, {"cert-b", "cert-c"}}).Draw(t, "named")
		l := proto.CloneOf(v)
		l.Version = 2
		l.Tlp = irxv1.Tlp(rapid.IntRange(1, 5).Draw(t, "latest tlp"))
		l.Restriction = rapid.SampledFrom(restrictions).Draw(t, "latest root")
		l.NamedRecipients = rapid.SampledFrom([][]string{nil, {"cert-b"}, {"cert-c"}}).Draw(t, "latest named")
		l.DisclosureConsent.ResponseTeams.Contact = rapid.Bool().Draw(t, "latest consent contact")
		l.DisclosureConsent.ResponseTeams.Hosts = rapid.Bool().Draw(t, "latest consent hosts")
		// Each part of latest: kept, re-marked, edited, or deleted.
		var private []string // canaries whose counterpart latest makes private
		edit := func(label string, restriction *irxv1.Restriction, text *string, canary string) bool {
			switch rapid.IntRange(0, 3).Draw(t, label) {
			case 1:
				*restriction = rapid.SampledFrom(restrictions).Draw(t, label+" restriction")
			case 2:
				*text += " (edited)"
				*restriction = rapid.SampledFrom(restrictions).Draw(t, label+" restriction")
			case 3:
				return false
			}
			if *restriction == irxv1.Restriction_RESTRICTION_PRIVATE {
				private = append(private, canary)
			}
			return true
		}
		l.Contacts = filter(l.Contacts, func(c *irxv1.Contact) bool { return edit("contact", &c.Restriction, &c.Name, c.Name) })
		l.VictimHosts = filter(l.VictimHosts, func(h *irxv1.Host) bool { return edit("host", &h.Restriction, &h.Site, h.Hostname) })
		l.Descriptions = filter(l.Descriptions, func(d *irxv1.Description) bool { return edit("description", &d.Restriction, &d.Text, d.Text) })
		l.Indicators = filter(l.Indicators, func(i *irxv1.Indicator) bool {
			return edit("indicator", &i.Restriction, &i.Description, i.Value)
		})
		vBefore, lBefore := proto.CloneOf(v), proto.CloneOf(l)

		got := policy.Narrowed(v, l)
		if !proto.Equal(v, vBefore) || !proto.Equal(l, lBefore) {
			t.Fatal("Narrowed modified an argument")
		}
		if want := max(v.GetTlp(), l.GetTlp()); got.GetTlp() != want {
			t.Fatalf("TLP %v, want %v", got.GetTlp(), want)
		}
		if want := max(root(v), root(l)); root(got) != want {
			t.Fatalf("restriction %v, want %v", root(got), want)
		}
		if want := v.GetDisclosureConsent().GetResponseTeams().GetContact() && l.GetDisclosureConsent().GetResponseTeams().GetContact(); got.GetDisclosureConsent().GetResponseTeams().GetContact() != want {
			t.Fatalf("consent to contact %v, want %v", !want, want)
		}
		if again := policy.Narrowed(got, l); !proto.Equal(again, got) {
			t.Fatal("Narrowed is not idempotent")
		}
		if !proto.Equal(withoutMarkings(got), withoutMarkings(v)) {
			t.Fatal("Narrowed changed more than markings")
		}
		for i, c := range got.GetContacts() {
			if eff(c.GetRestriction(), root(got)) < eff(v.GetContacts()[i].GetRestriction(), root(v)) {
				t.Fatalf("contact %d is less restricted than in the version", i)
			}
		}
		view := viewOf(t, v, l)
		for _, canary := range private {
			if bytes.Contains(view, []byte(canary)) {
				t.Fatalf("%q is private in the latest version but in the older version's view", canary)
			}
		}
	})
}

func filter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func root(inc *irxv1.Incident) irxv1.Restriction {
	return eff(inc.GetRestriction(), irxv1.Restriction_RESTRICTION_PRIVATE)
}

func eff(own, inherited irxv1.Restriction) irxv1.Restriction {
	if own == 0 {
		return inherited
	}
	return own
}

// withoutMarkings is inc with its markings cleared: what Narrowed must not
// change.
func withoutMarkings(inc *irxv1.Incident) *irxv1.Incident {
	c := proto.CloneOf(inc)
	c.Tlp, c.Restriction, c.NamedRecipients, c.DisclosureConsent = 0, 0, nil, nil
	for _, x := range c.Contacts {
		x.Restriction = 0
	}
	for _, x := range c.VictimHosts {
		x.Restriction = 0
	}
	for _, x := range c.Descriptions {
		x.Restriction = 0
	}
	for _, x := range c.Indicators {
		x.Restriction = 0
	}
	return c
}
