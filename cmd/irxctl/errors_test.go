package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/pki"
)

// Each thing a refusal says is said once: not the code twice ("NotFound:
// not found: ...") and not a field violation in the message and again on
// its own line.
func TestErrorsSayEachThingOnce(t *testing.T) {
	withViolations := func(msg string, vs ...*errdetails.BadRequest_FieldViolation) error {
		st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: vs})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	id := &errdetails.BadRequest_FieldViolation{Field: "id", Description: `invalid id "99": want <team-id>:<ticket>`}
	tlp := &errdetails.BadRequest_FieldViolation{Field: "incident.tlp", Description: "is required"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"code restated", status.Error(codes.NotFound, "not found: incident dev:99"), "irxctl: NotFound: incident dev:99\n"},
		{"code words inside are kept", status.Error(codes.NotFound, "peer \"x\" not found: check the name"), "irxctl: NotFound: peer \"x\" not found: check the name\n"},
		{"one violation", withViolations(`invalid request: id invalid id "99": want <team-id>:<ticket>`, id),
			"irxctl: InvalidArgument: invalid request\n  id: invalid id \"99\": want <team-id>:<ticket>\n"},
		{"two violations", withViolations(`invalid request: id invalid id "99": want <team-id>:<ticket>; incident.tlp is required`, id, tlp),
			"irxctl: InvalidArgument: invalid request\n  id: invalid id \"99\": want <team-id>:<ticket>\n  incident.tlp: is required\n"},
		{"a message that says something else is kept", withViolations("the policy cannot be stored", tlp),
			"irxctl: InvalidArgument: the policy cannot be stored\n  incident.tlp: is required\n"},
		{"only violations", withViolations("invalid argument: incident.tlp: is required", tlp),
			"irxctl: InvalidArgument\n  incident.tlp: is required\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printError(&b, tc.err)
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

// A node that is not there, or that speaks the other side of TLS, gets a
// line that says what to check, after gRPC's own.
func TestConnectionFailuresSayWhatToCheck(t *testing.T) {
	env := isolatedEnv(t)
	dir := t.TempDir()
	mustSucceed(t, irxctl(t, env, "", "pki", "ca", "create", "--team", "dev", "--out", filepath.Join(dir, "ca")))
	mustSucceed(t, irxctl(t, env, "", "pki", "node", "--ca-dir", filepath.Join(dir, "ca"), "--node", "node1", "--host", "127.0.0.1", "--out", filepath.Join(dir, "node1")))
	mustSucceed(t, irxctl(t, env, "", "pki", "operator", "--ca-dir", filepath.Join(dir, "ca"), "--name", "alice", "--out", filepath.Join(dir, "alice")))
	tlsFlags := []string{"--ca-file", filepath.Join(dir, "alice", "ca.crt"), "--cert-file", filepath.Join(dir, "alice", "operator.crt"), "--key-file", filepath.Join(dir, "alice", "operator.key")}

	serve := func(opts ...grpc.ServerOption) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer(opts...)
		go func() { _ = s.Serve(ln) }()
		t.Cleanup(s.Stop)
		return ln.Addr().String()
	}
	plain := serve()
	cert, _, err := pki.LoadKeyPair(filepath.Join(dir, "node1", "node.crt"), filepath.Join(dir, "node1", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(filepath.Join(dir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	serverConf, err := pki.ServerConfig(pki.StaticCertificate(cert), roots, true)
	if err != nil {
		t.Fatal(err)
	}
	withTLS := serve(grpc.Creds(credentials.NewTLS(serverConf)))
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name string
		args []string
		hint string
	}{
		{"nothing listens", []string{"--addr", nobody}, "irxctl: is irxd running at " + nobody + "?"},
		{"plaintext to a TLS node", []string{"--addr", withTLS}, "irxctl: " + withTLS + " did not answer in plaintext"},
		{"TLS to a plaintext node", append([]string{"--addr", plain}, tlsFlags...), "irxctl: " + plain + " answers without TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := irxctl(t, env, "", append([]string{"cluster", "status", "--timeout", "10s"}, tc.args...)...)
			mustFail(t, r, 1, "irxctl: Unavailable: ", "\n"+tc.hint)
			if n := strings.Count(r.stderr, "\n"); n != 2 {
				t.Errorf("%d lines, want gRPC's and the hint:\n%s", n, r.stderr)
			}
		})
	}
}
