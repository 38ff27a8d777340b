package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/irxfed/irx/pki"
)

// File names inside an --out directory: the development PKI's names, so a
// node's directory looks the same whichever way it was made.
const (
	caCertFile       = pki.DevCACertFile
	caKeyFile        = pki.DevCAKeyFile
	nodeCertFile     = pki.DevNodeCertFile
	nodeKeyFile      = pki.DevNodeKeyFile
	operatorCertFile = pki.DevOperatorCertFile
	operatorKeyFile  = pki.DevOperatorKeyFile

	day = 24 * time.Hour
)

func pkiCommand() *command {
	return &command{
		name:  "pki",
		usage: "pki COMMAND",
		short: "Make the team's CA, node and operator certificates and its peering bundle (local files, no node needed)",
		subs: []*command{
			{
				name:  "ca",
				usage: "pki ca COMMAND",
				short: "Manage the team CA",
				subs:  []*command{pkiCACreateCommand()},
			},
			pkiNodeCommand(), pkiOperatorCommand(), pkiBundleCommand(),
		},
	}
}

// pkiResult is what a pki command made, for -o json and -o yaml.
type pkiResult struct {
	Identity        string   `json:"identity"`
	CertificateFile string   `json:"certificate_file,omitempty"`
	KeyFile         string   `json:"key_file,omitempty"`
	CAFile          string   `json:"ca_file,omitempty"`
	BundleFile      string   `json:"bundle_file,omitempty"`
	CAFingerprint   string   `json:"ca_fingerprint"`
	NotAfter        string   `json:"not_after,omitempty"`
	DNSNames        []string `json:"dns_names,omitempty"`
	IPAddresses     []string `json:"ip_addresses,omitempty"`
	Endpoints       []string `json:"endpoints,omitempty"`
}

func pkiCACreateCommand() *command {
	return &command{
		name:  "create",
		usage: "pki ca create --team TEAM --out DIR [--days N]",
		short: "Create the team's CA: DIR/ca.crt and DIR/ca.key",
		long: `The CA is the root of the team's trust: it signs every node and operator
certificate, and peers pin it. The key (0600) should live offline, on the
machine where certificates are issued; nodes need only ca.crt. An existing
CA is never overwritten: a new CA cuts off every node, operator and peer
that trusts the old one.`,
		printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			team := fs.String("team", "", "the team `ID` (lowercase letters, digits, '.' and '-')")
			out := fs.String("out", "", "the `DIR` to write ca.crt and ca.key into (created 0700 if missing)")
			days := fs.Int("days", 3650, "validity in `DAYS`")
			return func(_ context.Context, c *cli, _ []string) error {
				if *team == "" || *out == "" {
					return usageErrorf("--team and --out are required")
				}
				if *days <= 0 {
					return usageErrorf("--days must be positive")
				}
				if err := pki.ValidID(*team); err != nil {
					return usageErrorf("--team: %v", err)
				}
				certPath, keyPath := filepath.Join(*out, caCertFile), filepath.Join(*out, caKeyFile)
				for _, p := range []string{certPath, keyPath} {
					if _, err := os.Lstat(p); err == nil {
						return fmt.Errorf("%s exists: a team has one CA, and replacing it cuts off everything that trusts it; remove the files yourself if that is what you want", p)
					} else if !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
				ca, err := pki.NewCA(*team, time.Duration(*days)*day, time.Now())
				if err != nil {
					return err
				}
				if err := os.MkdirAll(*out, 0o700); err != nil {
					return err
				}
				if err := ca.WriteFiles(certPath, keyPath); err != nil {
					return err
				}
				res := pkiResult{
					Identity: pki.CAIdentity(*team).String(), CertificateFile: abs(certPath), KeyFile: abs(keyPath),
					CAFingerprint: pki.Fingerprint(ca.Cert), NotAfter: ca.Cert.NotAfter.UTC().Format(time.RFC3339),
				}
				return c.printPKIResult(res, func(w io.Writer) {
					fmt.Fprintf(w, "Created the CA of team %s (%s), valid until %s:\n", *team, res.Identity, res.NotAfter)
					fmt.Fprintf(w, "  %s\n  %s  (0600; keep it offline: it signs every certificate of the team)\n", res.CertificateFile, res.KeyFile)
					fmt.Fprintf(w, "CA fingerprint: %s\n", res.CAFingerprint)
					fmt.Fprintf(w, "\nNext: irxctl pki node --ca-dir %s --node node1 --host HOST --out DIR\n", abs(*out))
				})
			}
		},
	}
}

