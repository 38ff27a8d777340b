package main

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/irxfed/irx/pki"
)

// defaultFederationPort is the peer-facing port of irxd (DESIGN.md: 7401);
// an endpoint given without a port gets it.
const defaultFederationPort = "7401"

// peeringBundle is what a team hands a partner team so that the partner can
// add it as a peer: who it is, where its feed is served, and the CA to pin.
// It holds no secret, but whoever can change the CA in it can impersonate
// the team. The embedded fingerprint catches a damaged or carelessly edited
// file; only a fingerprint received over another channel (by phone, signed
// mail, in person: "peer import --fingerprint") proves the bundle is the
// team's own, because anyone who swaps the CA can recompute the digest.
type peeringBundle struct {
	TeamID           string   `yaml:"team_id" json:"team_id"`
	DisplayName      string   `yaml:"display_name,omitempty" json:"display_name,omitempty"`
	Endpoints        []string `yaml:"endpoints" json:"endpoints"`
	CAFingerprint    string   `yaml:"ca_fingerprint" json:"ca_fingerprint"`
	CACertificatePEM string   `yaml:"ca_certificate_pem" json:"ca_certificate_pem"`
}

// normalizeFingerprint reads a SHA-256 fingerprint in the forms people
// paste: "SHA256:<hex>" in either case, bare hex, hex with colons between
// bytes, and OpenSSL's "sha256 Fingerprint=AB:CD:...". It returns
// "SHA256:<lowercase hex>", the form of pki.Fingerprint (and of
// Peer.ca_fingerprint).
func normalizeFingerprint(s string) (string, error) {
	v := strings.TrimSpace(s)
	lower := strings.ToLower(v)
	for _, prefix := range []string{"sha256 fingerprint=", "sha256:", "sha256="} {
		if strings.HasPrefix(lower, prefix) {
			v = v[len(prefix):]
			break
		}
	}
	v = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(v), ":", ""))
	if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
		return "", fmt.Errorf("%q is not a SHA-256 fingerprint (want SHA256: and 64 hex digits)", s)
	}
	return "SHA256:" + v, nil
}

// checkPeerCA parses pemData as the CA certificate of a peer team and
// checks that it can be pinned for team (any team when team is ""): exactly
// one certificate and nothing secret, a self-signed CA that names itself
// irx://<team>/ca/<team>, and not expired. Certificates of another shape
// would be refused at every handshake anyway (pki requires the trust
// anchor of a chain to be the CA of the team the leaf names); saying so now
// is kinder than a federation error later.
func checkPeerCA(pemData []byte, team string, now time.Time) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, errors.New("it contains a private key: never give that away; take the CA certificate (ca.crt) alone")
			}
			return nil, fmt.Errorf("it contains a %s block; want one CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	switch len(certs) {
	case 0:
		return nil, errors.New("no PEM CERTIFICATE found")
	case 1:
	default:
		return nil, fmt.Errorf("%d certificates; want exactly one, the team's CA", len(certs))
	}
	cert := certs[0]
	id, err := pki.CheckCACert(cert)
	if err != nil {
		return nil, fmt.Errorf("certificate %q is not a CA certificate that can be pinned; want the team's CA (ca.crt), not a node's or operator's: %w", cert.Subject, err)
	}
	if team != "" && id.Team != team {
		return nil, fmt.Errorf("the CA is %s, of team %q, not of team %q", id, id.Team, team)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("the CA certificate is not self-signed (%v); pin the team's own root CA", err)
	}
	if !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("the CA certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

// normalizeEndpoint checks host:port and adds the federation port when it
// is missing.
func normalizeEndpoint(s string) (string, error) {
	s = strings.TrimSpace(s)
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if !strings.Contains(err.Error(), "missing port") {
			return "", fmt.Errorf("%q is not host:port", s)
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), defaultFederationPort
	}
	if host == "" || strings.ContainsAny(host, " /@[]") {
		return "", fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// bundleError lists everything wrong with a bundle, one field per line.
type bundleError struct {
	name     string // the file, or "stdin"
	problems []string
}

func (e *bundleError) Error() string {
	return fmt.Sprintf("%s is not a valid peering bundle:\n  %s", e.name, strings.Join(e.problems, "\n  "))
}

// parseBundle reads and checks a peering bundle. It returns the bundle with
// its endpoints normalized and its fingerprint in canonical form, and the
// CA certificate, which matches that fingerprint.
func parseBundle(name string, data []byte, now time.Time) (*peeringBundle, *x509.Certificate, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var b peeringBundle
	if err := dec.Decode(&b); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, &bundleError{name, []string{"the file is empty"}}
		}
		return nil, nil, &bundleError{name, []string{yamlMessage(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, &bundleError{name, []string{"more than one YAML document; a bundle is one"}}
	}
	e := &bundleError{name: name}
	bad := func(field, format string, a ...any) {
		e.problems = append(e.problems, field+": "+fmt.Sprintf(format, a...))
	}
	if b.TeamID == "" {
		bad("team_id", "is required")
	} else if err := pki.ValidID(b.TeamID); err != nil {
		bad("team_id", "%v", err)
	}
	if len(b.Endpoints) == 0 {
		bad("endpoints", "at least one host:port is required (where the team serves its feed)")
	}
	for i, ep := range b.Endpoints {
		n, err := normalizeEndpoint(ep)
		if err != nil {
			bad(fmt.Sprintf("endpoints[%d]", i), "%v", err)
			continue
		}
		b.Endpoints[i] = n
	}
	var cert *x509.Certificate
	if b.CACertificatePEM == "" {
		bad("ca_certificate_pem", "is required")
	} else {
		var err error
		team := b.TeamID
		if pki.ValidID(team) != nil {
			team = "" // already reported; still check the rest of the CA
		}
		if cert, err = checkPeerCA([]byte(b.CACertificatePEM), team, now); err != nil {
			bad("ca_certificate_pem", "%v", err)
			cert = nil
		}
	}
	switch fp, err := normalizeFingerprint(b.CAFingerprint); {
	case b.CAFingerprint == "":
		bad("ca_fingerprint", "is required")
	case err != nil:
		bad("ca_fingerprint", "%v", err)
	case cert != nil && fp != pki.Fingerprint(cert):
		bad("ca_fingerprint", "%s does not match the CA certificate in the bundle, whose fingerprint is %s: "+
			"the file was altered or damaged; do not import it, ask the team for a fresh bundle", b.CAFingerprint, pki.Fingerprint(cert))
	default:
		b.CAFingerprint = fp
	}
	if len(e.problems) > 0 {
		return nil, nil, e
	}
	b.CACertificatePEM = string(pki.EncodeCertPEM(cert.Raw))
	return &b, cert, nil
}

// yamlMessage shortens yaml.v3's errors to what a person can act on.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.ReplaceAll(msg, " in type main.peeringBundle", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
}

// marshalBundle writes a bundle as commented YAML, the CA as a literal
// block so that the PEM stays readable and diffable.
func marshalBundle(b *peeringBundle, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# irx peering bundle of team %s, made %s by irxctl pki bundle.\n", b.TeamID, now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&buf, "# Import it with: irxctl peer import FILE --fingerprint <the fingerprint %s told you over another channel>\n", b.TeamID)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
