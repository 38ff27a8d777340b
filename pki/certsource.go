package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// CertSource supplies the local certificate for TLS handshakes. The TLS
// configurations in this package consult it on every handshake, so a source
// that changes its answer (Reloader) rotates certificates without touching
// listeners or configs.
type CertSource interface {
	Certificate() (*tls.Certificate, error)
}

type staticCert struct{ cert *tls.Certificate }

func (s staticCert) Certificate() (*tls.Certificate, error) { return s.cert, nil }

// StaticCertificate returns a CertSource that always serves cert.
func StaticCertificate(cert tls.Certificate) CertSource {
	return staticCert{cert: &cert}
}

// Leaf returns the parsed leaf of cert, parsing it if tls did not already.
func Leaf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("empty certificate")
	}
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// SourceIdentity returns the identity of the certificate src currently serves.
func SourceIdentity(src CertSource) (Identity, error) {
	cert, err := src.Certificate()
	if err != nil {
		return Identity{}, err
	}
	leaf, err := Leaf(cert)
	if err != nil {
		return Identity{}, err
	}
	return IdentityFromCert(leaf)
}

// Reloader serves a keypair loaded from files and swaps it on Reload, e.g. on
// SIGHUP. Handshakes read the current pair through an atomic pointer, so they
// never block on, or observe a half-done, reload.
type Reloader struct {
	certFile, keyFile string
	identity          Identity

	mu  sync.Mutex // serialises Reload so an older read cannot win the race
	cur atomic.Pointer[tls.Certificate]
}

// NewReloader loads certFile/keyFile. The identity found in the certificate
// is fixed for the lifetime of the Reloader.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	cert, id, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, identity: id}
	r.cur.Store(cert)
	return r, nil
}

// Reload re-reads the files. On any error the previous keypair stays in
// service. A certificate for a different identity is refused: a node that
// silently became another node (or joined another team) on SIGHUP would be a
// configuration accident, not a rotation.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cert, id, err := loadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	if id != r.identity {
		return fmt.Errorf("reload %s: identity changed from %s to %s; restart to change identity", r.certFile, r.identity, id)
	}
	r.cur.Store(cert)
	return nil
}

// Identity returns the identity the Reloader serves.
func (r *Reloader) Identity() Identity { return r.identity }

// Certificate implements CertSource.
func (r *Reloader) Certificate() (*tls.Certificate, error) { return r.cur.Load(), nil }

// GetCertificate can be used as tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// GetClientCertificate can be used as tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// LoadKeyPair loads a certificate chain and its key from PEM files and
// returns it with the parsed leaf and its identity.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, Identity, error) {
	cert, id, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, Identity{}, err
	}
	return *cert, id, nil
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, Identity, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("load keypair %s: %w", certFile, err)
	}
	leaf, err := Leaf(&cert)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("load keypair %s: %w", certFile, err)
	}
	cert.Leaf = leaf
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, Identity{}, fmt.Errorf("load keypair %s: %w", certFile, err)
	}
	return &cert, id, nil
}