func pkiNodeCommand() *command {
	return &command{
		name:  "node",
		usage: "pki node --ca-dir DIR --node ID [--host HOST]... --out DIR [--days N] [--force]",
		short: "Issue a node certificate (irx://TEAM/node/ID) from the team CA",
		long: `Writes DIR/node.crt, DIR/node.key (0600) and a copy of the CA certificate,
DIR/ca.crt: what irxd needs for --ca-file, --cert-file and --key-file. The
certificate authenticates both ends of a connection (server and client), so
one certificate serves the operator API, Raft and the federation listener.
The team is the CA's. Nodes are trusted by the identity in the certificate,
not by host name; --host adds the names and addresses clients that check host
names (grpcurl, browsers) dial, e.g. --host irx1.cert.example --host 192.0.2.10.`,
		printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			caDir := fs.String("ca-dir", "", "`DIR` holding the team's ca.crt and ca.key")
			nodeID := fs.String("node", "", "the node `ID`, as given to irxd --node")
			var hosts stringsFlag
			fs.Var(&hosts, "host", "a DNS name or IP address `HOST` the certificate covers (repeatable, or comma-separated)")
			out := fs.String("out", "", "the `DIR` to write node.crt, node.key and ca.crt into")
			days := fs.Int("days", 365, "validity in `DAYS` (never beyond the CA's)")
			force := fs.Bool("force", false, "replace existing files (to renew a certificate)")
			return func(_ context.Context, c *cli, _ []string) error {
				if *caDir == "" || *nodeID == "" || *out == "" {
					return usageErrorf("--ca-dir, --node and --out are required")
				}
				if err := pki.ValidID(*nodeID); err != nil {
					return usageErrorf("--node: %v", err)
				}
				dns, ips, err := sansOf(hosts)
				if err != nil {
					return usageErrorf("--host: %v", err)
				}
				return c.issueLeaf(leafSpec{
					caDir: *caDir, out: *out, days: *days, force: *force,
					certName: nodeCertFile, keyName: nodeKeyFile,
					identity: func(team string) pki.Identity { return pki.NodeIdentity(team, *nodeID) },
					usage:    pki.UsageNode, dns: dns, ips: ips,
					next: func(w io.Writer, team string, res pkiResult) {
						fmt.Fprintf(w, "\nStart the node with:\n  irxd --team %s --node %s --ca-file %s --cert-file %s --key-file %s\n",
							team, *nodeID, res.CAFile, res.CertificateFile, res.KeyFile)
					},
				})
			}
		},
	}
}

func pkiOperatorCommand() *command {
	return &command{
		name:  "operator",
		usage: "pki operator --ca-dir DIR --name NAME --out DIR [--days N] [--force]",
		short: "Issue an operator certificate (irx://TEAM/operator/NAME) from the team CA",
		long: `Writes DIR/operator.crt, DIR/operator.key (0600) and DIR/ca.crt: what irxctl
needs for --ca-file, --cert-file and --key-file (or a context, see
"irxctl config set-context"). The certificate is a client certificate only.`,
		printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			caDir := fs.String("ca-dir", "", "`DIR` holding the team's ca.crt and ca.key")
			name := fs.String("name", "", "the operator's `NAME`, e.g. alice")
			out := fs.String("out", "", "the `DIR` to write operator.crt, operator.key and ca.crt into")
			days := fs.Int("days", 365, "validity in `DAYS` (never beyond the CA's)")
			force := fs.Bool("force", false, "replace existing files (to renew a certificate)")
			return func(_ context.Context, c *cli, _ []string) error {
				if *caDir == "" || *name == "" || *out == "" {
					return usageErrorf("--ca-dir, --name and --out are required")
				}
				if err := pki.ValidID(*name); err != nil {
					return usageErrorf("--name: %v", err)
				}
				return c.issueLeaf(leafSpec{
					caDir: *caDir, out: *out, days: *days, force: *force,
					certName: operatorCertFile, keyName: operatorKeyFile,
					identity: func(team string) pki.Identity { return pki.OperatorIdentity(team, *name) },
					usage:    pki.UsageClient,
					next: func(w io.Writer, team string, res pkiResult) {
						fmt.Fprintf(w, "\nUse it with:\n  irxctl config set-context %s --addr HOST:7400 --ca-file %s --cert-file %s --key-file %s\n",
							team, res.CAFile, res.CertificateFile, res.KeyFile)
					},
				})
			}
		},
	}
}

