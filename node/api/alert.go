package api

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// AlertStore is the read side of the state machine for alerts.
type AlertStore interface {
	Alert(id string) (*irxv1.Alert, error)
	Alerts(state irxv1.AlertState, pageSize int, pageToken string) ([]*irxv1.Alert, string, error)
	AlertsChangedAfter(revision uint64, limit int) ([]*irxv1.Alert, error)
	AlertSettings() (*irxv1.AlertSettings, error)
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
	WarningStore
}

// MaxAlertWatches bounds the WatchAlerts streams one node serves at once;
// each holds a goroutine and wakes on every applied batch.
const MaxAlertWatches = 64

// watchBatch bounds the alerts one WatchAlerts response carries.
const watchBatch = 256

// AlertService implements irx.v1.AlertService.
type AlertService struct {
	irxv1.UnimplementedAlertServiceServer
	proposer Proposer
	barrier  ReadBarrier
	store    AlertStore
	watches  atomic.Int32
}

// NewAlertService returns the service.
func NewAlertService(p Proposer, b ReadBarrier, s AlertStore) *AlertService {
	return &AlertService{proposer: p, barrier: b, store: s}
}

func checkAlertID(id string) []record.Violation {
	switch {
	case id == "":
		return []record.Violation{{Field: "alert_id", Description: "is required"}}
	case len(id) != 16 || !isLowerHex(id):
		return []record.Violation{{Field: "alert_id", Description: "is 16 lower-case hex digits, as ListAlerts returns it"}}
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func checkAlertState(s irxv1.AlertState) []record.Violation {
	if _, ok := irxv1.AlertState_name[int32(s)]; !ok {
		return []record.Violation{{Field: "state", Description: "is not a known AlertState"}}
	}
	return nil
}

// ListAlerts implements irx.v1.AlertService.
func (s *AlertService) ListAlerts(ctx context.Context, req *irxv1.ListAlertsRequest) (*irxv1.ListAlertsResponse, error) {
	vs := checkAlertState(req.GetState())
	if req.GetPageSize() < 0 {
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	alerts, next, err := s.store.Alerts(req.GetState(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListAlertsResponse{Alerts: alerts, NextPageToken: next}, nil
}

// GetAlert implements irx.v1.AlertService.
func (s *AlertService) GetAlert(ctx context.Context, req *irxv1.GetAlertRequest) (*irxv1.GetAlertResponse, error) {
	if vs := checkAlertID(req.GetAlertId()); len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	al, err := s.store.Alert(req.GetAlertId())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.GetAlertResponse{Alert: al}, nil
}

// AcknowledgeAlert implements irx.v1.AlertService.
func (s *AlertService) AcknowledgeAlert(ctx context.Context, req *irxv1.AcknowledgeAlertRequest) (*irxv1.AcknowledgeAlertResponse, error) {
	if vs := checkAlertID(req.GetAlertId()); len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_AcknowledgeAlert{
		AcknowledgeAlert: &irxv1.AcknowledgeAlertCommand{AlertId: req.GetAlertId()},
	}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.AcknowledgeAlertResponse{Alert: res.Alert}, nil
}

// GetAlertSettings implements irx.v1.AlertService.
func (s *AlertService) GetAlertSettings(ctx context.Context, _ *irxv1.GetAlertSettingsRequest) (*irxv1.GetAlertSettingsResponse, error) {
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	st, err := s.store.AlertSettings()
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.GetAlertSettingsResponse{Settings: st}, nil
}

// UpdateAlertSettings implements irx.v1.AlertService.
func (s *AlertService) UpdateAlertSettings(ctx context.Context, req *irxv1.UpdateAlertSettingsRequest) (*irxv1.UpdateAlertSettingsResponse, error) {
	if req.GetSettings() == nil {
		return nil, invalidArgument([]record.Violation{{Field: "settings", Description: "is required"}})
	}
	if err := fsm.CheckAlertSettings(req.GetSettings()); err != nil {
		return nil, invalidArgument([]record.Violation{{Field: "settings.window", Description: "must be between 1s and 3650 days (e.g. \"720h\")"}})
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_UpdateAlertSettings{
		UpdateAlertSettings: &irxv1.UpdateAlertSettingsCommand{Settings: req.GetSettings()},
	}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.UpdateAlertSettingsResponse{Settings: res.AlertSettings}, nil
}

// WatchAlerts implements irx.v1.AlertService: the open alerts (or those in
// the state asked for) at once, then every change as it is applied on this
// node. A watcher too slow to take them holds the stream back (gRPC's flow
// control), never the node; the node's access check ends the stream when
// the caller's certificate is revoked.
func (s *AlertService) WatchAlerts(req *irxv1.WatchAlertsRequest, stream grpc.ServerStreamingServer[irxv1.WatchAlertsResponse]) error {
	if vs := checkAlertState(req.GetState()); len(vs) > 0 {
		return invalidArgument(vs)
	}
	if s.watches.Add(1) > MaxAlertWatches {
		s.watches.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "this node already serves %d alert watches; try another node or later", MaxAlertWatches)
	}
	defer s.watches.Add(-1)
	ctx := stream.Context()
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return err
	}
	want := req.GetState()
	if want == irxv1.AlertState_ALERT_STATE_UNSPECIFIED {
		want = irxv1.AlertState_ALERT_STATE_OPEN
	}
	rev := s.store.AppliedIndex()
	first, _, err := s.store.Alerts(want, fsm.MaxPageSize, "")
	if err != nil {
		return ToStatus(err)
	}
	if err := stream.Send(&irxv1.WatchAlertsResponse{Alerts: first}); err != nil {
		return err
	}
	for {
		if err := s.store.WaitApplied(ctx, rev+1); err != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		applied := s.store.AppliedIndex()
		changed, err := s.store.AlertsChangedAfter(rev, watchBatch)
		if err != nil {
			return ToStatus(err)
		}
		var out []*irxv1.Alert
		for _, al := range changed {
			rev = max(rev, al.GetRevision())
			if req.GetState() == irxv1.AlertState_ALERT_STATE_UNSPECIFIED || al.GetState() == req.GetState() {
				out = append(out, al)
			}
		}
		if len(changed) < watchBatch {
			// Everything applied up to applied was visible to the scan.
			rev = max(rev, applied)
		}
		if len(out) > 0 {
			if err := stream.Send(&irxv1.WatchAlertsResponse{Alerts: out}); err != nil {
				return err
			}
		}
	}
}

// WarningStore is the read side of the state machine for warnings.
type WarningStore interface {
	Peers(pageSize int, pageToken string) ([]*irxv1.Peer, string, error)
	Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error)
	Warnings(pageSize int, pageToken string) ([]*irxv1.Warning, string, error)
	SharingGroups() ([]*irxv1.SharingGroup, error)
	SightingsWithdrawals() ([]*irxv1.SightingsWithdrawal, error)
}

// IssueWarning implements irx.v1.AlertService: the recipients are decided
// here, from the peers and our policies for them as this node has applied
// them after a read barrier, and stored with the warning; the leader then
// delivers it to each.
func (s *AlertService) IssueWarning(ctx context.Context, req *irxv1.IssueWarningRequest) (*irxv1.IssueWarningResponse, error) {
	w := proto.CloneOf(req.GetWarning())
	if w == nil {
		return nil, invalidArgument([]record.Violation{{Field: "warning", Description: "is required"}})
	}
	if err := record.ValidateWarning(w, "warning", time.Now()); err != nil {
		return nil, ToStatus(err)
	}
	ws := s.store
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	w.Deliveries = nil
	token := ""
	for {
		peers, next, err := ws.Peers(fsm.MaxPageSize, token)
		if err != nil {
			return nil, ToStatus(err)
		}
		for _, p := range peers {
			if p.GetDisabled() {
				continue
			}
			pol, err := ws.Policy(p.GetTeamId(), 0)
			if err != nil && !errors.Is(err, fsm.ErrNotFound) {
				return nil, ToStatus(err)
			}
			if ok, _ := policy.WarningRecipient(w, pol); ok {
				w.Deliveries = append(w.Deliveries, &irxv1.WarningDelivery{PeerTeamId: p.GetTeamId(), State: irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_PENDING})
			}
		}
		if token = next; token == "" {
			break
		}
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_IssueWarning{IssueWarning: &irxv1.IssueWarningCommand{Warning: w}}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.IssueWarningResponse{Warning: res.Warning}, nil
}

// ListWarnings implements irx.v1.AlertService.
func (s *AlertService) ListWarnings(ctx context.Context, req *irxv1.ListWarningsRequest) (*irxv1.ListWarningsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, invalidArgument([]record.Violation{{Field: "page_size", Description: "must not be negative"}})
	}
	ws := s.store
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	out, next, err := ws.Warnings(int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListWarningsResponse{Warnings: out, NextPageToken: next}, nil
}

// AcknowledgeWarning implements irx.v1.AlertService.
func (s *AlertService) AcknowledgeWarning(ctx context.Context, req *irxv1.AcknowledgeWarningRequest) (*irxv1.AcknowledgeWarningResponse, error) {
	if req.GetWarningId() == "" {
		return nil, invalidArgument([]record.Violation{{Field: "warning_id", Description: "is required"}})
	}
	if why := record.CheckText(req.GetWarningId(), record.Identifier); why != "" || len(req.GetWarningId()) > 256 {
		return nil, invalidArgument([]record.Violation{{Field: "warning_id", Description: "is not a warning id (<team>:w<n>)"}})
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_AcknowledgeWarning{
		AcknowledgeWarning: &irxv1.AcknowledgeWarningCommand{WarningId: req.GetWarningId()},
	}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.AcknowledgeWarningResponse{Warning: res.Warning}, nil
}

// PutSharingGroup implements irx.v1.AlertService.
func (s *AlertService) PutSharingGroup(ctx context.Context, req *irxv1.PutSharingGroupRequest) (*irxv1.PutSharingGroupResponse, error) {
	g := req.GetGroup()
	if g == nil {
		return nil, invalidArgument([]record.Violation{{Field: "group", Description: "is required"}})
	}
	if err := fsm.CheckSharingGroup(g); err != nil {
		return nil, ToStatus(err)
	}
	g = proto.CloneOf(g)
	g.KeyId, g.UpdateTime = "", nil
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_PutSharingGroup{PutSharingGroup: &irxv1.PutSharingGroupCommand{Group: g}}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.PutSharingGroupResponse{Group: res.SharingGroup}, nil
}

// ListSharingGroups implements irx.v1.AlertService.
func (s *AlertService) ListSharingGroups(ctx context.Context, _ *irxv1.ListSharingGroupsRequest) (*irxv1.ListSharingGroupsResponse, error) {
	if err := s.barrier.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, err
	}
	gs, err := s.store.SharingGroups()
	if err != nil {
		return nil, ToStatus(err)
	}
	owed, err := s.store.SightingsWithdrawals()
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListSharingGroupsResponse{Groups: gs, PendingWithdrawals: owed}, nil
}

// DeleteSharingGroup implements irx.v1.AlertService.
func (s *AlertService) DeleteSharingGroup(ctx context.Context, req *irxv1.DeleteSharingGroupRequest) (*irxv1.DeleteSharingGroupResponse, error) {
	if !fsm.ValidSharingGroupName(req.GetName()) {
		return nil, invalidArgument([]record.Violation{{Field: "name", Description: "is lower-case letters, digits and hyphens, 1 to 63"}})
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_DeleteSharingGroup{DeleteSharingGroup: &irxv1.DeleteSharingGroupCommand{Name: req.GetName()}}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.DeleteSharingGroupResponse{}, nil
}
