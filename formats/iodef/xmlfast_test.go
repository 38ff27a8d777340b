package iodef

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// sameTree says how a and b differ, "" when they do not.
func sameTree(a, b *element, path string) string {
	path += "/" + a.name.Local
	switch {
	case a.name != b.name || a.raw != b.raw:
		return fmt.Sprintf("%s: name %v %v, %v %v", path, a.name, a.raw, b.name, b.raw)
	case a.line != b.line || a.col != b.col:
		return fmt.Sprintf("%s: at %d:%d, %d:%d", path, a.line, a.col, b.line, b.col)
	case !bytes.Equal(a.text, b.text):
		return fmt.Sprintf("%s: text %q, %q", path, a.text, b.text)
	case len(a.attrs) != len(b.attrs) || len(a.children) != len(b.children):
		return fmt.Sprintf("%s: %d attributes and %d children, %d and %d", path, len(a.attrs), len(a.children), len(b.attrs), len(b.children))
	}
	for i := range a.attrs {
		if *a.attrs[i] != *b.attrs[i] {
			return fmt.Sprintf("%s: attribute %v, %v", path, *a.attrs[i], *b.attrs[i])
		}
	}
	for i := range a.children {
		if a.children[i].parent != a || b.children[i].parent != b {
			return path + ": a child's parent is not its element"
		}
		if d := sameTree(a.children[i], b.children[i], path); d != "" {
			return d
		}
	}
	return ""
}

// FuzzFastTree: what fastTree reads, encoding/xml reads the same, element
// for element (names, namespaces, attributes, text, places); what it does
// not read it leaves to encoding/xml.
func FuzzFastTree(f *testing.F) {
	BoundMinimizing(f)
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`<?xml version='1.0' encoding="utf-8" standalone='no' ?><a xmlns="urn:x" xmlns:p="urn:p"><p:b p:c="&lt;&amp;&gt;" d = '"'/>t&quot;x<!-- c -->y<e/></a>`,
		"<a>\n <b x=\"1\"y=\"2\">\n</b ></a>\n<!-- after -->\n",
		`<a:b:c/>`, `<a><b></a></b>`, `<a>&#65;</a>`, `<a><![CDATA[x]]></a>`, "<a>\r\n</a>", `<a>]]></a>`,
		`<1a/>`, `<a x=1/>`, `<a x="<"/>`, `<a>&nbsp;</a>`, `<a/><b/>`, `x<a/>`, `<a/>x`, `<a><!-- -- --></a>`,
		`<?xml version="1.1"?><a/>`, `<?xml version="1.0" encoding="latin1"?><a/>`, `<é/>`, "<a>\x01</a>", "<a>\uFFFE</a>",
		`<:a/>`, `<a:/>`, `<p:a xmlns:p="urn:p"></a>`, `<a xmlns:p="urn:p"><p:b/></a>`, `</a>`, `<a></a></a>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := fastTree(data)
		if !ok {
			return
		}
		slow, err := decodeTree("fuzz.xml", data)
		if err != nil {
			t.Fatalf("fastTree read what encoding/xml refuses: %v", err)
		}
		if d := sameTree(fast, slow, ""); d != "" {
			t.Fatalf("fastTree and encoding/xml differ: %s", d)
		}
	})
}

// TestFastTreeReadsWhatWritersWrite: the documents of testdata and an
// export are read by fastTree (else the import would not be faster), as
// encoding/xml reads them.
func TestFastTreeReadsWhatWritersWrite(t *testing.T) {
	inc := &irxv1.Incident{Id: "csirt-example:1", Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"},
		ReportTime:   timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)),
		Descriptions: []*irxv1.Description{{Lang: "en", Text: "SSH password guessing & <more>"}},
		VictimHosts:  []*irxv1.Host{{Hostname: "mail.example.org", Addresses: []string{"192.0.2.25"}}}}
	var export bytes.Buffer
	if err := Encode(&export, []*irxv1.Incident{inc}, EncodeOptions{Team: "csirt.example.com", GenerationTime: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	docs := map[string][]byte{"export": export.Bytes()}
	for _, name := range []string{"dos.xml", "malware.xml", "codered-v1.xml", "multi.xml", "unknown-enum.xml", "bad-namespace.xml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = data
	}
	for name, data := range docs {
		fast, ok := fastTree(data)
		if !ok {
			t.Errorf("%s: fastTree does not read it", name)
			continue
		}
		slow, err := decodeTree(name, data)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameTree(fast, slow, ""); d != "" {
			t.Errorf("%s: %s", name, d)
		}
	}
	// What it leaves to encoding/xml, which refuses it with its place.
	for _, data := range []string{"", "<a>", "<!DOCTYPE a><a/>", "<a></b>", "<a>&x;</a>"} {
		if _, ok := fastTree([]byte(data)); ok {
			t.Errorf("fastTree read %q", data)
		}
	}
}
