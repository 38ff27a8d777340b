package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/irxfed/irx/pki"
	"github.com/irxfed/irx/test/irxdtest"
)

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

func wantMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), mode)
	}
}

// verifies reports whether cert chains to ca for usage, by crypto/x509 and
// by pki's own verifier (the one the node's TLS configurations use),
// and returns the identity pki finds.
func verifies(t *testing.T, cert, ca *x509.Certificate, usage x509.ExtKeyUsage) (pki.Identity, bool) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, stdErr := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
	id, pkiErr := pki.VerifyCert([]*x509.Certificate{cert}, roots, usage)
	if (stdErr == nil) != (pkiErr == nil) {
		t.Errorf("crypto/x509 says %v, pki says %v", stdErr, pkiErr)
	}
	return id, stdErr == nil
}

func TestPKICommands(t *testing.T) {
	env := isolatedEnv(t)
	ctl := func(args ...string) result { t.Helper(); return irxctl(t, env, "", args...) }
	dir := t.TempDir()
	caDir, nodeDir, opDir := filepath.Join(dir, "ca"), filepath.Join(dir, "node1"), filepath.Join(dir, "alice")

	// The CA.
	r := mustSucceed(t, ctl("pki", "ca", "create", "--team", "cert-a", "--out", caDir))
	ca := loadCert(t, filepath.Join(caDir, "ca.crt"))
	fp := pki.Fingerprint(ca)
	if !strings.Contains(r.stdout, "irx://cert-a/ca/cert-a") || !strings.Contains(r.stdout, "CA fingerprint: "+fp) {
		t.Errorf("ca create:\n%s", r.stdout)
	}
	if !ca.IsCA || !ca.MaxPathLenZero || ca.Subject.CommonName != "irx CA cert-a" {
		t.Errorf("CA certificate: IsCA %v, MaxPathLenZero %v, %s", ca.IsCA, ca.MaxPathLenZero, ca.Subject)
	}
	if id, err := pki.IdentityFromCert(ca); err != nil || id != pki.CAIdentity("cert-a") {
		t.Errorf("CA identity %v, %v", id, err)
	}
	if days := ca.NotAfter.Sub(time.Now()).Hours() / 24; days < 3649 || days > 3651 {
		t.Errorf("CA valid for %.1f days, want 3650", days)
	}
	wantMode(t, filepath.Join(caDir, "ca.key"), 0o600)
	wantMode(t, filepath.Join(caDir, "ca.crt"), 0o644)
	if _, err := pki.LoadCA(filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "ca.key")); err != nil {
		t.Errorf("the CA files do not load as a CA: %v", err)
	}

	// A node certificate: server and client auth, the hosts as SANs, the
	// CA copied beside it.
	r = mustSucceed(t, ctl("pki", "node", "--ca-dir", caDir, "--node", "node1", "--out", nodeDir,
		"--host", "irx1.cert-a.example", "--host", "192.0.2.10:7400,localhost", "--host", "[2001:db8::10]"))
	nodeCert := loadCert(t, filepath.Join(nodeDir, "node.crt"))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		id, ok := verifies(t, nodeCert, ca, usage)
		if !ok || id != pki.NodeIdentity("cert-a", "node1") {
			t.Errorf("node certificate for usage %v: %v, %v", usage, id, ok)
		}
	}
	if len(nodeCert.URIs) != 1 || nodeCert.URIs[0].String() != "irx://cert-a/node/node1" {
		t.Errorf("node URIs %v", nodeCert.URIs)
	}
	if !slices.Equal(nodeCert.DNSNames, []string{"irx1.cert-a.example", "localhost"}) || len(nodeCert.IPAddresses) != 2 ||
		!nodeCert.IPAddresses[0].Equal(net.ParseIP("192.0.2.10")) || !nodeCert.IPAddresses[1].Equal(net.ParseIP("2001:db8::10")) {
		t.Errorf("node SANs: %v %v", nodeCert.DNSNames, nodeCert.IPAddresses)
	}
	if err := nodeCert.VerifyHostname("irx1.cert-a.example"); err != nil {
		t.Errorf("host name: %v", err)
	}
	wantMode(t, filepath.Join(nodeDir, "node.key"), 0o600)
	wantMode(t, filepath.Join(nodeDir, "node.crt"), 0o644)
	if copied := loadCert(t, filepath.Join(nodeDir, "ca.crt")); !copied.Equal(ca) {
		t.Error("the node directory's ca.crt is not the team CA")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "ca.key")); !os.IsNotExist(err) {
		t.Errorf("the CA key was copied: %v", err)
	}
	if _, id, err := pki.LoadKeyPair(filepath.Join(nodeDir, "node.crt"), filepath.Join(nodeDir, "node.key")); err != nil || id != pki.NodeIdentity("cert-a", "node1") {
		t.Errorf("node key pair: %v, %v", id, err)
	}
	if want := "irxd --team cert-a --node node1 --ca-file " + filepath.Join(nodeDir, "ca.crt"); !strings.Contains(r.stdout, want) {
		t.Errorf("node hint lacks %q:\n%s", want, r.stdout)
	}

	// An operator certificate: client auth only.
	r = mustSucceed(t, ctl("pki", "operator", "--ca-dir", caDir, "--name", "alice", "--out", opDir, "--days", "30", "-o", "json"))
	var res pkiResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("pki operator -o json: %v\n%s", err, r.stdout)
	}
	if res.Identity != "irx://cert-a/operator/alice" || res.KeyFile != filepath.Join(opDir, "operator.key") || res.CAFingerprint != fp {
		t.Errorf("pki operator -o json: %+v", res)
	}
	opCert := loadCert(t, filepath.Join(opDir, "operator.crt"))
	if id, ok := verifies(t, opCert, ca, x509.ExtKeyUsageClientAuth); !ok || id != pki.OperatorIdentity("cert-a", "alice") {
		t.Errorf("operator certificate as a client: %v, %v", id, ok)
	}
	if _, ok := verifies(t, opCert, ca, x509.ExtKeyUsageServerAuth); ok {
		t.Error("the operator certificate authenticates a server")
	}
	if days := opCert.NotAfter.Sub(time.Now()).Hours() / 24; days < 29 || days > 30.1 {
		t.Errorf("operator certificate valid for %.1f days, want 30", days)
	}
	wantMode(t, filepath.Join(opDir, "operator.key"), 0o600)

	// Leaves never outlive the CA; into the CA's own directory is fine.
	mustSucceed(t, ctl("pki", "node", "--ca-dir", caDir, "--node", "node2", "--out", caDir, "--days", "100000"))
	if n2 := loadCert(t, filepath.Join(caDir, "node.crt")); !n2.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("node2 valid until %v, the CA until %v", n2.NotAfter, ca.NotAfter)
	}
	if again := loadCert(t, filepath.Join(caDir, "ca.crt")); !again.Equal(ca) {
		t.Error("issuing into the CA directory changed ca.crt")
	}

	// The bundle, to a file and to stdout; both parse back.
	bundleFile := filepath.Join(dir, "cert-a.bundle.yaml")
	r = mustSucceed(t, ctl("pki", "bundle", "--ca-dir", nodeDir, "--team", "cert-a", "--endpoint", "irx1.cert-a.example",
		"--endpoint", "192.0.2.10:7501", "--display-name", "CERT A", "--out", bundleFile))
	if !strings.Contains(r.stdout, "--fingerprint "+fp) {
		t.Errorf("bundle hint:\n%s", r.stdout)
	}
	data, err := os.ReadFile(bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	b, cert, err := parseBundle(bundleFile, data, time.Now())
	if err != nil {
		t.Fatalf("the written bundle does not parse: %v\n%s", err, data)
	}
	if b.TeamID != "cert-a" || b.DisplayName != "CERT A" || !slices.Equal(b.Endpoints, []string{"irx1.cert-a.example:7401", "192.0.2.10:7501"}) ||
		b.CAFingerprint != fp || !cert.Equal(ca) {
		t.Errorf("bundle: %+v", b)
	}
	if strings.Contains(string(data), "PRIVATE KEY") {
		t.Fatal("the bundle holds a key")
	}
	wantMode(t, bundleFile, 0o644)
	r = mustSucceed(t, ctl("pki", "bundle", "--ca-dir", caDir, "--endpoint", "irx1.cert-a.example:7401"))
	if _, _, err := parseBundle("stdout", []byte(r.stdout), time.Now()); err != nil || !strings.Contains(r.stdout, "team_id: cert-a") {
		t.Errorf("bundle on stdout: %v\n%s", err, r.stdout)
	}
	r = mustSucceed(t, ctl("pki", "bundle", "--ca-dir", caDir, "--endpoint", "irx1.cert-a.example:7401", "-o", "json"))
	if b, _, err := parseBundle("stdout", []byte(r.stdout), time.Now()); err != nil || !strings.HasPrefix(r.stdout, "{") || b.CAFingerprint != fp {
		t.Errorf("bundle on stdout as JSON: %v\n%s", err, r.stdout)
	}

	// Refusals: nothing is overwritten without --force, a CA never.
	mustFail(t, ctl("pki", "ca", "create", "--team", "cert-a", "--out", caDir), 1, "ca.crt exists")
	if again := loadCert(t, filepath.Join(caDir, "ca.crt")); !again.Equal(ca) {
		t.Fatal("the CA was replaced")
	}
	mustFail(t, ctl("pki", "node", "--ca-dir", caDir, "--node", "node1", "--out", nodeDir), 1, "node.crt exists; give --force")
	if still := loadCert(t, filepath.Join(nodeDir, "node.crt")); !still.Equal(nodeCert) {
		t.Error("a refused issue changed node.crt")
	}
	mustSucceed(t, ctl("pki", "node", "--ca-dir", caDir, "--node", "node1", "--out", nodeDir, "--force"))
	if renewed := loadCert(t, filepath.Join(nodeDir, "node.crt")); renewed.Equal(nodeCert) || len(renewed.DNSNames) != 0 {
		t.Error("--force did not reissue node.crt")
	}
	mustFail(t, ctl("pki", "bundle", "--ca-dir", caDir, "--endpoint", "x.example", "--out", bundleFile), 1, "exists; give --force")
	mustFail(t, ctl("pki", "bundle", "--ca-dir", caDir, "--team", "cert-b", "--endpoint", "x.example"), 1, `not of team "cert-b"`)
	// A directory holding another team's CA is not silently re-pointed.
	mustSucceed(t, ctl("pki", "ca", "create", "--team", "cert-b", "--out", filepath.Join(dir, "cab")))
	mixed := writeFile(t, filepath.Join(dir, "mixed", "ca.crt"), string(pki.EncodeCertPEM(ca.Raw)))
	mustFail(t, ctl("pki", "operator", "--ca-dir", filepath.Join(dir, "cab"), "--name", "bob", "--out", filepath.Dir(mixed)), 1, "ca.crt holds another CA")
	if _, err := os.Stat(filepath.Join(dir, "mixed", "operator.key")); !os.IsNotExist(err) {
		t.Errorf("a refused issue wrote a key: %v", err)
	}
	mustSucceed(t, ctl("pki", "operator", "--ca-dir", filepath.Join(dir, "cab"), "--name", "bob", "--out", filepath.Dir(mixed), "--force"))
	if got := loadCert(t, mixed); got.Equal(ca) {
		t.Error("--force kept the other CA beside bob's certificate")
	}
	mustFail(t, ctl("pki", "node", "--ca-dir", nodeDir, "--node", "node3", "--out", filepath.Join(dir, "n3")), 1, "ca.key")
	if _, err := os.Stat(filepath.Join(dir, "n3")); !os.IsNotExist(err) {
		t.Errorf("a failed issue left %s: %v", filepath.Join(dir, "n3"), err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pki", "ca", "create", "--team", "cert-a"}, "--team and --out are required"},
		{[]string{"pki", "ca", "create", "--team", "CERT A", "--out", dir}, `--team: identifier "CERT A"`},
		{[]string{"pki", "ca", "create", "--team", "x", "--out", dir, "--days", "0"}, "--days must be positive"},
		{[]string{"pki", "node", "--ca-dir", caDir, "--out", dir}, "--ca-dir, --node and --out are required"},
		{[]string{"pki", "node", "--ca-dir", caDir, "--node", "Node_1", "--out", dir}, "--node: identifier"},
		{[]string{"pki", "node", "--ca-dir", caDir, "--node", "n", "--out", dir, "--host", "a host"}, `--host: "a host" is neither`},
		{[]string{"pki", "operator", "--ca-dir", caDir, "--out", dir}, "--ca-dir, --name and --out are required"},
		{[]string{"pki", "operator", "--ca-dir", caDir, "--name", "al/ice", "--out", dir}, "--name: identifier"},
		{[]string{"pki", "bundle", "--ca-dir", caDir}, "at least one --endpoint"},
		{[]string{"pki", "bundle", "--ca-dir", caDir, "--endpoint", "x.example:http"}, `--endpoint "x.example:http": port`},
		{[]string{"pki", "node", "--addr", "127.0.0.1:1"}, "flag provided but not defined: -addr"},
	} {
		r := ctl(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("irxctl %s: want exit 2 and %q, got %v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}

// TestPKIImportRefusesATamperedBundle checks a bundle before anything is
// sent: the address given has no node, so a refusal must come first.
func TestPKIImportRefusesATamperedBundle(t *testing.T) {
	env := isolatedEnv(t)
	dead := deadAddr(t)
	dir := t.TempDir()
	ctl := func(stdin string, args ...string) result {
		t.Helper()
		return irxctl(t, env, stdin, append(args, "--addr", dead, "--timeout", "2s")...)
	}
	mustSucceed(t, irxctl(t, env, "", "pki", "ca", "create", "--team", "cert-b", "--out", filepath.Join(dir, "b")))
	mustSucceed(t, irxctl(t, env, "", "pki", "ca", "create", "--team", "cert-b", "--out", filepath.Join(dir, "mallory")))
	good := filepath.Join(dir, "good.yaml")
	mustSucceed(t, irxctl(t, env, "", "pki", "bundle", "--ca-dir", filepath.Join(dir, "b"), "--endpoint", "irx.cert-b.example", "--out", good))
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	realFP := pki.Fingerprint(loadCert(t, filepath.Join(dir, "b", "ca.crt")))
	fakeCA := loadCert(t, filepath.Join(dir, "mallory", "ca.crt"))

	// One changed digit of the fingerprint.
	last := realFP[len(realFP)-1:]
	flipped := "0"
	if last == "0" {
		flipped = "1"
	}
	tampered := strings.Replace(string(data), realFP, realFP[:len(realFP)-1]+flipped, 1)
	r := ctl(tampered, "peer", "import", "-")
	mustFail(t, r, 1, "stdin is not a valid peering bundle", "ca_fingerprint: ", "does not match the CA certificate in the bundle, whose fingerprint is "+realFP, "do not import it")
	if strings.Contains(r.stderr, "Unavailable") || r.stdout != "" {
		t.Errorf("the import went on: %v", r)
	}

	// The CA swapped for another "cert-b" CA, fingerprint left alone.
	swapped := editBundle(t, string(data), func(m map[string]any) { m["ca_certificate_pem"] = string(pki.EncodeCertPEM(fakeCA.Raw)) })
	mustFail(t, ctl(swapped, "peer", "import", "-"), 1, "does not match the CA certificate")

	// Swapped and the fingerprint recomputed: consistent, so only the
	// fingerprint received out of band catches it.
	forged := editBundle(t, swapped, func(m map[string]any) { m["ca_fingerprint"] = pki.Fingerprint(fakeCA) })
	if _, _, err := parseBundle("forged", []byte(forged), time.Now()); err != nil {
		t.Fatalf("a consistent forgery should parse: %v", err)
	}
	mustFail(t, ctl(forged, "peer", "import", "-", "--fingerprint", realFP), 1,
		"the bundle's CA has fingerprint "+pki.Fingerprint(fakeCA)+", not "+realFP+" as given with --fingerprint")
	mustFail(t, ctl(forged, "peer", "import", "-", "--fingerprint", "SHA256:12"), 2, "--fingerprint: ")

	// The genuine bundle with the right fingerprint, in OpenSSL's spelling,
	// gets as far as the (absent) node.
	hexFP := strings.ToUpper(strings.TrimPrefix(realFP, "SHA256:"))
	var pairs []string
	for i := 0; i < len(hexFP); i += 2 {
		pairs = append(pairs, hexFP[i:i+2])
	}
	mustFail(t, ctl("", "peer", "import", good, "--fingerprint", "sha256 Fingerprint="+strings.Join(pairs, ":")), 1, "irxctl: Unavailable: ")

	// peer create checks its CA file the same way.
	nodeDir := filepath.Join(dir, "n")
	mustSucceed(t, irxctl(t, env, "", "pki", "node", "--ca-dir", filepath.Join(dir, "b"), "--node", "node1", "--out", nodeDir))
	mustFail(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(nodeDir, "node.crt")), 1, "is not a CA certificate")
	mustFail(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(nodeDir, "node.key")), 1, "contains a private key")
	mustFail(t, ctl("", "peer", "create", "--team", "cert-c", "--peer-ca-file", filepath.Join(nodeDir, "ca.crt")), 1, `not of team "cert-c"`)
	mustFail(t, ctl("", "peer", "create", "--team", "cert-b", "--peer-ca-file", filepath.Join(nodeDir, "ca.crt"), "--fingerprint", pki.Fingerprint(fakeCA)), 1,
		"not "+pki.Fingerprint(fakeCA)+" as given with --fingerprint")
}

// TestPKICertificatesRunATeam starts a three-node team on certificates made
// by irxctl pki (Raft and forwarded calls between the nodes use the node
// certificates as server and client) and operates it with the operator
// certificate.
func TestPKICertificatesRunATeam(t *testing.T) {
	env := isolatedEnv(t)
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	mustSucceed(t, irxctl(t, env, "", "pki", "ca", "create", "--team", "cert-a", "--out", caDir))
	nodes := make([]*irxdtest.Node, 3)
	var memberList []string
	for i := range nodes {
		n, err := irxdtest.NewNode(irxdtest.Binary(t), filepath.Join(dir, fmt.Sprintf("data%d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		memberList = append(memberList, fmt.Sprintf("node%d=%s", i+1, n.RaftAddr))
	}
	for i, n := range nodes {
		id := fmt.Sprintf("node%d", i+1)
		certDir := filepath.Join(dir, id)
		mustSucceed(t, irxctl(t, env, "", "pki", "node", "--ca-dir", caDir, "--node", id, "--host", "127.0.0.1", "--out", certDir))
		n.Args = []string{"--team", "cert-a", "--node", id, "--members", strings.Join(memberList, ","), "--first-operator", "alice",
			"--ca-file", filepath.Join(certDir, "ca.crt"), "--cert-file", filepath.Join(certDir, "node.crt"), "--key-file", filepath.Join(certDir, "node.key")}
	}
	for _, n := range nodes {
		irxdtest.LaunchNode(t, n)
	}
	opDir := filepath.Join(dir, "alice")
	mustSucceed(t, irxctl(t, env, "", "pki", "operator", "--ca-dir", caDir, "--name", "alice", "--out", opDir))
	tlsFlags := []string{"--ca-file", filepath.Join(opDir, "ca.crt"), "--cert-file", filepath.Join(opDir, "operator.crt"), "--key-file", filepath.Join(opDir, "operator.key")}
	ctlAt := func(n *irxdtest.Node, stdin string, args ...string) result {
		t.Helper()
		return irxctl(t, env, stdin, append(append(args, "--addr", n.APIAddr, "--timeout", "5s"), tlsFlags...)...)
	}

	// Every member answers for every other, over the intra-cluster mTLS.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := ctlAt(nodes[2], "", "cluster", "status")
		if r.code == 0 && strings.Contains(r.stdout, "team cert-a, leader node") {
			ms := members(t, r.stdout)
			complete := len(ms) == 3
			for _, row := range ms {
				complete = complete && len(row) == 7 // no ERROR column
			}
			if complete {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the team never formed: %v\n%s\n%s\n%s", r, nodes[0].Logs(), nodes[1].Logs(), nodes[2].Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Writes through any node reach the leader and come back.
	for i, n := range nodes {
		r := mustSucceed(t, ctlAt(n, incidentJSON, "incident", "create", "-f", "-"))
		if rows := tableRows(t, r.stdout); rows[0][0] != fmt.Sprintf("cert-a:%d", i+1) {
			t.Fatalf("create through node%d:\n%s", i+1, r.stdout)
		}
	}
	r := mustSucceed(t, ctlAt(nodes[0], "", "incident", "list"))
	if rows := tableRows(t, r.stdout); len(rows) != 3 {
		t.Errorf("list:\n%s", r.stdout)
	}

	// Without a certificate, or with another team's, the API refuses.
	mustFail(t, irxctl(t, env, "", "cluster", "status", "--addr", nodes[0].APIAddr, "--timeout", "3s"), 1, "irxctl: Unavailable: ",
		"\nirxctl: "+nodes[0].APIAddr+" did not answer in plaintext: outside development mode a node requires mutual TLS; give --ca-file")
	mustSucceed(t, irxctl(t, env, "", "pki", "ca", "create", "--team", "cert-z", "--out", filepath.Join(dir, "z")))
	mustSucceed(t, irxctl(t, env, "", "pki", "operator", "--ca-dir", filepath.Join(dir, "z"), "--name", "alice", "--out", filepath.Join(dir, "z-alice")))
	mustFail(t, irxctl(t, env, "", "cluster", "status", "--addr", nodes[0].APIAddr, "--timeout", "3s",
		"--ca-file", filepath.Join(opDir, "ca.crt"), "--cert-file", filepath.Join(dir, "z-alice", "operator.crt"), "--key-file", filepath.Join(dir, "z-alice", "operator.key")),
		1, "irxctl: Unavailable: ", "\nirxctl: the TLS handshake with "+nodes[0].APIAddr+" failed: check --ca-file")

	for _, n := range nodes {
		if err := n.Stop(10 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
}
