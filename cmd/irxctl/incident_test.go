package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

const incidentJSON = `{
  "tlp": "TLP_AMBER",
  "taxonomy": {"class": "malicious-code", "type": "c2-server"},
  "priority": "PRIORITY_HIGH",
  "report_time": "2026-03-01T10:00:00Z",
  "descriptions": [{"lang": "en", "text": "Workstation beaconing to a C2 server every 60 s, seen by the campus sensor"}],
  "victim_hosts": [{"hostname": "ws17.example.edu", "addresses": ["192.0.2.17"], "compromised": true}],
  "indicators": [{"kind": "INDICATOR_KIND_DOMAIN", "value": "c2.bad.example"}]
}`

const incidentYAML = `# a phishing report
tlp: TLP_GREEN
taxonomy:
  class: fraud
  type: phishing
reportTime: 2026-03-02T08:30:00Z   # JSON names work too
descriptions:
  - lang: en
    text: Credential phishing page imitating the webmail login
reporting_site:
  name: Example University
  domain: example.edu
`

func TestIncidentCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	dir := t.TempDir()

	// Create from JSON, from YAML, and from stdin recognised by content.
	r := mustSucceed(t, ctl("", "incident", "create", "-f", writeFile(t, filepath.Join(dir, "c2.json"), incidentJSON)))
	rows := tableRows(t, r.stdout)
	if len(rows) != 1 || rows[0][0] != "dev:1" || rows[0][1] != "1" || rows[0][2] != "new" || rows[0][3] != "TLP:AMBER" ||
		rows[0][4] != "malicious-code/c2-server" || rows[0][5] != "2026-03-01T10:00:00Z" {
		t.Fatalf("create from JSON:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "Workstation beaconing to a C2 server every 60 s, …") {
		t.Errorf("description not truncated to 50 runes:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "incident", "create", "-f", writeFile(t, filepath.Join(dir, "phish.yaml"), incidentYAML)))
	if rows := tableRows(t, r.stdout); rows[0][0] != "dev:2" || rows[0][3] != "TLP:GREEN" || rows[0][4] != "fraud/phishing" || rows[0][5] != "2026-03-02T08:30:00Z" {
		t.Fatalf("create from YAML:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl(incidentYAML, "incident", "create", "-f", "-"))
	if tableRows(t, r.stdout)[0][0] != "dev:3" {
		t.Fatalf("create from stdin (YAML):\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl(incidentJSON, "incident", "create", "-f", "-", "--request-id", "retry-me", "-o", "json"))
	again := mustSucceed(t, ctl(incidentJSON, "incident", "create", "-f", "-", "--request-id", "retry-me", "-o", "json"))
	if r.stdout != again.stdout || !strings.Contains(r.stdout, `"id": "dev:4"`) {
		t.Fatalf("a retried request id created again:\n%s\n%s", r.stdout, again.stdout)
	}

	// get, as a table and as JSON that protojson reads back to exactly what
	// the API returns.
	r = mustSucceed(t, ctl("", "incident", "get", "dev:2"))
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][0] != "dev:2" {
		t.Fatalf("get:\n%s", r.stdout)
	}
	conn, err := n.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := irxv1.NewIncidentServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want, err := api.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:2"})
	if err != nil {
		t.Fatal(err)
	}
	r = mustSucceed(t, ctl("", "incident", "get", "dev:2", "-o", "json"))
	var got irxv1.Incident
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("-o json is not protojson: %v\n%s", err, r.stdout)
	}
	if !proto.Equal(&got, want.GetIncident()) {
		t.Errorf("-o json round trip:\n got %v\nwant %v", &got, want.GetIncident())
	}
	if !strings.Contains(r.stdout, `"reporting_site": {`) {
		t.Errorf("-o json does not use proto field names:\n%s", r.stdout)
	}

	// -o yaml parses, and feeds back into create (output-only fields are
	// ignored there).
	r = mustSucceed(t, ctl("", "incident", "get", "dev:2", "-o", "yaml"))
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("-o yaml: %v\n%s", err, r.stdout)
	}
	if doc["id"] != "dev:2" || doc["tlp"] != "TLP_GREEN" || doc["reporting_site"].(map[string]any)["domain"] != "example.edu" {
		t.Errorf("-o yaml content: %v", doc)
	}
	r = mustSucceed(t, ctl("", "incident", "create", "-f", writeFile(t, filepath.Join(dir, "copy.yml"), r.stdout)))
	if rows := tableRows(t, r.stdout); rows[0][0] != "dev:5" || rows[0][4] != "fraud/phishing" {
		t.Errorf("create from -o yaml output:\n%s", r.stdout)
	}

	// update with --fields changes only the fields named.
	upd := writeFile(t, filepath.Join(dir, "upd.yaml"), `
status: STATUS_IN_PROGRESS
tlp: TLP_RED            # not in --fields: must not change
descriptions: [{lang: en, text: Confirmed; host isolated}]
`)
	r = mustSucceed(t, ctl("", "incident", "update", "dev:1", "-f", upd, "--fields", "status, descriptions", "--expected-version", "1"))
	rows = tableRows(t, r.stdout)
	if rows[0][0] != "dev:1" || rows[0][1] != "2" || rows[0][2] != "in-progress" || rows[0][3] != "TLP:AMBER" || !strings.Contains(r.stdout, "Confirmed; host isolated") {
		t.Fatalf("update:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "incident", "update", "dev:1", "-f", upd, "--fields", "status", "--expected-version", "1"), 1, "irxctl: Aborted: ")
	mustFail(t, ctl("", "incident", "update", "dev:1", "-f", upd, "--fields", "id"), 1, "irxctl: InvalidArgument: ", "\n  update_mask")
	mustFail(t, ctl(`{"id": "dev:2", "status": "STATUS_RESOLVED"}`, "incident", "update", "dev:1", "-f", "-", "--fields", "status"), 1,
		"holds incident dev:2, not dev:1")

	// versions, and reading an old one.
	r = mustSucceed(t, ctl("", "incident", "versions", "dev:1"))
	rows = tableRows(t, r.stdout)
	if len(rows) != 2 || rows[0][1] != "1" || rows[0][3] != "development" || rows[0][4] != "new" || rows[1][1] != "2" || rows[1][4] != "in-progress" {
		t.Fatalf("versions:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "incident", "versions", "dev:1", "-o", "json"))
	var versions irxv1.ListIncidentVersionsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &versions); err != nil || len(versions.GetIncidents()) != 2 {
		t.Fatalf("versions -o json: %v\n%s", err, r.stdout)
	}
	r = mustSucceed(t, ctl("", "incident", "get", "dev:1", "--version", "1", "--stale"))
	if rows := tableRows(t, r.stdout); rows[0][1] != "1" || rows[0][2] != "new" {
		t.Errorf("get --version 1:\n%s", r.stdout)
	}

	// Refusals: the server's code and message on one line, each field
	// violation on its own; nothing on stdout.
	bad := writeFile(t, filepath.Join(dir, "bad.json"), `{"tlp": "TLP_AMBER", "taxonomy": {"class": "malware"},
		"victim_hosts": [{"addresses": ["192.0.2.300"]}]}`)
	r = ctl("", "incident", "create", "-f", bad)
	mustFail(t, r, 1, "irxctl: InvalidArgument: invalid request\n",
		"\n  incident.taxonomy.class: \"malware\" is not a taxonomy class",
		"\n  incident.victim_hosts[0].addresses[0]: \"192.0.2.300\" is not an IP address")
	if r.stdout != "" {
		t.Errorf("stdout on failure: %q", r.stdout)
	}
	if strings.Count(r.stderr, `"malware" is not a taxonomy class`) != 1 {
		t.Errorf("a field violation said more than once:\n%s", r.stderr)
	}
	r = mustFail(t, ctl("", "incident", "get", "dev:999"), 1, "irxctl: NotFound: incident dev:999\n")
	if r.stderr != "irxctl: NotFound: incident dev:999\n" {
		t.Errorf("not found:\n%s", r.stderr)
	}
	r = mustFail(t, ctl("", "incident", "get", "not-an-id"), 1, "irxctl: InvalidArgument: ", "\n  id: ")
	if strings.Count(r.stderr, `invalid id "not-an-id"`) != 1 {
		t.Errorf("the message is said more than once:\n%s", r.stderr)
	}
	mustFail(t, ctl(`{"tllp": "TLP_RED"}`, "incident", "create", "-f", "-"), 1, `irxctl: stdin: `, `unknown field "tllp"`)
	mustFail(t, ctl("", "incident", "create", "-f", filepath.Join(dir, "missing.json")), 1, "no such file")
	mustFail(t, ctl("tlp: TLP_RED\n---\ntlp: TLP_RED\n", "incident", "create", "-f", "-"), 1, "2 YAML documents")

	// Nothing but the five creates and one update happened.
	r = mustSucceed(t, ctl("", "incident", "list"))
	if rows := tableRows(t, r.stdout); len(rows) != 5 {
		t.Errorf("list after the refusals:\n%s", r.stdout)
	}
}
