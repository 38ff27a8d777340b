package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnvironmentSitsBetweenFileAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "irxd.yaml")
	if err := os.WriteFile(file, []byte("team_id: from-file\nnode_id: n-file\ndata_dir: /file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"IRX_NODE": "n-env", "IRX_DATA_DIR": "/env", "IRX_SNAPSHOT_THRESHOLD": "77"}
	o, err := parseOptions([]string{"--config", file, "--data-dir", "/flag"}, io.Discard, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.node.TeamID != "from-file" || o.node.NodeID != "n-env" || o.node.DataDir != "/flag" || o.node.Raft.SnapshotThreshold != 77 {
		t.Fatalf("precedence file < env < flags broken: %+v", o.node)
	}
	_, err = parseOptions(nil, io.Discard, func(k string) string {
		if k == "IRX_SNAPSHOT_THRESHOLD" {
			return "many"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "IRX_SNAPSHOT_THRESHOLD") {
		t.Fatalf("bad environment value: %v", err)
	}
}

func TestEraseWithinFromFileEnvironmentOrFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "irxd.yaml")
	if err := os.WriteFile(file, []byte("erase_within: 45s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  string
		want time.Duration
	}{
		{[]string{"--config", file}, "", 45 * time.Second},
		{[]string{"--config", file}, "10s", 10 * time.Second},
		{[]string{"--config", file, "--erase-within", "2s"}, "10s", 2 * time.Second},
		{nil, "", 0}, // the node's default
	} {
		o, err := parseOptions(tc.args, io.Discard, func(k string) string {
			if k == "IRX_ERASE_WITHIN" {
				return tc.env
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		if o.node.EraseWithin != tc.want {
			t.Errorf("%v with IRX_ERASE_WITHIN=%q: erase within %v, want %v", tc.args, tc.env, o.node.EraseWithin, tc.want)
		}
	}
}

func TestFutureSkewFromFileOrFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "irxd.yaml")
	if err := os.WriteFile(file, []byte("future_skew: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--config", file}, time.Minute},
		{[]string{"--config", file, "--future-skew", "30s"}, 30 * time.Second},
		{nil, 0}, // the node's default
	} {
		o, err := parseOptions(tc.args, io.Discard, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if o.node.FutureSkew != tc.want {
			t.Errorf("%v: future skew %v, want %v", tc.args, o.node.FutureSkew, tc.want)
		}
	}
}

// Every misconfiguration stops irxd at start with one line naming the cause.
func TestMisconfigurationIsOneClearLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "irxd.yaml")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("0123456789abcdef0123")
	hookAt := func(addr string) string {
		return write("webhooks:\n  - url: https://" + addr + "/irx\n    secret_file: " + secret + "\n")
	}
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	fedAddr, debugAddr := free(), free()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"bad yaml", []string{"--config", write("team_id: [unclosed\n")}, []string{"config", "line"}},
		{"unknown key", []string{"--config", write("team_id: a\nlisten:\n  apii: 127.0.0.1:1\n")}, []string{`unknown key "apii"`, "line 3"}},
		{"missing config", []string{"--config", "/nonexistent/irxd.yaml"}, []string{"/nonexistent/irxd.yaml"}},
		{"missing certificate", []string{"--ca-file", "/nonexistent/ca.crt", "--cert-file", "/nonexistent/node.crt", "--key-file", "/nonexistent/node.key"}, []string{"tls.cert_file", "/nonexistent/node.crt"}},
		{"half the TLS files", []string{"--cert-file", "/x.crt"}, []string{"tls:", "together"}},
		{"port in use", []string{"--api-addr", busy.Addr().String()}, []string{"api listener", busy.Addr().String(), "in use"}},
		{"bad team", []string{"--team", "CERT Example"}, []string{"team_id"}},
		{"bad members", []string{"--members", "node1"}, []string{"--members", "id=host:port"}},
		{"bad log level", []string{"--log-level", "loud"}, []string{"log level", "loud"}},
		{"erase bound too short", []string{"--erase-within", "10ms"}, []string{"erase_within", "1s"}},
		{"negative future skew", []string{"--future-skew", "-1m"}, []string{"future_skew", "negative"}},
		{"webhook at the federation listener", []string{"--config", hookAt(fedAddr), "--federation-addr", fedAddr},
			[]string{"webhooks[0].url", "points at the node itself", fedAddr}},
		{"webhook at the default federation listener", []string{"--config", hookAt("localhost:7401"), "--federation-addr", ""},
			[]string{"webhooks[0].url", "points at the node itself", "127.0.0.1:7401"}},
		{"webhook at the debug server", []string{"--config", hookAt(debugAddr), "--debug-addr", debugAddr},
			[]string{"webhooks[0].url", "points at the node itself", debugAddr}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data-dir", filepath.Join(t.TempDir(), "data"), "--raft-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--federation-addr", "127.0.0.1:0"}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, args, io.Discard, io.Discard, func(string) string { return "" })
			if err == nil {
				t.Fatal("irxd started")
			}
			line := oneLine(err)
			if strings.Contains(line, "\n") {
				t.Fatalf("more than one line: %q", line)
			}
			if strings.Contains(line, "struct") || strings.Contains(line, "main.") || strings.Contains(line, "; ;") {
				t.Errorf("Go internals in the message: %q", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("%q does not say %q", line, w)
				}
			}
		})
	}
}

// TestLogsEscapeWhatClientsSent: whatever a client's string holds (a
// forged line after CR LF, an ANSI sequence, a bidirectional override, a
// C1 control), a log line in either format stays one line and holds none
// of those characters raw.
func TestLogsEscapeWhatClientsSent(t *testing.T) {
	hostile := "ok\r\n2026-12-06T00:00:00Z INFO forged line\x1b[2K\u202egnp.exe\u0085\u2066"
	for _, format := range []string{"text", "json"} {
		var buf strings.Builder
		logger, err := newLogger(&buf, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		logger.Info(hostile, "request_id", hostile, "error", errors.New(hostile))
		out := strings.TrimSuffix(buf.String(), "\n")
		if strings.Count(out, "\n") != 0 || strings.ContainsAny(out, "\r\x1b\u202e\u0085\u2066") {
			t.Errorf("%s log line holds a raw control or bidi character:\n%q", format, out)
		}
		if !strings.Contains(out, "forged line") {
			t.Errorf("%s log line lost the text: %q", format, out)
		}
	}
}
