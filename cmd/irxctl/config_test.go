package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/irxfed/irx/pki"
	"github.com/irxfed/irx/test/irxdtest"
)

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	addr, err := irxdtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestContextsAndEnvironment(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	dead := deadAddr(t)
	cfgDir := t.TempDir()
	env := map[string]string{"IRXCTL_CONFIG": filepath.Join(cfgDir, "sub", "config.yaml")}
	ctl := func(args ...string) result {
		t.Helper()
		return irxctl(t, env, "", append(args, "--timeout", "3s")...)
	}
	reaches := func(r result) bool { return r.code == 0 && strings.Contains(r.stdout, "NODE ") }

	r := mustSucceed(t, irxctl(t, env, "", "config", "get-contexts"))
	if rows := tableRows(t, r.stdout); len(rows) != 0 {
		t.Fatalf("get-contexts without a file:\n%s", r.stdout)
	}

	// The first context created becomes the current one.
	r = mustSucceed(t, irxctl(t, env, "", "config", "set-context", "local", "--addr", n.APIAddr))
	if !strings.Contains(r.stdout, `Context "local" created`) {
		t.Errorf("set-context: %q", r.stdout)
	}
	mustSucceed(t, irxctl(t, env, "", "config", "set-context", "broken", "--addr", dead))
	r = mustSucceed(t, irxctl(t, env, "", "config", "get-contexts"))
	rows := tableRows(t, r.stdout)
	if len(rows) != 2 || rows[0][0] != "broken" || rows[1][0] != "*" || rows[1][1] != "local" || rows[1][2] != n.APIAddr {
		t.Fatalf("get-contexts:\n%s", r.stdout)
	}
	if info, err := os.Stat(env["IRXCTL_CONFIG"]); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("config file: %v, %v", info, err)
	}
	if r := ctl("cluster", "status"); !reaches(r) {
		t.Fatalf("through the current context: %v", r)
	}

	r = mustSucceed(t, irxctl(t, env, "", "config", "use-context", "broken"))
	if r.stdout != "Switched to context \"broken\".\n" {
		t.Errorf("use-context: %q", r.stdout)
	}
	mustFail(t, ctl("cluster", "status"), 1, "irxctl: Unavailable: ")
	// flag > env > context, for the address and the context itself.
	if r := ctl("cluster", "status", "--context", "local"); !reaches(r) {
		t.Errorf("--context local: %v", r)
	}
	env["IRX_ADDR"] = n.APIAddr
	if r := ctl("cluster", "status"); !reaches(r) {
		t.Errorf("IRX_ADDR over the context: %v", r)
	}
	mustFail(t, ctl("cluster", "status", "--addr", dead), 1, "irxctl: Unavailable: ")
	env["IRX_ADDR"] = dead
	if r := ctl("--addr", n.APIAddr, "cluster", "status"); !reaches(r) {
		t.Errorf("--addr (before the command) over IRX_ADDR: %v", r)
	}
	delete(env, "IRX_ADDR")

	// set-context changes only what is given; relative files become
	// absolute; a context with TLS files makes the connection mutual TLS,
	// which --plaintext overrides on loopback.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, irxctl(t, env, "", "config", "set-context", "local", "--ca-file", "ca.crt", "--cert-file", "op.crt", "--key-file", "op.key"))
	mustSucceed(t, irxctl(t, env, "", "config", "use-context", "local"))
	r = mustSucceed(t, irxctl(t, env, "", "config", "get-contexts", "-o", "yaml"))
	var cf configFile
	if err := yaml.Unmarshal([]byte(r.stdout), &cf); err != nil {
		t.Fatalf("get-contexts -o yaml: %v\n%s", err, r.stdout)
	}
	local := cf.find("local")
	if cf.CurrentContext != "local" || local == nil || local.Addr != n.APIAddr || local.CAFile != filepath.Join(wd, "ca.crt") {
		t.Fatalf("config after set-context: %+v", cf)
	}
	mustFail(t, ctl("cluster", "status"), 1, filepath.Join(wd, "op.crt")+": no such file") // the files do not exist
	if r := ctl("cluster", "status", "--plaintext"); !reaches(r) {
		t.Errorf("--plaintext over the context's TLS files: %v", r)
	}

	mustFail(t, irxctl(t, env, "", "config", "use-context", "nope"), 1, `no context "nope"`, "broken, local")
	writeFile(t, env["IRXCTL_CONFIG"], "current-context: local\ncontexts:\n- name: local\n  adress: 127.0.0.1:1\n")
	mustFail(t, ctl("cluster", "status"), 1, "field adress not found")
}

