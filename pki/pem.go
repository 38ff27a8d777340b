package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes: private keys are readable by the owner only.
const (
	KeyFileMode  fs.FileMode = 0o600
	CertFileMode fs.FileMode = 0o644
)

const (
	pemTypeCert     = "CERTIFICATE"
	pemTypePKCS8Key = "PRIVATE KEY"
	pemTypeECKey    = "EC PRIVATE KEY"
)

// EncodeCertPEM PEM-encodes a DER certificate.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCert, Bytes: der})
}

// EncodeKeyPEM PEM-encodes a private key as PKCS#8, which carries the
// algorithm and so works for any key type without a per-type PEM header.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePKCS8Key, Bytes: der}), nil
}

// ParseCertsPEM parses every CERTIFICATE block in data, in order. Blocks of
// other types are skipped so a bundle with comments or keys still loads.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != pemTypeCert {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block found")
	}
	return certs, nil
}

// ParseCertPEM parses the first CERTIFICATE block in data (the leaf, by
// convention, when data is a chain).
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseKeyPEM parses a PKCS#8 or SEC 1 (EC PRIVATE KEY) private key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key PEM block found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case pemTypePKCS8Key:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemTypeECKey:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign", key)
		}
		return signer, nil
	}
}

// NewCertPool builds a pool from every certificate in pemData. Unlike
// x509.CertPool.AppendCertsFromPEM it fails on malformed input instead of
// silently producing a smaller pool.
func NewCertPool(pemData []byte) (*x509.CertPool, error) {
	certs, err := ParseCertsPEM(pemData)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// LoadCertPool reads a PEM bundle of trusted CA certificates.
func LoadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := NewCertPool(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return pool, nil
}

// Fingerprint returns "SHA256:" followed by the lowercase hex SHA-256 of the
// certificate's DER encoding, the form used to pin peers.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "SHA256:" + hex.EncodeToString(sum[:])
}

// WriteFiles writes a certificate (0644) and its private key (0600), each
// atomically. The key is written first: a reader that sees the new
// certificate then also sees the matching key; a reader that sees the new key
// with the old certificate gets a mismatch error (tls.X509KeyPair checks it)
// rather than a silently wrong pair.
func WriteFiles(certFile, keyFile string, certPEM, keyPEM []byte) error {
	if err := WriteFileAtomic(keyFile, keyPEM, KeyFileMode); err != nil {
		return err
	}
	return WriteFileAtomic(certFile, certPEM, CertFileMode)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers never observe a partially written file
// and a crash leaves either the old or the new content. The temporary file is
// created 0600 and only chmod'ed to perm after the content is complete, so a
// key is never briefly world-readable.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	// Persist the rename itself; without this a crash can lose the new
	// directory entry even though the data was synced.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
