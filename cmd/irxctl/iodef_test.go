package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

var updateIODEF = flag.Bool("update-iodef", false, "rewrite testdata/iodef/*.golden from the mapping (review the diff)")

var (
	tlpAmber       = iodefOptions{tlp: irxv1.Tlp_TLP_AMBER}
	tlpAndTaxonomy = iodefOptions{tlp: irxv1.Tlp_TLP_AMBER, taxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"}}
)

func readIODEFTestdata(t testing.TB, name string) (string, []byte) {
	t.Helper()
	path := filepath.Join("testdata", "iodef", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

// renderIODEF is a document's mapping as the golden files hold it: every
// incident as indented JSON (proto field names) or its error, then the
// warning.
func renderIODEF(t *testing.T, doc *iodefDoc, file string) string {
	t.Helper()
	var b strings.Builder
	for _, di := range doc.incidents {
		fmt.Fprintf(&b, "## Incident %d (line %d)\n", di.index, di.line)
		if di.err != nil {
			fmt.Fprintf(&b, "error: %v\n", di.err)
			continue
		}
		raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(di.inc)
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
	fmt.Fprintf(&b, "## warning\n%s\n", doc.warning(file))
	return b.String()
}

// TestIODEFMapping maps the samples and compares the result with the golden
// files, which were reviewed field by field against RFC 7970 and the
// comments of proto/irx/v1/incident.proto; the checks below pin the
// decisions that matter most.
func TestIODEFMapping(t *testing.T) {
	for _, tc := range []struct {
		file  string
		opts  iodefOptions
		check func(t *testing.T, incs []*irxv1.Incident, warning string)
	}{
		{"dos.xml", tlpAmber, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			inc := incs[0]
			// No TLP colour in the document: --tlp. The taxonomy is the
			// IncidentCategory.
			if inc.GetTlp() != irxv1.Tlp_TLP_AMBER || taxonomyLabel(inc.GetTaxonomy()) != "availability/ddos" {
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
			if inc.GetGenerationTime() != nil {
				t.Error("GenerationTime is output only in irx")
			}
			for _, want := range []string{"Incident/Contact/PostalAddress", "Incident/EventData/Expectation",
				"Incident/Assessment/TimeImpact", "Incident/EventData/Flow/System@spoofed=no",
				"Incident/History/HistoryItem@action=rate-limit-network (as remediate-other)"} {
				if !strings.Contains(warning, want) {
					t.Errorf("warning lacks %q: %s", want, warning)
				}
			}
		}},
		{"malware.xml", iodefOptions{taxonomy: &irxv1.Taxonomy{Class: "malicious-code", Type: "infected-system"}}, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			inc := incs[0]
			// restriction="green" is TLP:GREEN and, as RFC 7970 says,
			// "partner".
			if inc.GetTlp() != irxv1.Tlp_TLP_GREEN || inc.GetRestriction() != irxv1.Restriction_RESTRICTION_PARTNER {
				t.Errorf("tlp %v, restriction %v", inc.GetTlp(), inc.GetRestriction())
			}
			var kinds []string
			for _, ind := range inc.GetIndicators() {
				kinds = append(kinds, enumLabel(ind.GetKind(), "INDICATOR_KIND_")+"="+ind.GetValue())
			}
			want := []string{"domain=kj290023j09r34.example.com", "domain=09ijk23jfj0k8.example.net", "domain=klknjwfjiowjefr923.example.org",
				"file-name=invoice_0226.dll", "file-hash=8db53bd058cb1cdca807932cb5178cf220c784d15024366c94c3520b602a46ce",
				"ipv4=192.0.2.77", "email=billing@invoices.example.org"}
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
			if a := inc.GetAssessments()[0]; a.GetConfidence() != 80 {
				t.Errorf("numeric confidence 0.8: %d", a.GetConfidence())
			}
			for _, want := range []string{"Incident/IndicatorData/Indicator/IndicatorID (4)", "Incident/IndicatorData/Indicator,",
				"Incident/EventData/Record/RecordData,", "Incident/IndicatorData/Indicator/Observable/EmailData/EmailSubject"} {
				if !strings.Contains(warning+",", want) {
					t.Errorf("warning lacks %q: %s", want, warning)
				}
			}
		}},
		{"multi.xml", tlpAndTaxonomy, func(t *testing.T, incs []*irxv1.Incident, warning string) {
			var got []string
			for _, inc := range incs {
				got = append(got, tlpLabel(inc.GetTlp())+" "+taxonomyLabel(inc.GetTaxonomy()))
			}
			// Red from the document, --tlp for the others; the taxonomy from
			// an IncidentCategory, from an RSIT machine tag, from --taxonomy.
			want := []string{"TLP:RED fraud/phishing", "TLP:AMBER information-gathering/scanner", "TLP:AMBER other/undetermined"}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if !strings.Contains(warning, "Incident[2]/EventData/Flow/System/Service/Portlist") {
				t.Errorf("paths in a document of several incidents name the incident: %s", warning)
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
			for _, want := range []string{"Incident/Assessment/Impact", "Incident/Contact/RegistryHandle", "Incident/EventData/Record/RecordData"} {
				if !strings.Contains(warning, want) {
					t.Errorf("warning lacks %q: %s", want, warning)
				}
			}
		}},
		{"unknown-enum.xml", tlpAmber, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path, data := readIODEFTestdata(t, tc.file)
			doc, err := parseIODEF(path, data, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := renderIODEF(t, doc, path)
			golden := strings.TrimSuffix(path, ".xml") + ".golden"
			if *updateIODEF {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update-iodef to write it)", err)
			}
			if got != string(want) {
				t.Errorf("mapping differs from %s (rerun with -update-iodef and review the diff):\n%s", golden, got)
			}
			var incs []*irxv1.Incident
			for _, di := range doc.incidents {
				if di.err == nil {
					// What the mapping makes is what the team accepts.
					if err := record.Validate(di.inc, "incident"); err != nil {
						t.Errorf("Incident %d: %v", di.index, err)
					}
					incs = append(incs, di.inc)
				}
			}
			if tc.check != nil {
				tc.check(t, incs, doc.warning(path))
			}
		})
	}
}

// TestIODEFErrors: every refusal names the file, the line and column, and
// the element; a problem with one Incident leaves the others usable.
func TestIODEFErrors(t *testing.T) {
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
	deep := head + strings.Repeat("<Incident>", maxIODEFDepth) + strings.Repeat("</Incident>", maxIODEFDepth) + tail
	oversize := head + "<!--" + strings.Repeat("x", maxIODEFBytes) + "-->\n" + tail

	for _, tc := range []struct {
		name, file string // a testdata file, or the content
		data       string
		opts       iodefOptions
		docErr     string   // the error of the whole document
		incErrs    []string // else the errors of the incidents, in order ("" for none)
	}{
		{name: "bad namespace", file: "bad-namespace.xml", opts: tlpAndTaxonomy,
			docErr: `testdata/iodef/bad-namespace.xml:3:1: IODEF-Document: namespace "urn:ietf:params:xml:ns:iodef" is not IODEF: want urn:ietf:params:xml:ns:iodef-2.0 (IODEF v2, RFC 7970) or urn:ietf:params:xml:ns:iodef-1.0 (v1, RFC 5070)`},
		{name: "truncated", file: "truncated.xml", opts: tlpAndTaxonomy,
			docErr: `testdata/iodef/truncated.xml:17:45: IODEF-Document/Incident/Description: XML syntax error: unexpected EOF`},
		{name: "unknown enum values", file: "unknown-enum.xml", opts: tlpAmber, incErrs: []string{"",
			`testdata/iodef/unknown-enum.xml:16:3: Incident[2]@status: "pending" is not an IODEF status; one of new, in-progress, forwarded, resolved, future, ext-value` + "\n" +
				`testdata/iodef/unknown-enum.xml:24:9: Incident[2]/EventData/Flow/System@category: "attacker" is not an IODEF system category; one of source, target, intermediate, sensor, infrastructure, ext-value`}},
		{name: "no TLP", file: "dos.xml",
			incErrs: []string{`testdata/iodef/dos.xml:10:3: Incident: IODEF has no TLP: pass --tlp (the Incident's restriction is not white, green, amber or red)`}},
		{name: "no taxonomy", file: "malware.xml",
			incErrs: []string{`testdata/iodef/malware.xml:11:3: Incident: no Reference Security Incident Taxonomy entry can be derived from the document (Assessment/IncidentCategory or a Method/Reference such as rsit:class="type"): pass --taxonomy CLASS/TYPE`}},
		{name: "oversize", data: oversize, opts: tlpAndTaxonomy,
			docErr: fmt.Sprintf("big.xml:1:1: IODEF-Document: the document is %d bytes; the limit is 4194304 bytes (4 MiB): split it into several files", len(oversize))},
		{name: "too deep", data: deep, opts: tlpAndTaxonomy,
			docErr: "big.xml:3:" + fmt.Sprint(1+10*(maxIODEFDepth-1)) + ": IODEF-Document" + strings.Repeat("/Incident", maxIODEFDepth) + ": elements nested more than 48 deep"},
		{name: "empty", data: "", docErr: "big.xml:1:1: IODEF-Document: no XML element: not an IODEF document"},
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
			incErrs: []string{`big.xml:3:1: Incident@restriction: "secret" is not an IODEF restriction`}},
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
				path, data = readIODEFTestdata(t, tc.file)
			}
			doc, err := parseIODEF(path, data, tc.opts)
			if tc.docErr != "" {
				var ie *iodefError
				if err == nil || !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.docErr) {
					t.Fatalf("got %v\nwant %s", err, tc.docErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.incidents) != len(tc.incErrs) {
				t.Fatalf("%d incidents, want %d", len(doc.incidents), len(tc.incErrs))
			}
			for i, want := range tc.incErrs {
				di := doc.incidents[i]
				switch {
				case want == "" && di.err != nil:
					t.Errorf("Incident %d: %v", i+1, di.err)
				case want != "" && (di.err == nil || !strings.Contains(di.err.Error(), want)):
					t.Errorf("Incident %d:\n got %v\nwant %s", i+1, di.err, want)
				case want != "" && di.inc != nil:
					t.Errorf("Incident %d has both an error and a record", i+1)
				}
			}
		})
	}
}

