package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Development PKI file names inside the directory given to EnsureDevPKI.
const (
	DevCACertFile       = "ca.crt"
	DevCAKeyFile        = "ca.key"
	DevNodeCertFile     = "node.crt"
	DevNodeKeyFile      = "node.key"
	DevOperatorCertFile = "operator.crt"
	DevOperatorKeyFile  = "operator.key"

	// DevOperatorName is the operator identity created by EnsureDevPKI.
	DevOperatorName = "admin"

	devCAValidity   = 10 * 365 * 24 * time.Hour
	devLeafValidity = 365 * 24 * time.Hour
	// devRenewBefore makes a restart within the last month of a dev leaf's
	// life reissue it, so a long-running dev setup does not fall over on
	// the expiry day.
	devRenewBefore = 30 * 24 * time.Hour
)

// DevPKI is the material EnsureDevPKI loaded or created.
type DevPKI struct {
	Dir string

	CACertFile, CAKeyFile             string
	NodeCertFile, NodeKeyFile         string
	OperatorCertFile, OperatorKeyFile string

	CA    *CA
	Roots *x509.CertPool // the dev CA only

	Node         tls.Certificate // Leaf is set
	NodeIdentity Identity

	Operator         tls.Certificate // Leaf is set
	OperatorIdentity Identity

	// Written lists the files this call created or replaced; empty when
	// everything was loaded as is.
	Written []string
}

// ConflictError reports development PKI files that belong to someone else
// (another team or node). EnsureDevPKI never overwrites such files.
type ConflictError struct {
	File string
	Want Identity
	Got  Identity
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("dev PKI: %s belongs to %s, not %s; use another directory or remove the dev PKI files", e.File, e.Got, e.Want)
}

