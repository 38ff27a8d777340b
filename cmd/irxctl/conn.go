package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/irxfed/irx/cmd/internal/version"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

const (
	defaultAddr = "127.0.0.1:7400"
	defaultPort = "7400"

	// maxResponseBytes lifts gRPC's 4 MiB default: a page of incidents of
	// up to 256 KiB each (the server's limit) easily exceeds it.
	maxResponseBytes = 512 << 20
)

// connFlags are the connection settings as given on the command line. Each
// remembers whether it was set, because a flag that was not given must not
// hide the environment or the context file.
type connFlags struct {
	addr, caFile, certFile, keyFile, context optString
	plaintext                                optBool
	timeout                                  optDuration
}

func (c *cli) registerConnFlags(fs *flag.FlagSet) {
	fs.Var(&c.conn.addr, "addr", "`ADDR` of the node's operator API, host[:port] (env IRX_ADDR; default "+defaultAddr+")")
	fs.Var(&c.conn.caFile, "ca-file", "`FILE` with the team CA certificate, PEM (env IRX_CA_FILE)")
	fs.Var(&c.conn.certFile, "cert-file", "`FILE` with the operator certificate, PEM (env IRX_CERT_FILE)")
	fs.Var(&c.conn.keyFile, "key-file", "`FILE` with the operator private key, PEM (env IRX_KEY_FILE)")
	fs.Var(&c.conn.plaintext, "plaintext", "no TLS; loopback addresses only (default true on loopback without a certificate)")
	fs.Var(&c.conn.timeout, "timeout", "`DURATION` allowed for each request to the node; 0 for none (default 10s)")
	fs.Var(&c.conn.context, "context", "`NAME` of the config file context to use instead of its current-context")
}

// target is where and how to connect, after flags, environment and context
// are merged.
type target struct {
	addr    string
	tls     *tls.Config // nil: plaintext
	timeout time.Duration
}

func (c *cli) resolveTarget() (target, error) {
	ctxSettings, err := c.currentContext()
	if err != nil {
		return target{}, err
	}
	pick := func(f optString, env, fromContext, def string) string {
		switch {
		case f.set:
			return f.val
		case c.getenv(env) != "":
			return c.getenv(env)
		case fromContext != "":
			return fromContext
		}
		return def
	}
	addr, err := normalizeAddr(pick(c.conn.addr, "IRX_ADDR", ctxSettings.Addr, defaultAddr))
	if err != nil {
		return target{}, usageErrorf("%v", err)
	}
	caFile := pick(c.conn.caFile, "IRX_CA_FILE", ctxSettings.CAFile, "")
	certFile := pick(c.conn.certFile, "IRX_CERT_FILE", ctxSettings.CertFile, "")
	keyFile := pick(c.conn.keyFile, "IRX_KEY_FILE", ctxSettings.KeyFile, "")
	t := target{addr: addr, timeout: 10 * time.Second}
	if c.conn.timeout.set {
		t.timeout = c.conn.timeout.val
	}

	loopback := pki.IsLoopback(addr)
	haveTLS := caFile != "" || certFile != "" || keyFile != ""
	plaintext := loopback && !haveTLS
	if c.conn.plaintext.set {
		plaintext = c.conn.plaintext.val
	}
	switch {
	case plaintext && !loopback:
		// The node never serves plaintext there; failing here is clearer
		// than a handshake error.
		return target{}, usageErrorf("--plaintext is for loopback addresses only; %s needs --ca-file, --cert-file and --key-file", addr)
	case plaintext:
		return t, nil
	case !haveTLS:
		return target{}, usageErrorf("%s needs mutual TLS: give --ca-file, --cert-file and --key-file (or IRX_CA_FILE, IRX_CERT_FILE, IRX_KEY_FILE, or a context)", addr)
	case caFile == "" || certFile == "" || keyFile == "":
		var missing []string
		for _, f := range []struct{ name, val string }{{"--ca-file", caFile}, {"--cert-file", certFile}, {"--key-file", keyFile}} {
			if f.val == "" {
				missing = append(missing, f.name)
			}
		}
		return target{}, usageErrorf("mutual TLS needs --ca-file, --cert-file and --key-file; %s missing", strings.Join(missing, ", "))
	}
	cert, id, err := pki.LoadKeyPair(certFile, keyFile)
	if err != nil {
		return target{}, err
	}
	roots, err := pki.LoadCertPool(caFile)
	if err != nil {
		return target{}, err
	}
	// Nodes are named by their SAN identity, not by the address used to
	// reach them; the team to expect is the operator certificate's own.
	t.tls, err = pki.ClientConfig(pki.StaticCertificate(cert), roots, pki.ExpectNode(id.Team))
	if err != nil {
		return target{}, err
	}
	return t, nil
}

