package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irxfed/irx/test/irxdtest"
)

func TestPolicyCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	sample, err := os.ReadFile(filepath.Join("..", "..", "policy", "testdata", "sample.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, filepath.Join(t.TempDir(), "cert-b.yaml"), string(sample))

	r := mustSucceed(t, ctl("", "policy", "apply", "-f", file))
	rows := tableRows(t, r.stdout)
	if len(rows) != 1 || rows[0][0] != "cert-b" || rows[0][1] != "1" {
		t.Fatalf("apply:\n%s", r.stdout)
	}
	mustSucceed(t, ctl(string(sample), "policy", "apply", "-f", "-"))
	mustFail(t, ctl("peer_team_id: cert-b\nrules:\n  intruder: teleport\n", "policy", "apply", "-f", "-"), 1,
		"InvalidArgument", "line 3", "teleport")
	mustFail(t, ctl("", "policy", "apply"), 2)

	if rows := tableRows(t, mustSucceed(t, ctl("", "policy", "versions", "cert-b")).stdout); len(rows) != 2 || rows[1][1] != "2" {
		t.Fatalf("versions: %v", rows)
	}
	if rows := tableRows(t, mustSucceed(t, ctl("", "policy", "list")).stdout); len(rows) != 1 || rows[0][1] != "2" {
		t.Fatalf("list: %v", rows)
	}
	r = mustSucceed(t, ctl("", "policy", "get", "cert-b", "--version", "1", "-o", "json"))
	if !strings.Contains(r.stdout, `"peer_team_id": "cert-b"`) || !strings.Contains(r.stdout, `"version": "1"`) {
		t.Fatalf("get -o json:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "policy", "get", "cert-z"), 1, "NotFound")

	incident := writeFile(t, filepath.Join(t.TempDir(), "inc.json"), `{"restriction":"RESTRICTION_PARTNER","tlp":"TLP_AMBER",
"taxonomy":{"class":"malicious-code","type":"c2-server"},
"victim_hosts":[{"hostname":"ws17.example.edu","addresses":["198.51.100.17"]}],
"attacking_hosts":[{"addresses":["203.0.113.9"]}],
"contacts":[{"name":"Alex Doe","email":"alex@example.edu"}],
"disclosure_consent":{"response_teams":{"hosts":true,"domain":true}}}`)
	mustSucceed(t, ctl("", "incident", "create", "-f", incident))
	r = mustSucceed(t, ctl("", "policy", "preview", "cert-b", "dev:1"))
	for _, want := range []string{"dev:1 v1 to cert-b under policy v2: disclosed", "need-to-know", "removed   contact", "198.51.100.0/24", "203.0.113.9"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("preview lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, leak := range []string{"Alex Doe", "alex@example.edu", "198.51.100.17", "ws17"} {
		if strings.Contains(r.stdout, "view:") && strings.Contains(r.stdout[strings.Index(r.stdout, "view:"):], leak) {
			t.Errorf("the view shows %q, which the policy withholds", leak)
		}
	}
	r = mustSucceed(t, ctl("", "policy", "preview", "cert-b", "dev:1", "--version", "1", "-o", "yaml"))
	if !strings.Contains(r.stdout, "policy_version: \"1\"") {
		t.Errorf("preview under version 1:\n%s", r.stdout)
	}
}
