package main

import (
	"context"
	"flag"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func peerRevokeCertCommand() *command {
	return &command{
		name:  "revoke-cert",
		usage: "peer revoke-cert TEAM (--peer-cert-file FILE | --fingerprint FP) [--undo]",
		short: "Refuse one certificate of a peer, closing its open connections, while the peer's CA stays pinned",
		long: `For a node of the peer that is compromised or retired: every node of this
team refuses the certificate in the TLS handshake and on every call, and
closes the connections that presented it (their streams end) within a second
of the change. --peer-cert-file is the certificate, PEM (of a chain, the
first; --cert-file is your own operator certificate, as everywhere);
--fingerprint is its SHA-256 fingerprint as the peer told it (SHA256:<hex>,
as "irxctl pki" and "peer get" print them; colons allowed). A peer holds at
most 256 revoked certificates: to refuse more, pin a new CA of the peer with
"peer update TEAM --peer-ca-file". --undo admits the certificate again.
"peer get TEAM" lists what is revoked.`,
		minArgs: 1, maxArgs: 1,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			certFile := fs.String("peer-cert-file", "", "`FILE` with the peer's certificate to refuse, PEM")
			fingerprint := fs.String("fingerprint", "", "the SHA-256 fingerprint `FP` of the certificate to refuse")
			undo := fs.Bool("undo", false, "admit the certificate again: remove it from the peer's revoked certificates")
			return func(ctx context.Context, c *cli, args []string) error {
				team := args[0]
				if (*certFile == "") == (*fingerprint == "") {
					return usageErrorf("give the certificate to refuse with either --peer-cert-file or --fingerprint")
				}
				fp, err := c.revokedFingerprint(team, *certFile, *fingerprint)
				if err != nil {
					return err
				}
				return withPeers(ctx, c, func(ctx context.Context, pc irxv1.PeerServiceClient) error {
					// UpdatePeer replaces the whole list, so it is read
					// first and written back under the etag read: a change
					// another operator made in between is never undone,
					// the list is read again ("peer get" shows the result).
					for attempt := 1; ; attempt++ {
						got, err := pc.GetPeer(ctx, &irxv1.GetPeerRequest{TeamId: team})
						if err != nil {
							return err
						}
						revoked := got.GetPeer().GetRevokedCertificateFingerprints()
						i := slices.Index(revoked, fp)
						switch {
						case !*undo && i >= 0:
							fmt.Fprintf(c.stderr, "irxctl: %s was already revoked for %s\n", fp, team)
							return c.printPeer(got.GetPeer())
						case *undo && i < 0:
							fmt.Fprintf(c.stderr, "irxctl: %s was not revoked for %s\n", fp, team)
							return c.printPeer(got.GetPeer())
						case *undo:
							revoked = slices.Delete(slices.Clone(revoked), i, i+1)
						default:
							revoked = append(slices.Clone(revoked), fp)
						}
						resp, err := pc.UpdatePeer(ctx, &irxv1.UpdatePeerRequest{
							Peer:       &irxv1.Peer{TeamId: team, RevokedCertificateFingerprints: revoked, Etag: got.GetPeer().GetEtag()},
							UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"revoked_certificate_fingerprints"}},
						})
						if status.Code(err) == codes.Aborted && attempt < revokeAttempts {
							continue
						}
						if err != nil {
							return err
						}
						return c.printPeer(resp.GetPeer())
					}
				})
			}
		},
	}
}

// revokeAttempts bounds how often revoke-cert reads the list again when
// another change got in between its read and its write.
const revokeAttempts = 10

// revokedFingerprint is the fingerprint to revoke: of the certificate in
// certFile, which must be one of team's and not its CA, or the one given.
func (c *cli) revokedFingerprint(team, certFile, fingerprint string) (string, error) {
	if fingerprint != "" {
		fp, err := normalizeFingerprint(fingerprint)
		if err != nil {
			return "", usageErrorf("--fingerprint: %v", err)
		}
		return fp, nil
	}
	data, err := c.readAll(certFile)
	if err != nil {
		return "", err
	}
	cert, err := pki.ParseCertPEM(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", certFile, err)
	}
	id, err := pki.IdentityFromCert(cert)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: %w", certFile, err)
	case id.Team != team:
		return "", fmt.Errorf("%s is the certificate of %s, not of team %q", certFile, id, team)
	case id.Kind == pki.KindCA:
		return "", fmt.Errorf("%s is the CA of %s: to stop trusting it, pin another CA (peer update %s --peer-ca-file) or delete the peer", certFile, team, team)
	}
	return pki.Fingerprint(cert), nil
}
