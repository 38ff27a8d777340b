package iodef_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// FuzzDecode feeds arbitrary bytes to Decode. The invariant is the one the
// CLI (and a service converting documents) relies on:
//
//   - Decode never panics;
//   - it returns a document or an *Error, never both, never neither;
//   - every Incident element gets a record or an ErrorList, never both;
//   - every record is one the team accepts: record.Validate passes and it
//     encodes. The mapper's own checks name the element of a problem, and
//     its last check is record.Validate itself, so a record the team would
//     refuse is never returned: it is an Error that explains why;
//   - every problem has a place (line and column from 1) and names the
//     document;
//   - with both defaults given, nothing is refused for want of one;
//   - the warning is one line, as the CLI prints it.
func FuzzDecode(f *testing.F) {
	iodef.BoundMinimizing(f)
	paths, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
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
	for _, p := range []string{"../../../shared/iodef/samples/*.xml", "testdata/samples/*.xml"} {
		more, _ := filepath.Glob(p)
		for _, p := range more {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	// DTDs of every kind, refused.
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY % p SYSTEM "http://example.com/evil.dtd"> %p;]><IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-2.0"/>`))
	// irx's own AdditionalData, well and badly formed.
	f.Add([]byte(`<IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-2.0"><Incident purpose="reporting"><IncidentID name="a">1</IncidentID>` +
		`<GenerationTime>2026-01-01T00:00:00Z</GenerationTime><Contact role="creator" type="organization"/>` +
		`<AdditionalData dtype="json" meaning="urn:irx:v1:Incident">{"tlp":"TLP_AMBER","id":"x:1","priority":"PRIORITY_HIGH"}</AdditionalData>` +
		`<AdditionalData dtype="xml" meaning="urn:irx:v1:extra:intruder" name="Incident/X">&lt;X xmlns="urn:x"&gt;&#x202e;&lt;/X&gt;</AdditionalData>` +
		`<AdditionalData dtype="xml" meaning="urn:irx:v1:extra:handling" name="Incident/Y">&lt;Y/&gt;</AdditionalData>` +
		`<AdditionalData dtype="json" meaning="urn:irx:v1:Incident">{"tlp":</AdditionalData></Incident></IODEF-Document>`))
	f.Add([]byte(`<IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-1.0"><Incident><IncidentID name="b">2</IncidentID><Contact><Contact><Email>x</Email></Contact></Contact></Incident></IODEF-Document>`))
	f.Add([]byte(`<!DOCTYPE IODEF-Document [<!ENTITY x "y">]><IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-2.0" xml:lang="e&#10;n"><Incident restriction="red">` +
		`<IncidentID name="c">3</IncidentID><Description xml:lang="x&#10;y">text</Description><x:Extra xmlns:x="urn:a&#10;b"/></Incident></IODEF-Document>`))

	placed := func(t *testing.T, e *iodef.Error) {
		t.Helper()
		if e.Name != "fuzz.xml" || e.Line < 1 || e.Column < 1 || e.Path == "" || e.Msg == "" {
			t.Fatalf("a problem without its place: %+v", e)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// With the defaults, or (for one input in four, chosen by its
		// length) without them, so the refusals for what IODEF cannot say
		// are exercised too.
		opts := tlpAndTaxonomy
		if len(data)%4 == 3 {
			opts = noDefaults
		}
		doc, err := iodef.Decode(bytes.NewReader(data), "fuzz.xml", opts)
		if err != nil {
			var e *iodef.Error
			if doc != nil || !errors.As(err, &e) {
				t.Fatalf("document %v, error %#v", doc, err)
			}
			placed(t, e)
			return
		}
		if doc == nil || len(doc.Incidents) == 0 {
			t.Fatal("no error and no incident")
		}
		for i, d := range doc.Incidents {
			if d.Index != i+1 || d.Line < 1 {
				t.Fatalf("Incident %d: index %d, line %d", i+1, d.Index, d.Line)
			}
			if d.Err != nil {
				var list iodef.ErrorList
				if d.Incident != nil || !errors.As(d.Err, &list) || len(list) == 0 {
					t.Fatalf("Incident %d: record %v, error %#v", d.Index, d.Incident, d.Err)
				}
				for _, e := range list {
					placed(t, e)
				}
				if opts.DefaultTLP != 0 && opts.DefaultTaxonomy != nil && (errors.Is(d.Err, iodef.ErrNoTLP) || errors.Is(d.Err, iodef.ErrNoTaxonomy)) {
					t.Fatalf("Incident %d refused for want of a default that was given: %v", d.Index, d.Err)
				}
				continue
			}
			if d.Incident == nil {
				t.Fatalf("Incident %d: neither a record nor an error", d.Index)
			}
			if err := record.Validate(d.Incident, "incident"); err != nil {
				t.Fatalf("Incident %d is returned but the team refuses it: %v", d.Index, err)
			}
			if _, err := proto.Marshal(d.Incident); err != nil {
				t.Fatalf("Incident %d cannot be encoded: %v", d.Index, err)
			}
			// Every record exports, and the export reads back as it.
			var out bytes.Buffer
			if err := iodef.Encode(&out, []*irxv1.Incident{d.Incident}, encodeOpts); err != nil {
				t.Fatalf("Incident %d does not export: %v", d.Index, err)
			}
			back, err := iodef.Decode(bytes.NewReader(out.Bytes()), "export.xml", iodef.Options{})
			if err != nil || back.Incidents[0].Err != nil {
				t.Fatalf("Incident %d: its export does not read: %v %v\n%s", d.Index, err, back, out.Bytes())
			}
		}
		if w := doc.Warning(); strings.ContainsAny(w, "\r\n") {
			t.Fatalf("the warning is not one line: %q", w)
		}
	})
}