// leafSpec is one node or operator certificate to issue.
type leafSpec struct {
	caDir, out        string
	days              int
	force             bool
	certName, keyName string
	identity          func(team string) pki.Identity
	usage             pki.Usage
	dns               []string
	ips               []net.IP
	next              func(w io.Writer, team string, res pkiResult)
}

func (c *cli) issueLeaf(s leafSpec) error {
	if s.days <= 0 {
		return usageErrorf("--days must be positive")
	}
	ca, err := pki.LoadCA(filepath.Join(s.caDir, caCertFile), filepath.Join(s.caDir, caKeyFile))
	if err != nil {
		return err
	}
	team := ca.Team()
	id := s.identity(team)
	certPath, keyPath, caPath := filepath.Join(s.out, s.certName), filepath.Join(s.out, s.keyName), filepath.Join(s.out, caCertFile)
	// Refuse before writing anything, so a refusal leaves no half-made
	// directory behind.
	if !s.force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists; give --force to replace it (e.g. to renew)", p)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if existing, err := os.ReadFile(caPath); err == nil && !s.force && !sameCert(existing, ca.Cert) {
		return fmt.Errorf("%s holds another CA than %s; give --force to replace it, or choose another --out", caPath, filepath.Join(s.caDir, caCertFile))
	}
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{
		Identity: id, DNSNames: s.dns, IPAddresses: s.ips,
		Validity: time.Duration(s.days) * day, Usage: s.usage,
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.out, 0o700); err != nil {
		return err
	}
	if err := pki.WriteFiles(certPath, keyPath, certPEM, keyPEM); err != nil {
		return err
	}
	if existing, err := os.ReadFile(caPath); err != nil || !sameCert(existing, ca.Cert) {
		if err := pki.WriteFileAtomic(caPath, ca.CertPEM(), pki.CertFileMode); err != nil {
			return err
		}
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return err
	}
	res := pkiResult{
		Identity: id.String(), CertificateFile: abs(certPath), KeyFile: abs(keyPath), CAFile: abs(caPath),
		CAFingerprint: pki.Fingerprint(ca.Cert), NotAfter: cert.NotAfter.UTC().Format(time.RFC3339), DNSNames: cert.DNSNames,
	}
	for _, ip := range cert.IPAddresses {
		res.IPAddresses = append(res.IPAddresses, ip.String())
	}
	return c.printPKIResult(res, func(w io.Writer) {
		fmt.Fprintf(w, "Issued %s, valid until %s", res.Identity, res.NotAfter)
		if hosts := append(slices.Clone(res.DNSNames), res.IPAddresses...); len(hosts) > 0 {
			fmt.Fprintf(w, ", for %s", strings.Join(hosts, ", "))
		}
		fmt.Fprintf(w, ":\n  %s\n  %s  (0600)\n  %s  (the team CA, %s)\n", res.CertificateFile, res.KeyFile, res.CAFile, res.CAFingerprint)
		s.next(w, team, res)
	})
}

// sameCert reports whether pemData holds exactly cert (first certificate).
func sameCert(pemData []byte, cert *x509.Certificate) bool {
	got, err := pki.ParseCertPEM(pemData)
	return err == nil && got.Equal(cert)
}

