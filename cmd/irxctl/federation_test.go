package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/irxfed/irx/federation"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// shareableJSON is an incident a partner may receive: TLP:AMBER, restriction
// partner.
const shareableJSON = `{
  "tlp": "TLP_AMBER",
  "restriction": "RESTRICTION_PARTNER",
  "taxonomy": {"class": "malicious-code", "type": "c2-server"},
  "descriptions": [{"lang": "en", "text": "Beaconing to a C2 server"}],
  "attacking_hosts": [{"addresses": ["198.51.100.7"]}],
  "indicators": [{"kind": "INDICATOR_KIND_DOMAIN", "value": "c2.bad.example"}],
  "contacts": [{"role": "CONTACT_ROLE_REPORTER", "type": "CONTACT_TYPE_PERSON", "name": "A. Reporter", "email": "soc@example.org"}]
}`

// shareWithB is cert-a's policy for cert-b.
const shareWithB = `peer_team_id: cert-b
recipient_class: response_team
tlp_ceiling: amber
rules:
  intruder: forward
  statistical: forward
  vulnerability: forward
  contact: strip
max_hops: 1
`

func launchTeam(t *testing.T, team string) *irxdtest.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, err := irxdtest.LaunchTeam(ctx, irxdtest.Binary(t), filepath.Join(t.TempDir(), team), team, 1, nil)
	for _, n := range nodes {
		t.Cleanup(func() { _ = n.Kill() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return nodes[0]
}

// within retries an irxctl call until check accepts its result.
func within(t *testing.T, d time.Duration, what string, call func() result, check func(result) bool) result {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := call()
		if check(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not after %v; last: %v\n%s%s", what, d, r, r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFederationThroughIrxctl runs two teams and federates them with irxctl
// alone: bundles exchanged and imported with the fingerprint, a policy, an
// incident that reaches the peer, the audit's digest equal to the one the
// peer computes from its copy, peer status, a withdrawal and a hand-off.
func TestFederationThroughIrxctl(t *testing.T) {
	a := launchTeam(t, "cert-a")
	b := launchTeam(t, "cert-b")
	atA, atB := cliAt(t, a.APIAddr), cliAt(t, b.APIAddr)
	env := isolatedEnv(t)
	dir := t.TempDir()

	// Each team writes its bundle from its CA certificate and tells the
	// other its fingerprint.
	bundle := func(n *irxdtest.Node, team string) (file, fingerprint string) {
		t.Helper()
		file = filepath.Join(dir, team+".yaml")
		r := mustSucceed(t, irxctl(t, env, "", "pki", "bundle", "--ca-dir", filepath.Join(n.DataDir, "pki"), "--team", team,
			"--endpoint", n.FedAddr, "--display-name", strings.ToUpper(team), "--out", file, "-o", "json"))
		var res pkiResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("pki bundle -o json: %v\n%s", err, r.stdout)
		}
		return file, res.CAFingerprint
	}
	aBundle, aFP := bundle(a, "cert-a")
	bBundle, bFP := bundle(b, "cert-b")
	if aFP == bFP || !strings.HasPrefix(aFP, "SHA256:") {
		t.Fatalf("fingerprints %s, %s", aFP, bFP)
	}
	mustFail(t, atA("", "peer", "import", bBundle, "--fingerprint", aFP), 1, "not the CA the peer told you about")
	r := mustSucceed(t, atA("", "peer", "import", bBundle, "--fingerprint", bFP))
	if !strings.Contains(r.stdout, "CA:") || !strings.Contains(r.stdout, bFP) {
		t.Errorf("A's peer cert-b:\n%s", r.stdout)
	}
	mustSucceed(t, atB("", "peer", "import", aBundle, "--fingerprint", aFP))
	mustSucceed(t, atA(shareWithB, "policy", "apply", "-f", "-"))
	r = mustSucceed(t, atA("", "peer", "get", "cert-b"))
	if !strings.Contains(r.stdout, "policy:") || !strings.Contains(r.stdout, "v1, recipient class response-team") {
		t.Errorf("peer get after the policy:\n%s", r.stdout)
	}

	// An incident of A reaches B, and B acknowledges it.
	mustSucceed(t, atA(shareableJSON, "incident", "create", "-f", "-"))
	wait := 30 * time.Second
	r = within(t, wait, "B holds cert-a:1", func() result { return atB("", "incident", "get", "cert-a:1", "-o", "json") },
		func(r result) bool { return r.code == 0 })
	var copyAtB irxv1.Incident
	if err := protojson.Unmarshal([]byte(r.stdout), &copyAtB); err != nil {
		t.Fatal(err)
	}
	if copyAtB.GetContacts() != nil {
		t.Errorf("B received the reporter's contact, which the policy strips: %v", copyAtB.GetContacts())
	}
	r = within(t, wait, "A's ledger has cert-a:1 for cert-b", func() result { return atA("", "audit", "list", "--peer", "cert-b") },
		func(r result) bool { return r.code == 0 && len(tableRows(t, r.stdout)) == 1 })
	// PEER INCIDENT VERSION SEQUENCE POLICY KIND ACKNOWLEDGED
	if row := tableRows(t, r.stdout)[0]; row[0] != "cert-b" || row[1] != "cert-a:1" || row[2] != "1" || row[4] != "1" || row[5] != "view" {
		t.Errorf("audit list:\n%s", r.stdout)
	}

	// The audit recomputes what B holds, byte for byte.
	r = mustSucceed(t, atA("", "audit", "explain", "cert-b", "cert-a:1", "-o", "json"))
	var ex irxv1.ExplainDisclosureResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &ex); err != nil || len(ex.GetDisclosures()) != 1 {
		t.Fatalf("audit explain -o json: %v\n%s", err, r.stdout)
	}
	stored, err := federation.ViewDigest(&copyAtB)
	if err != nil {
		t.Fatal(err)
	}
	if got := ex.GetDisclosures()[0].GetDigest(); got != stored {
		t.Errorf("the ledger's digest %s, B computes %s from its copy", got, stored)
	}
	r = mustSucceed(t, atA("", "audit", "explain", "cert-b", "cert-a:1"))
	for _, want := range []string{stored, "CONDITION", "OUTCOME", "=== sequence ", "view:", "c2.bad.example"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit explain lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustSucceed(t, atA("", "audit", "explain", "cert-b", "cert-a:1", "--summary"))
	if strings.Contains(r.stdout, "view:") || !strings.Contains(r.stdout, stored) {
		t.Errorf("audit explain --summary:\n%s", r.stdout)
	}

	// Both sides' status.
	r = within(t, wait, "A sees cert-b acknowledge", func() result { return atA("", "peer", "list") }, func(r result) bool {
		row := peerRows(t, r.stdout)["cert-b"]
		return r.code == 0 && row != nil && row[7] == "1" // SENT
	})
	// cert-b's puller holds a Subscribe stream on A's node: it follows us.
	if row := peerRows(t, r.stdout)["cert-b"]; row[2] != "yes" {
		t.Errorf("A's FOLLOWS US for cert-b, which pulls from A:\n%s", r.stdout)
	}
	r = mustSucceed(t, atA("", "peer", "get", "cert-b"))
	if !regexp.MustCompile(`follows us: +yes: Subscribe streams open on node1; last subscribed `).MatchString(r.stdout) {
		t.Errorf("A's peer get cert-b:\n%s", r.stdout)
	}
	// Its streams against the node's limit (streams_per_peer, 8 by default).
	if !regexp.MustCompile(`its streams: +[1-9] open \(at most 8 per node\), 0 refused since the nodes started`).MatchString(r.stdout) {
		t.Errorf("A's peer get cert-b does not show cert-b's one stream against its limit:\n%s", r.stdout)
	}
	r = within(t, wait, "B follows A", func() result { return atB("", "peer", "list") }, func(r result) bool {
		row := peerRows(t, r.stdout)["cert-a"]
		return r.code == 0 && row != nil && row[1] == "yes" && row[8] == "1" // WE FOLLOW, RECEIVED
	})

	// A withdraws: B replaces its copy with a stub that says why; the
	// ledger records the withdrawal.
	r = mustSucceed(t, atA("", "incident", "withdraw", "cert-a:1", "--reason", "reported in error"))
	if !strings.Contains(r.stdout, "(reported in error)") {
		t.Errorf("withdraw:\n%s", r.stdout)
	}
	within(t, wait, "B deleted cert-a:1", func() result { return atB("", "incident", "get", "cert-a:1", "-o", "json") },
		func(r result) bool {
			return r.code == 0 && strings.Contains(r.stdout, `"withdraw_reason": "reported in error"`) && !strings.Contains(r.stdout, `"taxonomy"`)
		})
	r = within(t, wait, "the withdrawal is in the ledger", func() result { return atA("", "audit", "list", "--incident", "cert-a:1") },
		func(r result) bool { return r.code == 0 && len(tableRows(t, r.stdout)) == 2 })
	if rows := tableRows(t, r.stdout); rows[1][5] != "withdrawal/origin" {
		t.Errorf("audit list after the withdrawal:\n%s", r.stdout)
	}
	r = mustSucceed(t, atA("", "audit", "explain", "cert-b", "cert-a:1"))
	if !strings.Contains(r.stdout, "cert-b was told to delete its copy (the origin withdrew the incident)") {
		t.Errorf("audit explain of a withdrawal:\n%s", r.stdout)
	}
	mustFail(t, atA("", "incident", "handoff", "cert-a:1", "cert-b"), 1, "irxctl: FailedPrecondition: ", "is withdrawn")

	// A hands an incident off to B, which records it under its own ticket.
	mustSucceed(t, atA(shareableJSON, "incident", "create", "-f", "-"))
	r = mustSucceed(t, atA("", "incident", "handoff", "cert-a:2", "cert-b", "--reason", "their constituency"))
	m := regexp.MustCompile(`handed off to cert-b as (cert-b:\d+)`).FindStringSubmatch(r.stdout)
	if m == nil || tableRows(t, r.stdout)[0][2] != "forwarded" {
		t.Fatalf("handoff:\n%s", r.stdout)
	}
	r = mustSucceed(t, atB("", "incident", "get", m[1], "-o", "json"))
	var theirs irxv1.Incident
	if err := protojson.Unmarshal([]byte(r.stdout), &theirs); err != nil || theirs.GetId() != m[1] {
		t.Fatalf("B's ticket %s: %v\n%s", m[1], err, r.stdout)
	}
	r = mustSucceed(t, atA("", "incident", "get", "cert-a:2", "-o", "json"))
	if !strings.Contains(r.stdout, fmt.Sprintf("%q", m[1])) {
		t.Errorf("A's incident does not name B's ticket %s:\n%s", m[1], r.stdout)
	}
	mustFail(t, atA("", "incident", "handoff", "cert-a:2", "cert-nobody"), 1, "irxctl: NotFound: ")
}
