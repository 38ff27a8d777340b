package pki_test

import (
	"errors"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/irxfed/irx/pki"
)

func TestEnsureDevPKIIdempotent(t *testing.T) {
	dir := t.TempDir() + "/pki" // also exercises directory creation
	now := time.Now()
	first, err := pki.EnsureDevPKI(dir, "csirt-a", "n1", []string{"10.1.2.3", "n1.example", "[::2]:7000"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Written) != 6 {
		t.Errorf("first call wrote %v, want all 6 files", first.Written)
	}
	for _, f := range []string{first.CAKeyFile, first.NodeKeyFile, first.OperatorKeyFile} {
		assertMode(t, f, 0o600)
	}
	for _, f := range []string{first.CACertFile, first.NodeCertFile, first.OperatorCertFile} {
		assertMode(t, f, 0o644)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode: %v %v", fi, err)
	}

	node := first.Node.Leaf
	if id, _ := pki.IdentityFromCert(node); id != pki.NodeIdentity("csirt-a", "n1") || first.NodeIdentity != id {
		t.Errorf("node identity %v", id)
	}
	if !slices.Contains(node.DNSNames, "localhost") || !slices.Contains(node.DNSNames, "n1.example") {
		t.Errorf("node DNS SANs %v", node.DNSNames)
	}
	for _, want := range []string{"127.0.0.1", "::1", "10.1.2.3", "::2"} {
		if !slices.ContainsFunc(node.IPAddresses, net.ParseIP(want).Equal) {
			t.Errorf("node IP SANs %v lack %s", node.IPAddresses, want)
		}
	}
	if d := node.NotAfter.Sub(now); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("node validity %v", d)
	}
	if d := first.CA.Cert.NotAfter.Sub(now); d < 9*365*24*time.Hour {
		t.Errorf("CA validity %v", d)
	}
	if id, _ := pki.IdentityFromCert(first.Operator.Leaf); id.String() != "irx://csirt-a/operator/admin" {
		t.Errorf("operator identity %v", id)
	}

	second, err := pki.EnsureDevPKI(dir, "csirt-a", "n1", []string{"10.1.2.3", "n1.example", "[::2]:7000"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Written) != 0 {
		t.Errorf("second call wrote %v", second.Written)
	}
	if pki.Fingerprint(second.CA.Cert) != pki.Fingerprint(first.CA.Cert) {
		t.Error("second call returned a different CA")
	}
	if pki.Fingerprint(second.Node.Leaf) != pki.Fingerprint(first.Node.Leaf) {
		t.Error("second call returned a different node certificate")
	}
	if pki.Fingerprint(second.Operator.Leaf) != pki.Fingerprint(first.Operator.Leaf) {
		t.Error("second call returned a different operator certificate")
	}

	// A new host reissues the node certificate from the same CA.
	third, err := pki.EnsureDevPKI(dir, "csirt-a", "n1", []string{"10.9.9.9"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if pki.Fingerprint(third.CA.Cert) != pki.Fingerprint(first.CA.Cert) {
		t.Error("adding a host replaced the CA")
	}
	if pki.Fingerprint(third.Node.Leaf) == pki.Fingerprint(first.Node.Leaf) {
		t.Error("adding a host did not reissue the node certificate")
	}
	if !slices.ContainsFunc(third.Node.Leaf.IPAddresses, net.ParseIP("10.9.9.9").Equal) {
		t.Error("reissued node certificate lacks the new host")
	}
	if pki.Fingerprint(third.Operator.Leaf) != pki.Fingerprint(first.Operator.Leaf) {
		t.Error("adding a host reissued the operator certificate")
	}

	// Near expiry the leaves are renewed, the CA is kept.
	late, err := pki.EnsureDevPKI(dir, "csirt-a", "n1", nil, now.Add(350*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pki.Fingerprint(late.CA.Cert) != pki.Fingerprint(first.CA.Cert) || len(late.Written) != 4 {
		t.Errorf("renewal wrote %v", late.Written)
	}
}

func TestEnsureDevPKIRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.EnsureDevPKI(dir, "csirt-a", "n1", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(dir + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}

	_, err = pki.EnsureDevPKI(dir, "csirt-b", "n1", nil, time.Now())
	var conflict *pki.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("other team: err = %v, want ConflictError", err)
	}
	if conflict.Got.Team != "csirt-a" || conflict.Want.Team != "csirt-b" {
		t.Errorf("conflict %+v", conflict)
	}
	t.Logf("other team error: %v", err)

	if _, err := pki.EnsureDevPKI(dir, "csirt-a", "n2", nil, time.Now()); !errors.As(err, &conflict) {
		t.Fatalf("other node: err = %v, want ConflictError", err)
	}

	after, err := os.ReadFile(dir + "/ca.crt")
	if err != nil || string(after) != string(before) {
		t.Fatal("refused call modified the CA")
	}

	// Half a CA is not silently replaced.
	if err := os.Remove(dir + "/ca.key"); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.EnsureDevPKI(dir, "csirt-a", "n1", nil, time.Now()); err == nil {
		t.Fatal("missing CA key was not reported")
	}

	if _, err := pki.EnsureDevPKI(t.TempDir(), "Bad", "n1", nil, time.Now()); err == nil {
		t.Fatal("invalid team accepted")
	}
	if _, err := pki.EnsureDevPKI(t.TempDir(), "csirt-a", "n 1", nil, time.Now()); err == nil {
		t.Fatal("invalid node id accepted")
	}
}

func TestEnsureDevPKISharedCA(t *testing.T) {
	// Two dev nodes share a CA by copying ca.crt/ca.key; each gets its own
	// node certificate from that CA.
	a, b := t.TempDir(), t.TempDir()
	pa, err := pki.EnsureDevPKI(a, "csirt-a", "n1", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "ca.key"} {
		data, err := os.ReadFile(a + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b+"/"+f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pb, err := pki.EnsureDevPKI(b, "csirt-a", "n2", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if pki.Fingerprint(pa.CA.Cert) != pki.Fingerprint(pb.CA.Cert) {
		t.Fatal("CA not shared")
	}
}
