// Package api implements the operator-facing gRPC services of a team node.
// Handlers validate input, turn writes into Raft commands and serve reads
// from the state machine; they never touch storage directly.
package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs/errgrpc"
	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// MaxRequestIDLength bounds CreateIncidentRequest.request_id.
const MaxRequestIDLength = 128

// Proposer submits a command to the team's Raft log and returns the state
// machine's result once it is applied.
type Proposer interface {
	Propose(ctx context.Context, cmd *irxv1.Command) (*fsm.Result, error)
}

// ReadBarrier makes a read see what the consistency level promises: for
// linearizable reads it waits until this node has applied every write the
// leader had committed when the read began.
type ReadBarrier interface {
	ReadBarrier(ctx context.Context, consistency irxv1.ReadConsistency) error
}

// Store is the read side of the state machine.
type Store interface {
	Get(id string, version int64) (*irxv1.Incident, error)
	List(q fsm.Query, pageSize int, pageToken string) ([]*irxv1.Incident, string, error)
	Versions(id string, pageSize int, pageToken string) ([]*irxv1.Incident, string, error)
	// VersionActions returns the operator action that made each version
	// (nil where none did).
	VersionActions(id string, versions []int64) ([]*irxv1.OperatorAction, error)
}

// IncidentService implements irx.v1.IncidentService.
type IncidentService struct {
	irxv1.UnimplementedIncidentServiceServer
	proposer   Proposer
	barrier    ReadBarrier
	store      Store
	futureSkew time.Duration

	importDefaults ImportDefaults
	team           string // the writer an export names
}

// NewIncidentService returns the service over a proposer, a read barrier
// and a store. A write whose incident holds a time more than futureSkew
// past this node's clock is refused.
func NewIncidentService(p Proposer, b ReadBarrier, s Store, futureSkew time.Duration) *IncidentService {
	return &IncidentService{proposer: p, barrier: b, store: s, futureSkew: futureSkew}
}

// checkInput refuses what the input rules refuse, here at the edge: control
// and bidirectional formatting characters in the request id and the
// record (record.CheckRecordText, which the state machine cannot apply
// without refusing entries an older release accepted), and times too far
// in the future (the state machine reads no clock).
func (s *IncidentService) checkInput(inc *irxv1.Incident, requestID string) []record.Violation {
	var vs []record.Violation
	if why := record.CheckText(requestID, record.Identifier); why != "" {
		vs = append(vs, record.Violation{Field: "request_id", Description: why})
	}
	if len(requestID) > MaxRequestIDLength {
		vs = append(vs, record.Violation{Field: "request_id", Description: fmt.Sprintf("is longer than %d bytes", MaxRequestIDLength)})
	}
	if inc != nil {
		vs = append(vs, record.CheckRecordText(inc, "incident")...)
		vs = append(vs, record.CheckFutureTimes(inc, "incident", time.Now().Add(s.futureSkew), s.futureSkew)...)
	}
	return vs
}

