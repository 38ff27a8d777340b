package pki_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/irxfed/irx/pki"
)

type side struct {
	err   error
	state tls.ConnectionState
}

// handshake runs one TLS connection over a real 127.0.0.1 socket. Each side
// completes the handshake and then exchanges one byte, because in TLS 1.3 the
// client finishes its handshake before the server has judged the client
// certificate: a refusal by the server shows up on the client's first read.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) (client, server side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan side, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		c := tls.Server(raw, serverConf)
		if err := c.Handshake(); err != nil {
			done <- side{err: err}
			return
		}
		if _, err := c.Write([]byte{1}); err != nil {
			done <- side{err: err}
			return
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		done <- side{err: err, state: c.ConnectionState()}
	}()

	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, clientConf)
	client.err = c.Handshake()
	if client.err == nil {
		_, client.err = io.ReadFull(c, make([]byte, 1))
	}
	if client.err == nil {
		_, client.err = c.Write([]byte{1})
	}
	client.state = c.ConnectionState()
	_ = raw.Close() // unblock the server if the client gave up
	server = <-done
	return client, server
}

func mutual(t *testing.T, team string, ca *pki.CA, cert tls.Certificate) (serverConf, clientConf *tls.Config) {
	t.Helper()
	m := pki.MutualTLS{Team: team, Roots: ca.Pool(), Cert: pki.StaticCertificate(cert)}
	s, err := m.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// rawConfigs builds mutual-TLS configs for a certificate that MutualTLS would
// refuse to use locally (operator, expired, ...), to play the attacker.
func rawConfigs(t *testing.T, cert tls.Certificate) (serverConf, clientConf *tls.Config) {
	t.Helper()
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}},
		&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}
}

func TestMutualTLSSameCA(t *testing.T) {
	ca := newCA(t, "csirt-a")
	n1 := issue(t, ca, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	n2 := issue(t, ca, pki.NodeIdentity("csirt-a", "n2"), pki.UsageNode, time.Time{}, 0)
	s1, _ := mutual(t, "csirt-a", ca, n1)
	_, c2 := mutual(t, "csirt-a", ca, n2)

	client, server := handshake(t, s1, c2)
	if client.err != nil || server.err != nil {
		t.Fatalf("handshake: client %v, server %v", client.err, server.err)
	}
	if v := client.state.Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x", v)
	}
	got, err := pki.PeerIdentity(client.state)
	if err != nil || got != pki.NodeIdentity("csirt-a", "n1") {
		t.Errorf("client sees %v, %v", got, err)
	}
	got, err = pki.PeerIdentity(server.state)
	if err != nil || got != pki.NodeIdentity("csirt-a", "n2") {
		t.Errorf("server sees %v, %v", got, err)
	}
	if _, err := pki.PeerIdentity(tls.ConnectionState{}); err == nil {
		t.Error("PeerIdentity accepted an incomplete handshake")
	}
}

