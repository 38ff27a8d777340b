package federation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// TeamSignatureAlgorithm names how a team description is signed: ECDSA
// with the node's P-256 key (ASN.1 DER signature) over SHA-256 of
// teamSignatureContext, a zero byte, and the description bytes.
//
// The context is domain separation: the node key also signs TLS
// handshakes, and whatever else it may sign one day, so a signature made
// here must not be valid as anything else, nor anything else as this.
const TeamSignatureAlgorithm = "ECDSA-P256-SHA256/irx-team-description-v1"

const (
	teamSignatureContext = "irx.v1.TeamDescription"
	// maxSignedDescriptionBytes bounds what a verifier reads: the largest
	// description plus a certificate chain.
	maxSignedDescriptionBytes = record.MaxTeamDescriptionBytes + 64<<10
	// maxSignerChain bounds the certificates a signer may present: its
	// own and a few intermediates.
	maxSignerChain  = 4
	teamCallTimeout = 15 * time.Second
)

func teamDescriptionDigest(description []byte) []byte {
	h := sha256.New()
	h.Write([]byte(teamSignatureContext))
	h.Write([]byte{0})
	h.Write(description)
	return h.Sum(nil)
}

// SignTeamDescription signs d with a node's certificate and key: what a
// node serves its peers. The description is encoded deterministically and
// signed as bytes, so the verifier checks exactly what was signed, without
// re-encoding.
func SignTeamDescription(d *irxv1.TeamDescription, cert *tls.Certificate) (*irxv1.SignedTeamDescription, error) {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil, errors.New("sign team description: no node certificate")
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("sign team description: the node key (%T) cannot sign", cert.PrivateKey)
	}
	if pub, ok := signer.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sign team description: the node key is %T, not ECDSA P-256 (as irxctl pki issues)", signer.Public())
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("sign team description: %w", err)
	}
	sig, err := signer.Sign(rand.Reader, teamDescriptionDigest(data), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign team description: %w", err)
	}
	chain := make([][]byte, len(cert.Certificate))
	for i, der := range cert.Certificate {
		chain[i] = slices.Clone(der)
	}
	return &irxv1.SignedTeamDescription{
		Description: data, Signature: sig, CertificateChain: chain, SignatureAlgorithm: TeamSignatureAlgorithm,
	}, nil
}

// VerifyTeamDescription checks a description a peer served: the signer's
// certificate chains to pinnedCAPEM (the CA pinned for team) and names a
// node of team, the signature over the description bytes verifies with
// the signer's key, and the description is of team. It returns the
// description and what was verified, or why it does not verify.
func VerifyTeamDescription(s *irxv1.SignedTeamDescription, team, pinnedCAPEM string) (*irxv1.TeamDescription, *irxv1.TeamDescriptionVerification, error) {
	switch {
	case s == nil:
		return nil, nil, errors.New("no signed description")
	case proto.Size(s) > maxSignedDescriptionBytes:
		return nil, nil, fmt.Errorf("the signed description is %d bytes; the most accepted is %d", proto.Size(s), maxSignedDescriptionBytes)
	case s.GetSignatureAlgorithm() != TeamSignatureAlgorithm:
		return nil, nil, fmt.Errorf("signature algorithm %q is not %q", s.GetSignatureAlgorithm(), TeamSignatureAlgorithm)
	case len(s.GetCertificateChain()) == 0:
		return nil, nil, errors.New("no signer certificate")
	case len(s.GetCertificateChain()) > maxSignerChain:
		return nil, nil, fmt.Errorf("the signer presented %d certificates; the most accepted is %d", len(s.GetCertificateChain()), maxSignerChain)
	}
	ca, err := pki.ParseCertPEM([]byte(pinnedCAPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA pinned for %s: %w", team, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	caFingerprint := pki.Fingerprint(ca)
	chain := make([]*x509.Certificate, len(s.GetCertificateChain()))
	for i, der := range s.GetCertificateChain() {
		if chain[i], err = x509.ParseCertificate(der); err != nil {
			return nil, nil, fmt.Errorf("signer certificate %d: %w", i, err)
		}
	}
	// Node certificates are issued for both TLS usages; a node serves its
	// description, so its certificate must be good for serving.
	id, err := pki.VerifyCert(chain, pool, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, nil, fmt.Errorf("the signer's certificate does not verify against the CA pinned for %s (%s): %w", team, caFingerprint, err)
	}
	if !id.IsNodeOf(team) {
		return nil, nil, fmt.Errorf("signed by %s, which is not a node of %s", id, team)
	}
	pub, ok := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("the key of %s is %T, not ECDSA P-256", id, chain[0].PublicKey)
	}
	if !ecdsa.VerifyASN1(pub, teamDescriptionDigest(s.GetDescription()), s.GetSignature()) {
		return nil, nil, fmt.Errorf("the signature of %s does not verify: the description was altered, or signed with another key", id)
	}
	d := &irxv1.TeamDescription{}
	if err := proto.Unmarshal(s.GetDescription(), d); err != nil {
		return nil, nil, fmt.Errorf("the signed description does not decode: %w", err)
	}
	if d.GetTeamId() != team {
		return nil, nil, fmt.Errorf("the description signed by %s is of team %q, not %q", id, d.GetTeamId(), team)
	}
	return d, &irxv1.TeamDescriptionVerification{
		Signer:             id.String(),
		CaFingerprint:      caFingerprint,
		SignatureAlgorithm: s.GetSignatureAlgorithm(),
		SignerExpireTime:   timestamppb.New(chain[0].NotAfter),
		VerifyTime:         timestamppb.Now(),
	}, nil
}

// GetSignedTeamDescription implements irx.v1.FederationService: the
// listener authenticated the caller as a peer already.
//
// The description is read from this node's state without a read barrier:
// a peer asks for the team's contacts precisely when the team may be in
// trouble, and the description carries its version and update time, so a
// node cut off from its leader still answers with what it has.
func (s *federationService) GetSignedTeamDescription(ctx context.Context, _ *irxv1.GetSignedTeamDescriptionRequest) (*irxv1.GetSignedTeamDescriptionResponse, error) {
	f := s.f
	d, err := f.state.TeamDescription()
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "team %s has not published a team description", f.node.TeamID())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "team description: %v", err)
	}
	cert, err := f.node.Certificate().Certificate()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node certificate: %v", err)
	}
	signed, err := SignTeamDescription(d, cert)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	f.log.Debug("served the team description", "peer", caller(ctx), "version", d.GetVersion())
	return &irxv1.GetSignedTeamDescriptionResponse{SignedDescription: signed}, nil
}

