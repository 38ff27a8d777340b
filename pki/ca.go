package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"
)

// clockSkew backdates NotBefore so that a certificate issued on one machine
// is immediately usable on a peer whose clock is slightly behind.
const clockSkew = 5 * time.Minute

// CA is a team certificate authority: its self-signed certificate and key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a self-signed CA for team, valid from now (minus a small
// skew allowance) for validity. The CA may sign only end-entity certificates
// (MaxPathLenZero): intermediates would let a stolen intermediate key outlive
// anything the team can rotate by replacing one file.
func NewCA(team string, validity time.Duration, now time.Time) (*CA, error) {
	id := CAIdentity(team)
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if validity <= 0 {
		return nil, errors.New("CA validity must be positive")
	}
	if now.IsZero() {
		now = time.Now()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "irx CA " + team, Organization: []string{team}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA loads a CA certificate and key from PEM files and checks that they
// belong together and that the certificate is an irx team CA.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", certFile, err)
	}
	return ca, nil
}

// ParseCA is LoadCA for in-memory PEM.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key}
	if _, err := ca.check(); err != nil {
		return nil, err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("CA private key does not match CA certificate")
	}
	return ca, nil
}

// check validates the CA certificate's shape and returns its identity.
func (ca *CA) check() (Identity, error) { return CheckCACert(ca.Cert) }

// CheckCACert checks that c has the shape of a team CA, a CA certificate
// allowed to sign certificates that names itself irx://<team>/ca/<team>, and
// returns that identity. It does not check validity dates or signatures.
func CheckCACert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, errors.New("nil certificate")
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return Identity{}, errors.New("certificate is not a CA")
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return Identity{}, errors.New("CA certificate lacks the certSign key usage")
	}
	id, err := IdentityFromCert(c)
	if err != nil {
		return Identity{}, err
	}
	if id.Kind != KindCA {
		return Identity{}, fmt.Errorf("certificate identity %s is not a CA identity", id)
	}
	return id, nil
}

// Team returns the team this CA speaks for ("" if the certificate carries no
// valid CA identity, which LoadCA and NewCA rule out).
func (ca *CA) Team() string {
	id, err := ca.check()
	if err != nil {
		return ""
	}
	return id.Team
}

// Pool returns a pool containing only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CertPEM returns the PEM encoding of the CA certificate.
func (ca *CA) CertPEM() []byte { return EncodeCertPEM(ca.Cert.Raw) }

// KeyPEM returns the PKCS#8 PEM encoding of the CA key.
func (ca *CA) KeyPEM() ([]byte, error) { return EncodeKeyPEM(ca.Key) }

// WriteFiles writes the CA certificate and key (see the package-level
// WriteFiles for modes and atomicity).
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	return WriteFiles(certFile, keyFile, ca.CertPEM(), keyPEM)
}

// Usage selects the extended key usages of an issued certificate.
type Usage uint8

const (
	// UsageServer allows the certificate to authenticate a TLS server.
	UsageServer Usage = 1 << iota
	// UsageClient allows the certificate to authenticate a TLS client.
	UsageClient
)

// UsageNode is what cluster members need: they accept and dial connections
// with the same certificate.
const UsageNode = UsageServer | UsageClient

// IssueRequest describes a certificate to issue.
type IssueRequest struct {
	Identity    Identity
	DNSNames    []string
	IPAddresses []net.IP
	// Validity is clamped so the certificate never outlives the CA.
	Validity time.Duration
	// Now is the issuance time; zero means time.Now().
	Now   time.Time
	Usage Usage
}

// Issue creates a fresh ECDSA P-256 key and a certificate for it signed by
// the CA. It refuses identities of another team: a team CA is only
// authoritative for its own team, and verifiers in this package enforce that
// too, so such a certificate would be useless anyway.
func (ca *CA) Issue(req IssueRequest) (certPEM, keyPEM []byte, err error) {
	caID, err := ca.check()
	if err != nil {
		return nil, nil, err
	}
	id := req.Identity
	if err := id.Validate(); err != nil {
		return nil, nil, err
	}
	if id.Team != caID.Team {
		return nil, nil, fmt.Errorf("CA of team %q cannot issue for %s", caID.Team, id)
	}
	if id.Kind == KindCA {
		return nil, nil, errors.New("Issue creates end-entity certificates only")
	}
	if req.Usage&UsageNode == 0 || req.Usage&^UsageNode != 0 {
		return nil, nil, fmt.Errorf("invalid usage %#x: need UsageServer and/or UsageClient", req.Usage)
	}
	if req.Validity <= 0 {
		return nil, nil, errors.New("validity must be positive")
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !now.Before(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("CA of team %q expired at %s", caID.Team, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	var eku []x509.ExtKeyUsage
	if req.Usage&UsageServer != 0 {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.Usage&UsageClient != 0 {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.String(), Organization: []string{id.Team}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		URIs:                  []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", id, err)
	}
	keyPEM, err = EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return EncodeCertPEM(der), keyPEM, nil
}

// randomSerial returns a uniformly random, non-zero 128-bit serial. Random
// serials make issuance stateless (no counter file to lose) and keep serials
// unpredictable, which is what defeats chosen-prefix collision attacks.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// publicKeysEqual compares public keys by their PKIX encoding, which works
// for every key type x509 supports.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	da, err := x509.MarshalPKIXPublicKey(a)
	if err != nil {
		return false
	}
	db, err := x509.MarshalPKIXPublicKey(b)
	if err != nil {
		return false
	}
	return bytes.Equal(da, db)
}