func TestMutualTLSRefusesForeignCA(t *testing.T) {
	ca := newCA(t, "csirt-a")
	// Same team id, different CA: the identity looks right, the chain does not.
	evilCA := newCA(t, "csirt-a")
	n1 := issue(t, ca, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	evil := issue(t, evilCA, pki.NodeIdentity("csirt-a", "n2"), pki.UsageNode, time.Time{}, 0)
	s1, c1 := mutual(t, "csirt-a", ca, n1)
	sEvil, _ := mutual(t, "csirt-a", evilCA, evil)
	// The attacking client does not care whom it talks to.
	_, cEvil := rawConfigs(t, evil)

	// Foreign node as client.
	client, server := handshake(t, s1, cEvil)
	if server.err == nil || client.err == nil {
		t.Fatalf("foreign client accepted: client %v, server %v", client.err, server.err)
	}
	if !strings.Contains(server.err.Error(), "unknown authority") {
		t.Errorf("foreign client: unexpected error %v", server.err)
	}

	// Foreign node as server.
	client, _ = handshake(t, sEvil, c1)
	if client.err == nil {
		t.Fatal("foreign server accepted")
	}
	if !strings.Contains(client.err.Error(), "unknown authority") {
		t.Errorf("unexpected error %v", client.err)
	}
}

func TestMutualTLSRefusesOperator(t *testing.T) {
	ca := newCA(t, "csirt-a")
	n1 := issue(t, ca, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	// Even with both usages an operator is not a cluster member.
	op := issue(t, ca, pki.OperatorIdentity("csirt-a", "alice"), pki.UsageNode, time.Time{}, 0)
	s1, c1 := mutual(t, "csirt-a", ca, n1)
	sOp, cOp := rawConfigs(t, op)

	client, server := handshake(t, s1, cOp)
	if server.err == nil || !strings.Contains(server.err.Error(), "not a node") {
		t.Fatalf("operator client: server %v", server.err)
	}
	if client.err == nil {
		t.Fatal("operator client: client saw no error")
	}
	client, _ = handshake(t, sOp, c1)
	if client.err == nil || !strings.Contains(client.err.Error(), "not a node") {
		t.Fatalf("operator server: client %v", client.err)
	}

	// MutualTLS refuses to be configured with an operator certificate.
	m := pki.MutualTLS{Team: "csirt-a", Roots: ca.Pool(), Cert: pki.StaticCertificate(op)}
	if _, err := m.ServerConfig(); err == nil {
		t.Error("MutualTLS accepted an operator certificate")
	}
}

func TestMutualTLSRefusesOtherTeamNode(t *testing.T) {
	caA, caB := newCA(t, "csirt-a"), newCA(t, "csirt-b")
	n1 := issue(t, caA, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	nb := issue(t, caB, pki.NodeIdentity("csirt-b", "n1"), pki.UsageNode, time.Time{}, 0)
	// Team A trusts both CAs (as a federation might); B's node is still not
	// a member of A's cluster.
	roots := caA.Pool()
	roots.AddCert(caB.Cert)
	m := pki.MutualTLS{Team: "csirt-a", Roots: roots, Cert: pki.StaticCertificate(n1)}
	s1, err := m.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	_, cB := rawConfigs(t, nb)
	_, server := handshake(t, s1, cB)
	if server.err == nil || !strings.Contains(server.err.Error(), "not a node of team") {
		t.Fatalf("other team's node: server %v", server.err)
	}
}

func TestVerifyRequiresTeamAnchor(t *testing.T) {
	caA, caB := newCA(t, "csirt-a"), newCA(t, "csirt-b")
	// Team B's CA mints a certificate claiming to be a node of team A. Issue
	// refuses that, so forge it by hand.
	key := caB.Key
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "forged"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:         []*url.URL{pki.NodeIdentity("csirt-a", "n9").URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caB.Cert, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := caA.Pool()
	roots.AddCert(caB.Cert)
	// Plain X.509 validation accepts it ...
	if _, err := forged.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("precondition: %v", err)
	}
	// ... the team-anchor rule does not.
	if _, err := pki.VerifyCert([]*x509.Certificate{forged}, roots, x509.ExtKeyUsageClientAuth); err == nil ||
		!strings.Contains(err.Error(), "not anchored") {
		t.Fatalf("forged cross-team certificate: %v", err)
	}
	if _, err := pki.VerifyCert([]*x509.Certificate{forged}, nil, x509.ExtKeyUsageClientAuth); err == nil {
		t.Fatal("nil pool accepted")
	}
}

func TestMutualTLSRefusesExpired(t *testing.T) {
	ca := newCA(t, "csirt-a")
	n1 := issue(t, ca, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	old := issue(t, ca, pki.NodeIdentity("csirt-a", "n2"), pki.UsageNode, time.Now().Add(-3*time.Hour), time.Hour)
	s1, c1 := mutual(t, "csirt-a", ca, n1)
	sOld, cOld := rawConfigs(t, old)

	client, server := handshake(t, s1, cOld)
	if server.err == nil || client.err == nil {
		t.Fatalf("expired client accepted: client %v, server %v", client.err, server.err)
	}
	if !strings.Contains(server.err.Error(), "expired") {
		t.Errorf("expired client: %v", server.err)
	}
	client, _ = handshake(t, sOld, c1)
	if client.err == nil || !strings.Contains(client.err.Error(), "expired") {
		t.Fatalf("expired server: %v", client.err)
	}
}

func TestServerAndClientConfig(t *testing.T) {
	ca := newCA(t, "csirt-a")
	n1 := issue(t, ca, pki.NodeIdentity("csirt-a", "n1"), pki.UsageNode, time.Time{}, 0)
	op := issue(t, ca, pki.OperatorIdentity("csirt-a", "alice"), pki.UsageClient, time.Time{}, 0)

	srv, err := pki.ServerConfig(pki.StaticCertificate(n1), ca.Pool(), true)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := pki.ClientConfig(pki.StaticCertificate(op), ca.Pool(), pki.ExpectIdentity(pki.NodeIdentity("csirt-a", "n1")))
	if err != nil {
		t.Fatal(err)
	}
	client, server := handshake(t, srv, cli)
	if client.err != nil || server.err != nil {
		t.Fatalf("operator to node: client %v, server %v", client.err, server.err)
	}
	if id, _ := pki.PeerIdentity(server.state); id != pki.OperatorIdentity("csirt-a", "alice") {
		t.Errorf("server sees %v", id)
	}

	// Pinning the wrong node fails on the client.
	wrong, err := pki.ClientConfig(pki.StaticCertificate(op), ca.Pool(), pki.ExpectIdentity(pki.NodeIdentity("csirt-a", "n2")))
	if err != nil {
		t.Fatal(err)
	}
	if client, _ := handshake(t, srv, wrong); client.err == nil {
		t.Error("client accepted the wrong node")
	}

	// Without a client certificate a server that requires one refuses.
	anon, err := pki.ClientConfig(nil, ca.Pool(), pki.ExpectNode("csirt-a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, server := handshake(t, srv, anon); server.err == nil {
		t.Error("server accepted a client without certificate")
	}
	// ... and one that does not require it accepts.
	open, err := pki.ServerConfig(pki.StaticCertificate(n1), ca.Pool(), false)
	if err != nil {
		t.Fatal(err)
	}
	if client, server := handshake(t, open, anon); client.err != nil || server.err != nil {
		t.Errorf("optional client cert: client %v, server %v", client.err, server.err)
	}

	if _, err := pki.ClientConfig(nil, nil, pki.ExpectNode("csirt-a")); err == nil {
		t.Error("ClientConfig accepted a nil pool")
	}
	if _, err := pki.ClientConfig(nil, ca.Pool(), nil); err == nil {
		t.Error("ClientConfig accepted a nil matcher")
	}
	if _, err := pki.ServerConfig(pki.StaticCertificate(n1), nil, true); err == nil {
		t.Error("ServerConfig required client certs without a pool")
	}
	if srv.MinVersion != tls.VersionTLS13 || cli.MinVersion != tls.VersionTLS13 {
		t.Error("MinVersion is not TLS 1.3")
	}
}
