package record

import (
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Bounds of a team description. A description is a document for people,
// so the bounds are generous for text and small for everything that
// should be short; the whole is bounded like an incident.
const (
	MaxTeamDescriptionBytes = 256 << 10
	maxTeamText             = 16 << 10 // a narrative section
	maxTeamLine             = 1024     // a list item, an address line, a description, a URI
	maxTeamShort            = 256      // a name, a number, an address, a fingerprint
	maxTeamList             = 64       // entries of a repeated field
	maxTeamNetworks         = 8192     // entries of each constituency list
)

// ValidateTeamDescription checks a description's content (not its
// output-only fields). prefix names the description in the request, e.g.
// "description", for the field names of violations. It is a pure function
// of d, so every replica decides alike.
func ValidateTeamDescription(d *irxv1.TeamDescription, prefix string) error {
	v := &teamValidator{prefix: prefix}
	if d == nil {
		v.add("", "is required")
		return v.err()
	}
	if size := proto.Size(d); size > MaxTeamDescriptionBytes {
		v.add("", "is %d bytes encoded; the most is %d", size, MaxTeamDescriptionBytes)
		return v.err()
	}

	doc := d.GetDocument()
	v.links("document.distribution_lists", doc.GetDistributionLists())
	v.links("document.locations", doc.GetLocations())
	v.text("document.authentication", doc.GetAuthentication(), maxTeamText)

	c := d.GetContact()
	switch {
	case strings.TrimSpace(c.GetName()) == "":
		v.add("contact.name", "is required: the team's name, e.g. \"CERT-A: the A University Computer Emergency Response Team\"")
	default:
		v.short("contact.name", c.GetName(), maxTeamShort)
	}
	v.lines("contact.address", c.GetAddress())
	v.short("contact.time_zone", c.GetTimeZone(), maxTeamShort)
	v.phones("contact.telephone_numbers", c.GetTelephoneNumbers())
	v.phones("contact.fax_numbers", c.GetFaxNumbers())
	v.lines("contact.other_telecommunication", c.GetOtherTelecommunication())
	v.count("contact.email_addresses", len(c.GetEmailAddresses()), maxTeamList)
	for i, e := range c.GetEmailAddresses() {
		f := fmt.Sprintf("contact.email_addresses[%d]", i)
		if e.GetAddress() == "" {
			v.add(f+".address", "is required")
		} else {
			v.email(f+".address", e.GetAddress())
		}
		v.short(f+".description", e.GetDescription(), maxTeamLine)
	}
	v.count("contact.public_keys", len(c.GetPublicKeys()), maxTeamList)
	for i, k := range c.GetPublicKeys() {
		f := fmt.Sprintf("contact.public_keys[%d]", i)
		switch k.GetFormat() {
		case irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_OPENPGP, irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_X509:
		case irxv1.PublicKeyFormat_PUBLIC_KEY_FORMAT_UNSPECIFIED:
			v.add(f+".format", "is required: PUBLIC_KEY_FORMAT_OPENPGP or PUBLIC_KEY_FORMAT_X509")
		default:
			v.add(f+".format", "%d is not a PublicKeyFormat", k.GetFormat())
		}
		v.short(f+".user_id", k.GetUserId(), maxTeamShort)
		v.fingerprint(f+".fingerprint", k.GetFingerprint())
		if k.GetLocation() != "" {
			v.uri(f+".location", k.GetLocation())
		}
		v.short(f+".description", k.GetDescription(), maxTeamLine)
	}
	v.text("contact.encryption_information", c.GetEncryptionInformation(), maxTeamText)
	v.count("contact.members", len(c.GetMembers()), maxTeamList)
	for i, m := range c.GetMembers() {
		f := fmt.Sprintf("contact.members[%d]", i)
		if strings.TrimSpace(m.GetName()) == "" {
			v.add(f+".name", "is required")
		}
		v.short(f+".name", m.GetName(), maxTeamShort)
		v.short(f+".role", m.GetRole(), maxTeamShort)
		if m.GetEmailAddress() != "" {
			v.email(f+".email_address", m.GetEmailAddress())
		}
		v.short(f+".description", m.GetDescription(), maxTeamLine)
	}
	v.text("contact.members_note", c.GetMembersNote(), maxTeamText)
	v.text("contact.other_information", c.GetOtherInformation(), maxTeamText)
	v.text("contact.points_of_customer_contact", c.GetPointsOfCustomerContact(), maxTeamText)
	v.text("contact.operating_hours", c.GetOperatingHours(), maxTeamText)

	ch := d.GetCharter()
	v.text("charter.mission_statement", ch.GetMissionStatement(), maxTeamText)
	v.text("charter.constituency", ch.GetConstituency(), maxTeamText)
	v.networks("charter.constituency_networks", ch.GetConstituencyNetworks())
	v.text("charter.sponsorship_and_affiliation", ch.GetSponsorshipAndAffiliation(), maxTeamText)
	v.text("charter.authority", ch.GetAuthority(), maxTeamText)

	p := d.GetPolicies()
	v.text("policies.incident_types_and_support", p.GetIncidentTypesAndSupport(), maxTeamText)
	v.lines("policies.incident_priorities", p.GetIncidentPriorities())
	v.text("policies.cooperation_and_disclosure", p.GetCooperationAndDisclosure(), maxTeamText)
	v.text("policies.communication_and_authentication", p.GetCommunicationAndAuthentication(), maxTeamText)

	s := d.GetServices()
	v.text("services.incident_response", s.GetIncidentResponse(), maxTeamText)
	v.lines("services.incident_triage", s.GetIncidentTriage())
	v.lines("services.incident_coordination", s.GetIncidentCoordination())
	v.lines("services.incident_resolution", s.GetIncidentResolution())
	v.lines("services.proactive_activities", s.GetProactiveActivities())

	v.links("incident_reporting_forms", d.GetIncidentReportingForms())
	v.text("incident_reporting_forms_note", d.GetIncidentReportingFormsNote(), maxTeamText)
	v.text("disclaimers", d.GetDisclaimers(), maxTeamText)
	return v.err()
}

type teamValidator struct {
	prefix string
	vs     []Violation
}

func (v *teamValidator) add(field, format string, args ...any) {
	name := v.prefix
	if field != "" {
		if name != "" {
			name += "."
		}
		name += field
	}
	v.vs = append(v.vs, Violation{Field: name, Description: fmt.Sprintf(format, args...)})
}

func (v *teamValidator) err() error {
	if len(v.vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: v.vs}
}

func (v *teamValidator) count(field string, n, max int) {
	if n > max {
		v.add(field, "has %d entries; the most is %d", n, max)
	}
}

// text checks a narrative: bounded, valid UTF-8, and no control
// characters but line breaks and tabs.
func (v *teamValidator) text(field, s string, max int) {
	v.check(field, s, max, true)
}

// short checks a one-line value.
func (v *teamValidator) short(field, s string, max int) {
	v.check(field, s, max, false)
}

func (v *teamValidator) check(field, s string, max int, multiline bool) {
	switch {
	case len(s) > max:
		v.add(field, "is %d bytes; the most is %d", len(s), max)
	case !utf8.ValidString(s):
		v.add(field, "is not valid UTF-8")
	default:
		for _, r := range s {
			if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
				if multiline {
					v.add(field, "holds the control character %U; only line breaks and tabs are allowed", r)
				} else {
					v.add(field, "holds the control character %U; it is one line", r)
				}
				return
			}
		}
	}
}