// CreateIncident implements irx.v1.IncidentService.
func (s *IncidentService) CreateIncident(ctx context.Context, req *irxv1.CreateIncidentRequest) (*irxv1.CreateIncidentResponse, error) {
	res, err := s.create(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := &irxv1.CreateIncidentResponse{RequestReplayed: res.Replayed}
	if res.Encoded != nil {
		wire.SetEncoded(resp, wire.CreateIncidentResponseIncident, res.Encoded)
	} else {
		resp.Incident = res.Incident
	}
	return resp, nil
}

// create is CreateIncident up to the state machine's result, which holds
// the stored record decoded or, as the leader answers, encoded.
func (s *IncidentService) create(ctx context.Context, req *irxv1.CreateIncidentRequest) (*fsm.Result, error) {
	// The incident is validated once, by the leader, when it completes the
	// create for the log (fsm.CompleteCreate drops the output-only fields,
	// applies the defaults and validates): bad input never reaches the log,
	// wherever the call arrived. Only a request that is already refused is
	// validated here, so that one answer names every problem.
	inc := req.GetIncident()
	if vs := s.checkInput(inc, req.GetRequestId()); inc == nil || len(vs) > 0 {
		if inc != nil {
			record.ClearOutputOnly(inc)
		}
		var verr *record.ValidationError
		if err := record.Validate(inc, "incident"); errors.As(err, &verr) {
			for _, v := range verr.Violations {
				if !slices.ContainsFunc(vs, func(o record.Violation) bool { return o.Field == v.Field }) {
					vs = append(vs, v)
				}
			}
		}
		return nil, invalidArgument(vs)
	}
	create := &irxv1.CreateIncidentCommand{Incident: inc, RequestId: req.GetRequestId()}
	if create.RequestId != "" {
		digest, err := RequestDigest(inc)
		if err != nil {
			return nil, err
		}
		create.RequestDigest = digest
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: create}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return res, nil
}

// RequestDigest is the digest a create keeps with its client's request id:
// SHA-256 of the deterministic encoding of the incident as the client sent
// it, before defaults or stamping, so that a retry of the same request has
// the same digest on whichever node it arrives, and any change to what the
// client asked for has another. It is made once, here, and carried in the
// command, so every replica compares the same bytes.
func RequestDigest(inc *irxv1.Incident) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inc)
	if err != nil {
		return nil, fmt.Errorf("encode incident for its digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// WithdrawIncident implements irx.v1.IncidentService.
func (s *IncidentService) WithdrawIncident(ctx context.Context, req *irxv1.WithdrawIncidentRequest) (*irxv1.WithdrawIncidentResponse, error) {
	vs := checkID(req.GetId(), "id")
	if len(req.GetReason()) > record.MaxWithdrawReasonLength {
		vs = append(vs, record.Violation{Field: "reason", Description: fmt.Sprintf("is longer than %d bytes", record.MaxWithdrawReasonLength)})
	}
	if why := record.CheckText(req.GetReason(), record.FreeText); why != "" {
		vs = append(vs, record.Violation{Field: "reason", Description: why})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{
		WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: req.GetId(), Reason: req.GetReason()},
	}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.WithdrawIncidentResponse{Incident: res.Incident}, nil
}

// GetIncident implements irx.v1.IncidentService.
func (s *IncidentService) GetIncident(ctx context.Context, req *irxv1.GetIncidentRequest) (*irxv1.GetIncidentResponse, error) {
	vs := append(checkID(req.GetId(), "id"), record.CheckConsistency(req.GetConsistency())...)
	if req.GetVersion() < 0 {
		vs = append(vs, record.Violation{Field: "version", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	inc, err := s.store.Get(req.GetId(), req.GetVersion())
	if err != nil {
		return nil, ToStatus(err)
	}
	acts, err := s.store.VersionActions(inc.GetId(), []int64{inc.GetVersion()})
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.GetIncidentResponse{Incident: inc, VersionAction: acts[0]}, nil
}

// ListIncidents implements irx.v1.IncidentService.
func (s *IncidentService) ListIncidents(ctx context.Context, req *irxv1.ListIncidentsRequest) (*irxv1.ListIncidentsResponse, error) {
	q, vs := queryFrom(req)
	vs = append(vs, record.CheckConsistency(req.GetConsistency())...)
	if req.GetPageSize() < 0 {
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	incidents, next, err := s.store.List(q, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &irxv1.ListIncidentsResponse{Incidents: incidents, NextPageToken: next}, nil
}

func queryFrom(req *irxv1.ListIncidentsRequest) (fsm.Query, []record.Violation) {
	var vs []record.Violation
	q := fsm.Query{
		Status:        req.GetStatus(),
		TaxonomyClass: req.GetTaxonomyClass(),
		TaxonomyType:  req.GetTaxonomyType(),
		TLP:           req.GetTlp(),
		OriginTeam:    req.GetOriginTeam(),
		Indicator:     req.GetIndicator(),

		IncludeWithdrawn: req.GetIncludeWithdrawn(),
	}
	if _, ok := irxv1.Status_name[int32(q.Status)]; !ok {
		vs = append(vs, record.Violation{Field: "status", Description: fmt.Sprintf("%d is not a Status", q.Status)})
	}
	if _, ok := irxv1.Tlp_name[int32(q.TLP)]; !ok {
		vs = append(vs, record.Violation{Field: "tlp", Description: fmt.Sprintf("%d is not a Tlp", q.TLP)})
	}
	switch {
	case q.TaxonomyClass == "" && q.TaxonomyType != "":
		vs = append(vs, record.Violation{Field: "taxonomy_type", Description: "needs taxonomy_class"})
	case q.TaxonomyClass != "" && record.TaxonomyTypes(q.TaxonomyClass) == nil:
		vs = append(vs, record.Violation{Field: "taxonomy_class", Description: fmt.Sprintf("%q is not a taxonomy class; one of %s", q.TaxonomyClass, strings.Join(record.TaxonomyClasses(), ", "))})
	case q.TaxonomyType != "" && !record.ValidTaxonomy(q.TaxonomyClass, q.TaxonomyType):
		vs = append(vs, record.Violation{Field: "taxonomy_type", Description: fmt.Sprintf("%q is not a type of class %q", q.TaxonomyType, q.TaxonomyClass)})
	}
	if q.OriginTeam != "" {
		if err := record.ValidateTeamID(q.OriginTeam); err != nil {
			vs = append(vs, record.Violation{Field: "origin_team", Description: err.Error()})
		}
	}
	if t := req.GetReportedAfter(); t != nil {
		if err := t.CheckValid(); err != nil {
			vs = append(vs, record.Violation{Field: "reported_after", Description: err.Error()})
		}
		q.ReportedAfter = t.AsTime()
	}
	if t := req.GetReportedBefore(); t != nil {
		if err := t.CheckValid(); err != nil {
			vs = append(vs, record.Violation{Field: "reported_before", Description: err.Error()})
		}
		q.ReportedBefore = t.AsTime()
	}
	if !q.ReportedAfter.IsZero() && !q.ReportedBefore.IsZero() && !q.ReportedAfter.Before(q.ReportedBefore) {
		vs = append(vs, record.Violation{Field: "reported_before", Description: "must be after reported_after"})
	}
	return q, vs
}

// UpdateIncident implements irx.v1.IncidentService.
func (s *IncidentService) UpdateIncident(ctx context.Context, req *irxv1.UpdateIncidentRequest) (*irxv1.UpdateIncidentResponse, error) {
	var vs []record.Violation
	if req.GetIncident() == nil {
		vs = append(vs, record.Violation{Field: "incident", Description: "is required, with its id"})
	} else {
		vs = append(vs, checkID(req.GetIncident().GetId(), "incident.id")...)
	}
	var verr *record.ValidationError
	if err := record.CheckMask(req.GetUpdateMask(), "update_mask"); errors.As(err, &verr) {
		vs = append(vs, verr.Violations...)
	}
	if req.GetExpectedVersion() < 0 {
		vs = append(vs, record.Violation{Field: "expected_version", Description: "must not be negative"})
	}
	vs = append(vs, s.checkInput(req.GetIncident(), "")...)
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_UpdateIncident{
		UpdateIncident: &irxv1.UpdateIncidentCommand{
			Incident:        req.GetIncident(),
			UpdateMask:      req.GetUpdateMask(),
			ExpectedVersion: req.GetExpectedVersion(),
		},
	}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.UpdateIncidentResponse{Incident: res.Incident}, nil
}

// ListIncidentVersions implements irx.v1.IncidentService.
func (s *IncidentService) ListIncidentVersions(ctx context.Context, req *irxv1.ListIncidentVersionsRequest) (*irxv1.ListIncidentVersionsResponse, error) {
	vs := append(checkID(req.GetId(), "id"), record.CheckConsistency(req.GetConsistency())...)
	if req.GetPageSize() < 0 {
		vs = append(vs, record.Violation{Field: "page_size", Description: "must not be negative"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	versions, next, err := s.store.Versions(req.GetId(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, ToStatus(err)
	}
	numbers := make([]int64, len(versions))
	for i, v := range versions {
		numbers[i] = v.GetVersion()
	}
	acts, err := s.store.VersionActions(req.GetId(), numbers)
	if err != nil {
		return nil, ToStatus(err)
	}
	resp := &irxv1.ListIncidentVersionsResponse{Incidents: versions, NextPageToken: next, VersionActions: make([]*irxv1.OperatorAction, len(acts))}
	for i, a := range acts {
		if a == nil {
			a = &irxv1.OperatorAction{}
		}
		resp.VersionActions[i] = a
	}
	return resp, nil
}

func checkID(id, field string) []record.Violation {
	if id == "" {
		return []record.Violation{{Field: field, Description: "is required: <team-id>:<ticket>"}}
	}
	if _, err := record.ParseID(id); err != nil {
		return []record.Violation{{Field: field, Description: err.Error()}}
	}
	return nil
}

// invalidArgument is INVALID_ARGUMENT naming every bad field.
func invalidArgument(vs []record.Violation) error {
	return errgrpc.ToStatus(&record.ValidationError{What: "request", Violations: vs})
}

// ToStatus is the status a service answers for an error of the core
// (errgrpc.ToStatus), with the few errors that are about a request field
// named as such.
func ToStatus(err error) error {
	var verr *record.ValidationError
	switch {
	case errors.Is(err, fsm.ErrBadPageToken):
		return invalidArgument([]record.Violation{{Field: "page_token", Description: err.Error() + ": pass next_page_token with the same filters"}})
	case errors.As(err, &verr) && verr.What == policy.ValidationWhat:
		return policyViolations(err, "policy")
	case errors.Is(err, record.ErrInvalidID) && !errors.As(err, new(*record.ValidationError)):
		return invalidArgument([]record.Violation{{Field: "id", Description: err.Error()}})
	}
	return errgrpc.ToStatus(err)
}
