package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irxfed/irx/formats/iodef"
	"github.com/irxfed/irx/test/irxdtest"
)

// TestExportAndServerImport imports IODEF documents through the team (its
// configured import defaults fill what they do not say) and exports them
// in both bindings.
func TestExportAndServerImport(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "irxd.yaml")
	writeFile(t, cfg, "import:\n  default_tlp: amber\n  default_taxonomy: other/undetermined\n")
	n := irxdtest.StartNode(t, irxdtest.Binary(t), "--config", cfg)
	ctl := cliAt(t, n.APIAddr)

	// No flags: the team's defaults.
	r := mustSucceed(t, ctl("", "incident", "import", iodefSample(filepath.Join("json", "rfc8727-4.1-minimal.json"))))
	if !strings.HasPrefix(r.stdout, "created 1, updated 0, unchanged 0, conflicts 0, rejected 0\n") {
		t.Fatalf("import: %v", r)
	}
	r = mustSucceed(t, ctl("", "incident", "import", iodefSample("multi.xml")))
	if !strings.HasPrefix(r.stdout, "created 3,") {
		t.Fatalf("import: %v", r)
	}

	r = mustSucceed(t, ctl("", "incident", "export", "dev:1"))
	if !strings.Contains(r.stdout, "<IODEF-Document") || !strings.Contains(r.stdout, "492382") {
		t.Fatalf("export:\n%s", r.stdout)
	}
	doc, err := iodef.Decode(strings.NewReader(r.stdout), "export", iodef.Options{})
	if err != nil || doc.Incidents[0].Err != nil {
		t.Fatalf("the export does not read back: %v %v", err, doc)
	}
	out := filepath.Join(t.TempDir(), "one.json")
	mustSucceed(t, ctl("", "incident", "export", "dev:1", "dev:2", "--format", "iodef-json", "-o", out))
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if doc, err := iodef.DecodeJSON(bytes.NewReader(data), out, iodef.Options{}); err != nil || len(doc.Incidents) != 2 {
		t.Fatalf("the JSON export: %v %v", err, doc)
	}
	// Filters: one page per file when they make several documents.
	mustFail(t, ctl("", "incident", "export", "--page-size", "1"), 1, "more than one document")
	dir := t.TempDir()
	mustSucceed(t, ctl("", "incident", "export", "--page-size", "3", "-o", dir))
	files, _ := filepath.Glob(filepath.Join(dir, "export-*.xml"))
	if len(files) != 2 {
		t.Errorf("%d documents for 4 incidents in pages of 3: %v", len(files), files)
	}
	mustFail(t, ctl("", "incident", "export", "dev:99"), 1, "ids[0]")
	mustFail(t, ctl("", "incident", "export", "dev:1", "--format", "stix"), 2, `--format "stix"`)
	mustFail(t, ctl("", "incident", "export", "--tlp", "red", "--origin", "nobody"), 1, "nothing to export")
}

// TestImportDryRun decodes without a node and says what would happen.
func TestImportDryRun(t *testing.T) {
	ctl := cliAt(t, "127.0.0.1:1") // nothing listens: a dry run connects to nothing
	r := mustSucceed(t, ctl("", "incident", "import", "--dry-run", iodefSample("multi.xml"), "--taxonomy", "other/undetermined"))
	for _, want := range []string{
		"multi.xml:incident-1: would create: TLP:RED fraud/phishing\n",
		"multi.xml:incident-3: would create: TLP:RED other/undetermined (taxonomy from --taxonomy)\n",
		"would create 3, rejected 0 (dry run: nothing sent)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	// What the record has no field for, each with its line.
	r = mustSucceed(t, ctl("", "incident", "import", "--dry-run", iodefSample("dos.xml")))
	if !strings.Contains(r.stdout, "dos.xml: IODEF kept verbatim (no irx field): Incident/Assessment/TimeImpact (line 30)") {
		t.Errorf("dry run of dos.xml:\n%s", r.stdout)
	}
	r = ctl("", "incident", "import", "--dry-run", iodefSample("unknown-enum.xml"), "--taxonomy", "other/undetermined")
	if r.code != 1 || !strings.Contains(r.stdout, `unknown-enum.xml:incident-2: not an incident: line 16:3: Incident[2]@status: "pending" is not an IODEF status`) ||
		!strings.Contains(r.stdout, "rejected 1 (dry run: nothing sent)\n") {
		t.Errorf("dry run of a document with a bad Incident: %v", r)
	}
	r = mustSucceed(t, ctl("", "incident", "import", "--dry-run", iodefSample(filepath.Join("json", "rfc8727-4.2-campaign.json")), "--taxonomy", "other/undetermined"))
	if !strings.Contains(r.stdout, "rfc8727-4.2-campaign.json:incident-1: would create: TLP:GREEN information-content-security/data-leak\n") {
		t.Errorf("dry run of RFC 8727 JSON:\n%s", r.stdout)
	}
}
