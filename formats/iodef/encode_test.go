package iodef_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// schemaDir is a directory holding iodef-2.0.xsd and the schemas it
// imports, or "" (with why) when the RFC's schema is not at hand: the
// schemas of the imported namespaces are in testdata/schema; RFC 7970's
// own is looked for there and in the shared test data of the workspace
// (IRX_IODEF_SCHEMA names another directory holding it).
func schemaDir(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("IRX_IODEF_SCHEMA"), filepath.Join("testdata", "schema"),
		filepath.Join("..", "..", "..", "shared", "iodef", "schema")}
	var rfc string
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c, "iodef-2.0.xsd")); err == nil {
			rfc = filepath.Join(c, "iodef-2.0.xsd")
			break
		}
	}
	if rfc == "" {
		t.Skip("iodef-2.0.xsd (RFC 7970 section 8) not found in testdata/schema, ../../../shared/iodef/schema or $IRX_IODEF_SCHEMA: see testdata/schema/SOURCES")
	}
	dir := t.TempDir()
	copyFile := func(src string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(rfc)
	for _, name := range []string{"xml.xsd", "xmldsig-core-schema.xsd", "iodef-enum-1.0.xsd", "iodef-sci-1.0.xsd"} {
		copyFile(filepath.Join("testdata", "schema", name))
	}
	return dir
}

// xmllint validates the documents against the schema in dir, all in one
// run (xmllint names each file it refuses).
func xmllint(t *testing.T, dir string, docs map[string][]byte) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not installed (Debian: apt-get install libxml2-utils): the exports are not validated against the XSD")
	}
	out := t.TempDir()
	args := []string{"--noout", "--nonet", "--schema", filepath.Join(dir, "iodef-2.0.xsd")}
	for name, data := range docs {
		p := filepath.Join(out, strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.Command(bin, args...)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint refuses exports: %v\n%s", err, res)
	}
}

func encode(t testing.TB, incs []*irxv1.Incident) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := iodef.Encode(&buf, incs, iodef.EncodeOptions{Team: "csirt.example", GenerationTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestEncodeTestdata exports every incident the documents of testdata
// map to, checks the export validates and reads back to the same records,
// and that exporting those again writes the same bytes.
func TestEncodeTestdata(t *testing.T) {
	docs := map[string][]byte{}
	for _, name := range []string{"dos.xml", "malware.xml", "multi.xml", "codered-v1.xml", "unknown-enum.xml"} {
		path, data := readTestdata(t, name)
		doc, err := decode(path, data, tlpAndTaxonomy)
		if err != nil {
			t.Fatal(err)
		}
		var incs []*irxv1.Incident
		for _, d := range doc.Incidents {
			if d.Incident != nil {
				incs = append(incs, d.Incident)
			}
		}
		out := encode(t, incs)
		docs[name] = out
		back, err := decode(name+" export", out, iodef.Options{})
		if err != nil {
			t.Fatalf("%s: the export does not read: %v\n%s", name, err, out)
		}
		var again []*irxv1.Incident
		for _, d := range back.Incidents {
			if d.Err != nil {
				t.Fatalf("%s: an exported incident does not read: %v\n%s", name, d.Err, out)
			}
			again = append(again, d.Incident)
		}
		if w := back.Warning(); w != "" {
			t.Errorf("%s: reading the export warns: %s", name, w)
		}
		if out2 := encode(t, again); !bytes.Equal(out, out2) {
			t.Errorf("%s: export, import, export is not byte-stable:\n%s\n---\n%s", name, out, out2)
		}
	}
	xmllint(t, schemaDir(t), docs)
}
