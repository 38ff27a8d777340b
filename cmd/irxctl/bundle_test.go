package main

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/irxfed/irx/pki"
)

func newTestCA(t *testing.T, team string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(team, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// bundleYAML is a valid bundle of ca's team, as "pki bundle" writes it.
func bundleYAML(t *testing.T, ca *pki.CA, endpoints ...string) string {
	t.Helper()
	b := &peeringBundle{
		TeamID: ca.Team(), DisplayName: "CERT B", Endpoints: endpoints,
		CAFingerprint: pki.Fingerprint(ca.Cert), CACertificatePEM: string(ca.CertPEM()),
	}
	out, err := marshalBundle(b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// editBundle decodes a bundle into a map, lets edit change it and encodes it
// again.
func editBundle(t *testing.T, doc string, edit func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestBundleParse(t *testing.T) {
	ca := newTestCA(t, "cert-b")
	now := time.Now()
	valid := bundleYAML(t, ca, "irx1.cert-b.example", "[2001:db8::1]:7501", "192.0.2.7:7401")

	b, cert, err := parseBundle("b.yaml", []byte(valid), now)
	if err != nil {
		t.Fatalf("valid bundle: %v\n%s", err, valid)
	}
	if b.TeamID != "cert-b" || b.DisplayName != "CERT B" || !cert.Equal(ca.Cert) || b.CAFingerprint != pki.Fingerprint(ca.Cert) {
		t.Errorf("parsed: %+v", b)
	}
	if want := []string{"irx1.cert-b.example:7401", "[2001:db8::1]:7501", "192.0.2.7:7401"}; !slices.Equal(b.Endpoints, want) {
		t.Errorf("endpoints %v, want %v", b.Endpoints, want)
	}
	if !strings.HasPrefix(valid, "# irx peering bundle of team cert-b") || !strings.Contains(valid, "ca_certificate_pem: |") {
		t.Errorf("bundle layout:\n%s", valid)
	}

	// The fingerprint may be spelt as people paste it.
	hexFP := strings.TrimPrefix(pki.Fingerprint(ca.Cert), "SHA256:")
	var colons []string
	for i := 0; i < len(hexFP); i += 2 {
		colons = append(colons, strings.ToUpper(hexFP[i:i+2]))
	}
	for _, fp := range []string{"sha256:" + hexFP, hexFP, strings.Join(colons, ":"), "SHA256 Fingerprint=" + strings.Join(colons, ":")} {
		doc := editBundle(t, valid, func(m map[string]any) { m["ca_fingerprint"] = fp })
		if b, _, err := parseBundle("b.yaml", []byte(doc), now); err != nil || b.CAFingerprint != pki.Fingerprint(ca.Cert) {
			t.Errorf("fingerprint %q: %v", fp, err)
		}
	}

	other := newTestCA(t, "cert-c")
	expired, err := pki.NewCA("cert-b", time.Hour, now.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	nodePEM, nodeKey, err := ca.Issue(pki.IssueRequest{Identity: pki.NodeIdentity("cert-b", "node1"), Validity: time.Hour, Usage: pki.UsageNode})
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	set := func(k string, v any) func(m map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{"empty", "", []string{"the file is empty"}},
		{"not yaml", "team_id: [unclosed\n", []string{"b.yaml is not a valid peering bundle"}},
		{"unknown key", editBundle(t, valid, set("team", "x")), []string{"field team not found"}},
		{"two documents", valid + "---\n" + valid, []string{"more than one YAML document"}},
		{"no team", editBundle(t, valid, func(m map[string]any) { delete(m, "team_id") }), []string{"team_id: is required"}},
		{"bad team", editBundle(t, valid, set("team_id", "CERT B")), []string{"team_id: identifier \"CERT B\""}},
		{"team of another CA", editBundle(t, valid, set("team_id", "cert-c")), []string{`ca_certificate_pem: the CA is irx://cert-b/ca/cert-b, of team "cert-b", not of team "cert-c"`}},
		{"no endpoints", editBundle(t, valid, set("endpoints", []string{})), []string{"endpoints: at least one host:port is required"}},
		{"bad endpoint", editBundle(t, valid, set("endpoints", []string{"ok.example", "x.example:99999", "a:b:c"})),
			[]string{"endpoints[1]: \"x.example:99999\": port \"99999\"", "endpoints[2]: \"a:b:c\" is not host:port"}},
		{"no CA", editBundle(t, valid, func(m map[string]any) { delete(m, "ca_certificate_pem") }), []string{"ca_certificate_pem: is required"}},
		{"garbage CA", editBundle(t, valid, set("ca_certificate_pem", "hello")), []string{"ca_certificate_pem: no PEM CERTIFICATE found"}},
		{"a node certificate", editBundle(t, valid, set("ca_certificate_pem", string(nodePEM))), []string{"is not a CA certificate"}},
		{"a private key", editBundle(t, valid, set("ca_certificate_pem", string(ca.CertPEM())+string(caKey))), []string{"contains a private key"}},
		{"a node key", editBundle(t, valid, set("ca_certificate_pem", string(nodeKey))), []string{"contains a private key"}},
		{"two CAs", editBundle(t, valid, set("ca_certificate_pem", string(ca.CertPEM())+string(other.CertPEM()))), []string{"2 certificates; want exactly one"}},
		{"expired CA", editBundle(t, valid, func(m map[string]any) {
			m["ca_certificate_pem"], m["ca_fingerprint"] = string(expired.CertPEM()), pki.Fingerprint(expired.Cert)
		}), []string{"the CA certificate expired at"}},
		{"no fingerprint", editBundle(t, valid, func(m map[string]any) { delete(m, "ca_fingerprint") }), []string{"ca_fingerprint: is required"}},
		{"malformed fingerprint", editBundle(t, valid, set("ca_fingerprint", "SHA256:abc")), []string{"is not a SHA-256 fingerprint"}},
		{"tampered fingerprint", editBundle(t, valid, set("ca_fingerprint", pki.Fingerprint(other.Cert))),
			[]string{"ca_fingerprint: " + pki.Fingerprint(other.Cert) + " does not match the CA certificate in the bundle, whose fingerprint is " + pki.Fingerprint(ca.Cert), "do not import it"}},
		{"swapped CA", editBundle(t, valid, set("ca_certificate_pem", string(newTestCA(t, "cert-b").CertPEM()))),
			[]string{"ca_fingerprint: " + pki.Fingerprint(ca.Cert) + " does not match"}},
		{"every problem at once", editBundle(t, valid, func(m map[string]any) {
			m["team_id"], m["endpoints"], m["ca_fingerprint"] = "", []string{}, "nope"
		}), []string{"team_id: is required", "endpoints: at least one", "ca_fingerprint: \"nope\" is not"}},
	} {
		_, _, err := parseBundle("b.yaml", []byte(tc.doc), now)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", tc.name, w, err)
			}
		}
		if strings.Contains(err.Error(), "main.") {
			t.Errorf("%s: Go type names in %q", tc.name, err)
		}
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, in := range []string{"SHA256:" + h, "sha256:" + strings.ToUpper(h), h, " " + h + "\n", "sha256=" + h,
		"SHA256 Fingerprint=" + strings.TrimSuffix(strings.Repeat("AB:", 32), ":")} {
		if got, err := normalizeFingerprint(in); err != nil || got != "SHA256:"+h {
			t.Errorf("%q -> %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "SHA256:", "SHA256:" + h[:62], "SHA256:" + h + "00", "md5:" + h, "SHA256:" + strings.Repeat("zz", 32)} {
		if got, err := normalizeFingerprint(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
	// Ours is pki.Fingerprint's form, and normal already.
	ca := newTestCA(t, "cert-b")
	if got, err := normalizeFingerprint(pki.Fingerprint(ca.Cert)); err != nil || got != pki.Fingerprint(ca.Cert) || got != pki.Fingerprint(ca.Cert) {
		t.Errorf("caFingerprint %q is not normal: %q, %v", pki.Fingerprint(ca.Cert), got, err)
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"irx.example":       "irx.example:7401",
		"irx.example:8443":  "irx.example:8443",
		"192.0.2.1":         "192.0.2.1:7401",
		"[2001:db8::1]":     "[2001:db8::1]:7401",
		"[2001:db8::1]:900": "[2001:db8::1]:900",
		" 192.0.2.1:1 ":     "192.0.2.1:1",
	} {
		if got, err := normalizeEndpoint(in); err != nil || got != want {
			t.Errorf("%q -> %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":7401", "irx.example:0", "irx.example:http", "a:b:c", "https://irx.example", "irx.example:70000"} {
		if got, err := normalizeEndpoint(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

func TestSANsOfHosts(t *testing.T) {
	dns, ips, err := sansOf([]string{"IRX1.Cert-A.example.", "192.0.2.10:7400", "[2001:db8::1]", "irx1.cert-a.example", "*.cert-a.example", "::ffff:192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dns, []string{"irx1.cert-a.example", "*.cert-a.example"}) {
		t.Errorf("dns %v", dns)
	}
	if len(ips) != 2 || !ips[0].Equal(net.ParseIP("192.0.2.10")) || !ips[1].Equal(net.ParseIP("2001:db8::1")) {
		t.Errorf("ips %v", ips)
	}
	for _, bad := range []string{"irx one", "-irx.example", "irx..example", "a/b", "x.*.example"} {
		if _, _, err := sansOf([]string{bad}); err == nil {
			t.Errorf("host %q accepted", bad)
		}
	}
}

func TestCheckPeerCA(t *testing.T) {
	ca := newTestCA(t, "cert-b")
	if cert, err := checkPeerCA(ca.CertPEM(), "cert-b", time.Now()); err != nil || !cert.Equal(ca.Cert) {
		t.Fatalf("the team's CA: %v", err)
	}
	if _, err := checkPeerCA(ca.CertPEM(), "", time.Now()); err != nil {
		t.Errorf("any team: %v", err)
	}
	// Text around the PEM block (openssl's "subject=" lines) is fine.
	if _, err := checkPeerCA(append([]byte("subject=CN = irx CA cert-b\n"), ca.CertPEM()...), "cert-b", time.Now()); err != nil {
		t.Errorf("with a comment: %v", err)
	}
	if _, err := checkPeerCA(ca.CertPEM(), "cert-c", time.Now()); err == nil || !strings.Contains(err.Error(), `not of team "cert-c"`) {
		t.Errorf("another team: %v", err)
	}
	if _, err := checkPeerCA(ca.CertPEM(), "cert-b", ca.Cert.NotAfter.Add(time.Second)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("after expiry: %v", err)
	}
}
