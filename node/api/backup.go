package api

import (
	"context"

	"google.golang.org/grpc"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// BackupOperator is what the node offers for backups.
type BackupOperator interface {
	// Backup streams a consistent copy of the node's state machine.
	Backup(ctx context.Context, send func(*irxv1.BackupResponse) error) error
	// RecordAction commits the operator action of a call that changes
	// nothing; nothing for a call without an operator.
	RecordAction(ctx context.Context, target string) error
}

// BackupService implements irx.v1.BackupService.
type BackupService struct {
	irxv1.UnimplementedBackupServiceServer
	node BackupOperator
}

// NewBackupService returns the service over a node.
func NewBackupService(n BackupOperator) *BackupService { return &BackupService{node: n} }

// Backup implements irx.v1.BackupService. A backup holds every value the
// team keeps, so who took one is committed to the operator actions before
// the first byte leaves.
func (s *BackupService) Backup(_ *irxv1.BackupRequest, stream grpc.ServerStreamingServer[irxv1.BackupResponse]) error {
	ctx := stream.Context()
	if err := s.node.RecordAction(ctx, "backup"); err != nil {
		return ToStatus(err)
	}
	if err := s.node.Backup(ctx, stream.Send); err != nil {
		return ToStatus(err)
	}
	return nil
}
