package api

import (
	"context"
	"fmt"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// AccessStore is the read side of access control and accountability.
type AccessStore interface {
	RoleBindings(pageSize int, pageToken string) ([]*irxv1.RoleBinding, string, error)
	RevokedCertificates(pageSize int, pageToken string) ([]*irxv1.RevokedCertificate, string, error)
	OperatorActions(q fsm.ActionQuery, pageSize int, pageToken string) ([]*irxv1.OperatorAction, string, error)
}

// AccessService implements irx.v1.AccessService.
type AccessService struct {
	irxv1.UnimplementedAccessServiceServer
	proposer Proposer
	barrier  ReadBarrier
	store    AccessStore
}

// NewAccessService returns the service over a node and its state.
func NewAccessService(p Proposer, b ReadBarrier, s AccessStore) *AccessService {
	return &AccessService{proposer: p, barrier: b, store: s}
}

// maxReason bounds a revocation's reason.
const maxReason = 256

func checkRoleRequest(identity string, role irxv1.Role) []record.Violation {
	var vs []record.Violation
	if identity == "" {
		vs = append(vs, record.Violation{Field: "identity", Description: "is required: irx://<team>/operator/<name>"})
	} else if id, err := pki.ParseIdentityString(identity); err != nil {
		vs = append(vs, record.Violation{Field: "identity", Description: err.Error()})
	} else if id.Kind != pki.KindOperator {
		vs = append(vs, record.Violation{Field: "identity", Description: fmt.Sprintf("%s is a %s certificate: only operators hold roles", identity, id.Kind)})
	}
	if role == irxv1.Role_ROLE_UNSPECIFIED || irxv1.Role_name[int32(role)] == "" {
		vs = append(vs, record.Violation{Field: "role", Description: "is required: ROLE_VIEWER, ROLE_ANALYST, ROLE_POLICY_ADMIN or ROLE_CLUSTER_ADMIN"})
	}
	return vs
}

func (s *AccessService) changeRole(ctx context.Context, identity string, role irxv1.Role, grant bool) (*irxv1.RoleBinding, error) {
	if vs := checkRoleRequest(identity, role); len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_ChangeRole{ChangeRole: &irxv1.ChangeRoleCommand{Identity: identity, Role: role, Grant: grant}}})
	if err != nil {
		return nil, ToStatus(err)
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return res.Binding, nil
}

// GrantRole implements irx.v1.AccessService.
func (s *AccessService) GrantRole(ctx context.Context, req *irxv1.GrantRoleRequest) (*irxv1.GrantRoleResponse, error) {
	b, err := s.changeRole(ctx, req.GetIdentity(), req.GetRole(), true)
	if err != nil {
		return nil, err
	}
	return &irxv1.GrantRoleResponse{Binding: b}, nil
}

// RevokeRole implements irx.v1.AccessService.
func (s *AccessService) RevokeRole(ctx context.Context, req *irxv1.RevokeRoleRequest) (*irxv1.RevokeRoleResponse, error) {
	b, err := s.changeRole(ctx, req.GetIdentity(), req.GetRole(), false)
	if err != nil {
		return nil, err
	}
	return &irxv1.RevokeRoleResponse{Binding: b}, nil
}

// ListRoleBindings implements irx.v1.AccessService.
func (s *AccessService) ListRoleBindings(ctx context.Context, req *irxv1.ListRoleBindingsRequest) (*irxv1.ListRoleBindingsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, invalidArgument([]record.Violation{{Field: "page_size", Description: "must not be negative"}})
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	bs, next, err := s.store.RoleBindings(int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListRoleBindingsResponse{Bindings: bs, NextPageToken: next}, nil
}

// RevokeCertificate implements irx.v1.AccessService.
func (s *AccessService) RevokeCertificate(ctx context.Context, req *irxv1.RevokeCertificateRequest) (*irxv1.RevokeCertificateResponse, error) {
	var vs []record.Violation
	r := &irxv1.RevokedCertificate{Identity: req.GetIdentity(), Reason: req.GetReason()}
	switch {
	case (req.GetIdentity() == "") == (req.GetSerialNumber() == ""):
		vs = append(vs, record.Violation{Field: "identity", Description: "give exactly one of identity and serial_number"})
	case req.GetIdentity() != "":
		if id, err := pki.ParseIdentityString(req.GetIdentity()); err != nil {
			vs = append(vs, record.Violation{Field: "identity", Description: err.Error()})
		} else if id.Kind != pki.KindOperator && id.Kind != pki.KindNode {
			vs = append(vs, record.Violation{Field: "identity", Description: "only operator and node certificates are revoked here; a new CA replaces the CA"})
		}
	default:
		serial, err := fsm.ParseSerial(req.GetSerialNumber())
		if err != nil {
			vs = append(vs, record.Violation{Field: "serial_number", Description: err.Error()})
		}
		r.SerialNumber = serial
	}
	if len(req.GetReason()) > maxReason {
		vs = append(vs, record.Violation{Field: "reason", Description: fmt.Sprintf("is longer than %d bytes", maxReason)})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_RevokeCertificate{RevokeCertificate: &irxv1.RevokeCertificateCommand{Revoked: r}}})
	if err != nil {
		return nil, ToStatus(err)
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.RevokeCertificateResponse{RevokedCertificate: res.Revoked}, nil
}

// ListRevokedCertificates implements irx.v1.AccessService.
func (s *AccessService) ListRevokedCertificates(ctx context.Context, req *irxv1.ListRevokedCertificatesRequest) (*irxv1.ListRevokedCertificatesResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, invalidArgument([]record.Violation{{Field: "page_size", Description: "must not be negative"}})
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	rs, next, err := s.store.RevokedCertificates(int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListRevokedCertificatesResponse{RevokedCertificates: rs, NextPageToken: next}, nil
}

// ListOperatorActions implements irx.v1.AccessService.
func (s *AccessService) ListOperatorActions(ctx context.Context, req *irxv1.ListOperatorActionsRequest) (*irxv1.ListOperatorActionsResponse, error) {
	var vs []record.Violation
	if req.GetPageSize() < 0 {
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	}
	q := fsm.ActionQuery{Identity: req.GetIdentity(), Target: req.GetTarget()}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			vs = append(vs, record.Violation{Field: "start_time", Description: err.Error()})
		}
		q.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			vs = append(vs, record.Violation{Field: "end_time", Description: err.Error()})
		}
		q.End = t.AsTime()
	}
	if !q.Start.IsZero() && !q.End.IsZero() && !q.End.After(q.Start) {
		vs = append(vs, record.Violation{Field: "end_time", Description: "must be after start_time"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	acts, next, err := s.store.OperatorActions(q, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListOperatorActionsResponse{Actions: acts, NextPageToken: next}, nil
}
