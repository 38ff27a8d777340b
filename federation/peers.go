package federation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

const (
	maxEndpoints       = 16
	maxDisplayName     = 256
	maxCertificatePEM  = 64 << 10
	defaultPeerPage    = 50
	maxPeerPage        = 500
	handOffCallTimeout = 15 * time.Second
)

type peerService struct {
	irxv1.UnimplementedPeerServiceServer
	f *Federation
}

// validatePeer checks a peer from a request and fills its fingerprint.
func (f *Federation) validatePeer(p *irxv1.Peer) error {
	var vs []record.Violation
	add := func(field, format string, args ...any) {
		vs = append(vs, record.Violation{Field: "peer." + field, Description: fmt.Sprintf(format, args...)})
	}
	switch err := record.ValidateTeamID(p.GetTeamId()); {
	case p.GetTeamId() == "":
		add("team_id", "is required")
	case err != nil:
		add("team_id", "%v", err)
	case p.GetTeamId() == f.team:
		add("team_id", "is this team's own id")
	}
	if len(p.GetDisplayName()) > maxDisplayName {
		add("display_name", "is longer than %d bytes", maxDisplayName)
	}
	if len(p.GetEndpoints()) > maxEndpoints {
		add("endpoints", "has more than %d entries", maxEndpoints)
	}
	for i, e := range p.GetEndpoints() {
		host, port, err := net.SplitHostPort(e)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			add(fmt.Sprintf("endpoints[%d]", i), "%q is not host:port", e)
		}
	}
	pemData := p.GetCaCertificatePem()
	switch {
	case pemData == "":
		add("ca_certificate_pem", "is required: the peer team's CA certificate (from its peering bundle)")
	case len(pemData) > maxCertificatePEM:
		add("ca_certificate_pem", "is longer than %d bytes", maxCertificatePEM)
	default:
		cert, err := pki.ParseCertPEM([]byte(pemData))
		if err != nil {
			add("ca_certificate_pem", "%v", err)
			break
		}
		id, err := pki.IdentityFromCert(cert)
		switch {
		case err != nil:
			add("ca_certificate_pem", "%v", err)
		case !cert.IsCA || id != pki.CAIdentity(p.GetTeamId()):
			add("ca_certificate_pem", "is %s, not the CA of team %q (irx://%s/ca/%s)", id, p.GetTeamId(), p.GetTeamId(), p.GetTeamId())
		default:
			p.CaFingerprint = pki.Fingerprint(cert)
		}
	}
	vs = append(vs, validateRevoked(p)...)
	if len(vs) > 0 {
		return &record.ValidationError{Violations: vs}
	}
	return nil
}

// clearOutputOnly drops what a client may not set (AIP-203).
func clearOutputOnly(p *irxv1.Peer) {
	p.CaFingerprint, p.RecipientClass, p.Constituency, p.PolicyVersion = "", 0, nil, 0
	p.Status, p.CreateTime, p.UpdateTime, p.Etag = nil, nil, nil, ""
}

// put stores p; an update applies only to the configuration etag names
// (PutPeerCommand.expected_etag).
func (s *peerService) put(ctx context.Context, p *irxv1.Peer, create bool, etag string) (*irxv1.Peer, error) {
	stored, err := committed[*irxv1.Peer](s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{
		Peer: p, Create: create, ExpectedEtag: etag,
	}}}))
	if err != nil {
		return nil, err
	}
	return s.f.describe(stored)
}

// updateAttempts bounds how often UpdatePeer without an etag reads the
// peer again after another change got between its read and its commit.
const updateAttempts = 5

// CreatePeer implements irx.v1.PeerService.
func (s *peerService) CreatePeer(ctx context.Context, req *irxv1.CreatePeerRequest) (*irxv1.CreatePeerResponse, error) {
	p := proto.CloneOf(req.GetPeer())
	if p == nil {
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "peer", Description: "is required"}}}
	}
	clearOutputOnly(p)
	if err := s.f.validatePeer(p); err != nil {
		return nil, err
	}
	stored, err := s.put(ctx, p, true, "")
	if err != nil {
		return nil, err
	}
	return &irxv1.CreatePeerResponse{Peer: stored}, nil
}

