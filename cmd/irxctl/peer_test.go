package main

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// peerTeam makes the CA of a partner team with irxctl pki and returns its
// directory and fingerprint.
func peerTeam(t *testing.T, team string) (caDir, fingerprint string) {
	t.Helper()
	caDir = filepath.Join(t.TempDir(), team)
	mustSucceed(t, irxctl(t, isolatedEnv(t), "", "pki", "ca", "create", "--team", team, "--out", caDir))
	return caDir, pki.Fingerprint(loadCert(t, filepath.Join(caDir, "ca.crt")))
}

func peerRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, row := range tableRows(t, out) {
		if len(row) == 0 {
			break // the details of "peer get" follow the table
		}
		m[row[0]] = row
	}
	return m
}

// TestPeerCommands needs PeerService on the node's operator API.
func TestPeerCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	bDir, bFP := peerTeam(t, "cert-b")
	cDir, cFP := peerTeam(t, "cert-c")

	// An empty list is a list.
	for _, format := range []string{"json", "yaml"} {
		r := mustSucceed(t, ctl("", "peer", "list", "-o", format))
		if !strings.Contains(r.stdout, "peers") || !strings.Contains(r.stdout, "[]") {
			t.Errorf("empty peer list -o %s: %q", format, r.stdout)
		}
	}

	// Create from flags, with the fingerprint told out of band.
	r := mustSucceed(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(bDir, "ca.crt"),
		"--endpoint", "127.0.0.1:17401", "--display-name", "CERT-B", "--fingerprint", bFP))
	rows := peerRows(t, r.stdout)
	// PEER WE-FOLLOW FOLLOWS-US IN-CURSOR IN-LAG OUT-ACKED OUT-LAG SENT RECEIVED WITHHELD LAST-ERROR...
	if row := rows["cert-b"]; len(row) < 11 || row[3] != "0" || row[7] != "0" || row[8] != "0" {
		t.Fatalf("peer create:\n%s", r.stdout)
	}
	// Nothing answers at its endpoint, and without a policy for it nothing
	// of our feed is for it: no lag to show.
	if row := rows["cert-b"]; row[1] != "no" || row[2] != "-" || row[6] != "-" {
		t.Errorf("peer create, WE FOLLOW, FOLLOWS US and OUT-LAG:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`follows us: +no, and not expected: we have no policy for the peer`).MatchString(r.stdout) {
		t.Errorf("peer create, the detail of FOLLOWS US:\n%s", r.stdout)
	}
	for _, want := range []string{"name:", "CERT-B", "endpoints:", "127.0.0.1:17401", "CA:", bFP, "policy:", "default deny"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("peer create output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stderr, "make sure") {
		t.Errorf("a reminder although --fingerprint was given: %q", r.stderr)
	}
	mustFail(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(bDir, "ca.crt")), 1, "irxctl: AlreadyExists: ")

	// get, as JSON that protojson reads back.
	r = mustSucceed(t, ctl("", "peer", "get", "cert-b", "-o", "json"))
	var peer irxv1.Peer
	if err := protojson.Unmarshal([]byte(r.stdout), &peer); err != nil {
		t.Fatalf("peer get -o json: %v\n%s", err, r.stdout)
	}
	if fp, err := normalizeFingerprint(peer.GetCaFingerprint()); peer.GetTeamId() != "cert-b" || peer.GetDisplayName() != "CERT-B" ||
		!slices.Equal(peer.GetEndpoints(), []string{"127.0.0.1:17401"}) || err != nil || fp != bFP || peer.GetPolicyVersion() != 0 ||
		peer.GetDisabled() || peer.GetCreateTime() == nil {
		t.Errorf("peer get: %v", &peer)
	}
	if got, err := checkPeerCA([]byte(peer.GetCaCertificatePem()), "cert-b", peer.GetCreateTime().AsTime()); err != nil || pki.Fingerprint(got) != bFP {
		t.Errorf("the pinned CA is not cert-b's: %v", err)
	}

	// Import from a bundle, without --fingerprint: a reminder on stderr.
	bundle := filepath.Join(t.TempDir(), "cert-c.yaml")
	mustSucceed(t, irxctl(t, isolatedEnv(t), "", "pki", "bundle", "--ca-dir", cDir, "--endpoint", "127.0.0.1:17411",
		"--endpoint", "localhost", "--display-name", "CERT C", "--out", bundle))
	r = mustSucceed(t, ctl("", "peer", "import", bundle))
	if _, ok := peerRows(t, r.stdout)["cert-c"]; !ok || !strings.Contains(r.stdout, "127.0.0.1:17411, localhost:7401") {
		t.Fatalf("peer import:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "make sure cert-c confirmed exactly this fingerprint") || !strings.Contains(r.stderr, cFP) {
		t.Errorf("no reminder to compare the fingerprint: %q", r.stderr)
	}
	mustFail(t, ctl("", "peer", "import", bundle, "--fingerprint", cFP), 1, "irxctl: AlreadyExists: ")

	// list: both, by team id.
	r = mustSucceed(t, ctl("", "peer", "list"))
	rows = peerRows(t, r.stdout)
	if len(rows) != 2 || rows["cert-b"] == nil || rows["cert-c"] == nil || rows["cert-b"][1] == "disabled" {
		t.Fatalf("peer list:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "peer", "list", "-o", "json"))
	var list irxv1.ListPeersResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.GetPeers()) != 2 ||
		list.GetPeers()[0].GetTeamId() != "cert-b" || list.GetPeers()[1].GetTeamId() != "cert-c" {
		t.Fatalf("peer list -o json: %v\n%s", err, r.stdout)
	}

	// update changes only what is given.
	r = mustSucceed(t, ctl("", "peer", "update", "cert-b", "--disabled", "--endpoint", "127.0.0.1:17402,127.0.0.1:17403", "-o", "json"))
	peer.Reset()
	if err := protojson.Unmarshal([]byte(r.stdout), &peer); err != nil || !peer.GetDisabled() || peer.GetDisplayName() != "CERT-B" ||
		!slices.Equal(peer.GetEndpoints(), []string{"127.0.0.1:17402", "127.0.0.1:17403"}) {
		t.Fatalf("peer update: %v\n%s", err, r.stdout)
	}
	r = mustSucceed(t, ctl("", "peer", "list"))
	if row := peerRows(t, r.stdout)["cert-b"]; row[1] != "disabled" {
		t.Errorf("disabled peer in the list:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "peer", "update", "cert-b", "--disabled=false", "--display-name", "CERT-B (national CSIRT)"))
	if row := peerRows(t, r.stdout)["cert-b"]; row[1] == "disabled" || !strings.Contains(r.stdout, "CERT-B (national CSIRT)") {
		t.Errorf("enabled again:\n%s", r.stdout)
	}
	// A rotated CA of the peer, checked against what the peer announced.
	rotated := filepath.Join(t.TempDir(), "rotated")
	mustSucceed(t, irxctl(t, isolatedEnv(t), "", "pki", "ca", "create", "--team", "cert-b", "--out", rotated))
	rotatedFP := pki.Fingerprint(loadCert(t, filepath.Join(rotated, "ca.crt")))
	mustFail(t, ctl("", "peer", "update", "cert-b", "--peer-ca-file", filepath.Join(rotated, "ca.crt"), "--fingerprint", bFP), 1, "as given with --fingerprint")
	r = mustSucceed(t, ctl("", "peer", "update", "cert-b", "--peer-ca-file", filepath.Join(rotated, "ca.crt"), "--fingerprint", rotatedFP))
	if !strings.Contains(r.stdout, rotatedFP) {
		t.Errorf("the new CA is not pinned:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "peer", "update", "cert-b", "--peer-ca-file", filepath.Join(cDir, "ca.crt")), 1, `not of team "cert-b"`)
	mustFail(t, ctl("", "peer", "update", "cert-x", "--display-name", "x"), 1, "irxctl: NotFound: ")

	// delete.
	r = mustSucceed(t, ctl("", "peer", "delete", "cert-b"))
	if r.stdout != "Peer \"cert-b\" deleted.\n" {
		t.Errorf("peer delete: %q", r.stdout)
	}
	mustFail(t, ctl("", "peer", "get", "cert-b"), 1, "irxctl: NotFound: ")
	mustFail(t, ctl("", "peer", "delete", "cert-b"), 1, "irxctl: NotFound: ")
	r = mustSucceed(t, ctl("", "peer", "list"))
	if rows := peerRows(t, r.stdout); len(rows) != 1 || rows["cert-c"] == nil {
		t.Errorf("list after delete:\n%s", r.stdout)
	}
	// A team is not its own peer.
	mustFail(t, ctl("", "peer", "create", "--team", "dev", "--peer-ca-file", filepath.Join(n.DataDir, "pki", pki.DevCACertFile)), 1,
		"irxctl: InvalidArgument: ", "\n  peer.team_id: is this team's own id")
}

// TestIncidentWithdrawAndHandoff needs IncidentService.WithdrawIncident and
// PeerService.HandOffIncidentToPeer. A hand-off that succeeds needs a second
// team serving federation; here only the refusals are checked.
func TestIncidentWithdrawAndHandoff(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	mustSucceed(t, ctl(incidentJSON, "incident", "create", "-f", "-"))
	mustSucceed(t, ctl(incidentYAML, "incident", "create", "-f", "-"))

	r := mustSucceed(t, ctl("", "incident", "withdraw", "dev:1", "--reason", "reported in error"))
	if rows := tableRows(t, r.stdout); rows[0][0] != "dev:1" || !strings.Contains(r.stdout, "\nwithdrawn at 20") || !strings.Contains(r.stdout, "(reported in error)") {
		t.Fatalf("incident withdraw:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "incident", "get", "dev:1", "-o", "json"))
	var inc irxv1.Incident
	if err := protojson.Unmarshal([]byte(r.stdout), &inc); err != nil || inc.GetWithdrawTime() == nil || inc.GetWithdrawReason() != "reported in error" {
		t.Fatalf("withdrawn incident: %v\n%s", err, r.stdout)
	}
	mustFail(t, ctl("", "incident", "withdraw", "dev:99"), 1, "irxctl: NotFound: ")
	mustFail(t, ctl("", "incident", "withdraw", "not-an-id"), 1, "irxctl: InvalidArgument: ")

	mustFail(t, ctl("", "incident", "handoff", "dev:2", "cert-nobody", "--reason", "theirs"), 1, "irxctl: ")
	mustFail(t, ctl("", "incident", "handoff", "dev:99", "cert-nobody"), 1, "irxctl: ")
	r = ctl("", "incident", "handoff", "dev:2", "cert-nobody")
	if strings.Contains(r.stderr, "Unimplemented") {
		t.Errorf("hand-off is not served: %v", r)
	}
	// Nothing changed on the incident that was not handed off.
	r = mustSucceed(t, ctl("", "incident", "get", "dev:2"))
	if rows := tableRows(t, r.stdout); rows[0][1] != "1" || rows[0][2] != "new" {
		t.Errorf("dev:2 after refused hand-offs:\n%s", r.stdout)
	}
}

// TestAuditCommands needs AuditService. Without a second team nothing is
// acknowledged, so the ledger is empty; what a recomputed view looks like is
// for a two-team test.
func TestAuditCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	bDir, bFP := peerTeam(t, "cert-b")
	mustSucceed(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(bDir, "ca.crt"), "--fingerprint", bFP))
	mustSucceed(t, ctl(incidentJSON, "incident", "create", "-f", "-"))

	for _, args := range [][]string{{"--peer", "cert-b"}, {"--incident", "dev:1"}, {"--peer", "cert-b", "--incident", "dev:1", "--limit", "5"}} {
		r := mustSucceed(t, ctl("", append([]string{"audit", "list"}, args...)...))
		if rows := tableRows(t, r.stdout); len(rows) != 0 {
			t.Errorf("audit list %v:\n%s", args, r.stdout)
		}
		r = mustSucceed(t, ctl("", append([]string{"audit", "list", "-o", "json"}, args...)...))
		if strings.TrimSpace(r.stdout) != "{\n  \"disclosures\": []\n}" {
			t.Errorf("audit list %v -o json: %q", args, r.stdout)
		}
	}
	r := mustSucceed(t, ctl("", "audit", "explain", "cert-b", "dev:1"))
	if r.stdout != "Nothing about dev:1 was disclosed to cert-b (no acknowledged view or withdrawal in the ledger).\n" {
		t.Errorf("audit explain: %q", r.stdout)
	}
	r = mustSucceed(t, ctl("", "audit", "explain", "cert-b", "dev:1", "-o", "yaml"))
	if strings.TrimSpace(r.stdout) != "disclosures: []" {
		t.Errorf("audit explain -o yaml: %q", r.stdout)
	}
	mustFail(t, ctl("", "audit", "explain", "cert-b", "not-an-id"), 1, "irxctl: InvalidArgument: ")
}

// TestFederationUsageErrors needs no node: every one is refused before a
// connection is made.
func TestFederationUsageErrors(t *testing.T) {
	env := isolatedEnv(t)
	caDir := filepath.Join(t.TempDir(), "ca")
	mustSucceed(t, irxctl(t, env, "", "pki", "ca", "create", "--team", "cert-b", "--out", caDir))
	caFile := filepath.Join(caDir, "ca.crt")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"peer"}, "Commands:"},
		{[]string{"peer", "create", "--team", "cert-b"}, "--team and --peer-ca-file are required"},
		{[]string{"peer", "create", "--team", "CERT B", "--peer-ca-file", caFile}, "--team: identifier"},
		{[]string{"peer", "create", "--team", "cert-b", "--peer-ca-file", caFile, "--endpoint", "a:b:c"}, `--endpoint "a:b:c" is not host:port`},
		{[]string{"peer", "create", "--team", "cert-b", "--peer-ca-file", caFile, "--fingerprint", "abc"}, "--fingerprint: "},
		{[]string{"peer", "import"}, "missing argument; usage: irxctl peer import BUNDLE_FILE"},
		{[]string{"peer", "get"}, "missing argument"},
		{[]string{"peer", "update", "cert-b"}, "nothing to change"},
		{[]string{"peer", "update", "cert-b", "--fingerprint", "x"}, "--fingerprint checks the certificate of --peer-ca-file"},
		{[]string{"peer", "update", "cert-b", "--disabled=maybe"}, `"maybe" is not a boolean`},
		{[]string{"peer", "delete", "a", "b"}, `unexpected argument "b"`},
		{[]string{"audit", "list"}, "give --peer TEAM or --incident ID"},
		{[]string{"audit", "list", "--peer", "x", "--limit", "-1"}, "--limit must be >= 0"},
		{[]string{"audit", "explain", "cert-b"}, "missing argument; usage: irxctl audit explain PEER INCIDENT_ID"},
		{[]string{"incident", "withdraw"}, "missing argument"},
		{[]string{"incident", "handoff", "dev:1"}, "missing argument; usage: irxctl incident handoff ID PEER"},
		{[]string{"pki"}, "Commands:"},
		{[]string{"pki", "ca"}, "Commands:"},
	} {
		r := irxctl(t, env, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("irxctl %s: want exit 2 and %q on stderr, got %v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
	// A file that is not there is an error, not a usage error.
	r := irxctl(t, env, "", "peer", "import", filepath.Join(t.TempDir(), "nope.yaml"))
	mustFail(t, r, 1, "no such file")
}
