package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// requireXMLLint is the variable CI sets so that a missing xmllint or
// schema fails the XSD validation instead of skipping it.
const requireXMLLint = "IRX_REQUIRE_XMLLINT"

// schemaFor prepares a directory holding iodef-2.0.xsd (RFC 7970 section 8)
// and the schemas it imports, with every schemaLocation pointed at the
// local files, so xmllint validates offline; it skips (fails under
// IRX_REQUIRE_XMLLINT) when xmllint or the RFC's schema is missing.
func schemaFor(t *testing.T, root string) (xmllint, xsd string) {
	t.Helper()
	miss := func(why string) {
		if os.Getenv(requireXMLLint) != "" {
			t.Fatalf("%s, and %s is set", why, requireXMLLint)
		}
		t.Skip(why)
	}
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		miss("xmllint not installed (Debian: apt-get install libxml2-utils)")
	}
	support := filepath.Join(root, "formats", "iodef", "testdata", "schema")
	var rfc []byte
	for _, dir := range []string{os.Getenv("IRX_IODEF_SCHEMA"), support, filepath.Join(root, "..", "shared", "iodef", "schema")} {
		if dir == "" {
			continue
		}
		if rfc, err = os.ReadFile(filepath.Join(dir, "iodef-2.0.xsd")); err == nil {
			break
		}
	}
	if rfc == nil {
		miss("iodef-2.0.xsd not found (see formats/iodef/testdata/schema/SOURCES; IRX_IODEF_SCHEMA names a directory holding it)")
	}
	dir := t.TempDir()
	local := regexp.MustCompile(`schemaLocation="[^"]*?([A-Za-z0-9._-]+\.xsd)"`)
	if err := os.WriteFile(filepath.Join(dir, "iodef-2.0.xsd"), local.ReplaceAll(rfc, []byte(`schemaLocation="$1"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(support, "*.xsd"))
	for _, f := range files {
		if filepath.Base(f) == "iodef-2.0.xsd" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bin, filepath.Join(dir, "iodef-2.0.xsd")
}

// TestIODEFImportExportAcrossTeams: team A imports IODEF documents through
// ImportIncidents with the import defaults of its configuration and
// exports them (XML valid against the RFC's schema, and RFC 8727 JSON); B
// imports A's export as a record equal to A's; a record B received from A
// exports as exactly the view B holds.
func TestIODEFImportExportAcrossTeams(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cfg := filepath.Join(t.TempDir(), "a.yaml")
	if err := os.WriteFile(cfg, []byte("import:\n  default_tlp: amber\n  default_taxonomy: other/undetermined\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startTeam(t, "cert-a", 1, "--config", cfg)
	b := startTeam(t, "cert-b", 1)
	a.peerWith(t, b, false)
	b.peerWith(t, a, true)
	a.setPolicy(t, sharePolicy("cert-b", irxv1.Tlp_TLP_AMBER, 2))

	xmlF, jsonF := irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML, irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON
	var ids []string
	for _, s := range []struct {
		file   string
		format irxv1.DocumentFormat
	}{{"malware.xml", xmlF}, {"dos.xml", xmlF}, {filepath.Join("json", "rfc8727-4.2-campaign.json"), jsonF}} {
		doc, err := os.ReadFile(filepath.Join(root, "formats", "iodef", "testdata", s.file))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.clients[0].incidents.ImportIncidents(ctxT(t), &irxv1.ImportIncidentsRequest{Document: doc, Format: s.format, DocumentName: s.file})
		if err != nil {
			t.Fatalf("import %s: %v", s.file, err)
		}
		for _, r := range resp.GetResults() {
			if r.GetErrorCode() != "" || r.GetId() == "" {
				t.Fatalf("%s incident %d: %s %s", s.file, r.GetIndex(), r.GetErrorCode(), r.GetErrorMessage())
			}
			ids = append(ids, r.GetId())
		}
	}

	// Every export validates against the schema.
	xmlExport, err := a.clients[0].incidents.ExportIncidents(ctxT(t), &irxv1.ExportIncidentsRequest{Format: xmlF, Ids: ids})
	if err != nil {
		t.Fatal(err)
	}
	jsonExport, err := a.clients[0].incidents.ExportIncidents(ctxT(t), &irxv1.ExportIncidentsRequest{Format: jsonF, Ids: ids})
	if err != nil {
		t.Fatal(err)
	}
	if doc, err := iodef.DecodeJSON(bytes.NewReader(jsonExport.GetDocument()), "export.json", iodef.Options{}); err != nil || len(doc.Incidents) != len(ids) {
		t.Errorf("the JSON export does not read back: %v", err)
	}

	// B imports A's export: the same records.
	back, err := b.clients[0].incidents.ImportIncidents(ctxT(t), &irxv1.ImportIncidentsRequest{Document: xmlExport.GetDocument(), Format: xmlF})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range back.GetResults() {
		if r.GetErrorCode() != "" {
			t.Fatalf("B's import of A's export, incident %d: %s %s", i+1, r.GetErrorCode(), r.GetErrorMessage())
		}
		atA, err := get(a.clients[0], ids[i])
		if err != nil {
			t.Fatal(err)
		}
		atB, err := get(b.clients[0], r.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if x, y := withoutStamps(atA), withoutStamps(atB); !proto.Equal(x, y) {
			t.Errorf("incident %d: A's record and B's import of A's export differ:\nA %v\nB %v", i+1, x, y)
		}
	}

	// The GREEN malware report reaches B under A's policy (contacts
	// stripped); B's export of it is the view B holds, nothing more.
	shared := ids[0]
	eventually(t, 30*time.Second, "B has A's GREEN record", hasVersion(b.clients[0], shared, 1))
	held, err := get(b.clients[0], shared)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := b.clients[0].incidents.ExportIncidents(ctxT(t), &irxv1.ExportIncidentsRequest{Format: xmlF, Ids: []string{shared}})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := iodef.Encode(&want, []*irxv1.Incident{held}, iodef.EncodeOptions{Team: "cert-b"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exp.GetDocument(), want.Bytes()) {
		t.Errorf("B's export of the received record is not its held view encoded:\n%s\n---\n%s", exp.GetDocument(), want.Bytes())
	}
	if strings.Contains(string(exp.GetDocument()), "contact@csirt.example.com") {
		t.Errorf("B's export holds the contact A's policy stripped:\n%s", exp.GetDocument())
	}

	// Schema validation last: it may skip where xmllint or the schema is
	// missing.
	bin, xsd := schemaFor(t, root)
	dir := t.TempDir()
	files := map[string][]byte{"a.xml": xmlExport.GetDocument(), "b-received.xml": exp.GetDocument()}
	args := []string{"--noout", "--nonet", "--schema", xsd}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Errorf("xmllint refuses the exports: %v\n%s", err, out)
	}
}

// withoutStamps is a record without what each team sets on a create or a
// receipt (id, version, times, provenance) and the sender's ids an import
// adds.
func withoutStamps(inc *irxv1.Incident) *irxv1.Incident {
	c := proto.CloneOf(inc)
	c.Id, c.Version, c.CreateTime, c.GenerationTime, c.Provenance, c.SenderGenerationTime = "", 0, nil, nil, nil, nil
	c.AlternativeIds = nil
	return c
}
