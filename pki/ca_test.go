package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/irxfed/irx/pki"
)

func newCA(t *testing.T, team string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(team, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatalf("NewCA(%q): %v", team, err)
	}
	return ca
}

// issue returns a keypair for id; validity/now of zero mean one hour from now.
func issue(t *testing.T, ca *pki.CA, id pki.Identity, usage pki.Usage, now time.Time, validity time.Duration) tls.Certificate {
	t.Helper()
	if validity == 0 {
		validity = time.Hour
	}
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{
		Identity:    id,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Validity:    validity,
		Now:         now,
		Usage:       usage,
	})
	if err != nil {
		t.Fatalf("Issue(%s): %v", id, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestNewCA(t *testing.T) {
	ca := newCA(t, "csirt-a")
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA=%v BCV=%v MaxPathLen=%d Zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA key usage %v", c.KeyUsage)
	}
	id, err := pki.IdentityFromCert(c)
	if err != nil || id != pki.CAIdentity("csirt-a") || id.String() != "irx://csirt-a/ca/csirt-a" {
		t.Errorf("CA identity %v, %v", id, err)
	}
	if ca.Team() != "csirt-a" {
		t.Errorf("Team() = %q", ca.Team())
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
	if _, err := pki.NewCA("Bad_Team", time.Hour, time.Now()); err == nil {
		t.Error("NewCA accepted an invalid team")
	}
}

func TestIssueAndVerify(t *testing.T) {
	ca := newCA(t, "csirt-a")
	node := issue(t, ca, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	leaf := node.Leaf
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		id, err := pki.VerifyCert([]*x509.Certificate{leaf}, ca.Pool(), u)
		if err != nil {
			t.Fatalf("VerifyCert(usage %v): %v", u, err)
		}
		if id != pki.NodeIdentity("csirt-a", "n1") {
			t.Fatalf("identity %v", id)
		}
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", leaf.SerialNumber)
	}
	other := issue(t, ca, pki.NodeIdentity("csirt-a", "n2"), pki.UsageNode, time.Time{}, 0)
	if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}

	// An operator (client-only) certificate is not a server certificate.
	op := issue(t, ca, pki.OperatorIdentity("csirt-a", "alice"), pki.UsageClient, time.Time{}, 0)
	if _, err := pki.VerifyCert([]*x509.Certificate{op.Leaf}, ca.Pool(), x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("operator certificate verified for server auth")
	}
	if _, err := pki.VerifyCert([]*x509.Certificate{op.Leaf}, ca.Pool(), x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("operator certificate for client auth: %v", err)
	}

	// A certificate of another CA does not verify.
	foreign := issue(t, newCA(t, "csirt-a"), pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	if _, err := pki.VerifyCert([]*x509.Certificate{foreign.Leaf}, ca.Pool(), x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("certificate from a foreign CA verified")
	}

	// Validity never exceeds the CA's.
	long := issue(t, ca, pki.NodeIdentity("csirt-a", "n3"), pki.UsageNode, time.Time{}, 1000*time.Hour)
	if long.Leaf.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("leaf outlives CA: %v > %v", long.Leaf.NotAfter, ca.Cert.NotAfter)
	}
}

func TestIssueRefuses(t *testing.T) {
	ca := newCA(t, "csirt-a")
	base := pki.IssueRequest{Identity: pki.NodeIdentity("csirt-a", "n1"), Validity: time.Hour, Usage: pki.UsageNode}
	cases := map[string]func(r *pki.IssueRequest){
		"other team":       func(r *pki.IssueRequest) { r.Identity.Team = "csirt-b" },
		"ca identity":      func(r *pki.IssueRequest) { r.Identity = pki.CAIdentity("csirt-a") },
		"invalid identity": func(r *pki.IssueRequest) { r.Identity.Name = "N1" },
		"no usage":         func(r *pki.IssueRequest) { r.Usage = 0 },
		"bad usage":        func(r *pki.IssueRequest) { r.Usage = 8 },
		"no validity":      func(r *pki.IssueRequest) { r.Validity = 0 },
		"after CA expiry":  func(r *pki.IssueRequest) { r.Now = time.Now().Add(48 * time.Hour) },
	}
	for name, mutate := range cases {
		req := base
		mutate(&req)
		if _, _, err := ca.Issue(req); err == nil {
			t.Errorf("%s: Issue succeeded", name)
		}
	}
}

func TestLoadCAAndFileModes(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "csirt-a")
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := ca.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	assertMode(t, certFile, 0o644)
	assertMode(t, keyFile, 0o600)
	loaded, err := pki.LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if pki.Fingerprint(loaded.Cert) != pki.Fingerprint(ca.Cert) {
		t.Fatal("loaded CA differs")
	}
	// The loaded key must actually be usable for issuing.
	issue(t, loaded, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)

	// A key that does not belong to the certificate is refused.
	otherKey, err := newCA(t, "csirt-a").KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFileAtomic(keyFile, otherKey, pki.KeyFileMode); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadCA(certFile, keyFile); err == nil {
		t.Fatal("LoadCA accepted a mismatched key")
	}
	// A leaf is not a CA.
	leafPEM, leafKey, err := ca.Issue(pki.IssueRequest{Identity: pki.NodeIdentity("csirt-a", "n1"), Validity: time.Hour, Usage: pki.UsageNode})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.ParseCA(leafPEM, leafKey); err == nil {
		t.Fatal("ParseCA accepted a leaf certificate")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestFingerprint(t *testing.T) {
	ca := newCA(t, "csirt-a")
	fp := pki.Fingerprint(ca.Cert)
	if len(fp) != len("SHA256:")+64 || fp[:7] != "SHA256:" {
		t.Fatalf("fingerprint %q", fp)
	}
	if fp == pki.Fingerprint(newCA(t, "csirt-a").Cert) {
		t.Fatal("two CAs share a fingerprint")
	}
}

func TestPEMHelpers(t *testing.T) {
	ca := newCA(t, "csirt-a")
	bundle := append(append([]byte("junk\n"), ca.CertPEM()...), newCA(t, "csirt-b").CertPEM()...)
	certs, err := pki.ParseCertsPEM(bundle)
	if err != nil || len(certs) != 2 {
		t.Fatalf("ParseCertsPEM: %d, %v", len(certs), err)
	}
	if _, err := pki.NewCertPool([]byte("nothing here")); err == nil {
		t.Fatal("NewCertPool accepted input without certificates")
	}
	if _, err := pki.ParseKeyPEM(ca.CertPEM()); err == nil {
		t.Fatal("ParseKeyPEM accepted a certificate")
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", path, got, want)
	}
}
