package node

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs/errgrpc"
	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/node/api"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// nodeService implements irx.v1.NodeService for the other nodes of the team.
type nodeService struct {
	irxv1.UnimplementedNodeServiceServer
	n *Node
}

func (s nodeService) Propose(ctx context.Context, req *irxv1.ProposeRequest) (*irxv1.ProposeResponse, error) {
	if req.GetCommand() == nil {
		return nil, errgrpc.ToStatus(record.Invalid("command", "is required"))
	}
	resp, err := proposeResponse(s.n.applyLocal(ctx, req.GetCommand()))
	return resp, errgrpc.ToStatus(err)
}

// ProposeBatch proposes the commands together, so they mostly share the
// leader's group-commit entries, and answers each as Propose would.
func (s nodeService) ProposeBatch(ctx context.Context, req *irxv1.ProposeBatchRequest) (*irxv1.ProposeBatchResponse, error) {
	cmds := req.GetCommands()
	if len(cmds) == 0 || len(cmds) > maxForwardCommands {
		return nil, errgrpc.ToStatus(record.Invalid("commands", "%d commands; a batch holds 1 to %d", len(cmds), maxForwardCommands))
	}
	for i, c := range cmds {
		if c == nil || c.GetKind() == nil {
			return nil, errgrpc.ToStatus(record.Invalid(fmt.Sprintf("commands[%d]", i), "a command is required"))
		}
	}
	results := make([]*irxv1.ProposeBatchResult, len(cmds))
	for i, r := range s.n.applyLocalAll(ctx, cmds) {
		resp, err := proposeResponse(r.res, r.err)
		if err == nil {
			results[i] = &irxv1.ProposeBatchResult{Response: resp}
			continue
		}
		st, mErr := encodeRefusal(err)
		if mErr != nil {
			return nil, errgrpc.ToStatus(mErr)
		}
		results[i] = &irxv1.ProposeBatchResult{CallStatus: st}
	}
	return &irxv1.ProposeBatchResponse{Results: results}, nil
}

// proposeResponse is what Propose answers for a proposal's result.
func proposeResponse(res *fsm.Result, err error) (*irxv1.ProposeResponse, error) {
	if err != nil {
		return nil, err
	}
	resp := &irxv1.ProposeResponse{Policy: res.Policy, Peer: res.Peer, TeamDescription: res.TeamDescription, Binding: res.Binding, RevokedCertificate: res.Revoked,
		RequestReplayed: res.Replayed, Alert: res.Alert, AlertSettings: res.AlertSettings, Warning: res.Warning, SharingGroup: res.SharingGroup,
		Budget: res.Budget, Retention: res.Retention}
	if res.Encoded != nil {
		wire.SetEncoded(resp, wire.ProposeResponseIncident, res.Encoded)
	} else {
		resp.Incident = res.Incident
	}
	if res.Err != nil {
		if resp.ErrorStatus, err = encodeRefusal(res.Err); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// encodeRefusal encodes an error of the core for the node that forwarded
// the write, as the status the operator API would answer (api.ToStatus:
// the same codes and field names), which decodeRefusal turns back into an
// error of the same class.
func encodeRefusal(err error) ([]byte, error) {
	st, ok := grpcstatus.FromError(api.ToStatus(err))
	if !ok {
		st = grpcstatus.New(codes.Internal, err.Error())
	}
	b, mErr := proto.Marshal(st.Proto())
	if mErr != nil {
		return nil, fmt.Errorf("encode result: %w", mErr)
	}
	return b, nil
}

func (s nodeService) ReadIndex(ctx context.Context, _ *irxv1.ReadIndexRequest) (*irxv1.ReadIndexResponse, error) {
	index, err := s.n.localReadIndex(ctx)
	if err != nil {
		return nil, errgrpc.ToStatus(err)
	}
	return &irxv1.ReadIndexResponse{ReadIndex: index}, nil
}

func (s nodeService) GetNodeStatus(context.Context, *irxv1.GetNodeStatusRequest) (*irxv1.GetNodeStatusResponse, error) {
	return s.n.nodeStatus(), nil
}
