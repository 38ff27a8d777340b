package node_test

import (
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/irxfed/irx/node"
	"github.com/irxfed/irx/pki"
)

// Rotating the node certificate files and reloading (what SIGHUP does in
// irxd) changes what new handshakes present, without a restart.
func TestReloadCertificatesRotatesWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("dev", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	if err := ca.WriteFiles(caFile, filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	issue := func(id pki.Identity, usage pki.Usage) (certPEM, keyPEM []byte) {
		t.Helper()
		c, k, err := ca.Issue(pki.IssueRequest{Identity: id, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour, Now: time.Now(), Usage: usage})
		if err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	c, k := issue(pki.NodeIdentity("dev", "node1"), pki.UsageNode)
	if err := pki.WriteFiles(certFile, keyFile, c, k); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(node.Config{
		DataDir: filepath.Join(dir, "data"), APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		TLS:    node.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	opPEM, opKey := issue(pki.OperatorIdentity("dev", "admin"), pki.UsageClient)
	op, err := tls.X509KeyPair(opPEM, opKey)
	if err != nil {
		t.Fatal(err)
	}
	clientConf, err := pki.ClientConfig(pki.StaticCertificate(op), ca.Pool(), pki.ExpectNode("dev"))
	if err != nil {
		t.Fatal(err)
	}
	served := func() *big.Int {
		t.Helper()
		conn, err := tls.Dial("tcp", n.APIAddr().String(), clientConf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	first := served()

	c2, k2 := issue(pki.NodeIdentity("dev", "node1"), pki.UsageNode)
	if err := pki.WriteFiles(certFile, keyFile, c2, k2); err != nil {
		t.Fatal(err)
	}
	if got := served(); got.Cmp(first) != 0 {
		t.Fatal("the new certificate was served before a reload")
	}
	if err := n.ReloadCertificates(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got.Cmp(first) == 0 {
		t.Fatal("still serving the old certificate after a reload")
	}

	// A certificate of another identity is refused; the current one stays.
	c3, k3 := issue(pki.NodeIdentity("dev", "node2"), pki.UsageNode)
	if err := pki.WriteFiles(certFile, keyFile, c3, k3); err != nil {
		t.Fatal(err)
	}
	before := served()
	if err := n.ReloadCertificates(); err == nil {
		t.Fatal("reloaded a certificate of another node")
	}
	if served().Cmp(before) != 0 {
		t.Fatal("a refused reload changed the served certificate")
	}
}
