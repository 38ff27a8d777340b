package api

import (
	"context"
	"crypto/rand"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// PolicyStore is the read side of the state machine for policies.
type PolicyStore interface {
	Store
	Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error)
	PolicyVersions(peer string, pageSize int, pageToken string) ([]*irxv1.DisclosurePolicy, string, error)
	Policies(pageSize int, pageToken string) ([]*irxv1.DisclosurePolicy, string, error)
	HasTeamSecret() (bool, error)
	PseudonymKey(peer string) ([]byte, error)
}

// PolicyService implements irx.v1.PolicyService.
type PolicyService struct {
	irxv1.UnimplementedPolicyServiceServer
	proposer Proposer
	barrier  ReadBarrier
	store    PolicyStore
	compiled *policy.Cache
}

// NewPolicyService returns the service; compiled caches the team's compiled
// policies (shared with whatever else discloses for the team).
func NewPolicyService(p Proposer, b ReadBarrier, s PolicyStore, compiled *policy.Cache) *PolicyService {
	return &PolicyService{proposer: p, barrier: b, store: s, compiled: compiled}
}

// SetPolicy implements irx.v1.PolicyService.
func (s *PolicyService) SetPolicy(ctx context.Context, req *irxv1.SetPolicyRequest) (*irxv1.SetPolicyResponse, error) {
	p := req.GetPolicy()
	switch {
	case p != nil && req.GetPolicyYaml() != "":
		return nil, invalidArgument([]record.Violation{{Field: "policy_yaml", Description: "give either policy or policy_yaml, not both"}})
	case p == nil && req.GetPolicyYaml() == "":
		return nil, invalidArgument([]record.Violation{{Field: "policy", Description: "is required (or policy_yaml)"}})
	case p == nil:
		parsed, err := policy.ParseYAML([]byte(req.GetPolicyYaml()))
		if err != nil {
			return nil, policyViolations(err, "policy_yaml")
		}
		p = parsed
	default:
		p.Version, p.CreateTime = 0, nil // output only (AIP-203)
		if err := policy.Validate(p); err != nil {
			return nil, policyViolations(err, "policy")
		}
	}
	cmd := &irxv1.SetPolicyCommand{Policy: p}
	has, err := s.store.HasTeamSecret()
	if err != nil {
		return nil, ToStatus(err)
	}
	if !has {
		// The first policy brings the team's pseudonymisation secret; if
		// two race, the state machine keeps the first applied.
		cmd.TeamSecret = make([]byte, 32)
		if _, err := rand.Read(cmd.TeamSecret); err != nil {
			return nil, status.Errorf(codes.Internal, "team secret: %v", err)
		}
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: cmd}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.SetPolicyResponse{Policy: res.Policy}, nil
}

// GetPolicy implements irx.v1.PolicyService.
func (s *PolicyService) GetPolicy(ctx context.Context, req *irxv1.GetPolicyRequest) (*irxv1.GetPolicyResponse, error) {
	vs := checkPeer(req.GetPeerTeamId())
	if req.GetVersion() < 0 {
		vs = append(vs, record.Violation{Field: "version", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	p, err := s.store.Policy(req.GetPeerTeamId(), req.GetVersion())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.GetPolicyResponse{Policy: p}, nil
}

// ListPolicies implements irx.v1.PolicyService.
func (s *PolicyService) ListPolicies(ctx context.Context, req *irxv1.ListPoliciesRequest) (*irxv1.ListPoliciesResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, invalidArgument([]record.Violation{{Field: "page_size", Description: "must not be negative"}})
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	ps, next, err := s.store.Policies(int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListPoliciesResponse{Policies: ps, NextPageToken: next}, nil
}

// ListPolicyVersions implements irx.v1.PolicyService.
func (s *PolicyService) ListPolicyVersions(ctx context.Context, req *irxv1.ListPolicyVersionsRequest) (*irxv1.ListPolicyVersionsResponse, error) {
	vs := checkPeer(req.GetPeerTeamId())
	if req.GetPageSize() < 0 {
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	ps, next, err := s.store.PolicyVersions(req.GetPeerTeamId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListPolicyVersionsResponse{Policies: ps, NextPageToken: next}, nil
}

// PreviewDisclosure implements irx.v1.PolicyService.
func (s *PolicyService) PreviewDisclosure(ctx context.Context, req *irxv1.PreviewDisclosureRequest) (*irxv1.PreviewDisclosureResponse, error) {
	vs := checkPeer(req.GetPeerTeamId())
	if req.GetPolicyVersion() < 0 {
		vs = append(vs, record.Violation{Field: "policy_version", Description: "must not be negative"})
	}
	switch subject := req.GetSubject().(type) {
	case *irxv1.PreviewDisclosureRequest_IncidentId:
		vs = append(vs, checkID(subject.IncidentId, "incident_id")...)
	case *irxv1.PreviewDisclosureRequest_Incident:
		var verr *record.ValidationError
		if err := record.Validate(subject.Incident, "incident"); errors.As(err, &verr) {
			vs = append(vs, verr.Violations...)
		}
	default:
		vs = append(vs, record.Violation{Field: "incident_id", Description: "is required (or an inline incident)"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	inc := req.GetIncident()
	if id := req.GetIncidentId(); id != "" {
		var err error
		if inc, err = s.store.Get(id, 0); err != nil {
			return nil, ToStatus(err)
		}
	}
	compiled, version, err := s.compile(req.GetPeerTeamId(), req.GetPolicyVersion())
	if err != nil {
		return nil, err
	}
	view, explanation := policy.Disclose(inc, compiled)
	return &irxv1.PreviewDisclosureResponse{View: view, Explanation: explanation, PolicyVersion: version}, nil
}

// compile returns the compiled policy for peer at version (0: latest).
func (s *PolicyService) compile(peer string, version int64) (*policy.Compiled, int64, error) {
	p, err := s.store.Policy(peer, version)
	if err != nil {
		return nil, 0, ToStatus(err)
	}
	var keyErr error
	c, err := s.compiled.Compile(peer, p, func() ([]byte, error) {
		key, err := s.store.PseudonymKey(peer)
		keyErr = err
		return key, err
	})
	switch {
	case keyErr != nil:
		return nil, 0, ToStatus(keyErr)
	case err != nil:
		// A stored policy was validated before it was stored.
		return nil, 0, status.Errorf(codes.Internal, "compile stored policy %s v%d: %v", peer, p.GetVersion(), err)
	}
	return c, p.GetVersion(), nil
}

func checkPeer(peer string) []record.Violation {
	if err := record.ValidateTeamID(peer); err != nil {
		return []record.Violation{{Field: "peer_team_id", Description: err.Error()}}
	}
	return nil
}

// policyViolations is INVALID_ARGUMENT naming each field of an invalid
// policy under prefix; a violation located in YAML names prefix and says
// where in the YAML.
func policyViolations(err error, prefix string) error {
	var perr *record.ValidationError
	if !errors.As(err, &perr) {
		return invalidArgument([]record.Violation{{Field: prefix, Description: err.Error()}})
	}
	vs := make([]record.Violation, 0, len(perr.Violations))
	for _, fe := range perr.Violations {
		v := record.Violation{Field: prefix + "." + fe.Field, Description: fe.Description}
		if fe.Line > 0 {
			v = record.Violation{Field: prefix, Description: fe.String()}
		}
		vs = append(vs, v)
	}
	return invalidArgument(vs)
}