// UpdatePeer implements irx.v1.PeerService.
func (s *peerService) UpdatePeer(ctx context.Context, req *irxv1.UpdatePeerRequest) (*irxv1.UpdatePeerResponse, error) {
	patch := req.GetPeer()
	if len(req.GetUpdateMask().GetPaths()) == 0 {
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "update_mask", Description: "is required: display_name, endpoints, ca_certificate_pem, disabled, revoked_certificate_fingerprints"}}}
	}
	// The mask is applied to the configuration read here, and the result
	// stored only if it is still the stored one: an update made in
	// between (another field, another fingerprint added to the list) is
	// never overwritten with what this call read.
	for attempt := 1; ; attempt++ {
		stored, err := s.update(ctx, patch, req.GetUpdateMask().GetPaths())
		// A conflict is the only one a peer's update can meet.
		if !errors.Is(err, errdefs.ErrConflict) || patch.GetEtag() != "" || attempt == updateAttempts {
			if err != nil {
				return nil, err
			}
			return &irxv1.UpdatePeerResponse{Peer: stored}, nil
		}
	}
}

// update applies paths of patch to the peer as stored now and stores the
// result if nothing changed it meanwhile.
func (s *peerService) update(ctx context.Context, patch *irxv1.Peer, paths []string) (*irxv1.Peer, error) {
	if err := s.f.node.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	current, err := s.f.state.Peer(patch.GetTeamId())
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(current)
	for _, path := range paths {
		switch path {
		case "display_name":
			next.DisplayName = patch.GetDisplayName()
		case "endpoints":
			next.Endpoints = patch.GetEndpoints()
		case "ca_certificate_pem":
			next.CaCertificatePem = patch.GetCaCertificatePem()
		case "disabled":
			next.Disabled = patch.GetDisabled()
		case "revoked_certificate_fingerprints":
			next.RevokedCertificateFingerprints = slices.Clone(patch.GetRevokedCertificateFingerprints())
		default:
			return nil, &record.ValidationError{Violations: []record.Violation{{Field: "update_mask", Description: fmt.Sprintf("%q cannot be updated (display_name, endpoints, ca_certificate_pem, disabled, revoked_certificate_fingerprints)", path)}}}
		}
	}
	clearOutputOnly(next)
	if err := s.f.validatePeer(next); err != nil {
		return nil, err
	}
	// The state machine refuses the update unless the stored peer is still
	// the one the caller read (its etag), or this call did.
	etag := patch.GetEtag()
	if etag == "" {
		etag = record.PeerEtag(current)
	}
	return s.put(ctx, next, false, etag)
}

// DeletePeer implements irx.v1.PeerService.
func (s *peerService) DeletePeer(ctx context.Context, req *irxv1.DeletePeerRequest) (*irxv1.DeletePeerResponse, error) {
	if req.GetTeamId() == "" {
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "team_id", Description: "is required"}}}
	}
	_, err := s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_DeletePeer{DeletePeer: &irxv1.DeletePeerCommand{TeamId: req.GetTeamId()}}})
	if err != nil {
		return nil, err
	}
	return &irxv1.DeletePeerResponse{}, nil
}

// GetPeer implements irx.v1.PeerService. Only the leader follows peers, so
// the leader answers: a follower forwards the call.
func (s *peerService) GetPeer(ctx context.Context, req *irxv1.GetPeerRequest) (*irxv1.GetPeerResponse, error) {
	if req.GetTeamId() == "" {
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "team_id", Description: "is required"}}}
	}
	var resp *irxv1.GetPeerResponse
	err := s.f.node.OnLeader(ctx, func() error {
		p, err := s.f.state.Peer(req.GetTeamId())
		if err != nil {
			return err
		}
		if p, err = s.f.describe(p); err != nil {
			return err
		}
		s.f.describeFollowing(ctx, p)
		resp = &irxv1.GetPeerResponse{Peer: p}
		return nil
	}, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = irxv1.NewPeerServiceClient(conn).GetPeer(ctx, req)
		return err
	})
	return resp, err
}

// ListPeers implements irx.v1.PeerService.
func (s *peerService) ListPeers(ctx context.Context, req *irxv1.ListPeersRequest) (*irxv1.ListPeersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "page_size", Description: "must not be negative"}}}
	case size == 0:
		size = defaultPeerPage
	case size > maxPeerPage:
		size = maxPeerPage
	}
	var resp *irxv1.ListPeersResponse
	err := s.f.node.OnLeader(ctx, func() error {
		peers, next, err := s.f.state.Peers(size, req.GetPageToken())
		if err != nil {
			return err
		}
		resp = &irxv1.ListPeersResponse{NextPageToken: next}
		for _, p := range peers {
			if p, err = s.f.describe(p); err != nil {
				return err
			}
			resp.Peers = append(resp.Peers, p)
		}
		s.f.describeFollowing(ctx, resp.Peers...)
		return nil
	}, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = irxv1.NewPeerServiceClient(conn).ListPeers(ctx, req)
		return err
	})
	return resp, err
}