// connectionHint says what to check when err is a failure to reach the
// node at t or to agree on TLS with it, which gRPC reports in its own
// transport's words; "" for any other error.
func connectionHint(err error, t *target) string {
	st, ok := statusOf(err)
	if t == nil || !ok || (st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded) {
		return ""
	}
	msg := st.Message()
	has := func(parts ...string) bool {
		for _, p := range parts {
			if strings.Contains(msg, p) {
				return true
			}
		}
		return false
	}
	tlsFlags := "--ca-file (the team CA that issued the node's certificate), --cert-file and --key-file (an operator certificate of the same team: irxctl pki operator)"
	switch {
	case t.tls != nil && has("first record does not look like a TLS handshake"):
		return fmt.Sprintf("%s answers without TLS: a node in development mode serves plaintext on loopback; leave out --ca-file, --cert-file and --key-file", t.addr)
	case has("authentication handshake failed", "x509:", "tls:"):
		return fmt.Sprintf("the TLS handshake with %s failed: check %s", t.addr, tlsFlags)
	case t.tls == nil && has("server preface", "connection reset by peer"):
		return fmt.Sprintf("%s did not answer in plaintext: outside development mode a node requires mutual TLS; give %s", t.addr, tlsFlags)
	case has("Error while dialing", "connection refused", "no such host", "produced zero addresses", "no route to host", "i/o timeout", "connection error", "latest connection error"):
		return fmt.Sprintf("is irxd running at %s? Nothing accepted a connection there (--addr, IRX_ADDR or the context name it)", t.addr)
	}
	return ""
}

// normalizeAddr adds the default port, so "irx1.example.org" works.
func normalizeAddr(addr string) (string, error) {
	if ip, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return net.JoinHostPort(ip.String(), defaultPort), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") && addr != "" {
			return net.JoinHostPort(addr, defaultPort), nil
		}
		return "", fmt.Errorf("--addr %q: %v", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("--addr %q: no host", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// session is an open connection to a node.
type session struct {
	conn    *grpc.ClientConn
	timeout time.Duration
}

func (c *cli) connect() (*session, error) {
	t, err := c.resolveTarget()
	if err != nil {
		return nil, err
	}
	c.dialed = &t
	creds := insecure.NewCredentials()
	if t.tls != nil {
		creds = credentials.NewTLS(t.tls)
	}
	conn, err := grpc.NewClient(t.addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("irxctl/"+version.Read().Short()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)))
	if err != nil {
		return nil, err
	}
	return &session{conn: conn, timeout: t.timeout}, nil
}

func (s *session) Close() error { return s.conn.Close() }

// call bounds one request; --timeout 0 means no deadline.
func (s *session) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

func (s *session) incidents() irxv1.IncidentServiceClient {
	return irxv1.NewIncidentServiceClient(s.conn)
}
func (s *session) cluster() irxv1.ClusterServiceClient { return irxv1.NewClusterServiceClient(s.conn) }

// optString is a string flag that knows whether it was given.
type optString struct {
	val string
	set bool
}

func (o *optString) String() string { return o.val }
func (o *optString) Set(s string) error {
	o.val, o.set = s, true
	return nil
}

// optBool is a boolean flag that knows whether it was given.
type optBool struct {
	val bool
	set bool
}

func (o *optBool) String() string {
	if o == nil || !o.val {
		return "false"
	}
	return "true"
}

func (o *optBool) Set(s string) error {
	v, err := parseBool(s)
	if err != nil {
		return err
	}
	o.val, o.set = v, true
	return nil
}

func (o *optBool) IsBoolFlag() bool { return true }

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes":
		return true, nil
	case "0", "f", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// optDuration is a duration flag that knows whether it was given.
type optDuration struct {
	val time.Duration
	set bool
}

func (o *optDuration) String() string {
	if o == nil || !o.set {
		return ""
	}
	return o.val.String()
}

func (o *optDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 30s, 2m)", s)
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	o.val, o.set = d, true
	return nil
}
