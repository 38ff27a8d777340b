package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
	"github.com/irxfed/irx/test/irxdtest"
)

// iodefSample is a sample document of the IODEF library's tests.
func iodefSample(name string) string {
	return filepath.Join("..", "..", "formats", "iodef", "testdata", name)
}

// TestIODEFCreateAndImport creates incidents from IODEF documents on a real
// node, and imports a directory holding IODEF, JSON and YAML together.
func TestIODEFCreateAndImport(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	listed := func() int {
		t.Helper()
		r := mustSucceed(t, ctl("", "incident", "list", "--page-size", "1000"))
		if strings.TrimSpace(r.stdout) == "" {
			return 0
		}
		return len(tableRows(t, r.stdout))
	}

	// The document's restriction gives the TLP (need-to-know is
	// TLP:AMBER+STRICT) and its IncidentCategory the taxonomy: no flags.
	r := mustSucceed(t, ctl("", "incident", "create", "-f", iodefSample("dos.xml")))
	rows := tableRows(t, r.stdout)
	if len(rows) != 1 || rows[0][0] != "dev:1" || rows[0][2] != "in-progress" || rows[0][3] != "TLP:AMBER+STRICT" ||
		rows[0][4] != "availability/ddos" || rows[0][5] != "2026-03-02T08:30:00Z" {
		t.Fatalf("create from IODEF:\n%s", r.stdout)
	}
	// One warning line lists what irx keeps verbatim and what it mapped
	// with a loss.
	if !strings.HasPrefix(r.stderr, "irxctl: warning: "+iodefSample("dos.xml")+": IODEF kept verbatim (no irx field): ") ||
		strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "Incident/Contact/PostalAddress") {
		t.Errorf("warning: %q", r.stderr)
	}
	// The node holds exactly the mapping, under the id it assigned.
	r = mustSucceed(t, ctl("", "incident", "get", "dev:1", "-o", "json"))
	var stored irxv1.Incident
	if err := protojson.Unmarshal([]byte(r.stdout), &stored); err != nil {
		t.Fatal(err)
	}
	opts, err := iodefFlagOptions("", "")
	if err != nil {
		t.Fatal(err)
	}
	dos, err := os.Open(iodefSample("dos.xml"))
	if err != nil {
		t.Fatal(err)
	}
	defer dos.Close()
	doc, err := iodef.Decode(dos, iodefSample("dos.xml"), opts)
	if err != nil {
		t.Fatal(err)
	}
	record.ClearOutputOnly(&stored)
	if !proto.Equal(&stored, doc.Incidents[0].Incident) {
		t.Errorf("stored:\n%v\nmapped:\n%v", &stored, doc.Incidents[0].Incident)
	}

	// Several incidents: each is created, in document order, and printed;
	// with --request-id each has its own, so a retry creates nothing.
	multi := []string{"incident", "create", "-f", iodefSample("multi.xml"), "--tlp", "amber", "--taxonomy", "other/undetermined", "--request-id", "multi"}
	r = mustSucceed(t, ctl("", multi...))
	var got []string
	for _, row := range tableRows(t, r.stdout) {
		got = append(got, strings.Join(row[:5], " "))
	}
	want := []string{"dev:2 1 new TLP:RED fraud/phishing", "dev:3 1 new TLP:AMBER information-gathering/scanner", "dev:4 1 new TLP:RED other/undetermined"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("create of three incidents:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", append(multi, "-o", "yaml")...))
	dec := yaml.NewDecoder(strings.NewReader(r.stdout))
	var ids []string
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		ids = append(ids, doc["id"].(string))
	}
	if strings.Join(ids, " ") != "dev:2 dev:3 dev:4" {
		t.Fatalf("retry with the same request id, -o yaml: %v\n%s", ids, r.stdout)
	}

	// stdin is recognised by its content; IODEF v1 is read too.
	codered, err := os.ReadFile(iodefSample("codered-v1.xml"))
	if err != nil {
		t.Fatal(err)
	}
	r = mustSucceed(t, ctl(string(codered), "incident", "create", "-f", "-", "--tlp", "green", "--taxonomy", "malicious-code/infected-system", "-o", "json"))
	var v1 irxv1.Incident
	if err := protojson.Unmarshal([]byte(r.stdout), &v1); err != nil || v1.GetId() != "dev:5" || len(v1.GetAttackingHosts()) != 1 || len(v1.GetLogExcerpts()) != 1 {
		t.Fatalf("create from IODEF v1 on stdin: %v\n%s", err, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "irxctl: warning: stdin: IODEF kept verbatim") {
		t.Errorf("warning for stdin: %q", r.stderr)
	}

	// All or nothing: one bad Incident and none is created; every problem
	// is named.
	mustFail(t, ctl("", "incident", "create", "-f", iodefSample("unknown-enum.xml"), "--tlp", "amber"), 1,
		"irxctl: "+iodefSample("unknown-enum.xml")+`:16:3: Incident[2]@status: "pending" is not an IODEF status; one of new, in-progress, forwarded, resolved, future, ext-value`,
		iodefSample("unknown-enum.xml")+`:24:9: Incident[2]/EventData/Flow/System@category: "attacker" is not an IODEF system category`)
	mustFail(t, ctl("", "incident", "create", "-f", iodefSample("bad-namespace.xml"), "--tlp", "amber"), 1,
		"irxctl: "+iodefSample("bad-namespace.xml")+`:3:1: IODEF-Document: namespace "urn:ietf:params:xml:ns:iodef" is not IODEF`)
	mustFail(t, ctl("", "incident", "create", "-f", iodefSample("truncated.xml"), "--tlp", "amber"), 1,
		"irxctl: "+iodefSample("truncated.xml")+":17:45: IODEF-Document/Incident/Description: XML syntax error: unexpected EOF")
	// Nothing in its third Incident implies a taxonomy: refused, and so
	// the whole file.
	mustFail(t, ctl("", "incident", "create", "-f", iodefSample("multi.xml")), 1,
		iodefSample("multi.xml")+":77:3: Incident[3]: no Reference Security Incident Taxonomy entry can be derived", "pass --taxonomy CLASS/TYPE")
	big := filepath.Join(t.TempDir(), "big.xml")
	if err := os.WriteFile(big, append(codered, make([]byte, iodef.MaxDocumentBytes)...), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail(t, ctl("", "incident", "create", "-f", big, "--tlp", "amber"), 1, "big.xml:1:1: IODEF-Document: the document is more than 4 MiB; the limit is 4194304 bytes")
	// The flags are checked, and are for IODEF only.
	mustFail(t, ctl(incidentJSON, "incident", "create", "-f", "-", "--tlp", "amber"), 2, "--tlp and --taxonomy are for IODEF XML; stdin is JSON or YAML")
	mustFail(t, ctl("", "incident", "create", "-f", iodefSample("dos.xml"), "--tlp", "purple"), 2, `--tlp "purple": one of clear, green, amber, amber-strict, red`)
	mustFail(t, ctl("", "incident", "create", "-f", iodefSample("dos.xml"), "--tlp", "amber", "--taxonomy", "malware"), 2,
		`--taxonomy "malware": want CLASS/TYPE of the Reference Security Incident Taxonomy`)
	mustFail(t, ctl("", "incident", "update", "dev:1", "-f", iodefSample("dos.xml"), "--fields", "status"), 1,
		`IODEF XML is read by "incident create" and "incident import" only`)
	if got := listed(); got != 5 {
		t.Fatalf("%d incidents after the refusals, want 5", got)
	}

	// Import a directory of IODEF, JSON and YAML: one record per Incident
	// element, named FILE:incident-N; a document that cannot be read is one
	// rejected record.
	dir := t.TempDir()
	for _, name := range []string{"dos.xml", "malware.xml", "multi.xml", "unknown-enum.xml", "bad-namespace.xml"} {
		data, err := os.ReadFile(iodefSample(name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "iodef", name), string(data))
	}
	writeFile(t, filepath.Join(dir, "c2.json"), incidentJSON)
	writeFile(t, filepath.Join(dir, "more.yaml"), incidentYAML+"---\n"+incidentYAML)
	args := []string{"incident", "import", dir, "--tlp", "amber", "--taxonomy", "other/undetermined"}
	first := ctl("", args...)
	// 1 + 1 + 3 + 1 from IODEF, 1 JSON, 2 YAML; the second Incident of
	// unknown-enum.xml and bad-namespace.xml are rejected.
	if first.code != 1 || !strings.HasPrefix(first.stdout, "created 9, updated 0, unchanged 0, conflicts 0, rejected 2\n") {
		t.Fatalf("import: %v", first)
	}
	for _, want := range []string{
		filepath.Join(dir, "iodef", "bad-namespace.xml") + `: not an incident: line 3:1: IODEF-Document: namespace "urn:ietf:params:xml:ns:iodef" is not IODEF`,
		filepath.Join(dir, "iodef", "unknown-enum.xml") + `:incident-2: not an incident: line 16:3: Incident[2]@status: "pending" is not an IODEF status; ` +
			`one of new, in-progress, forwarded, resolved, future, ext-value; line 24:9: Incident[2]/EventData/Flow/System@category: "attacker"`,
	} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, first.stdout)
		}
	}
	for _, name := range []string{"dos.xml", "malware.xml", "multi.xml"} {
		if want := "irxctl: warning: " + filepath.Join(dir, "iodef", name) + ": IODEF "; !strings.Contains(first.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, first.stderr)
		}
	}
	if got := listed(); got != 14 {
		t.Fatalf("%d incidents after the import, want 14", got)
	}
	r = mustSucceed(t, ctl("", "incident", "list", "--indicator", "kj290023j09r34.example.com"))
	// The document's taxonomy (implied by its breach-proprietary business
	// impact) wins over --taxonomy.
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][3] != "TLP:GREEN" || rows[0][4] != "information-content-security/data-leak" {
		t.Errorf("the imported malware report:\n%s", r.stdout)
	}
	// A re-run creates nothing: each Incident keeps its request id.
	again := ctl("", args...)
	wantAgain := strings.Replace(first.stdout, "created 9, updated 0, unchanged 0,", "created 0, updated 0, unchanged 9,", 1)
	if again.code != 1 || again.stdout != wantAgain {
		t.Fatalf("re-run: %v\nfirst run's summary:\n%s", again, first.stdout)
	}
	if got := listed(); got != 14 {
		t.Fatalf("%d incidents after the re-run, want 14", got)
	}
	// One IODEF file alone, with the same defaults: nothing changes.
	r = ctl("", "incident", "import", filepath.Join(dir, "iodef", "multi.xml"), "--tlp", "amber", "--taxonomy", "other/undetermined")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "created 0, updated 0, unchanged 3, conflicts 0, rejected 0\n") {
		t.Errorf("import of one file: %v", r)
	}
	mustFail(t, ctl("", "incident", "import", dir, "--tlp", "crimson"), 2, `--tlp "crimson"`)
}