// TestMutualTLS runs a node that requires operator certificates even on
// loopback and reaches it with the development PKI's operator certificate,
// given by flags, by environment and by context.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "irxd.yaml"), "tls:\n  api_tls_on_loopback: true\n")
	n, err := irxdtest.NewNode(irxdtest.Binary(t), filepath.Join(dir, "data"), "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	irxdtest.LaunchNode(t, n)
	pkiDir := filepath.Join(n.DataDir, "pki")
	tlsFlags := []string{
		"--ca-file", filepath.Join(pkiDir, pki.DevCACertFile),
		"--cert-file", filepath.Join(pkiDir, pki.DevOperatorCertFile),
		"--key-file", filepath.Join(pkiDir, pki.DevOperatorKeyFile),
	}
	env := isolatedEnv(t)
	status := func(extra ...string) result {
		return irxctl(t, env, "", append([]string{"cluster", "status", "--addr", n.APIAddr, "--timeout", "3s"}, extra...)...)
	}
	// Wait for the node to elect itself; this is also the first TLS call.
	deadline := time.Now().Add(30 * time.Second)
	for r := status(tlsFlags...); r.code != 0 || !strings.Contains(r.stdout, "leader node1"); r = status(tlsFlags...) {
		if time.Now().After(deadline) {
			t.Fatalf("node never answered over mutual TLS: %v\n%s", r, n.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}

	mustFail(t, status(), 1, "irxctl: Unavailable: ") // plaintext by default on loopback
	// The node's own certificate is of the team too, but nodes are not
	// operators; a certificate of another team's CA is refused in the
	// handshake.
	nodeCert := []string{tlsFlags[0], tlsFlags[1], "--cert-file", filepath.Join(pkiDir, pki.DevNodeCertFile), "--key-file", filepath.Join(pkiDir, pki.DevNodeKeyFile)}
	mustFail(t, status(nodeCert...), 1, "irxctl: PermissionDenied: irx://dev/node/node1 is a node certificate")
	other, err := pki.EnsureDevPKI(filepath.Join(dir, "other"), "other-team", "node1", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, status("--ca-file", other.CACertFile, "--cert-file", other.OperatorCertFile, "--key-file", other.OperatorKeyFile), 1, "irxctl: Unavailable: ")

	env["IRX_CA_FILE"], env["IRX_CERT_FILE"], env["IRX_KEY_FILE"] = tlsFlags[1], tlsFlags[3], tlsFlags[5]
	r := mustSucceed(t, irxctl(t, env, incidentJSON, "--addr", n.APIAddr, "incident", "create", "-f", "-"))
	if rows := tableRows(t, r.stdout); rows[0][0] != "dev:1" {
		t.Fatalf("create over mutual TLS from the environment:\n%s", r.stdout)
	}
	delete(env, "IRX_CA_FILE")
	delete(env, "IRX_CERT_FILE")
	delete(env, "IRX_KEY_FILE")
	mustSucceed(t, irxctl(t, env, "", append([]string{"config", "set-context", "secure", "--addr", n.APIAddr}, tlsFlags...)...))
	r = mustSucceed(t, irxctl(t, env, "", "incident", "get", "dev:1"))
	if rows := tableRows(t, r.stdout); rows[0][0] != "dev:1" {
		t.Fatalf("get over mutual TLS from the context:\n%s", r.stdout)
	}
}
