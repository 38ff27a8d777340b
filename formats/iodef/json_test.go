package iodef

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

var jsonDefaults = Options{DefaultTLP: irxv1.Tlp_TLP_AMBER, DefaultTaxonomy: &irxv1.Taxonomy{Class: "other", Type: "undetermined"}}

// TestDecodeJSONRFCExamples reads RFC 8727's own examples.
func TestDecodeJSONRFCExamples(t *testing.T) {
	for _, tc := range []struct {
		file  string
		check func(t *testing.T, inc *irxv1.Incident)
	}{
		{"rfc8727-4.1-minimal.json", func(t *testing.T, inc *irxv1.Incident) {
			if got := inc.GetAlternativeIds(); len(got) != 1 || got[0].GetTicket() != "492382" || got[0].GetTeamId() != "csirt.example.com" {
				t.Errorf("alternative ids %v, want 492382 of csirt.example.com", got)
			}
			if got := inc.GetPurpose(); got != irxv1.Purpose_PURPOSE_REPORTING {
				t.Errorf("purpose %v, want reporting", got)
			}
		}},
		{"rfc8727-4.2-campaign.json", func(t *testing.T, inc *irxv1.Incident) {
			if inc.GetTlp() != irxv1.Tlp_TLP_GREEN {
				t.Errorf("tlp %v, want GREEN from restriction=green", inc.GetTlp())
			}
			text := inc.String()
			for _, want := range []string{"kj290023j09r34.example.com", "Orange Giraffe", "Summarizes the Indicators"} {
				if !strings.Contains(text, want) {
					t.Errorf("the record lacks %q: %v", want, text)
				}
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "json", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			doc, err := DecodeJSON(f, tc.file, jsonDefaults)
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Incidents) != 1 || doc.Incidents[0].Err != nil {
				t.Fatalf("incidents %+v", doc.Incidents)
			}
			tc.check(t, doc.Incidents[0].Incident)
			t.Logf("warning: %s", doc.Warning())
		})
	}
}

// TestJSONTranscodesXML: every v2 sample written as RFC 8727 JSON from its
// XML tree and read back maps to the records its XML maps to.
func TestJSONTranscodesXML(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if len(files) == 0 {
		t.Fatal("no samples")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		root, err := readTree(file, data)
		if err != nil || root.name.Space != iodefV2NS {
			continue // only well-formed v2 documents have a JSON form
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			var js bytes.Buffer
			if err := writeJSONTree(&js, root); err != nil {
				t.Fatal(err)
			}
			fromXML, xmlErr := Decode(bytes.NewReader(data), file, jsonDefaults)
			fromJSON, jsonErr := DecodeJSON(bytes.NewReader(js.Bytes()), file, jsonDefaults)
			if (xmlErr == nil) != (jsonErr == nil) {
				t.Fatalf("XML: %v; JSON: %v\n%s", xmlErr, jsonErr, js.Bytes())
			}
			if xmlErr != nil {
				return
			}
			if len(fromXML.Incidents) != len(fromJSON.Incidents) {
				t.Fatalf("%d incidents from XML, %d from JSON", len(fromXML.Incidents), len(fromJSON.Incidents))
			}
			for i := range fromXML.Incidents {
				x, j := fromXML.Incidents[i], fromJSON.Incidents[i]
				if (x.Err == nil) != (j.Err == nil) {
					t.Errorf("incident %d: XML error %v, JSON error %v", i+1, x.Err, j.Err)
					continue
				}
				// The parts the record keeps verbatim are the same parts,
				// but their XML is written from the JSON's form, which
				// RFC 8727 shapes otherwise (a Record's restriction on
				// its RecordData, say).
				if !proto.Equal(withoutKeptXML(x.Incident), withoutKeptXML(j.Incident)) {
					t.Errorf("incident %d differs:\nXML  %v\nJSON %v\n%s", i+1, x.Incident, j.Incident, js.Bytes())
				}
			}
			// Back to JSON: the transcoding is stable.
			root2, err := readJSONTree(file, js.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			if err := writeJSONTree(&again, root2); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(js.Bytes(), again.Bytes()) {
				t.Errorf("JSON → tree → JSON changed it:\n%s\n---\n%s", js.Bytes(), again.Bytes())
			}
		})
	}
}

