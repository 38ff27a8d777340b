package api

import (
	"context"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// ClusterStatuser reports the node's view of its Raft cluster.
type ClusterStatuser interface {
	ClusterStatus(ctx context.Context) (*irxv1.GetClusterStatusResponse, error)
}

// ClusterService implements irx.v1.ClusterService.
type ClusterService struct {
	irxv1.UnimplementedClusterServiceServer
	node ClusterStatuser
}

// NewClusterService returns the service over a node.
func NewClusterService(n ClusterStatuser) *ClusterService { return &ClusterService{node: n} }

// GetClusterStatus implements irx.v1.ClusterService.
func (s *ClusterService) GetClusterStatus(ctx context.Context, _ *irxv1.GetClusterStatusRequest) (*irxv1.GetClusterStatusResponse, error) {
	return s.node.ClusterStatus(ctx)
}