// lines checks a list of one-line entries.
func (v *teamValidator) lines(field string, items []string) {
	v.count(field, len(items), maxTeamList)
	for i, s := range items {
		v.short(fmt.Sprintf("%s[%d]", field, i), s, maxTeamLine)
	}
}

func (v *teamValidator) links(field string, links []*irxv1.TeamLink) {
	v.count(field, len(links), maxTeamList)
	for i, l := range links {
		f := fmt.Sprintf("%s[%d]", field, i)
		if l.GetUri() == "" {
			v.add(f+".uri", "is required")
		} else {
			v.uri(f+".uri", l.GetUri())
		}
		v.short(f+".description", l.GetDescription(), maxTeamLine)
	}
}

func (v *teamValidator) phones(field string, phones []*irxv1.TeamPhoneNumber) {
	v.count(field, len(phones), maxTeamList)
	for i, p := range phones {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.phone(f+".number", p.GetNumber())
		v.short(f+".description", p.GetDescription(), maxTeamLine)
	}
}

// phone accepts digits with the usual separators and an optional leading
// "+"; anything else (e.g. "ask for the duty officer") belongs in the
// number's description.
func (v *teamValidator) phone(field, s string) {
	if s == "" {
		v.add(field, "is required")
		return
	}
	digits := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0, r == ' ', r == '(', r == ')', r == '-', r == '.', r == '/':
		default:
			v.add(field, "%q is not a telephone number: only digits, spaces and + ( ) - . / (put remarks in description)", s)
			return
		}
	}
	if digits < 3 || digits > 20 || len(s) > 40 {
		v.add(field, "%q is not a telephone number: it has %d digits", s, digits)
	}
}