// EnsureDevPKI is zero-config development mode: it makes dir hold a dev CA
// for team, a node certificate for nodeID and an operator certificate for
// irx://<team>/operator/admin, creating what is missing and reusing what is
// valid, so repeated calls (restarts) return the same CA.
//
// The node certificate covers "localhost", 127.0.0.1, ::1 and hosts (IP
// literals become IP SANs, anything else DNS SANs). Leaves that are missing,
// expiring within 30 days, no longer chaining to the CA or missing a
// requested host are reissued from the existing CA. Files of another team or
// node are never touched: that is a ConflictError. A missing half of the CA
// pair or an expired CA is an error too, because replacing the CA would
// silently cut this node off from every other node it shares the CA with.
//
// Concurrent calls on one directory are not coordinated; give each dev node
// its own directory (they can share the CA by copying ca.crt and ca.key).
func EnsureDevPKI(dir, team, nodeID string, hosts []string, now time.Time) (*DevPKI, error) {
	if err := ValidID(team); err != nil {
		return nil, fmt.Errorf("dev PKI: team: %w", err)
	}
	if err := ValidID(nodeID); err != nil {
		return nil, fmt.Errorf("dev PKI: node id: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	dns, ips, err := devSANs(hosts)
	if err != nil {
		return nil, fmt.Errorf("dev PKI: %w", err)
	}
	p := &DevPKI{
		Dir:              dir,
		CACertFile:       filepath.Join(dir, DevCACertFile),
		CAKeyFile:        filepath.Join(dir, DevCAKeyFile),
		NodeCertFile:     filepath.Join(dir, DevNodeCertFile),
		NodeKeyFile:      filepath.Join(dir, DevNodeKeyFile),
		OperatorCertFile: filepath.Join(dir, DevOperatorCertFile),
		OperatorKeyFile:  filepath.Join(dir, DevOperatorKeyFile),
		NodeIdentity:     NodeIdentity(team, nodeID),
		OperatorIdentity: OperatorIdentity(team, DevOperatorName),
	}

	// Look at every existing certificate before writing anything, so a
	// directory of another team is refused without being half-rewritten.
	owners := []struct {
		file string
		want Identity
	}{
		{p.CACertFile, CAIdentity(team)},
		{p.NodeCertFile, p.NodeIdentity},
		{p.OperatorCertFile, p.OperatorIdentity},
	}
	for _, o := range owners {
		if err := checkOwner(o.file, o.want); err != nil {
			return nil, err
		}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev PKI: %w", err)
	}
	if err := p.ensureCA(team, now); err != nil {
		return nil, err
	}
	p.Roots = p.CA.Pool()

	p.Node, err = p.ensureLeaf(p.NodeCertFile, p.NodeKeyFile, IssueRequest{
		Identity:    p.NodeIdentity,
		DNSNames:    dns,
		IPAddresses: ips,
		Validity:    devLeafValidity,
		Now:         now,
		Usage:       UsageNode,
	})
	if err != nil {
		return nil, err
	}
	p.Operator, err = p.ensureLeaf(p.OperatorCertFile, p.OperatorKeyFile, IssueRequest{
		Identity: p.OperatorIdentity,
		Validity: devLeafValidity,
		Now:      now,
		Usage:    UsageClient,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// checkOwner refuses an existing certificate file whose identity is not want.
// A missing file is fine; an unreadable one is an error rather than
// something to overwrite.
func checkOwner(file string, want Identity) error {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dev PKI: %w", err)
	}
	cert, err := ParseCertPEM(data)
	if err != nil {
		return fmt.Errorf("dev PKI: %s: %w (remove it to regenerate)", file, err)
	}
	got, err := IdentityFromCert(cert)
	if err != nil {
		return fmt.Errorf("dev PKI: %s: %w (remove it to regenerate)", file, err)
	}
	if got != want {
		return &ConflictError{File: file, Want: want, Got: got}
	}
	return nil
}

func (p *DevPKI) ensureCA(team string, now time.Time) error {
	certOK, err := exists(p.CACertFile)
	if err != nil {
		return err
	}
	keyOK, err := exists(p.CAKeyFile)
	if err != nil {
		return err
	}
	switch {
	case certOK && keyOK:
		ca, err := LoadCA(p.CACertFile, p.CAKeyFile)
		if err != nil {
			return fmt.Errorf("dev PKI: %w", err)
		}
		if now.Before(ca.Cert.NotBefore) || !now.Before(ca.Cert.NotAfter) {
			return fmt.Errorf("dev PKI: CA %s is not valid at %s (valid %s to %s); remove the dev PKI files to start over",
				p.CACertFile, now.UTC().Format(time.RFC3339),
				ca.Cert.NotBefore.UTC().Format(time.RFC3339), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		p.CA = ca
		return nil
	case certOK != keyOK:
		return fmt.Errorf("dev PKI: only one of %s and %s exists; restore the other or remove both", p.CACertFile, p.CAKeyFile)
	}
	ca, err := NewCA(team, devCAValidity, now)
	if err != nil {
		return fmt.Errorf("dev PKI: %w", err)
	}
	if err := ca.WriteFiles(p.CACertFile, p.CAKeyFile); err != nil {
		return fmt.Errorf("dev PKI: %w", err)
	}
	p.CA = ca
	p.Written = append(p.Written, p.CAKeyFile, p.CACertFile)
	return nil
}

// ensureLeaf loads certFile/keyFile if they are still good for req, and
// otherwise issues and writes a replacement.
func (p *DevPKI) ensureLeaf(certFile, keyFile string, req IssueRequest) (tls.Certificate, error) {
	if cert, ok := p.loadLeaf(certFile, keyFile, req); ok {
		return cert, nil
	}
	certPEM, keyPEM, err := p.CA.Issue(req)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("dev PKI: %w", err)
	}
	if err := WriteFiles(certFile, keyFile, certPEM, keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("dev PKI: %w", err)
	}
	p.Written = append(p.Written, keyFile, certFile)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("dev PKI: %w", err)
	}
	if cert.Leaf, err = Leaf(&cert); err != nil {
		return tls.Certificate{}, fmt.Errorf("dev PKI: %w", err)
	}
	return cert, nil
}

// loadLeaf reports whether the existing pair can be kept. Every failure just
// means "reissue": the identity was already checked by checkOwner, so what is
// replaced here is our own derived material.
func (p *DevPKI) loadLeaf(certFile, keyFile string, req IssueRequest) (tls.Certificate, bool) {
	cert, id, err := loadKeyPair(certFile, keyFile)
	if err != nil || id != req.Identity {
		return tls.Certificate{}, false
	}
	leaf := cert.Leaf
	if req.Now.Before(leaf.NotBefore) || !req.Now.Add(devRenewBefore).Before(leaf.NotAfter) {
		return tls.Certificate{}, false
	}
	var usages []x509.ExtKeyUsage
	if req.Usage&UsageServer != 0 {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if req.Usage&UsageClient != 0 {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	for _, u := range usages {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:       p.CA.Pool(),
			CurrentTime: req.Now,
			KeyUsages:   []x509.ExtKeyUsage{u},
		})
		if err != nil {
			return tls.Certificate{}, false
		}
	}
	for _, d := range req.DNSNames {
		if !slices.Contains(leaf.DNSNames, d) {
			return tls.Certificate{}, false
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return tls.Certificate{}, false
		}
	}
	return *cert, true
}

// devSANs turns the host list into SANs, always including the loopback
// names so local tools work out of the box. An empty host (what is left of
// a listen address such as ":7400") names no host and is skipped.
func devSANs(hosts []string) (dns []string, ips []net.IP, err error) {
	return HostSANs(append([]string{"localhost", "127.0.0.1", "::1"}, hosts...), func(h string) error {
		if strings.ContainsAny(h, " /:@") {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		return nil
	})
}

// HostSANs turns host names and addresses into certificate SANs, in order
// and without duplicates: an IP literal becomes an IP SAN (IPv4 in its
// 4-byte form), anything else a lower-case DNS name without a trailing dot.
// Surrounding space, a port ("host:7400") and IPv6 brackets are dropped, so
// the addresses nodes are configured with can be given as they are.
// checkName decides on each DNS name, "" included (what is left of ":7400"):
// its error is returned as it is, and a "" it accepts is skipped.
func HostSANs(hosts []string, checkName func(name string) error) (dns []string, ips []net.IP, err error) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if err := checkName(h); err != nil {
			return nil, nil, err
		}
		if h != "" && !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	return dns, ips, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("dev PKI: %w", err)
	}
}
