package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// TestMain builds no irxd: a test that starts a node asks irxdtest.Binary,
// so a run of tests that start none builds none.
func TestMain(m *testing.M) { irxdtest.Main(m) }

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// irxctl runs the CLI in-process with exactly env as its environment, so
// the developer's own IRX_* variables and config file never leak in.
func irxctl(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// isolatedEnv points the config file at a path that does not exist.
func isolatedEnv(t *testing.T) map[string]string {
	return map[string]string{"IRXCTL_CONFIG": filepath.Join(t.TempDir(), "no-config.yaml")}
}

// cliAt returns a runner bound to one node's address.
func cliAt(t *testing.T, addr string) func(stdin string, args ...string) result {
	env := isolatedEnv(t)
	return func(stdin string, args ...string) result {
		t.Helper()
		return irxctl(t, env, stdin, append(args, "--addr", addr)...)
	}
}

func mustSucceed(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want success, got %v", r)
	}
	return r
}

func mustFail(t *testing.T, r result, code int, stderrHas ...string) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %v", code, r)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	return r
}

// tableRows returns the data rows of a table (without its header), split
// into columns.
func tableRows(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "ID ") || strings.HasPrefix(l, "NODE ") || strings.HasPrefix(l, "CURRENT ") || strings.HasPrefix(l, "PEER ") ||
			strings.HasPrefix(l, "IDENTITY ") || strings.HasPrefix(l, "TIME ") {
			var rows [][]string
			for _, r := range lines[i+1:] {
				rows = append(rows, strings.Fields(r))
			}
			return rows
		}
	}
	t.Fatalf("no table in:\n%s", out)
	return nil
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHelpOnEveryCommand(t *testing.T) {
	env := isolatedEnv(t)
	root := mustSucceed(t, irxctl(t, env, "", "help"))
	for _, leaf := range commandTree().leaves() {
		synopsis, _, _ := strings.Cut(leaf.usage, "\n")
		if !strings.Contains(root.stdout, "irxctl "+synopsis) {
			t.Errorf("root help does not list %q", synopsis)
		}
	}
	var walk func(path []string, cmd *command)
	walk = func(path []string, cmd *command) {
		for _, sub := range cmd.subs {
			p := append(append([]string{}, path...), sub.name)
			for _, args := range [][]string{append(p, "-h"), append(append([]string{}, p...), "--help"), append([]string{"help"}, p...)} {
				r := irxctl(t, env, "", args...)
				if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
					t.Errorf("irxctl %s: %v", strings.Join(args, " "), r)
				}
			}
			walk(p, sub)
		}
	}
	walk(nil, commandTree())
	// Flags of the leaf and the global ones are both documented.
	r := mustSucceed(t, irxctl(t, env, "", "incident", "list", "-h"))
	for _, want := range []string{"--status STATUS", "--page-size N", "--addr ADDR", "-o FORMAT", "--timeout DURATION"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("incident list -h lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	env := isolatedEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"incident"}, "Commands:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"incident", "frobnicate"}, `unknown command "frobnicate" for "irxctl incident"`},
		{[]string{"incident", "get"}, "missing argument; usage: irxctl incident get ID"},
		{[]string{"incident", "get", "dev:1", "dev:2"}, `unexpected argument "dev:2"`},
		{[]string{"incident", "get", "dev:1", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"incident", "get", "dev:1", "-o", "xml"}, `-o "xml": want table, json or yaml`},
		{[]string{"incident", "create"}, "-f FILE is required"},
		{[]string{"incident", "update", "dev:1", "-f", "x.json"}, "--fields are required"},
		{[]string{"incident", "list", "--status", "open"}, `--status "open": one of new, in-progress, forwarded, resolved, future`},
		{[]string{"incident", "list", "--tlp", "white"}, `--tlp "white": one of clear, green, amber, amber-strict, red`},
		{[]string{"incident", "list", "--reported-after", "yesterday"}, "want RFC 3339"},
		{[]string{"incident", "import", "x", "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"incident", "get", "dev:1", "--addr", "192.0.2.1:7400"}, "192.0.2.1:7400 needs mutual TLS"},
		{[]string{"incident", "get", "dev:1", "--addr", "192.0.2.1", "--plaintext"}, "--plaintext is for loopback addresses only"},
		{[]string{"incident", "get", "dev:1", "--ca-file", "ca.crt"}, "--cert-file, --key-file missing"},
		{[]string{"incident", "get", "dev:1", "--timeout", "soon"}, "is not a duration"},
		{[]string{"cluster", "transfer", "a", "b"}, `unexpected argument "b"`},
		{[]string{"config", "use-context"}, "missing argument"},
		{[]string{"incident", "get", "dev:1", "--context", "nope"}, `--context "nope" is not in`},
	} {
		r := irxctl(t, env, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("irxctl %s: want exit 2 and %q on stderr, got %v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}

func TestVersion(t *testing.T) {
	r := mustSucceed(t, irxctl(t, isolatedEnv(t), "", "version"))
	if !strings.HasPrefix(r.stdout, "irxctl ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("version: %q", r.stdout)
	}
}

func TestParseEnum(t *testing.T) {
	tlp := irxv1.Tlp(0).Descriptor()
	for in, want := range map[string]irxv1.Tlp{
		"amber-strict": irxv1.Tlp_TLP_AMBER_STRICT, "TLP:AMBER+STRICT": irxv1.Tlp_TLP_AMBER_STRICT,
		"TLP_AMBER_STRICT": irxv1.Tlp_TLP_AMBER_STRICT, "Green": irxv1.Tlp_TLP_GREEN, "tlp:clear": irxv1.Tlp_TLP_CLEAR,
	} {
		got, err := parseEnum(tlp, "TLP_", "tlp", in)
		if err != nil || irxv1.Tlp(got) != want {
			t.Errorf("parseEnum(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "unspecified", "TLP_UNSPECIFIED", "white"} {
		if _, err := parseEnum(tlp, "TLP_", "tlp", bad); err == nil {
			t.Errorf("parseEnum(%q) accepted", bad)
		}
	}
	st, err := parseEnum(irxv1.Status(0).Descriptor(), "STATUS_", "status", "in-progress")
	if err != nil || irxv1.Status(st) != irxv1.Status_STATUS_IN_PROGRESS {
		t.Errorf("in-progress: %v, %v", st, err)
	}
	// What the table shows is accepted back.
	for v := range irxv1.Tlp_name {
		if v == 0 {
			continue
		}
		if got, err := parseEnum(tlp, "TLP_", "tlp", tlpLabel(irxv1.Tlp(v))); err != nil || int32(got) != v {
			t.Errorf("label %q does not parse back: %v, %v", tlpLabel(irxv1.Tlp(v)), got, err)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("short", 50); got != "short" {
		t.Errorf("truncate short: %q", got)
	}
	long := strings.Repeat("é", 60)
	got := truncate(long, 50)
	if n := len([]rune(got)); n != 50 || !strings.HasSuffix(got, "…") {
		t.Errorf("truncate: %d runes, %q", n, got)
	}
	inc := &irxv1.Incident{Descriptions: []*irxv1.Description{{Text: "line one\n\tline two"}}}
	if got := firstDescription(inc); got != "line one line two" {
		t.Errorf("firstDescription: %q", got)
	}
}

func TestYAMLConversions(t *testing.T) {
	docs, err := yamlDocuments([]byte(`
tlp: TLP_GREEN
version: 0x10
named_recipients: ["yes", "2026-01-01"]
report_time: 2026-03-01T10:00:00Z
reporting_site: {name: Example, is_isp: yes}
---
---
taxonomy:
  class: other
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].line != 2 || docs[1].line != 9 {
		t.Fatalf("documents: %+v", docs)
	}
	want := `{"tlp":"TLP_GREEN","version":16,"named_recipients":["yes","2026-01-01"],"report_time":"2026-03-01T10:00:00Z","reporting_site":{"name":"Example","is_isp":"yes"}}`
	if string(docs[0].json) != want {
		t.Errorf("json:\n got %s\nwant %s", docs[0].json, want)
	}
	// Strings that would read as another type stay quoted in YAML output.
	out, err := jsonToYAML([]byte(`{"a":"true","b":"12","c":"x","d":[1,{"e":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := yaml.Unmarshal(out, &back); err != nil || back["a"] != "true" || back["b"] != "12" || back["c"] != "x" {
		t.Errorf("yaml %q -> %v, %v", out, back, err)
	}
}

func TestProgressReport(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, tty: true, total: 10, began: time.Now().Add(-time.Second)}
	for i := range 5 {
		p.record(i == 0)
	}
	p.report()
	if got := buf.String(); !strings.HasPrefix(got, "\r["+strings.Repeat("=", 15)+strings.Repeat(" ", 15)+"] 5/10  50%  1 rejected") {
		t.Errorf("bar: %q", got)
	}
	buf.Reset()
	p.tty = false
	p.report()
	if got := buf.String(); !strings.HasPrefix(got, "import: 5/10 records, 1 rejected, ") || !strings.HasSuffix(got, "/s\n") {
		t.Errorf("plain line: %q", got)
	}
	if isTerminal(&buf) {
		t.Error("a buffer is a terminal")
	}
}
