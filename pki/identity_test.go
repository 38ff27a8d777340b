package pki_test

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"

	"github.com/irxfed/irx/pki"
)

func TestValidID(t *testing.T) {
	good := []string{"a", "0", "csirt-a", "cert.example.org", "a-b.c-d", "n1", strings.Repeat("a", 63)}
	bad := []string{"", "-a", "a-", ".a", "a.", "A", "csirt_a", "a b", "a/b", "é", strings.Repeat("a", 64), "a:1"}
	for _, s := range good {
		if err := pki.ValidID(s); err != nil {
			t.Errorf("ValidID(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if err := pki.ValidID(s); err == nil {
			t.Errorf("ValidID(%q) = nil, want error", s)
		}
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	for _, id := range []pki.Identity{
		pki.NodeIdentity("csirt-a", "n1"),
		pki.OperatorIdentity("cert.example", "admin"),
		pki.CAIdentity("csirt-a"),
	} {
		s := id.String()
		got, err := pki.ParseIdentityString(s)
		if err != nil {
			t.Fatalf("ParseIdentityString(%q): %v", s, err)
		}
		if got != id {
			t.Fatalf("round trip %q: got %+v want %+v", s, got, id)
		}
	}
	if got := pki.NodeIdentity("csirt-a", "n1").String(); got != "irx://csirt-a/node/n1" {
		t.Fatalf("String() = %q", got)
	}
}

func TestParseIdentityRejects(t *testing.T) {
	for _, s := range []string{
		"https://csirt-a/node/n1",
		"irx:csirt-a/node/n1",
		"irx:///node/n1",
		"irx://csirt-a",
		"irx://csirt-a/",
		"irx://csirt-a/node",
		"irx://csirt-a/node/",
		"irx://csirt-a/node/n1/",
		"irx://csirt-a/node/n1/extra",
		"irx://csirt-a/robot/n1",
		"irx://csirt-a/ca/csirt-b",
		"irx://CSIRT-A/node/n1",
		"irx://csirt-a/node/N1",
		"irx://csirt-a:443/node/n1",
		"irx://user@csirt-a/node/n1",
		"irx://csirt-a/node/n1?x=1",
		"irx://csirt-a/node/n1?",
		"irx://csirt-a/node/n1#frag",
		"irx://csirt-a/node/n%31",
		"irx://csirt-a/node/n_1",
		"irx://csirt-a//node/n1",
	} {
		if id, err := pki.ParseIdentityString(s); err == nil {
			t.Errorf("ParseIdentityString(%q) = %+v, want error", s, id)
		}
	}
	if _, err := pki.ParseIdentity(nil); err == nil {
		t.Error("ParseIdentity(nil) succeeded")
	}
}

func TestIdentityFromCert(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	node := mustURL("irx://csirt-a/node/n1")
	spiffe := mustURL("spiffe://example.org/x")
	cases := []struct {
		name string
		uris []*url.URL
		ok   bool
	}{
		{"none", nil, false},
		{"only foreign scheme", []*url.URL{spiffe}, false},
		{"one", []*url.URL{node}, true},
		{"one plus foreign scheme", []*url.URL{spiffe, node}, true},
		{"two", []*url.URL{node, mustURL("irx://csirt-a/node/n2")}, false},
		{"malformed", []*url.URL{mustURL("irx://csirt-a/node/n1/x")}, false},
	}
	for _, tc := range cases {
		id, err := pki.IdentityFromCert(&x509.Certificate{URIs: tc.uris})
		if tc.ok != (err == nil) {
			t.Errorf("%s: IdentityFromCert = %+v, %v; want ok=%v", tc.name, id, err, tc.ok)
		}
		if tc.ok && id != pki.NodeIdentity("csirt-a", "n1") {
			t.Errorf("%s: identity %v", tc.name, id)
		}
	}
}
