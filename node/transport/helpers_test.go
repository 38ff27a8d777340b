package transport_test

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/irxfed/irx/node/transport"
	"github.com/irxfed/irx/pki"
)

const team = "csirt-a"

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitLog waits until the log contains every one of parts on one line.
func (b *logBuffer) waitLog(t *testing.T, timeout time.Duration, parts ...string) {
	t.Helper()
	waitFor(t, timeout, "log line with "+strings.Join(parts, ", "), func() bool {
		for line := range strings.Lines(b.String()) {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		return false
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(team, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *pki.CA, id pki.Identity) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{Identity: id, Validity: time.Hour, Usage: pki.UsageNode})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func nodeConfigs(t *testing.T, ca *pki.CA, name string) (serverConf, clientConf *tls.Config) {
	t.Helper()
	m := pki.MutualTLS{Team: team, Roots: ca.Pool(), Cert: pki.StaticCertificate(issue(t, ca, pki.NodeIdentity(team, name)))}
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

// newLayer starts a StreamLayer for node name of ca on 127.0.0.1:0.
func newLayer(t *testing.T, ca *pki.CA, name string, opts ...transport.Option) *transport.StreamLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, c := nodeConfigs(t, ca, name)
	layer, err := transport.NewTLSStreamLayer(ln, nil, s, c, opts...)
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = layer.Close() })
	return layer
}

// acceptOne runs Accept in the background and delivers its result.
func acceptOne(layer *transport.StreamLayer) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := layer.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func peerOf(t *testing.T, c net.Conn) pki.Identity {
	t.Helper()
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		t.Fatalf("connection is %T, not a TLS connection", c)
	}
	id, err := pki.PeerIdentity(tc.ConnectionState())
	if err != nil {
		t.Fatal(err)
	}
	return id
}
