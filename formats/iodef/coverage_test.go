package iodef

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// sampleFiles are the IODEF documents the coverage test reads: the
// documents of testdata modelled on the RFC examples, and the public
// samples of the workspace's shared test data when it is at hand
// (testdata/samples/SOURCES says where they come from).
func sampleFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"testdata/dos.xml", "testdata/malware.xml", "testdata/codered-v1.xml"}
	for _, dir := range []string{filepath.Join("testdata", "samples"), filepath.Join("..", "..", "..", "shared", "iodef", "samples")} {
		more, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
		files = append(files, more...)
	}
	return files
}

// TestSampleCoverage walks every leaf element and attribute of every
// sample and checks it is kept in the record (mapped to a field, or kept
// verbatim) and present in the record's export; it prints, per sample, the
// share mapped to fields, kept verbatim and found in the export. Every
// sample imports with no options.
func TestSampleCoverage(t *testing.T) {
	gen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, path := range sampleFiles(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		root, err := readTree(path, data)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := mapDocument(path, root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var incs []*irxv1.Incident
		for _, d := range doc.Incidents {
			if d.Err != nil {
				t.Errorf("%s does not import without options: %v", path, d.Err)
				continue
			}
			incs = append(incs, d.Incident)
		}
		if len(incs) == 0 {
			continue
		}
		var out bytes.Buffer
		if err := Encode(&out, incs, EncodeOptions{GenerationTime: gen}); err != nil {
			t.Fatal(err)
		}
		exported, err := readTree("export", out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		values := exportValues(exported)
		var leaves, mapped, kept, inExport int
		var missing []string
		walkLeaves(root, func(n *element, a *attribute) {
			leaves++
			used := n.used
			value := strings.TrimSpace(string(n.text))
			label := n.name.Local
			if a != nil {
				used = n.used && a.used
				value = a.value
				label += "@" + a.name.Local
			}
			if used {
				mapped++
			} else {
				kept++ // what the mapping did not use is kept verbatim
			}
			if values.has(value) || (value == "" && values.has("<"+n.name.Local)) || equivalent(values, n, a, value) {
				inExport++
			} else {
				missing = append(missing, label+"="+oneLine(value, 30))
			}
		})
		pct := func(n int) float64 { return 100 * float64(n) / float64(leaves) }
		t.Logf("%-60s %4d leaves: %5.1f%% mapped to fields, %5.1f%% kept verbatim, %5.1f%% in the export",
			path, leaves, pct(mapped), pct(kept), pct(inExport))
		if pct(mapped+kept) < 95 || pct(inExport) < 95 {
			t.Errorf("%s: under 95%% kept or exported; not in the export: %s", path, strings.Join(missing, ", "))
		}
	}
}

// walkLeaves calls f for every leaf element (no element children) and
// every attribute that carries data.
func walkLeaves(n *element, f func(*element, *attribute)) {
	for _, a := range n.attrs {
		// The format's version and v1's lang are bookkeeping, as
		// ignorableAttr's are.
		bookkeeping := a.name.Local == "lang" && a.name.Space == "" || n.parent == nil && a.name.Local == "version"
		if !ignorableAttr(a.name) && !bookkeeping {
			f(n, a)
		}
	}
	if len(n.children) == 0 {
		f(n, nil)
	}
	for _, k := range n.children {
		walkLeaves(k, f)
	}
}

// valueSet holds the values of a document in comparable forms: white
// space collapsed and lower case, instants in UTC, numbers as numbers,
// and element names (prefixed "<") for elements that carry none.
type valueSet map[string]bool

func (s valueSet) add(v string) {
	v = strings.ToLower(singleSpaced(v))
	s[v] = true
	if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
		s[ts.UTC().Format(time.RFC3339Nano)] = true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		s[strconv.FormatFloat(f, 'g', -1, 64)] = true
	}
	for _, line := range strings.Split(v, "\n") {
		s[strings.TrimSpace(line)] = true
	}
}

func (s valueSet) has(v string) bool {
	v = strings.ToLower(singleSpaced(v))
	if s[v] {
		return true
	}
	if ts, err := time.Parse(time.RFC3339Nano, strings.ToUpper(v)); err == nil && s[strings.ToLower(ts.UTC().Format(time.RFC3339Nano))] {
		return true
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if s[strconv.FormatFloat(f, 'g', -1, 64)] || s[strconv.FormatFloat(f/100, 'g', -1, 64)] {
			return true
		}
	}
	return false
}

// exportValues collects the values of an export, those of the parts it
// carries verbatim included.
func exportValues(root *element) valueSet {
	s := valueSet{}
	var walk func(n *element)
	walk = func(n *element) {
		s["<"+strings.ToLower(n.name.Local)] = true
		for _, a := range n.attrs {
			s.add(a.value)
		}
		text := strings.TrimSpace(string(n.text))
		if text != "" {
			s.add(text)
			if part, err := readTree("", []byte(text)); err == nil {
				walk(part)
			}
			var part any
			if strings.HasPrefix(text, "{") && json.Unmarshal([]byte(text), &part) == nil {
				// irx's JSON of a part: its values.
				jsonValues(part, s)
			}
		}
		for _, k := range n.children {
			walk(k)
		}
	}
	walk(root)
	return s
}

// jsonValues adds the leaves of a JSON value to s.
func jsonValues(v any, s valueSet) {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			jsonValues(x, s)
		}
	case []any:
		for _, x := range v {
			jsonValues(x, s)
		}
	case nil:
	default:
		s.add(fmt.Sprint(v))
	}
}

// equivalent reports whether the export holds the value in the form the
// mapping gives it: a restriction colour as the restriction RFC 7970
// equates it with, a v1 Impact as a v2 SystemImpact, an RFC 7203 id as an
// RFC 7495 reference, a bulk observable list value by value.
func equivalent(values valueSet, n *element, a *attribute, value string) bool {
	local := n.name.Local
	switch {
	case a != nil && a.name.Local == "restriction":
		if mk, ok := restrictionEnum.to[strings.TrimSpace(value)]; ok {
			return values.has(restrictionWord(mk.restriction)) || values.has(tlpColour(mk.tlp))
		}
	case a != nil && local == "Impact" && a.name.Local == "type":
		if row, ok := v1Impact[value]; ok {
			return values.has(strings.TrimPrefix(row.systemImpact, "ext-value:"))
		}
	case a == nil && local == "Impact":
		return values.has("<systemimpact") && (value == "" || values.has(value))
	case a == nil && (local == "AttackPattern" || local == "Weakness" || local == "Vulnerability"):
		if id := n.findAttr("ID"); id != nil {
			return values.has(id.value)
		}
	case a == nil && local == "BulkObservableList":
		for _, v := range strings.Fields(value) {
			if !values.has(v) {
				return false
			}
		}
		return true
	case a != nil && local == "BulkObservable":
		// type and ext-type say how to read the list, which is mapped
		return true
	}
	return false
}