// describe fills a stored peer's output-only fields: the policy in force
// and the federation status.
func (f *Federation) describe(p *irxv1.Peer) (*irxv1.Peer, error) {
	p = proto.CloneOf(p)
	p.Etag = record.PeerEtag(p)
	if pol, err := f.state.Policy(p.GetTeamId(), 0); err == nil {
		p.PolicyVersion, p.RecipientClass, p.Constituency = pol.GetVersion(), pol.GetRecipientClass(), pol.GetConstituency()
	}
	st, err := f.state.PeerState(p.GetTeamId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "peer state: %v", err)
	}
	head := f.state.FeedSequence()
	out := &irxv1.PeerStatus{
		NothingDisclosed:     p.GetPolicyVersion() == 0,
		InboundCursor:        st.GetInboundCursor(),
		InboundHead:          max(st.GetInboundHead(), st.GetInboundCursor()),
		OutboundAcknowledged: st.GetOutboundAcknowledged(),
		OutboundHead:         head,
		OutboundLagRecords:   head - min(head, st.GetOutboundAcknowledged()),
		Received:             st.GetReceived(),
		ReceivedWithdrawals:  st.GetReceivedWithdrawals(),
		Sent:                 st.GetSent(),
		SentWithdrawals:      st.GetSentWithdrawals(),
		Withheld:             st.GetWithheld(),
		LastAcknowledgeTime:  st.GetLastAcknowledgeTime(),
		Rejected:             st.GetRejected(),
		LastRejection:        st.GetLastRejection(),
		ReceivedReplacements: st.GetReceivedReplacements(),
		SentReplacements:     st.GetSentReplacements(),
	}
	if pending, err := f.state.Redisclosures(); err == nil {
		out.RedisclosurePolicyVersion = pending[p.GetTeamId()].GetPolicyVersion()
	}
	headTime := st.GetInboundHeadTime()
	if l, ok := f.pullers.status(p.GetTeamId()); ok {
		out.Connected, out.Endpoint = l.connected, l.endpoint
		out.InboundHead = max(out.InboundHead, l.head)
		if l.head >= st.GetInboundHead() && l.headTime != nil {
			headTime = l.headTime
		}
		if l.lastErr != "" {
			out.LastError, out.LastErrorTime = l.lastErr, timestamppb.New(l.lastErrTime)
		}
	}
	if st.GetLastRejection() != "" && out.LastError == "" {
		out.LastError = "refused an item: " + st.GetLastRejection()
	}
	out.InboundLagRecords = out.InboundHead - out.InboundCursor
	if out.InboundLagRecords > 0 && headTime != nil {
		out.InboundLagSeconds = max(0, time.Since(headTime.AsTime()).Seconds())
	}
	p.Status = out
	return p, nil
}

// HandOffIncidentToPeer implements irx.v1.PeerService.
func (s *peerService) HandOffIncidentToPeer(ctx context.Context, req *irxv1.HandOffIncidentToPeerRequest) (*irxv1.HandOffIncidentToPeerResponse, error) {
	f := s.f
	var vs []record.Violation
	if _, err := record.ParseID(req.GetId()); err != nil {
		vs = append(vs, record.Violation{Field: "id", Description: err.Error()})
	}
	if req.GetPeerTeamId() == "" {
		vs = append(vs, record.Violation{Field: "peer_team_id", Description: "is required"})
	}
	if len(req.GetReason()) > record.MaxWithdrawReasonLength {
		vs = append(vs, record.Violation{Field: "reason", Description: fmt.Sprintf("is longer than %d bytes", record.MaxWithdrawReasonLength)})
	}
	if len(vs) > 0 {
		return nil, &record.ValidationError{Violations: vs}
	}
	if err := f.node.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	peer, err := f.state.Peer(req.GetPeerTeamId())
	if err != nil {
		return nil, err
	}
	inc, err := f.state.Get(req.GetId(), 0)
	switch {
	case err != nil:
		return nil, err
	case inc.GetProvenance().GetOriginTeam() != f.team:
		return nil, status.Errorf(codes.FailedPrecondition, "%s belongs to team %q; only its origin hands it off", req.GetId(), inc.GetProvenance().GetOriginTeam())
	case inc.GetWithdrawTime() != nil:
		return nil, status.Errorf(codes.FailedPrecondition, "%s is withdrawn", req.GetId())
	case len(peer.GetEndpoints()) == 0:
		return nil, status.Errorf(codes.FailedPrecondition, "peer %q has no endpoints to reach it", peer.GetTeamId())
	}
	compiled, err := f.policy(peer.GetTeamId(), 0)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "policy for %s: %v", peer.GetTeamId(), err)
	}
	view, _ := f.disclose(inc, inc, compiled)
	if view == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "our policy for %s discloses nothing of %s (see PolicyService/PreviewDisclosure): it cannot be handed off", peer.GetTeamId(), req.GetId())
	}
	theirs, err := f.handOff(ctx, peer, view, req.GetReason())
	if err != nil {
		return nil, err
	}
	ours, err := f.recordHandOff(ctx, inc, peer.GetTeamId(), theirs.GetId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &irxv1.HandOffIncidentToPeerResponse{Incident: ours, PeerIncidentId: theirs.GetId()}, nil
}

