package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// importSample is record i of the import: every tenth is TLP:GREEN fraud,
// every third of the others a brute-force attempt, record 77 carries one
// extra indicator, and record i was reported i hours after 2026-03-01.
func importSample(i int) *irxv1.Incident {
	importBase := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	inc := &irxv1.Incident{
		Tlp:          irxv1.Tlp_TLP_AMBER,
		Taxonomy:     &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
		ReportTime:   timestamppb.New(importBase.Add(time.Duration(i) * time.Hour)),
		Descriptions: []*irxv1.Description{{Lang: "en", Text: fmt.Sprintf("imported report %d", i)}},
		Indicators:   []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2.bad.example"}},
	}
	switch {
	case i%10 == 0:
		inc.Tlp = irxv1.Tlp_TLP_GREEN
		inc.Taxonomy = &irxv1.Taxonomy{Class: "fraud", Type: "phishing"}
	case i%3 == 0:
		inc.Taxonomy = &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"}
	}
	if i == 77 {
		inc.Indicators = append(inc.Indicators, &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "203.0.113.77"})
	}
	return inc
}

func sampleJSON(t *testing.T, i int) string {
	t.Helper()
	b, err := protojson.Marshal(importSample(i))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeImportTree writes 300 records, 5 of them invalid, as 100 .json files
// in a subdirectory, a .jsonl file of 150 lines (with a blank line) and a
// .yaml file of 50 documents, plus files the import must skip. It returns
// the numbers of the valid records and the file:line of the invalid ones.
func writeImportTree(t *testing.T, dir string) (valid []int, invalid []string) {
	t.Helper()
	i := 0
	next := func() int { i++; return i }

	for f := 1; f <= 100; f++ {
		n := next()
		content := sampleJSON(t, n)
		name := filepath.Join(dir, "reports", fmt.Sprintf("r%03d.json", f))
		switch f {
		case 13:
			content = `{"taxonomy": {"class": "malicious-code", "type": "c2-server"}}` // no TLP
			invalid = append(invalid, name+":1: InvalidArgument\n  incident.tlp: is required")
		case 57:
			content = `{"tlp": "TLP_AMBER", "taxonomy": {"class": "malware"}}`
			invalid = append(invalid, name+":1: InvalidArgument\n  incident.taxonomy.class: \"malware\" is not a taxonomy class")
		default:
			valid = append(valid, n)
		}
		writeFile(t, name, content)
	}

	jsonl := filepath.Join(dir, "batch.jsonl")
	var lines []string
	for l := 1; len(lines) < 151; l++ {
		if l == 40 {
			lines = append(lines, "") // blank lines are not records
			continue
		}
		n := next()
		switch l {
		case 17:
			lines = append(lines, `{"tlp": "TLP_AMBER", "taxonomy": {"class": "other", "type": "other"}, "victim_hosts": [{"addresses": ["192.0.2.300"]}]}`)
			invalid = append(invalid, jsonl+":17: InvalidArgument\n  incident.victim_hosts[0].addresses[0]: \"192.0.2.300\" is not an IP address")
		case 120:
			lines = append(lines, `{"tlp": "TLP_AMBER", "taxonomy": `) // cut short
			invalid = append(invalid, jsonl+":120: not an incident: proto: unexpected EOF")
		default:
			lines = append(lines, sampleJSON(t, n))
			valid = append(valid, n)
		}
	}
	writeFile(t, jsonl, strings.Join(lines, "\n")+"\n")

	var docs []string
	yamlFile := filepath.Join(dir, "more.yaml")
	line, badLine := 1, 0
	for d := 1; d <= 50; d++ {
		n := next()
		var doc string
		if d == 30 {
			doc = "tlp: TLP_AMBER\ntaxonomy: {class: other, type: other}\nseverity: high\n" // no such field
			badLine = line + 1
		} else {
			y, err := jsonToYAML([]byte(sampleJSON(t, n)))
			if err != nil {
				t.Fatal(err)
			}
			doc = string(y)
			valid = append(valid, n)
		}
		docs = append(docs, "---\n"+doc)
		line += 1 + strings.Count(doc, "\n")
	}
	writeFile(t, yamlFile, strings.Join(docs, ""))
	invalid = append(invalid, fmt.Sprintf("%s:%d: not an incident: line %d, column 1: unknown field \"severity\"\n", yamlFile, badLine, badLine+2))

	writeFile(t, filepath.Join(dir, "README.txt"), "not a record")
	writeFile(t, filepath.Join(dir, ".hidden", "x.json"), "{}")
	if i != 300 {
		t.Fatalf("wrote %d records", i)
	}
	return valid, invalid
}

func TestImportAndList(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	dir := t.TempDir()
	valid, invalid := writeImportTree(t, dir)
	if len(valid) != 295 {
		t.Fatalf("%d valid records", len(valid))
	}

	first := ctl("", "incident", "import", dir, "--concurrency", "8")
	if first.code != 1 || !strings.HasPrefix(first.stdout, "created 295, updated 0, unchanged 0, conflicts 0, rejected 5\n") {
		t.Fatalf("import: %v", first)
	}
	for _, want := range invalid {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, first.stdout)
		}
	}
	if !strings.Contains(first.stderr, "skipped 1 file(s)") {
		t.Errorf("stderr: %q", first.stderr)
	}

	// Every page is followed: 295 incidents over pages of 40.
	listIDs := func(args ...string) []string {
		t.Helper()
		r := mustSucceed(t, ctl("", append([]string{"incident", "list"}, args...)...))
		var ids []string
		for _, row := range tableRows(t, r.stdout) {
			ids = append(ids, row[0])
		}
		return ids
	}
	all := listIDs("--page-size", "40")
	slices.Sort(all)
	if len(all) != 295 || len(slices.Compact(all)) != 295 {
		t.Fatalf("list over pages: %d incidents", len(all))
	}
	r := mustSucceed(t, ctl("", "incident", "list", "-o", "json"))
	var page irxv1.ListIncidentsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.GetIncidents()) != 295 {
		t.Fatalf("list -o json: %d incidents, %v", len(page.GetIncidents()), err)
	}

	count := func(pred func(i int) bool) int {
		n := 0
		for _, i := range valid {
			if pred(i) {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--limit", "7"}, 7},
		{[]string{"--limit", "45", "--page-size", "10"}, 45},
		{[]string{"--limit", "1000"}, 295},
		{[]string{"--tlp", "green"}, count(func(i int) bool { return i%10 == 0 })},
		{[]string{"--tlp", "TLP_GREEN", "--page-size", "3"}, count(func(i int) bool { return i%10 == 0 })},
		{[]string{"--taxonomy", "fraud"}, count(func(i int) bool { return i%10 == 0 })},
		{[]string{"--taxonomy", "intrusion-attempts/brute-force"}, count(func(i int) bool { return i%10 != 0 && i%3 == 0 })},
		{[]string{"--status", "new", "--page-size", "100"}, 295},
		{[]string{"--status", "STATUS_RESOLVED"}, 0},
		{[]string{"--origin", "dev"}, 295},
		{[]string{"--indicator", "203.0.113.77"}, 1},
		{[]string{"--reported-after", "2026-03-01T10:00:00Z", "--reported-before", "2026-03-01T20:00:00Z"}, count(func(i int) bool { return i >= 10 && i < 20 })},
		{[]string{"--reported-after", "2026-03-05", "--tlp", "green", "--taxonomy", "fraud/phishing"}, count(func(i int) bool { return i >= 96 && i%10 == 0 })},
	} {
		if got := listIDs(tc.args...); len(got) != tc.want {
			t.Errorf("list %v: %d incidents, want %d", tc.args, len(got), tc.want)
		}
	}
	for _, format := range []string{"json", "yaml"} {
		r = mustSucceed(t, ctl("", "incident", "list", "--status", "resolved", "-o", format))
		var empty map[string][]any
		if err := yaml.Unmarshal([]byte(r.stdout), &empty); err != nil || empty["incidents"] == nil || len(empty["incidents"]) != 0 {
			t.Errorf("empty list -o %s: %q, %v", format, r.stdout, err)
		}
	}
	r = mustSucceed(t, ctl("", "incident", "list", "--indicator", "203.0.113.77"))
	if !strings.Contains(r.stdout, "imported report 77") {
		t.Errorf("indicator filter found the wrong incident:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "incident", "list", "--taxonomy", "no-such-class"), 1, "irxctl: InvalidArgument: ", "\n  taxonomy_class: ")

	// A re-run creates nothing: every request id is known already, with
	// the same content.
	again := ctl("", "incident", "import", dir)
	wantAgain := strings.Replace(first.stdout, "created 295, updated 0, unchanged 0,", "created 0, updated 0, unchanged 295,", 1)
	if again.code != 1 || again.stdout != wantAgain {
		t.Fatalf("re-run: %v\nfirst run's summary:\n%s", again, first.stdout)
	}
	if got := len(listIDs("--page-size", "1000")); got != 295 {
		t.Fatalf("after the re-run: %d incidents, want 295", got)
	}

	// One JSON-lines file alone, with every record valid: exit 0.
	ok := writeFile(t, filepath.Join(t.TempDir(), "ok.jsonl"), sampleJSON(t, 1001)+"\n"+sampleJSON(t, 1002)+"\n")
	r = mustSucceed(t, ctl("", "incident", "import", ok, "--concurrency", "1"))
	if r.stdout != "created 2, updated 0, unchanged 0, conflicts 0, rejected 0\n" {
		t.Errorf("import of one file: %q", r.stdout)
	}
	mustFail(t, ctl("", "incident", "import", filepath.Join(dir, "README.txt")), 2, "want a directory or a .json")
	mustFail(t, ctl("", "incident", "import", filepath.Join(dir, "nowhere")), 1, "no such file")
	mustFail(t, ctl("", "incident", "import", t.TempDir()), 1, "no records to import")
}

// TestImportCorrectedRecord: a record corrected in its file and imported
// again becomes a new version of the incident its line created (or, with
// --on-change conflict, a reported conflict that changes nothing), and is
// never reported as accepted unchanged.
func TestImportCorrectedRecord(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	file := filepath.Join(t.TempDir(), "reports.jsonl")
	lines := []string{sampleJSON(t, 1), sampleJSON(t, 2), sampleJSON(t, 10)} // the third is TLP:GREEN
	writeFile(t, file, strings.Join(lines, "\n")+"\n")
	r := mustSucceed(t, ctl("", "incident", "import", file, "--concurrency", "1"))
	if r.stdout != "created 3, updated 0, unchanged 0, conflicts 0, rejected 0\n" {
		t.Fatalf("first import: %q", r.stdout)
	}
	id := "dev:3"
	tlpOf := func() string {
		t.Helper()
		r := mustSucceed(t, ctl("", "incident", "get", id, "-o", "json"))
		var got irxv1.Incident
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s v%d", got.GetTlp(), got.GetVersion())
	}
	if got := tlpOf(); got != "TLP_GREEN v1" {
		t.Fatalf("%s after the first import: %s", id, got)
	}

	// Line 3 corrected to TLP:RED.
	lines[2] = strings.Replace(lines[2], "TLP_GREEN", "TLP_RED", 1)
	writeFile(t, file, strings.Join(lines, "\n")+"\n")
	r = mustFail(t, ctl("", "incident", "import", file, "--on-change", "conflict"), 1)
	want := "created 0, updated 0, unchanged 2, conflicts 1, rejected 0\n" + file + ":3: conflict: " + id + " (version 1) differs"
	if !strings.HasPrefix(r.stdout, want) {
		t.Fatalf("import of the corrected line with --on-change conflict:\n%s\nwant it to start %q", r.stdout, want)
	}
	if got := tlpOf(); got != "TLP_GREEN v1" {
		t.Fatalf("a conflict changed %s: %s", id, got)
	}
	r = mustSucceed(t, ctl("", "incident", "import", file))
	if want := "created 0, updated 1, unchanged 2, conflicts 0, rejected 0\n" + file + ":3: updated " + id + " to version 2\n"; r.stdout != want {
		t.Fatalf("import of the corrected line:\n%s\nwant\n%s", r.stdout, want)
	}
	if got := tlpOf(); got != "TLP_RED v2" {
		t.Fatalf("%s after the corrected import: %s", id, got)
	}
	// Again: nothing to do, and nothing new is created.
	r = mustSucceed(t, ctl("", "incident", "import", file))
	if r.stdout != "created 0, updated 0, unchanged 3, conflicts 0, rejected 0\n" {
		t.Fatalf("re-run after the correction: %q", r.stdout)
	}
	// Back to the original content: that is a change of the latest version too.
	lines[2] = sampleJSON(t, 10)
	writeFile(t, file, strings.Join(lines, "\n")+"\n")
	r = mustSucceed(t, ctl("", "incident", "import", file))
	if want := file + ":3: updated " + id + " to version 3\n"; !strings.Contains(r.stdout, want) {
		t.Fatalf("import of the reverted line:\n%s", r.stdout)
	}
	if got := tlpOf(); got != "TLP_GREEN v3" {
		t.Fatalf("%s after the reverted import: %s", id, got)
	}
}
