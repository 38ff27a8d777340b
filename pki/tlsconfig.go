package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Matcher authorises a peer whose certificate chain has already been
// verified; it returns a non-nil error to refuse the peer.
type Matcher func(Identity) error

// ExpectNode accepts any node of team.
func ExpectNode(team string) Matcher {
	return func(id Identity) error {
		if !id.IsNodeOf(team) {
			return fmt.Errorf("peer %s is not a node of team %q", id, team)
		}
		return nil
	}
}

// ExpectIdentity accepts exactly want.
func ExpectIdentity(want Identity) Matcher {
	return func(id Identity) error {
		if id != want {
			return fmt.Errorf("peer is %s, want %s", id, want)
		}
		return nil
	}
}

// ServerConfig returns a TLS 1.3 server configuration serving src's
// certificate. With requireClientCert, clients must present a certificate
// chaining to clientCAs; otherwise a client certificate is verified if
// offered (when clientCAs is set) and ignored if not. Any client certificate
// that is accepted also passes the team-anchor rule (see the package
// documentation); who may do what is left to the caller via PeerIdentity.
func ServerConfig(src CertSource, clientCAs *x509.CertPool, requireClientCert bool) (*tls.Config, error) {
	return serverConfig(src, clientCAs, requireClientCert, nil)
}

func serverConfig(src CertSource, clientCAs *x509.CertPool, requireClientCert bool, expect Matcher) (*tls.Config, error) {
	if src == nil {
		return nil, errors.New("server config: nil certificate source")
	}
	if requireClientCert && clientCAs == nil {
		return nil, errors.New("server config: client certificates required but no client CA pool given")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
	}
	switch {
	case requireClientCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case clientCAs != nil:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	default:
		cfg.ClientAuth = tls.NoClientCert
		return cfg, nil
	}
	cfg.ClientCAs = clientCAs
	// crypto/tls has already verified the client chain against ClientCAs
	// (server-side verification involves no hostname, so the stock check is
	// exactly right). VerifyConnection repeats the chain check with our
	// team-anchor rule and runs for resumed sessions too, which
	// VerifyPeerCertificate does not.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			if requireClientCert {
				return errors.New("client presented no certificate")
			}
			return nil
		}
		id, err := verifyChain(cs.PeerCertificates, clientCAs, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return err
		}
		if expect != nil {
			return expect(id)
		}
		return nil
	}
	return cfg, nil
}

// ClientConfig returns a TLS 1.3 client configuration that presents src's
// certificate (src may be nil for no client certificate), verifies the
// server's chain against rootCAs and authorises the server's identity with
// expect. Server hostnames are not checked: irx peers are named by their SAN
// identity, not by the address used to reach them.
func ClientConfig(src CertSource, rootCAs *x509.CertPool, expect Matcher) (*tls.Config, error) {
	if rootCAs == nil {
		// A nil pool would make x509 fall back to the system roots.
		return nil, errors.New("client config: nil root CA pool")
	}
	if expect == nil {
		return nil, errors.New("client config: no server identity expectation")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// InsecureSkipVerify only disables crypto/tls's built-in chain and
		// hostname verification; VerifyConnection below replaces it with a
		// full chain verification against rootCAs (expiry, signatures, EKU
		// serverAuth, path constraints) plus the identity check. crypto/tls
		// still verifies the server's CertificateVerify signature with the
		// leaf key in every mode, so the peer has proven possession of the
		// key of the certificate we verify. VerifyConnection runs on every
		// handshake including resumptions and after the peer's certificate
		// is known, and a non-nil error aborts the handshake, so no
		// connection is ever usable without having passed it.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifyChain(cs.PeerCertificates, rootCAs, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			return expect(id)
		},
	}
	if src != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.Certificate()
		}
	}
	return cfg, nil
}

// MutualTLS builds the configurations for intra-cluster traffic: both ends
// present node certificates from the team CA and each accepts only a peer
// that is a node of Team whose chain is anchored at Team's CA in Roots.
type MutualTLS struct {
	Team  string
	Roots *x509.CertPool // should hold the team CA (and nothing else)
	Cert  CertSource     // this node's certificate
}

func (m MutualTLS) check() error {
	if err := ValidID(m.Team); err != nil {
		return fmt.Errorf("mutual TLS: team: %w", err)
	}
	if m.Roots == nil {
		return errors.New("mutual TLS: nil root CA pool")
	}
	if m.Cert == nil {
		return errors.New("mutual TLS: nil certificate source")
	}
	// Catch a misconfigured local certificate at startup rather than as a
	// stream of handshake failures on the peers.
	id, err := SourceIdentity(m.Cert)
	if err != nil {
		return fmt.Errorf("mutual TLS: local certificate: %w", err)
	}
	if !id.IsNodeOf(m.Team) {
		return fmt.Errorf("mutual TLS: local certificate is %s, not a node of team %q", id, m.Team)
	}
	return nil
}

// ServerConfig is the accepting side of intra-cluster mutual TLS.
func (m MutualTLS) ServerConfig() (*tls.Config, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return serverConfig(m.Cert, m.Roots, true, ExpectNode(m.Team))
}

// ClientConfig is the dialling side of intra-cluster mutual TLS.
func (m MutualTLS) ClientConfig() (*tls.Config, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return ClientConfig(m.Cert, m.Roots, ExpectNode(m.Team))
}

// PeerIdentity returns the identity in the peer's leaf certificate. It does
// not verify anything itself: it is meaningful for connections made with the
// configurations of this package, which refuse the handshake unless the
// chain verified.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if !cs.HandshakeComplete {
		return Identity{}, errors.New("TLS handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("peer presented no certificate")
	}
	return IdentityFromCert(cs.PeerCertificates[0])
}

// VerifyCert verifies a certificate chain (leaf first) against roots for the
// given extended key usage and returns the leaf's identity. It applies the
// same rules as the TLS configurations of this package.
func VerifyCert(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) (Identity, error) {
	return verifyChain(chain, roots, usage)
}

// verifyChain verifies chain[0] against roots, using chain[1:] as
// intermediates, at the current time and for usage. On top of plain X.509
// path validation it requires that some verified path ends at the CA of the
// leaf's own team (identity irx://<team>/ca/<team>). Without that rule a pool
// holding the CAs of several teams would let any of them issue
// irx://<other-team>/node/... certificates that pass.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) (Identity, error) {
	if roots == nil {
		return Identity{}, errors.New("no root CA pool configured")
	}
	if len(chain) == 0 {
		return Identity{}, errors.New("peer presented no certificate")
	}
	leaf := chain[0]
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	if id.Kind == KindCA {
		return Identity{}, fmt.Errorf("peer certificate %s is a CA identity", id)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return Identity{}, fmt.Errorf("peer certificate %s (%s): %w", id, Fingerprint(leaf), err)
	}
	want := CAIdentity(id.Team)
	for _, path := range chains {
		anchor := path[len(path)-1]
		if aid, err := IdentityFromCert(anchor); err == nil && aid == want {
			return id, nil
		}
	}
	return Identity{}, fmt.Errorf("peer certificate %s is not anchored at the CA of team %q", id, id.Team)
}
