package record

import (
	"errors"
	"slices"
	"strings"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// teamDescription is a small valid description.
func teamDescription() *irxv1.TeamDescription {
	return &irxv1.TeamDescription{
		Document: &irxv1.TeamDocumentInformation{
			Locations: []*irxv1.TeamLink{{Uri: "https://cert-a.example/rfc2350.txt"}},
		},
		Contact: &irxv1.TeamContactInformation{
			Name:             "CERT-A",
			TimeZone:         "Europe/Madrid",
			TelephoneNumbers: []*irxv1.TeamPhoneNumber{{Number: "+34 912 345 678", Description: "ask for the duty officer"}},
			EmailAddresses:   []*irxv1.TeamEmailAddress{{Address: "cert@cert-a.example"}},
			PublicKeys: []*irxv1.TeamPublicKey{{
				Format: irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_OPENPGP, UserId: "CERT-A <cert@cert-a.example>",
				Fingerprint: "1122 3344 5566 7788 99AA  BBCC DDEE FF00 1122 3344", Location: "hkps://keys.openpgp.org",
			}},
			Members: []*irxv1.TeamMember{{Name: "Zoe Doe", Role: "coordinator", EmailAddress: "zoe@cert-a.example"}},
		},
		Charter: &irxv1.TeamCharter{
			MissionStatement:     "To help our constituency respond to incidents.",
			ConstituencyNetworks: &irxv1.Constituency{Cidrs: []string{"192.0.2.0/24"}, Asns: []uint32{64500}, Domains: []string{"cert-a.example"}},
		},
		Services: &irxv1.TeamServices{IncidentTriage: []string{"Report assessment", "Verification"}},
	}
}

func TestValidateTeamDescription(t *testing.T) {
	if err := ValidateTeamDescription(teamDescription(), "description"); err != nil {
		t.Fatalf("the sample is refused: %v", err)
	}
	cases := []struct {
		name   string
		change func(d *irxv1.TeamDescription)
		field  string
	}{
		{"no name", func(d *irxv1.TeamDescription) { d.Contact.Name = " " }, "description.contact.name"},
		{"no contact", func(d *irxv1.TeamDescription) { d.Contact = nil }, "description.contact.name"},
		{"e-mail with a display name", func(d *irxv1.TeamDescription) {
			d.Contact.EmailAddresses[0].Address = "CERT <cert@cert-a.example>"
		}, "description.contact.email_addresses[0].address"},
		{"e-mail without a domain", func(d *irxv1.TeamDescription) { d.Contact.EmailAddresses[0].Address = "cert@localhost" }, "description.contact.email_addresses[0].address"},
		{"member e-mail", func(d *irxv1.TeamDescription) { d.Contact.Members[0].EmailAddress = "zoe" }, "description.contact.members[0].email_address"},
		{"member without a name", func(d *irxv1.TeamDescription) { d.Contact.Members[0].Name = "" }, "description.contact.members[0].name"},
		{"phone with words", func(d *irxv1.TeamDescription) {
			d.Contact.TelephoneNumbers[0].Number = "+34 912 345 678 (ask for the duty officer)"
		}, "description.contact.telephone_numbers[0].number"},
		{"fax too short", func(d *irxv1.TeamDescription) {
			d.Contact.FaxNumbers = []*irxv1.TeamPhoneNumber{{Number: "12"}}
		}, "description.contact.fax_numbers[0].number"},
		{"key without a format", func(d *irxv1.TeamDescription) { d.Contact.PublicKeys[0].Format = 0 }, "description.contact.public_keys[0].format"},
		{"undefined key format", func(d *irxv1.TeamDescription) { d.Contact.PublicKeys[0].Format = 9 }, "description.contact.public_keys[0].format"},
		{"fingerprint not hex", func(d *irxv1.TeamDescription) { d.Contact.PublicKeys[0].Fingerprint = "0x1234 zz" }, "description.contact.public_keys[0].fingerprint"},
		{"fingerprint too short", func(d *irxv1.TeamDescription) { d.Contact.PublicKeys[0].Fingerprint = "12345678" }, "description.contact.public_keys[0].fingerprint"},
		{"relative location", func(d *irxv1.TeamDescription) { d.Document.Locations[0].Uri = "/rfc2350.txt" }, "description.document.locations[0].uri"},
		{"script URI", func(d *irxv1.TeamDescription) { d.Document.Locations[0].Uri = "javascript:alert(1)" }, "description.document.locations[0].uri"},
		{"link without a URI", func(d *irxv1.TeamDescription) {
			d.IncidentReportingForms = []*irxv1.TeamLink{{Description: "our form"}}
		}, "description.incident_reporting_forms[0].uri"},
		{"CIDR with host bits", func(d *irxv1.TeamDescription) { d.Charter.ConstituencyNetworks.Cidrs[0] = "192.0.2.1/24" }, "description.charter.constituency_networks.cidrs[0]"},
		{"bad domain", func(d *irxv1.TeamDescription) { d.Charter.ConstituencyNetworks.Domains[0] = "-bad.example" }, "description.charter.constituency_networks.domains[0]"},
		{"ASN 0", func(d *irxv1.TeamDescription) { d.Charter.ConstituencyNetworks.Asns[0] = 0 }, "description.charter.constituency_networks.asns[0]"},
		{"control character in a line", func(d *irxv1.TeamDescription) { d.Contact.TimeZone = "CET\nCEST" }, "description.contact.time_zone"},
		{"control character in a text", func(d *irxv1.TeamDescription) { d.Disclaimers = "no \x1b[31mwarranty" }, "description.disclaimers"},
		{"narrative too long", func(d *irxv1.TeamDescription) { d.Charter.Authority = strings.Repeat("x", maxTeamText+1) }, "description.charter.authority"},
		{"too many list entries", func(d *irxv1.TeamDescription) {
			d.Services.ProactiveActivities = slices.Repeat([]string{"training"}, maxTeamList+1)
		}, "description.services.proactive_activities"},
		{"too large as a whole", func(d *irxv1.TeamDescription) {
			d.Charter.ConstituencyNetworks.Domains = slices.Repeat([]string{strings.Repeat("a", 60) + ".example"}, maxTeamNetworks)
		}, "description"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := teamDescription()
			tc.change(d)
			err := ValidateTeamDescription(d, "description")
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("accepted (err %v)", err)
			}
			if !slices.ContainsFunc(verr.Violations, func(v Violation) bool { return v.Field == tc.field }) {
				t.Fatalf("violations %v do not name %s", verr.Violations, tc.field)
			}
		})
	}
	// Multi-line narratives keep their line breaks; mailto and other
	// schemes are links.
	d := teamDescription()
	d.Charter.Authority = "Line one.\n\n\tLine two."
	d.Document.DistributionLists = []*irxv1.TeamLink{{Uri: "mailto:cert-info@cert-a.example"}}
	d.Contact.PublicKeys[0].Format = irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_X509
	d.Contact.PublicKeys[0].Fingerprint = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
	if err := ValidateTeamDescription(d, "description"); err != nil {
		t.Fatalf("refused: %v", err)
	}
}