// email accepts a bare addr-spec, e.g. "cert@example.org".
func (v *teamValidator) email(field, s string) {
	if len(s) > maxTeamShort {
		v.add(field, "is %d bytes; the most is %d", len(s), maxTeamShort)
		return
	}
	a, err := mail.ParseAddress(s)
	switch {
	case err != nil:
		v.add(field, "%q is not an e-mail address: %v", s, err)
	case a.Name != "" || a.Address != s:
		v.add(field, "%q: give the bare address (%s), without a name or angle brackets", s, a.Address)
	case !strings.Contains(a.Address[strings.LastIndexByte(a.Address, '@')+1:], "."):
		v.add(field, "%q is not an e-mail address: its domain has no dot", s)
	}
}

// uriSchemes are the schemes a link may have: where documents, forms,
// keys and lists are found, and how people are reached.
var uriSchemes = []string{"https", "http", "ftp", "ftps", "sftp", "mailto", "tel", "hkps", "hkp", "ldaps", "ldap", "xmpp", "sips", "sip", "matrix", "urn"}

func (v *teamValidator) uri(field, s string) {
	if len(s) > maxTeamLine {
		v.add(field, "is %d bytes; the most is %d", len(s), maxTeamLine)
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.add(field, "%q is not a URI: %v", s, err)
	case strings.ContainsFunc(s, unicode.IsSpace):
		v.add(field, "%q is not a URI: it holds white space", s)
	case u.Scheme == "":
		v.add(field, "%q is not an absolute URI, e.g. https://cert.example.org/rfc2350.txt or mailto:cert@example.org", s)
	case !slices.Contains(uriSchemes, strings.ToLower(u.Scheme)):
		v.add(field, "%q: scheme %q is not one of %s", s, u.Scheme, strings.Join(uriSchemes, ", "))
	case u.Host == "" && u.Opaque == "":
		v.add(field, "%q names no host or address", s)
	}
}

// fingerprint accepts hexadecimal digits, grouped with spaces or colons
// as key tools print them: 16 to 128 digits (a long key id up to a
// SHA-512 fingerprint).
func (v *teamValidator) fingerprint(field, s string) {
	if s == "" {
		v.add(field, "is required")
		return
	}
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f', r >= 'A' && r <= 'F':
			digits++
		case r == ' ' || r == ':':
		default:
			v.add(field, "%q is not a fingerprint: only hexadecimal digits, spaces and colons", s)
			return
		}
	}
	if digits < 16 || digits > 128 {
		v.add(field, "%q is not a fingerprint: %d hexadecimal digits, want 16 to 128", s, digits)
	}
}

// networks checks the constituency with the rules a disclosure policy's
// constituency has, so it can be copied into a policy; only the bounds are
// the description's.
func (v *teamValidator) networks(field string, c *irxv1.Constituency) {
	v.count(field+".cidrs", len(c.GetCidrs()), maxTeamNetworks)
	v.count(field+".asns", len(c.GetAsns()), maxTeamNetworks)
	v.count(field+".domains", len(c.GetDomains()), maxTeamNetworks)
	for _, fe := range ValidateConstituency(c) {
		v.add(field+"."+fe.Field, "%s", fe.Description)
	}
}
