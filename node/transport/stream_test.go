package transport_test

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/node/transport"
	"github.com/irxfed/irx/pki"
)

func TestStreamLayersExchangeBytes(t *testing.T) {
	ca := newCA(t)
	a := newLayer(t, ca, "n1")
	b := newLayer(t, ca, "n2")

	accepted := acceptOne(a)
	out, err := b.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var in net.Conn
	select {
	case in = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return")
	}
	if in == nil {
		t.Fatal("Accept failed")
	}
	defer in.Close()

	if got := peerOf(t, out); got != pki.NodeIdentity(team, "n1") {
		t.Errorf("dialler sees %v", got)
	}
	if got := peerOf(t, in); got != pki.NodeIdentity(team, "n2") {
		t.Errorf("acceptor sees %v", got)
	}
	if a.Identity() != pki.NodeIdentity(team, "n1") {
		t.Errorf("local identity %v", a.Identity())
	}

	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(in, buf); err != nil {
			errc <- err
			return
		}
		_, err := in.Write([]byte(strings.ToUpper(string(buf))))
		errc <- err
	}()
	if _, err := out.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	_ = out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(out, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "PING" {
		t.Fatalf("got %q", buf)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestForeignCARefusedBothWays(t *testing.T) {
	ca := newCA(t)
	// Same team id, different CA: everything but the chain looks right.
	evilCA := newCA(t)
	var logA, logEvil logBuffer
	a := newLayer(t, ca, "n1", transport.WithLogger(logA.logger()))
	b := newLayer(t, ca, "n2")
	evil := newLayer(t, evilCA, "n3", transport.WithLogger(logEvil.logger()))

	accepted := acceptOne(a)

	// The foreign node cannot dial in. With symmetric configs it refuses a
	// first (it does not trust a's CA either) ...
	if c, err := evil.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("foreign node dialled in")
	}
	logA.waitLog(t, 30*time.Second, "level=WARN", "refused inbound", "remote=127.0.0.1:")
	logEvil.waitLog(t, 30*time.Second, "level=WARN", "outbound connection failed", "remote="+a.Addr().String(), "unknown authority")

	// ... so also try an attacker that trusts anything: then it is a that
	// refuses, on the chain.
	attacker := attackerLayer(t, evilCA, "n4")
	if c, err := attacker.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("foreign node dialled in")
	} else {
		t.Logf("foreign dial: %v", err)
	}
	logA.waitLog(t, 30*time.Second, "level=WARN", "refused inbound", "remote=127.0.0.1:", "unknown authority")

	// ... nor be dialled.
	if c, err := a.Dial(raft.ServerAddress(evil.Addr().String()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("dialled a foreign node")
	} else if !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("dial to foreign node: %v", err)
	}

	// The refused connection never reached Accept: the first connection
	// Accept returns is the legitimate one dialled afterwards.
	out, err := b.Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	select {
	case in := <-accepted:
		if in == nil {
			t.Fatal("Accept failed")
		}
		defer in.Close()
		if got := peerOf(t, in); got != pki.NodeIdentity(team, "n2") {
			t.Fatalf("Accept returned a connection from %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return")
	}

	for _, l := range []string{logA.String(), logEvil.String()} {
		if strings.Contains(l, "PRIVATE KEY") {
			t.Fatal("key material in logs")
		}
	}
}

func TestOperatorRefused(t *testing.T) {
	ca := newCA(t)
	var logA logBuffer
	a := newLayer(t, ca, "n1", transport.WithLogger(logA.logger()))
	op := issue(t, ca, pki.OperatorIdentity(team, "alice"))

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a.Addr().String(), &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{op},
		InsecureSkipVerify: true, // the attacker does not care whom it talks to
	})
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("operator certificate was accepted on the raft port")
	}
	logA.waitLog(t, 30*time.Second, "level=WARN", "refused inbound", "not a node")
}

func TestSlowClientDoesNotBlockAccept(t *testing.T) {
	ca := newCA(t)
	var logA logBuffer
	// Long enough for a legitimate handshake on a loaded machine under
	// -race, short enough to wait for the idle connections' end below.
	timeout := 5 * time.Second
	a := newLayer(t, ca, "n1", transport.WithHandshakeTimeout(timeout), transport.WithLogger(logA.logger()))
	b := newLayer(t, ca, "n2")

	// Idle connections that never send a ClientHello, plus one sending garbage.
	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	garbage, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	if _, err := garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}

	accepted := acceptOne(a)
	out, err := b.Dial(raft.ServerAddress(a.Addr().String()), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	select {
	case in := <-accepted:
		if in == nil {
			t.Fatal("Accept failed")
		}
		in.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("Accept did not return")
	}
	// Had the legitimate peer waited behind them, the idle connections'
	// handshake deadline would have passed and the server closed them:
	// they are still open. (Checked by their state, not by a clock: a
	// loaded machine is slow, never out of order.)
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("an idle connection was closed before the legitimate peer was accepted (%v): it waited behind them", err)
		}
	}

	// The idle connections are dropped once the handshake deadline passes.
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(timeout + 30*time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("idle connection not closed by the server: %v", err)
		}
	}
	logA.waitLog(t, 30*time.Second, "level=WARN", "refused inbound", "handshake timed out")
}

func TestCloseUnblocksAccept(t *testing.T) {
	ca := newCA(t)
	a := newLayer(t, ca, "n1")
	errc := make(chan error, 1)
	go func() {
		_, err := a.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	if _, err := a.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Accept after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.Dial(raft.ServerAddress("127.0.0.1:1"), time.Second); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
}

func TestNewTLSStreamLayerValidation(t *testing.T) {
	ca := newCA(t)
	srv, cli := nodeConfigs(t, ca, "n1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert := issue(t, ca, pki.NodeIdentity(team, "n1"))
	op := issue(t, ca, pki.OperatorIdentity(team, "alice"))
	plain := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	skip := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}
	opSrv, err := pki.ServerConfig(pki.StaticCertificate(op), ca.Pool(), true)
	if err != nil {
		t.Fatal(err)
	}
	old := srv.Clone()
	old.MinVersion = tls.VersionTLS12
	_, otherCli := nodeConfigs(t, ca, "n2")

	cases := []struct {
		name      string
		advertise net.Addr
		srv, cli  *tls.Config
	}{
		{"plain server config", nil, plain, cli},
		{"client skips verification", nil, srv, skip},
		{"TLS 1.2 allowed", nil, old, cli},
		{"operator certificate", nil, opSrv, cli},
		{"different identities", nil, srv, otherCli},
		{"unspecified advertise", &net.TCPAddr{IP: net.IPv4zero, Port: 7000}, srv, cli},
		{"nil config", nil, nil, cli},
	}
	for _, tc := range cases {
		if l, err := transport.NewTLSStreamLayer(ln, tc.advertise, tc.srv, tc.cli); err == nil {
			l.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
	adv := &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 7000}
	l, err := transport.NewTLSStreamLayer(ln, adv, srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().String() != "10.0.0.1:7000" {
		t.Errorf("Addr() = %v", l.Addr())
	}
}

// attackerLayer is a StreamLayer for a foreign node that accepts any server
// certificate, to check that the refusal comes from the other side.
func attackerLayer(t *testing.T, ca *pki.CA, name string) *transport.StreamLayer {
	t.Helper()
	srv, cli := nodeConfigs(t, ca, name)
	cli.VerifyConnection = func(tls.ConnectionState) error { return nil }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	layer, err := transport.NewTLSStreamLayer(ln, nil, srv, cli, transport.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = layer.Close() })
	return layer
}
