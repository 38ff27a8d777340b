package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// TestPeerRevokeCert needs PeerService with revoked certificate
// fingerprints on the node's operator API.
func TestPeerRevokeCert(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	bDir, _ := peerTeam(t, "cert-b")
	cDir, _ := peerTeam(t, "cert-c")
	mustSucceed(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(bDir, "ca.crt")))
	node := func(caDir, id string) (file, fingerprint string) {
		out := filepath.Join(t.TempDir(), id)
		mustSucceed(t, irxctl(t, isolatedEnv(t), "", "pki", "node", "--ca-dir", caDir, "--node", id, "--out", out))
		file = filepath.Join(out, "node.crt")
		return file, pki.Fingerprint(loadCert(t, file))
	}
	node1, fp1 := node(bDir, "node1")
	_, fp2 := node(bDir, "node2")
	revoked := func(r result) []string {
		t.Helper()
		var p irxv1.Peer
		if err := protojson.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		return p.GetRevokedCertificateFingerprints()
	}

	// From the certificate file: shown by the command and by peer get.
	r := mustSucceed(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", node1))
	if !strings.Contains(r.stdout, "revoked:") || !strings.Contains(r.stdout, fp1) {
		t.Fatalf("peer revoke-cert does not show the revoked certificate:\n%s", r.stdout)
	}
	if got := revoked(mustSucceed(t, ctl("", "peer", "get", "cert-b", "-o", "json"))); !slices.Equal(got, []string{fp1}) {
		t.Fatalf("revoked after the first: %v, want [%s]", got, fp1)
	}
	// Again: nothing changes, and irxctl says so.
	r = mustSucceed(t, ctl("", "peer", "revoke-cert", "cert-b", "--fingerprint", fp1, "-o", "json"))
	if got := revoked(r); !slices.Equal(got, []string{fp1}) || !strings.Contains(r.stderr, "already revoked") {
		t.Fatalf("revoking twice: %v, stderr %q", got, r.stderr)
	}
	// By fingerprint, in the colon-separated upper-case form other tools
	// print: stored canonical, after the first.
	hexPart := strings.TrimPrefix(fp2, "SHA256:")
	var pairs []string
	for i := 0; i < len(hexPart); i += 2 {
		pairs = append(pairs, strings.ToUpper(hexPart[i:i+2]))
	}
	r = mustSucceed(t, ctl("", "peer", "revoke-cert", "cert-b", "--fingerprint", "sha256:"+strings.Join(pairs, ":"), "-o", "json"))
	if got := revoked(r); !slices.Equal(got, []string{fp1, fp2}) {
		t.Fatalf("revoked after the second: %v", got)
	}
	r = mustSucceed(t, ctl("", "peer", "get", "cert-b"))
	if !strings.Contains(r.stdout, fp1) || !strings.Contains(r.stdout, fp2) {
		t.Errorf("peer get does not list both revoked certificates:\n%s", r.stdout)
	}
	// --undo admits one again; undoing what is not revoked changes nothing.
	r = mustSucceed(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", node1, "--undo", "-o", "json"))
	if got := revoked(r); !slices.Equal(got, []string{fp2}) {
		t.Fatalf("after --undo: %v, want [%s]", got, fp2)
	}
	r = mustSucceed(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", node1, "--undo", "-o", "json"))
	if got := revoked(r); !slices.Equal(got, []string{fp2}) || !strings.Contains(r.stderr, "was not revoked") {
		t.Fatalf("undoing twice: %v, stderr %q", got, r.stderr)
	}

	// Refused before anything is sent: another team's certificate, the
	// peer's CA, a malformed fingerprint, both or neither source.
	cNode, _ := node(cDir, "node1")
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", cNode), 1, `irx://cert-c/node/node1, not of team "cert-b"`)
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", filepath.Join(bDir, "ca.crt")), 1, "is the CA of cert-b", "--peer-ca-file")
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", filepath.Join(t.TempDir(), "none.crt")), 1, "no such file")
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-b", "--fingerprint", "SHA256:abc"), 2, "--fingerprint: ")
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-b"), 2, "either --peer-cert-file or --fingerprint")
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-b", "--peer-cert-file", node1, "--fingerprint", fp1), 2, "either --peer-cert-file or --fingerprint")
	mustFail(t, ctl("", "peer", "revoke-cert"), 2, "missing argument")
	// A peer that does not exist.
	mustFail(t, ctl("", "peer", "revoke-cert", "cert-x", "--fingerprint", fp1), 1, "irxctl: NotFound: ")
	if got := revoked(mustSucceed(t, ctl("", "peer", "get", "cert-b", "-o", "json"))); !slices.Equal(got, []string{fp2}) {
		t.Errorf("the refused commands changed the list: %v", got)
	}
}