// callPeer makes one call to a peer on each of its endpoints in turn,
// until one answers with anything but "unavailable" or a timeout. It
// returns the endpoint that answered and the call's error.
func (f *Federation) callPeer(ctx context.Context, peer *irxv1.Peer, timeout time.Duration, call func(context.Context, irxv1.FederationServiceClient) error) (string, error) {
	var last error
	for _, endpoint := range peer.GetEndpoints() {
		conn, err := f.dial(peer, endpoint, nil)
		if err != nil {
			last = err
			continue
		}
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		err = call(callCtx, irxv1.NewFederationServiceClient(conn))
		cancel()
		_ = conn.Close()
		if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
			return endpoint, err
		}
		last = fmt.Errorf("%s: %w", endpoint, err)
	}
	if last == nil {
		last = errors.New("it has no endpoints")
	}
	return "", status.Errorf(codes.Unavailable, "peer %s did not answer: %v", peer.GetTeamId(), last)
}

// handOff asks the peer to take over. The peer deduplicates on our
// incident id, so trying another endpoint is safe.
func (f *Federation) handOff(ctx context.Context, peer *irxv1.Peer, view *irxv1.Incident, reason string) (*irxv1.Incident, error) {
	var theirs *irxv1.Incident
	_, err := f.callPeer(ctx, peer, handOffCallTimeout, func(ctx context.Context, c irxv1.FederationServiceClient) error {
		resp, err := c.HandOffIncident(ctx, &irxv1.HandOffIncidentRequest{Incident: view, Reason: reason})
		theirs = resp.GetIncident()
		return err
	})
	if err != nil && status.Code(err) != codes.Unavailable {
		// The peer's refusal is not the operator's bad request: say whose.
		return nil, status.Errorf(codes.FailedPrecondition, "peer %s refused the incident: %v", peer.GetTeamId(), err)
	}
	return theirs, err
}

// recordHandOff marks our incident forwarded, naming the peer's ticket.
func (f *Federation) recordHandOff(ctx context.Context, inc *irxv1.Incident, peer, theirID, reason string) (*irxv1.Incident, error) {
	for attempt := 0; ; attempt++ {
		patch := &irxv1.Incident{
			Id:     inc.GetId(),
			Status: irxv1.Status_STATUS_FORWARDED,
			AlternativeIds: append(slices.Clip(inc.GetAlternativeIds()), &irxv1.AlternativeId{
				TeamId: peer, Ticket: theirID, Kind: irxv1.AlternativeIdKind_ALTERNATIVE_ID_KIND_RESPONSE_TEAM,
			}),
			History: append(slices.Clip(inc.GetHistory()), &irxv1.HistoryItem{
				Action: irxv1.HistoryAction_HISTORY_ACTION_HAND_OFF, Time: timestamppb.Now(), TeamId: f.team,
				Description: fmt.Sprintf("coordination handed off to %s (their %s): %s", peer, theirID, reason),
			}),
		}
		updated, err := committed[*irxv1.Incident](f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_UpdateIncident{UpdateIncident: &irxv1.UpdateIncidentCommand{
			Incident: patch, ExpectedVersion: inc.GetVersion(),
			UpdateMask: maskOf("status", "alternative_ids", "history"),
		}}}))
		if err == nil {
			return updated, nil
		}
		if !errors.Is(err, errdefs.ErrConflict) || attempt == 3 {
			return nil, err
		}
		// Someone updated it meanwhile: merge into the newer version.
		if inc, err = f.state.Get(inc.GetId(), 0); err != nil {
			return nil, err
		}
	}
}

func maskOf(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
