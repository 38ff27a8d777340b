package api

import (
	"context"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// RetentionStore is the read side of retention.
type RetentionStore interface {
	RetentionPolicy(origin string) (*irxv1.RetentionPolicy, error)
	PreviewRetention(origin string, maxItems int) (*irxv1.PreviewRetentionResponse, error)
	RetentionDecisions(incidentID string, pageSize int, pageToken string) ([]*irxv1.RetentionDecision, string, error)
}

// RetentionService implements irx.v1.RetentionService.
type RetentionService struct {
	irxv1.UnimplementedRetentionServiceServer
	proposer Proposer
	barrier  ReadBarrier
	store    RetentionStore
	// minKeep is this node's floor for a rule's keep. It is checked here,
	// at the edge, not in the state machine: it is the node's
	// configuration, and a floor raised later must not make entries
	// already in the log apply differently.
	minKeep time.Duration
}

// NewRetentionService returns the service; minKeep is the floor of every
// rule's keep.
func NewRetentionService(p Proposer, b ReadBarrier, s RetentionStore, minKeep time.Duration) *RetentionService {
	return &RetentionService{proposer: p, barrier: b, store: s, minKeep: minKeep}
}

const (
	defaultPreviewItems = 10
	maxPreviewItems     = 100
)

func checkOrigin(team string) []record.Violation {
	if team == "" {
		return nil
	}
	if err := record.ValidateTeamID(team); err != nil {
		return []record.Violation{{Field: "team_id", Description: err.Error()}}
	}
	return nil
}

// GetRetentionPolicy implements irx.v1.RetentionService.
func (s *RetentionService) GetRetentionPolicy(ctx context.Context, req *irxv1.GetRetentionPolicyRequest) (*irxv1.GetRetentionPolicyResponse, error) {
	if vs := checkOrigin(req.GetTeamId()); len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	p, err := s.store.RetentionPolicy(req.GetTeamId())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.GetRetentionPolicyResponse{Policy: p}, nil
}

// SetRetentionPolicy implements irx.v1.RetentionService.
func (s *RetentionService) SetRetentionPolicy(ctx context.Context, req *irxv1.SetRetentionPolicyRequest) (*irxv1.SetRetentionPolicyResponse, error) {
	if req.GetExpectedVersion() < 0 {
		return nil, invalidArgument([]record.Violation{{Field: "expected_version", Description: "must not be negative"}})
	}
	if err := record.ValidateRetentionPolicy(req.GetPolicy(), s.minKeep); err != nil {
		return nil, ToStatus(err)
	}
	p := &irxv1.RetentionPolicy{Rules: req.GetPolicy().GetRules()}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_SetRetentionPolicy{SetRetentionPolicy: &irxv1.SetRetentionPolicyCommand{
		Policy: p, ExpectedVersion: req.GetExpectedVersion(),
	}}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.SetRetentionPolicyResponse{Policy: res.Retention}, nil
}

// PreviewRetention implements irx.v1.RetentionService.
func (s *RetentionService) PreviewRetention(ctx context.Context, req *irxv1.PreviewRetentionRequest) (*irxv1.PreviewRetentionResponse, error) {
	vs := checkOrigin(req.GetTeamId())
	n := int(req.GetMaxItems())
	switch {
	case n < 0:
		vs = append(vs, record.Violation{Field: "max_items", Description: "must not be negative"})
	case n == 0:
		n = defaultPreviewItems
	case n > maxPreviewItems:
		n = maxPreviewItems
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	resp, err := s.store.PreviewRetention(req.GetTeamId(), n)
	if err != nil {
		return nil, ToStatus(err)
	}
	return resp, nil
}

// ListRetentionDecisions implements irx.v1.RetentionService.
func (s *RetentionService) ListRetentionDecisions(ctx context.Context, req *irxv1.ListRetentionDecisionsRequest) (*irxv1.ListRetentionDecisionsResponse, error) {
	var vs []record.Violation
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	case size == 0:
		size = 50
	case size > 1000:
		size = 1000
	}
	if id := req.GetIncidentId(); id != "" {
		if _, err := record.ParseID(id); err != nil {
			vs = append(vs, record.Violation{Field: "incident_id", Description: err.Error()})
		}
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	ds, next, err := s.store.RetentionDecisions(req.GetIncidentId(), size, req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListRetentionDecisionsResponse{Decisions: ds, NextPageToken: next}, nil
}