// TestIODEFValuesIrxHasNoVocabularyFor: what XML allows but irx's
// vocabularies do not (an xml:lang that is no language tag, a node name
// that is no host name) is left out and said in the warning; the rest of
// the incident is imported.
func TestIODEFValuesIrxHasNoVocabularyFor(t *testing.T) {
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
	d, err := parseIODEF("odd.xml", []byte(doc), tlpAndTaxonomy)
	if err != nil || len(d.incidents) != 1 || d.incidents[0].err != nil {
		t.Fatalf("%v %+v", err, d)
	}
	inc := d.incidents[0].inc
	if ds := inc.GetDescriptions(); len(ds) != 2 || ds[0].GetLang() != "" || ds[0].GetText() != "defaced" || ds[1].GetLang() != "de-CH" {
		t.Errorf("descriptions %v", ds)
	}
	if h := inc.GetVictimHosts(); len(h) != 1 || h[0].GetHostname() != "" || h[0].GetAddresses()[0] != "192.0.2.1" {
		t.Errorf("victim hosts %v", h)
	}
	w := d.warning("odd.xml")
	for _, want := range []string{
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

// FuzzIODEF feeds arbitrary bytes to the parser: it must not panic, and
// every incident it makes must be one the team accepts; everything else is
// an error naming the file.
func FuzzIODEF(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "iodef", "*.xml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`<IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-2.0"><Incident purpose="watch" restriction="amber"><IncidentID name="a">1</IncidentID>` +
		`<IndicatorData><Indicator><Observable><Address category="ipv6-net">2001:db8::/32</Address></Observable><Confidence rating="numeric">1</Confidence></Indicator></IndicatorData>` +
		`<Assessment><IncidentCategory>ddos</IncidentCategory><MonetaryImpact currency="jpy">1e3</MonetaryImpact></Assessment></Incident></IODEF-Document>`))
	f.Add([]byte(`<IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-1.0"><Incident><IncidentID name="b">2</IncidentID><Contact><Contact><Email>x</Email></Contact></Contact></Incident></IODEF-Document>`))
	clean := func(t *testing.T, err error) {
		t.Helper()
		var ie *iodefError
		if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), "fuzz.xml:") {
			t.Fatalf("not a clean IODEF error: %#v", err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// With the flags, or (for one input in four, chosen by its length)
		// without them, so the errors for what IODEF cannot say are
		// exercised too.
		opts := tlpAndTaxonomy
		if len(data)%4 == 3 {
			opts = iodefOptions{}
		}
		doc, err := parseIODEF("fuzz.xml", data, opts)
		if err != nil {
			if doc != nil {
				t.Fatal("a document and an error")
			}
			clean(t, err)
			return
		}
		if len(doc.incidents) == 0 {
			t.Fatal("a document without incidents")
		}
		for _, di := range doc.incidents {
			if di.err != nil {
				clean(t, di.err)
				if di.inc != nil {
					t.Fatal("an incident and an error")
				}
				continue
			}
			if err := record.Validate(di.inc, "incident"); err != nil {
				t.Fatalf("Incident %d passes the mapping but not validation: %v", di.index, err)
			}
			if _, err := proto.Marshal(di.inc); err != nil {
				t.Fatalf("Incident %d cannot be encoded: %v", di.index, err)
			}
		}
		_ = doc.warning("fuzz.xml")
	})
}

// TestIODEFRestrictions: irx keeps the parts of an incident flat, so a
// restriction IODEF puts on a container (EventData, Record, FileData...)
// must reach every part made from it; a part irx cannot restrict is left
// out when it is stricter than the incident.
func TestIODEFRestrictions(t *testing.T) {
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
	doc, err := parseIODEF("r.xml", []byte(data), iodefOptions{taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	di := doc.incidents[0]
	if di.err != nil {
		t.Fatal(di.err)
	}
	inc := di.inc
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
	w := doc.warning("r.xml")
	for _, want := range []string{
		"Incident/EventData/Discovery (its restriction is stricter than the incident's and irx keeps none here)",
		`Incident/EventData/Record/RecordData@restriction=ext-value (ext-restriction "eyes-only" kept as private)`,
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
}

func TestIODEFTaxonomyDerivation(t *testing.T) {
	for _, tc := range []struct {
		text      string
		typeAlone bool
		want      string // "" for none
	}{
		{"availability/ddos", false, "availability/ddos"},
		{" Availability:DDoS ", false, "availability/ddos"},
		{`rsit:fraud="phishing"`, false, "fraud/phishing"},
		{`fraud="phishing"`, false, "fraud/phishing"},
		{"rsit:scanner", false, "information-gathering/scanner"},
		{"phishing", true, "fraud/phishing"},
		{"phishing", false, ""}, // a reference named "phishing" is a reference
		{"malware/c2-server", true, ""},
		{"availability/phishing", true, ""},
		{"Denial of service", true, ""},
		{"", true, ""},
	} {
		got, ok := rsitEntry(tc.text, tc.typeAlone)
		if label := taxonomyLabel(got); ok != (tc.want != "") || ok && label != tc.want {
			t.Errorf("rsitEntry(%q, %v) = %s, %v; want %q", tc.text, tc.typeAlone, label, ok, tc.want)
		}
	}
}

// TestDiscoverySourcesAllMapped: every discovery source of RFC 7970 but
// ext-value names an irx value, so none is imported as unspecified.
func TestDiscoverySourcesAllMapped(t *testing.T) {
	for _, v := range discoverySourceEnum.values {
		got, ok := discoverySourceEnum.to[v]
		if v == "ext-value" {
			if ok {
				t.Errorf("ext-value maps to %v", got)
			}
			continue
		}
		if !ok || got == irxv1.DiscoverySource_DISCOVERY_SOURCE_UNSPECIFIED {
			t.Errorf("discovery source %q maps to %v", v, got)
		}
	}
	if got := keptEnum("x", []string{"a", "b"}).to; len(got) != 2 || got["a"] != "a" || got["b"] != "b" {
		t.Errorf("keptEnum maps %v", got)
	}
}
