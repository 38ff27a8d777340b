package api

import (
	"context"
	"fmt"
	"net"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// ClusterOperator is what the node offers operators about its Raft cluster.
type ClusterOperator interface {
	ClusterStatus(ctx context.Context, includeDigest bool) (*irxv1.GetClusterStatusResponse, error)
	AddMember(ctx context.Context, req *irxv1.AddMemberRequest) (*irxv1.AddMemberResponse, error)
	RemoveMember(ctx context.Context, req *irxv1.RemoveMemberRequest) (*irxv1.RemoveMemberResponse, error)
	TransferLeadership(ctx context.Context, req *irxv1.TransferLeadershipRequest) (*irxv1.TransferLeadershipResponse, error)
	// RecordAction commits the operator action of a change that is not a
	// state machine command; nothing for a call without an operator.
	RecordAction(ctx context.Context, target string) error
}

// recorded returns resp once the operator action of a membership or
// leadership change is committed: the change itself is not a command that
// could carry it.
func recorded[T any](ctx context.Context, n ClusterOperator, target string, resp T, err error) (T, error) {
	if err != nil {
		return resp, err
	}
	if err := n.RecordAction(ctx, target); err != nil {
		var zero T
		return zero, ToStatus(fmt.Errorf("the change was made but its operator action was not recorded; repeat the call: %w", err))
	}
	return resp, nil
}

// ClusterService implements irx.v1.ClusterService.
type ClusterService struct {
	irxv1.UnimplementedClusterServiceServer
	node ClusterOperator
}

// NewClusterService returns the service over a node.
func NewClusterService(n ClusterOperator) *ClusterService { return &ClusterService{node: n} }

// GetClusterStatus implements irx.v1.ClusterService.
func (s *ClusterService) GetClusterStatus(ctx context.Context, req *irxv1.GetClusterStatusRequest) (*irxv1.GetClusterStatusResponse, error) {
	return s.node.ClusterStatus(ctx, req.GetIncludeDigest())
}

// AddMember implements irx.v1.ClusterService.
func (s *ClusterService) AddMember(ctx context.Context, req *irxv1.AddMemberRequest) (*irxv1.AddMemberResponse, error) {
	var vs []record.Violation
	if err := record.ValidateTeamID(req.GetNodeId()); err != nil {
		vs = append(vs, record.Violation{Field: "node_id", Description: err.Error()})
	}
	if _, _, err := net.SplitHostPort(req.GetAddress()); err != nil {
		vs = append(vs, record.Violation{Field: "address", Description: "must be host:port of the node's intra-cluster listener"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	resp, err := s.node.AddMember(ctx, req)
	return recorded(ctx, s.node, "member/"+req.GetNodeId(), resp, err)
}

// RemoveMember implements irx.v1.ClusterService.
func (s *ClusterService) RemoveMember(ctx context.Context, req *irxv1.RemoveMemberRequest) (*irxv1.RemoveMemberResponse, error) {
	if err := record.ValidateTeamID(req.GetNodeId()); err != nil {
		return nil, invalidArgument([]record.Violation{{Field: "node_id", Description: err.Error()}})
	}
	resp, err := s.node.RemoveMember(ctx, req)
	return recorded(ctx, s.node, "member/"+req.GetNodeId(), resp, err)
}

// TransferLeadership implements irx.v1.ClusterService.
func (s *ClusterService) TransferLeadership(ctx context.Context, req *irxv1.TransferLeadershipRequest) (*irxv1.TransferLeadershipResponse, error) {
	if id := req.GetNodeId(); id != "" {
		if err := record.ValidateTeamID(id); err != nil {
			return nil, invalidArgument([]record.Violation{{Field: "node_id", Description: err.Error()}})
		}
	}
	resp, err := s.node.TransferLeadership(ctx, req)
	return recorded(ctx, s.node, "leadership", resp, err)
}