// TestDecodeJSONErrors: a broken document is refused with the place and
// the path of its problem.
func TestDecodeJSONErrors(t *testing.T) {
	deep := strings.Repeat(`{"EventData":[`, MaxDepth) + `{}` + strings.Repeat(`]}`, MaxDepth)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", ``, "ends before its JSON is complete"},
		{"truncated", "{\n \"version\": \"2.0\",\n \"Incident\": [{\"purpose\": ", "ends before its JSON is complete"},
		{"syntax", "{\n \"version\": \"2.0\",\n \"Incident\": [}\n", "line 3:"},
		{"not an object", `["Incident"]`, "must be a JSON object"},
		{"trailing", `{"version":"2.0","Incident":[]} {}`, "text after"},
		{"duplicate", "{\"version\":\"2.0\",\n\"version\":\"2.0\"}", "line 2:1: IODEF-Document/version: the member \"version\" appears twice"},
		{"null", `{"version":null}`, "IODEF-Document/version: null"},
		{"deep", `{"version":"2.0","Incident":[{"purpose":"reporting","EventData":[` + deep + `]}]}`, "nested more than 48 deep"},
		{"nested arrays", `{"version":"2.0","Incident":[[{}]]}`, "array within an array"},
		{"bad name", `{"version":"2.0","Incident":[{"a b":"c"}]}`, "\"a b\" is not an IODEF attribute name"},
		{"bad element", `{"version":"2.0","Incident":[{"A<":"c"}]}`, "not an IODEF element name"},
		{"attribute object", `{"version":"2.0","Incident":[{"purpose":{}}]}`, "IODEF-Document/Incident/purpose: want a string or a number, not an object"},
		{"no incident", `{"version":"2.0"}`, "holds no Incident"},
		{"not utf-8", "{\"version\":\"\xff\"}", "not UTF-8"},
		{"bad impact", `{"version":"2.0","Incident":[{"Assessment":[{"Impact":[{"Foo":{}}]}]}]}`, "\"Foo\" is not an Impact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeJSON(strings.NewReader(tc.doc), "", jsonDefaults)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want an *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
	big := `{"version":"2.0","Incident":[{"Description":["` + strings.Repeat("x", MaxDocumentBytes) + `"]}]}`
	if _, err := DecodeJSON(strings.NewReader(big), "big.json", jsonDefaults); err == nil || !strings.Contains(err.Error(), "more than 4 MiB") {
		t.Errorf("oversize: %v", err)
	}
}

// FuzzDecodeJSON: no input makes the reader panic, and whatever it reads
// writes back as JSON it reads the same.
func FuzzDecodeJSON(f *testing.F) {
	BoundMinimizing(f)
	files, _ := filepath.Glob(filepath.Join("testdata", "json", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := readJSONTree("fuzz", data)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeJSONTree(&out, root); err != nil {
			t.Fatal(err)
		}
		if _, err := readJSONTree("again", out.Bytes()); err != nil {
			t.Fatalf("written JSON does not read back: %v\n%s", err, out.Bytes())
		}
		_, _ = DecodeJSON(bytes.NewReader(data), "fuzz", jsonDefaults)
	})
}

// genIncident makes a record from a sample's, with the values rapid
// draws: text of any runes XML can carry, indicators, times, markings.
func genIncident(t *rapid.T, bases []*irxv1.Incident) *irxv1.Incident {
	inc := proto.CloneOf(rapid.SampledFrom(bases).Draw(t, "base"))
	inc.Tlp = irxv1.Tlp(rapid.IntRange(1, 5).Draw(t, "tlp"))
	classes := record.TaxonomyClasses()
	class := rapid.SampledFrom(classes).Draw(t, "class")
	inc.Taxonomy = &irxv1.Taxonomy{Class: class, Type: rapid.SampledFrom(record.TaxonomyTypes(class)).Draw(t, "type")}
	text := rapid.StringMatching(`[\p{L}\p{N} .,;:!?<>&"'/()\-]{1,60}`)
	for i := range rapid.IntRange(0, 3).Draw(t, "descriptions") {
		inc.Descriptions = append(inc.Descriptions, &irxv1.Description{Text: text.Draw(t, fmt.Sprint("description", i))})
	}
	for i := range rapid.IntRange(0, 4).Draw(t, "indicators") {
		ind := &irxv1.Indicator{Description: text.Draw(t, fmt.Sprint("indicator description", i))}
		if rapid.Bool().Draw(t, fmt.Sprint("ipv4", i)) {
			ind.Kind = irxv1.IndicatorKind_INDICATOR_KIND_IPV4
			ind.Value = fmt.Sprintf("192.0.2.%d", rapid.IntRange(1, 254).Draw(t, fmt.Sprint("octet", i)))
		} else {
			ind.Kind = irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN
			ind.Value = rapid.StringMatching(`[a-z][a-z0-9]{0,10}\.example\.(com|net|org)`).Draw(t, fmt.Sprint("domain", i))
		}
		inc.Indicators = append(inc.Indicators, ind)
	}
	if rapid.Bool().Draw(t, "report time") {
		inc.ReportTime = timestamppb.New(time.Unix(rapid.Int64Range(0, 2_000_000_000).Draw(t, "report"), 0))
	}
	return inc
}

// TestJSONRoundTripEqualsXML: what a record becomes through the JSON
// binding (EncodeJSON, DecodeJSON) is what it becomes through XML
// (Encode, Decode), for the samples' records and records drawn from them.
func TestJSONRoundTripEqualsXML(t *testing.T) {
	var bases []*irxv1.Incident
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := Decode(bytes.NewReader(data), file, jsonDefaults)
		if err != nil {
			continue
		}
		for _, d := range doc.Incidents {
			if d.Err == nil {
				bases = append(bases, d.Incident)
			}
		}
	}
	if len(bases) == 0 {
		t.Fatal("no sample decodes")
	}
	opts := EncodeOptions{Team: "dev", GenerationTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	rapid.Check(t, func(t *rapid.T) {
		incs := []*irxv1.Incident{genIncident(t, bases)}
		if rapid.Bool().Draw(t, "two") {
			incs = append(incs, genIncident(t, bases))
		}
		var x, j bytes.Buffer
		if err := Encode(&x, incs, opts); err != nil {
			t.Skip("not encodable:", err) // Encode's own tests cover what it refuses
		}
		if err := EncodeJSON(&j, incs, opts); err != nil {
			t.Fatalf("Encode wrote it, EncodeJSON did not: %v", err)
		}
		// An export says its TLP and taxonomy: no defaults.
		fromX, errX := Decode(&x, "x", Options{})
		fromJ, errJ := DecodeJSON(bytes.NewReader(j.Bytes()), "j", Options{})
		if errX != nil || errJ != nil {
			t.Fatalf("XML: %v; JSON: %v\n%s", errX, errJ, j.Bytes())
		}
		if len(fromX.Incidents) != len(fromJ.Incidents) {
			t.Fatalf("%d incidents from XML, %d from JSON", len(fromX.Incidents), len(fromJ.Incidents))
		}
		for i := range fromX.Incidents {
			a, b := fromX.Incidents[i], fromJ.Incidents[i]
			if (a.Err == nil) != (b.Err == nil) || !proto.Equal(a.Incident, b.Incident) {
				t.Fatalf("incident %d:\nXML  %v %v\nJSON %v %v\n%s", i+1, a.Incident, a.Err, b.Incident, b.Err, j.Bytes())
			}
		}
		// And the JSON is stable: written again from what it reads, the
		// same bytes.
		var again bytes.Buffer
		recs := make([]*irxv1.Incident, len(fromJ.Incidents))
		for i, d := range fromJ.Incidents {
			recs[i] = d.Incident
		}
		var j2 bytes.Buffer
		if err := EncodeJSON(&j2, recs, opts); err != nil {
			t.Fatal(err)
		}
		fromJ2, err := DecodeJSON(bytes.NewReader(j2.Bytes()), "j2", Options{})
		if err != nil {
			t.Fatal(err)
		}
		recs2 := make([]*irxv1.Incident, len(fromJ2.Incidents))
		for i, d := range fromJ2.Incidents {
			recs2[i] = d.Incident
		}
		if err := EncodeJSON(&again, recs2, opts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(j2.Bytes(), again.Bytes()) {
			t.Fatalf("export → import → export changed the JSON:\n%s\n---\n%s", j2.Bytes(), again.Bytes())
		}
	})
}

// TestJSONString: the writer's strings are what encoding/json reads back.
func TestJSONString(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.String().Draw(t, "s")
		if rapid.Bool().Draw(t, "invalid") {
			s += string([]byte{0xff, 'a', 0xc3})
		}
		var b bytes.Buffer
		(&jwriter{b: &b}).str(s)
		var got string
		if err := json.Unmarshal(b.Bytes(), &got); err != nil {
			t.Fatalf("%q wrote %s: %v", s, b.Bytes(), err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want && !(strings.ContainsRune(s, utf8.RuneError) || !utf8.ValidString(s)) {
			t.Fatalf("%q wrote %s, which reads %q", s, b.Bytes(), got)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q wrote %s, which reads %q", s, b.Bytes(), got)
		}
	})
}

// BenchmarkEncodeJSON writes a document of 100 incidents.
func BenchmarkEncodeJSON(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "malware.xml"))
	if err != nil {
		b.Fatal(err)
	}
	doc, err := Decode(bytes.NewReader(data), "malware.xml", jsonDefaults)
	if err != nil {
		b.Fatal(err)
	}
	incs := slices.Repeat([]*irxv1.Incident{doc.Incidents[0].Incident}, 100)
	opts := EncodeOptions{Team: "dev", GenerationTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for b.Loop() {
		if err := EncodeJSON(io.Discard, incs, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeXML is BenchmarkEncodeJSON in XML.
func BenchmarkEncodeXML(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "malware.xml"))
	if err != nil {
		b.Fatal(err)
	}
	doc, err := Decode(bytes.NewReader(data), "malware.xml", jsonDefaults)
	if err != nil {
		b.Fatal(err)
	}
	incs := slices.Repeat([]*irxv1.Incident{doc.Incidents[0].Incident}, 100)
	opts := EncodeOptions{Team: "dev", GenerationTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for b.Loop() {
		if err := Encode(io.Discard, incs, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// TestJSONLayout: the writer lays JSON out as json.Indent does with two
// spaces.
func TestJSONLayout(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		root, err := readTree(file, data)
		if err != nil {
			continue
		}
		var out, want bytes.Buffer
		if err := writeJSONTree(&out, root); err != nil {
			t.Fatal(err)
		}
		if err := json.Indent(&want, out.Bytes(), "", "  "); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", file, err, out.Bytes())
		}
		want.WriteByte('\n')
		if !bytes.Equal(bytes.TrimSpace(out.Bytes()), bytes.TrimSpace(want.Bytes())) {
			t.Errorf("%s: the layout differs from json.Indent's:\n%s", file, out.Bytes())
		}
	}
}

// withoutKeptXML is inc without the XML of the parts it keeps verbatim.
func withoutKeptXML(inc *irxv1.Incident) *irxv1.Incident {
	if inc == nil {
		return nil
	}
	c := proto.CloneOf(inc)
	for _, list := range [][]*irxv1.IodefExtra{c.IodefExtrasPrivateUser, c.IodefExtrasIntruder, c.IodefExtrasPrivateSite,
		c.IodefExtrasVulnerability, c.IodefExtrasEmbarrassing, c.IodefExtrasStatistical, c.IodefExtrasContact} {
		for _, x := range list {
			x.Xml = ""
		}
	}
	return c
}