func pkiBundleCommand() *command {
	return &command{
		name:  "bundle",
		usage: "pki bundle --ca-dir DIR [--team TEAM] --endpoint HOST:PORT... [--display-name NAME] [--out FILE] [--force]",
		short: "Write the peering bundle partner teams import with 'irxctl peer import'",
		long: `The bundle is a YAML file with the team id, the federation endpoints
(host:port; the port defaults to 7401), the CA certificate and its SHA-256
fingerprint. It holds no secret (only DIR/ca.crt is read), but tell your
partners the fingerprint over another channel than the one carrying the file
(phone, signed mail), and have them import with --fingerprint: anyone who can
swap the file's CA can also recompute its fingerprint. Without --out the
bundle goes to stdout (as JSON with -o json).`,
		printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			caDir := fs.String("ca-dir", "", "`DIR` holding the team's ca.crt")
			team := fs.String("team", "", "the team `ID`; must be the CA's (default: the CA's)")
			var endpoints stringsFlag
			fs.Var(&endpoints, "endpoint", "a federation endpoint `HOST:PORT` of the team (repeatable, or comma-separated; tried in order)")
			display := fs.String("display-name", "", "a human-readable `NAME` for the team")
			out := fs.String("out", "-", "the bundle `FILE`; - for stdout")
			force := fs.Bool("force", false, "replace an existing FILE")
			return func(_ context.Context, c *cli, _ []string) error {
				if *caDir == "" || len(endpoints) == 0 {
					return usageErrorf("--ca-dir and at least one --endpoint are required")
				}
				for i, ep := range endpoints {
					n, err := normalizeEndpoint(ep)
					if err != nil {
						return usageErrorf("--endpoint %v", err)
					}
					endpoints[i] = n
				}
				caPath := filepath.Join(*caDir, caCertFile)
				data, err := os.ReadFile(caPath)
				if err != nil {
					return err
				}
				now := time.Now()
				caCert, err := checkPeerCA(data, *team, now)
				if err != nil {
					return fmt.Errorf("%s: %w", caPath, err)
				}
				id, _ := pki.IdentityFromCert(caCert) // checked by checkPeerCA
				b := &peeringBundle{
					TeamID: id.Team, DisplayName: *display, Endpoints: endpoints,
					CAFingerprint: pki.Fingerprint(caCert), CACertificatePEM: string(pki.EncodeCertPEM(caCert.Raw)),
				}
				content, err := marshalBundle(b, now)
				if err != nil {
					return err
				}
				// What we hand out must be what "peer import" accepts.
				if _, _, err := parseBundle("the new bundle", content, now); err != nil {
					return err
				}
				if *out == "-" {
					if c.output == "json" {
						return c.printPlain(b) // JSON is YAML too: "peer import" reads it
					}
					_, err := c.stdout.Write(content)
					return err
				}
				if _, err := os.Lstat(*out); err == nil && !*force {
					return fmt.Errorf("%s exists; give --force to replace it", *out)
				}
				if err := pki.WriteFileAtomic(*out, content, pki.CertFileMode); err != nil {
					return err
				}
				res := pkiResult{
					Identity: pki.CAIdentity(b.TeamID).String(), BundleFile: abs(*out), CAFingerprint: b.CAFingerprint,
					NotAfter: caCert.NotAfter.UTC().Format(time.RFC3339), Endpoints: b.Endpoints,
				}
				return c.printPKIResult(res, func(w io.Writer) {
					fmt.Fprintf(w, "Wrote the peering bundle of team %s to %s (endpoints %s).\n", b.TeamID, res.BundleFile, strings.Join(b.Endpoints, ", "))
					fmt.Fprintf(w, "CA fingerprint: %s\n", res.CAFingerprint)
					fmt.Fprintf(w, "Tell it to your partners over another channel; they run:\n  irxctl peer import %s --fingerprint %s\n", filepath.Base(*out), res.CAFingerprint)
				})
			}
		},
	}
}

func (c *cli) printPKIResult(res pkiResult, table func(w io.Writer)) error {
	if c.output == "json" || c.output == "yaml" {
		return c.printPlain(res)
	}
	table(c.stdout)
	return nil
}

// sansOf turns --host values into SANs (pki.HostSANs: a port is dropped, so
// the addresses nodes are configured with can be pasted as they are). Names
// must be RFC 1123 host names, a stricter check than irxd makes for its
// development certificates, so a mistyped --host fails here rather than
// yielding a certificate no client can match.
func sansOf(hosts []string) (dns []string, ips []net.IP, err error) {
	return pki.HostSANs(hosts, func(h string) error {
		if !validDNSName(h) {
			return fmt.Errorf("%q is neither an IP address nor a DNS name", h)
		}
		return nil
	})
}

// validDNSName accepts host names (RFC 1123 labels) and one leading
// wildcard label.
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i, label := range strings.Split(h, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// stringsFlag is a repeatable flag; each value may also be a comma-separated
// list.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// abs makes a path absolute for messages that are meant to be pasted; it
// keeps the path as given when that fails.
func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
