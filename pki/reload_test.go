package pki_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/irxfed/irx/pki"
)

func writeLeaf(t *testing.T, ca *pki.CA, id pki.Identity, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{Identity: id, Validity: time.Hour, Usage: pki.UsageNode})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(certFile, keyFile, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderSwapsServedCertificate(t *testing.T) {
	ca := newCA(t, "csirt-a")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	id := pki.NodeIdentity("csirt-a", "n1")
	writeLeaf(t, ca, id, certFile, keyFile)

	r, err := pki.NewReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if r.Identity() != id {
		t.Fatalf("identity %v", r.Identity())
	}
	m := pki.MutualTLS{Team: "csirt-a", Roots: ca.Pool(), Cert: r}
	srv, err := m.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	_, cli := mutual(t, "csirt-a", ca, issue(t, ca, pki.NodeIdentity("csirt-a", "n2"), pki.UsageNode, time.Time{}, 0))

	served := func() string {
		t.Helper()
		client, server := handshake(t, srv, cli)
		if client.err != nil || server.err != nil {
			t.Fatalf("handshake: client %v, server %v", client.err, server.err)
		}
		return pki.Fingerprint(client.state.PeerCertificates[0])
	}
	cur, _ := r.Certificate()
	first := pki.Fingerprint(cur.Leaf)
	if got := served(); got != first {
		t.Fatalf("served %s, want %s", got, first)
	}

	// Rotate on disk: nothing changes until Reload.
	writeLeaf(t, ca, id, certFile, keyFile)
	if got := served(); got != first {
		t.Fatal("certificate changed before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	cur, _ = r.Certificate()
	second := pki.Fingerprint(cur.Leaf)
	if second == first {
		t.Fatal("Reload did not pick up the new certificate")
	}
	if got := served(); got != second {
		t.Fatalf("after Reload served %s, want %s", got, second)
	}

	// A certificate for another identity is refused and the old one kept.
	writeLeaf(t, ca, pki.NodeIdentity("csirt-a", "n9"), certFile, keyFile)
	if err := r.Reload(); err == nil {
		t.Fatal("Reload accepted an identity change")
	}
	if got := served(); got != second {
		t.Fatal("failed Reload changed the served certificate")
	}
}

func TestReloaderConcurrent(t *testing.T) {
	ca := newCA(t, "csirt-a")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	id := pki.NodeIdentity("csirt-a", "n1")
	writeLeaf(t, ca, id, certFile, keyFile)
	r, err := pki.NewReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if c, _ := r.GetCertificate(nil); c == nil || c.Leaf == nil {
					t.Error("nil certificate served")
					return
				}
				if c, _ := r.GetClientCertificate(nil); c == nil {
					t.Error("nil client certificate served")
					return
				}
			}
		})
	}
	for range 5 {
		writeLeaf(t, ca, id, certFile, keyFile)
		// Reloads run while handshakes read the current pair.
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
