package api

import (
	"context"
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
	return s.node.AddMember(ctx, req)
}

// RemoveMember implements irx.v1.ClusterService.
func (s *ClusterService) RemoveMember(ctx context.Context, req *irxv1.RemoveMemberRequest) (*irxv1.RemoveMemberResponse, error) {
	if err := record.ValidateTeamID(req.GetNodeId()); err != nil {
		return nil, invalidArgument([]record.Violation{{Field: "node_id", Description: err.Error()}})
	}
	return s.node.RemoveMember(ctx, req)
}

// TransferLeadership implements irx.v1.ClusterService.
func (s *ClusterService) TransferLeadership(ctx context.Context, req *irxv1.TransferLeadershipRequest) (*irxv1.TransferLeadershipResponse, error) {
	if id := req.GetNodeId(); id != "" {
		if err := record.ValidateTeamID(id); err != nil {
			return nil, invalidArgument([]record.Violation{{Field: "node_id", Description: err.Error()}})
		}
	}
	return s.node.TransferLeadership(ctx, req)
}
