package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// ViewDigest is "SHA256:<hex>" of a view as its recipient stores it,
// without the receive time (the only field the recipient adds). The sender
// recomputes it from the ledger; the recipient computes it from its copy;
// equal digests prove both sides agree on what crossed.
func ViewDigest(inc *irxv1.Incident) (string, error) {
	c := proto.CloneOf(inc)
	if c.GetProvenance() != nil {
		c.Provenance.ReceiveTime = nil
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return "SHA256:" + hex.EncodeToString(sum[:]), nil
}

type auditService struct {
	irxv1.UnimplementedAuditServiceServer
	f *Federation
}

// ListDisclosures implements irx.v1.AuditService.
func (s *auditService) ListDisclosures(ctx context.Context, req *irxv1.ListDisclosuresRequest) (*irxv1.ListDisclosuresResponse, error) {
	if err := checkAuditRequest(req.GetPeerTeamId(), req.GetIncidentId(), false); err != nil {
		return nil, err
	}
	if req.GetPageSize() < 0 {
		return nil, &record.ValidationError{Violations: []record.Violation{{Field: "page_size", Description: "must not be negative"}}}
	}
	if err := s.f.node.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	out, next, err := s.f.state.Disclosures(req.GetPeerTeamId(), req.GetIncidentId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &irxv1.ListDisclosuresResponse{Disclosures: out, NextPageToken: next}, nil
}

func checkAuditRequest(peer, incident string, both bool) error {
	var vs []record.Violation
	if incident != "" {
		if _, err := record.ParseID(incident); err != nil {
			vs = append(vs, record.Violation{Field: "incident_id", Description: err.Error()})
		}
	}
	switch {
	case both && peer == "":
		vs = append(vs, record.Violation{Field: "peer_team_id", Description: "is required"})
	case both && incident == "":
		vs = append(vs, record.Violation{Field: "incident_id", Description: "is required"})
	case peer == "" && incident == "":
		vs = append(vs, record.Violation{Field: "peer_team_id", Description: "or incident_id is required"})
	}
	if len(vs) > 0 {
		return &record.ValidationError{Violations: vs}
	}
	return nil
}

// ExplainDisclosure implements irx.v1.AuditService: every ledger entry of
// the peer and incident, with the view recomputed from the stored version
// and policy version (disclosure is deterministic, so it is the same
// bytes the peer received).
func (s *auditService) ExplainDisclosure(ctx context.Context, req *irxv1.ExplainDisclosureRequest) (*irxv1.ExplainDisclosureResponse, error) {
	if err := checkAuditRequest(req.GetPeerTeamId(), req.GetIncidentId(), true); err != nil {
		return nil, err
	}
	if err := s.f.node.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	resp := &irxv1.ExplainDisclosureResponse{}
	token := ""
	for {
		page, next, err := s.f.state.Disclosures(req.GetPeerTeamId(), req.GetIncidentId(), 1000, token)
		if err != nil {
			return nil, err
		}
		for _, d := range page {
			r, err := s.f.recomputeDisclosure(d)
			if err != nil {
				return nil, err
			}
			resp.Disclosures = append(resp.Disclosures, r)
		}
		if token = next; token == "" {
			resp.HeldVersions = heldVersions(resp.GetDisclosures())
			return resp, nil
		}
	}
}

// heldVersions replays the ledger of one peer and incident, oldest first:
// each version's views in the order the peer received them, until an
// erasure of the version or a withdrawal of the record took them away.
func heldVersions(ledger []*irxv1.RecomputedDisclosure) []*irxv1.HeldVersion {
	held := map[int64][]*irxv1.RecomputedDisclosure{}
	for _, r := range ledger {
		d := r.GetDisclosure()
		switch {
		case d.GetWithdrawal():
			clear(held)
		case d.GetErased():
			delete(held, d.GetIncidentVersion())
		default:
			held[d.GetIncidentVersion()] = append(held[d.GetIncidentVersion()], r)
		}
	}
	versions := slices.Sorted(maps.Keys(held))
	out := make([]*irxv1.HeldVersion, 0, len(versions))
	for _, v := range versions {
		views := held[v]
		out = append(out, &irxv1.HeldVersion{Version: v, Current: views[len(views)-1], Superseded: views[:len(views)-1]})
	}
	return out
}

func (f *Federation) recomputeDisclosure(d *irxv1.Disclosure) (*irxv1.RecomputedDisclosure, error) {
	r := &irxv1.RecomputedDisclosure{Disclosure: d}
	if d.GetWithdrawal() || d.GetErased() {
		return r, nil
	}
	inc, err := f.state.Get(d.GetIncidentId(), d.GetIncidentVersion())
	if errors.Is(err, errdefs.ErrNotFound) {
		// A foreign copy deleted after its origin withdrew it: the ledger
		// entry stands, the content is gone with the copy.
		r.Unavailable = "our copy of this version is gone (withdrawn or erased by the team we received it from)"
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	latest := inc
	if t := d.GetTermsVersion(); t > 0 && t != inc.GetVersion() {
		if latest, err = f.state.Get(d.GetIncidentId(), t); errors.Is(err, errdefs.ErrNotFound) {
			r.Unavailable = fmt.Sprintf("our copy of version %d, whose markings applied, is gone", t)
			return r, nil
		} else if err != nil {
			return nil, err
		}
	}
	compiled, err := f.policy(d.GetPeerTeamId(), d.GetPolicyVersion())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "policy %d for %s: %v", d.GetPolicyVersion(), d.GetPeerTeamId(), err)
	}
	r.View, r.Explanation = f.disclose(inc, latest, compiled)
	if r.View == nil {
		r.Unavailable = "recomputed, the version is withheld: our copy changed since it was sent"
		return r, nil
	}
	if r.Digest, err = ViewDigest(r.View); err != nil {
		return nil, status.Errorf(codes.Internal, "digest: %v", err)
	}
	if d.GetDigest() != "" && d.GetDigest() != r.Digest {
		// Our own versions and policies never change; what does is a
		// foreign copy (replaced by the team we received it from) or the
		// disclosure engine (a build that decides differently).
		r.View, r.Explanation = nil, nil
		r.Unavailable = "recomputed, the view differs from the one sent (our copy of a foreign version was replaced since, or this build's disclosure engine decides differently); the recorded digest says what was sent"
		r.Digest = ""
	}
	return r, nil
}