// teamService implements irx.v1.TeamService on the operator API.
type teamService struct {
	irxv1.UnimplementedTeamServiceServer
	f *Federation
}

// GetTeamDescription implements irx.v1.TeamService.
func (s *teamService) GetTeamDescription(ctx context.Context, req *irxv1.GetTeamDescriptionRequest) (*irxv1.GetTeamDescriptionResponse, error) {
	if vs := record.CheckConsistency(req.GetConsistency()); len(vs) > 0 {
		return nil, &record.ValidationError{Violations: vs}
	}
	if err := s.f.node.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	d, err := s.f.state.TeamDescription()
	if err != nil {
		return nil, err
	}
	return &irxv1.GetTeamDescriptionResponse{Description: d}, nil
}

// UpdateTeamDescription implements irx.v1.TeamService: a full
// replacement, validated here (to answer without a Raft round trip) and
// again by the state machine.
func (s *teamService) UpdateTeamDescription(ctx context.Context, req *irxv1.UpdateTeamDescriptionRequest) (*irxv1.UpdateTeamDescriptionResponse, error) {
	d := proto.CloneOf(req.GetDescription())
	if d == nil {
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "description", Description: "is required"}}}
	}
	// Output-only fields are ignored (AIP-203): the team id is always this
	// team's, and the state machine numbers and stamps the version.
	d.TeamId, d.Version, d.UpdateTime = "", 0, nil
	var vs []record.Violation
	if err := record.ValidateTeamDescription(d, "description"); err != nil {
		var verr *record.ValidationError
		if !errors.As(err, &verr) {
			return nil, err
		}
		vs = verr.Violations
	}
	if req.GetExpectedVersion() < 0 {
		vs = append(vs, record.Violation{Field: "expected_version", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, &record.ValidationError{Violations: vs}
	}
	stored, err := committed[*irxv1.TeamDescription](s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_SetTeamDescription{SetTeamDescription: &irxv1.SetTeamDescriptionCommand{
		Description: d, ExpectedVersion: req.GetExpectedVersion(),
	}}}))
	if err != nil {
		return nil, err
	}
	return &irxv1.UpdateTeamDescriptionResponse{Description: stored}, nil
}

// GetPeerTeamDescription implements irx.v1.TeamService: fetch the peer's
// signed description over federation (mutual TLS, the peer's node
// certificate checked against the pinned CA) and verify the signature
// against the same pinned CA, so the description stays verifiable after
// it leaves the connection (signed_description in the response).
func (s *teamService) GetPeerTeamDescription(ctx context.Context, req *irxv1.GetPeerTeamDescriptionRequest) (*irxv1.GetPeerTeamDescriptionResponse, error) {
	f := s.f
	team := req.GetPeerTeamId()
	switch err := record.ValidateTeamID(team); {
	case team == "":
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "peer_team_id", Description: "is required"}}}
	case err != nil:
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "peer_team_id", Description: err.Error()}}}
	}
	if err := f.node.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	peer, err := f.state.Peer(team)
	if err != nil {
		return nil, err
	}
	if len(peer.GetEndpoints()) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "peer %q has no endpoints to reach it (irxctl peer update %s --endpoint HOST:PORT)", team, team)
	}
	signed, endpoint, err := f.fetchTeamDescription(ctx, peer)
	if err != nil {
		return nil, err
	}
	d, verification, err := VerifyTeamDescription(signed, team, peer.GetCaCertificatePem())
	if err != nil {
		f.log.Warn("a peer's team description does not verify", "peer", team, "endpoint", endpoint, "error", err)
		return nil, status.Errorf(codes.FailedPrecondition, "the team description %s served at %s does not verify: %v", team, endpoint, err)
	}
	verification.Endpoint = endpoint
	return &irxv1.GetPeerTeamDescriptionResponse{Description: d, SignedDescription: signed, Verification: verification}, nil
}

// fetchTeamDescription asks the peer for its signed description.
func (f *Federation) fetchTeamDescription(ctx context.Context, peer *irxv1.Peer) (*irxv1.SignedTeamDescription, string, error) {
	var signed *irxv1.SignedTeamDescription
	endpoint, err := f.callPeer(ctx, peer, teamCallTimeout, func(ctx context.Context, c irxv1.FederationServiceClient) error {
		resp, err := c.GetSignedTeamDescription(ctx, &irxv1.GetSignedTeamDescriptionRequest{})
		signed = resp.GetSignedDescription()
		return err
	})
	if status.Code(err) == codes.NotFound {
		return nil, endpoint, status.Errorf(codes.NotFound, "peer %s has not published a team description (at %s)", peer.GetTeamId(), endpoint)
	}
	return signed, endpoint, err
}
