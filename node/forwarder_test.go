package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// TestProposeBatchRefusesEmpty: a batch without commands, or with an empty
// one, is refused as a whole before anything is proposed (the service's
// node is nil here: touching it would panic).
func TestProposeBatchRefusesEmpty(t *testing.T) {
	s := nodeService{}
	for name, req := range map[string]*irxv1.ProposeBatchRequest{
		"no commands":       {},
		"a nil command":     {Commands: []*irxv1.Command{{Kind: &irxv1.Command_LeaderNoop{LeaderNoop: &irxv1.LeaderNoopCommand{}}}, nil}},
		"an empty command":  {Commands: []*irxv1.Command{{}}},
		"too many commands": {Commands: make([]*irxv1.Command, maxForwardCommands+1)},
	} {
		_, err := s.ProposeBatch(context.Background(), req)
		if grpcstatus.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}

// TestRefusalsCrossNodes: what the leader's core refused comes back to the
// forwarding node as an error of the same class, message and fields (the
// not-leader refusal is still recognised as one, a validation error still
// names its fields), and an undecodable answer is an error, not a success.
func TestRefusalsCrossNodes(t *testing.T) {
	for _, want := range []error{
		errNotLeader,
		fmt.Errorf("incident cert-a:9: %w", errdefs.ErrNotFound),
		&record.ValidationError{Violations: []record.Violation{{Field: "incident.tlp", Description: "is required"}}},
		fsm.ErrStaleCursor,
	} {
		b, err := encodeRefusal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeRefusal(b)
		if got == nil || got.Error() == "" {
			t.Fatalf("%v decoded as %v", want, got)
		}
		for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrConflict, errdefs.ErrFailedPrecondition} {
			if errors.Is(want, class) != errors.Is(got, class) {
				t.Errorf("%v decoded as %v: class %v lost or gained", want, got, class)
			}
		}
		if errors.Is(want, errNotLeader) && !isNotLeader(got) {
			t.Errorf("the not-leader refusal is not recognised after crossing: %v", got)
		}
		var verr *record.ValidationError
		if errors.As(want, &verr) {
			var gotV *record.ValidationError
			if !errors.As(got, &gotV) || len(gotV.Violations) != 1 || gotV.Violations[0].Field != "incident.tlp" {
				t.Errorf("violations lost: %v", got)
			}
		}
	}
	if got := decodeRefusal([]byte{0xff}); got == nil || errors.Is(got, errdefs.ErrNotFound) {
		t.Fatalf("undecodable: %v", got)
	}
}

// olderLeader is what a node from before ProposeBatch serves: Propose
// only. It answers each create with an incident named after its request id.
type olderLeader struct {
	irxv1.UnimplementedNodeServiceServer
}

func (o *olderLeader) Propose(_ context.Context, req *irxv1.ProposeRequest) (*irxv1.ProposeResponse, error) {
	return &irxv1.ProposeResponse{Incident: &irxv1.Incident{Id: req.GetCommand().GetCreateIncident().GetRequestId()}}, nil
}

// TestForwarderFallsBackToPropose: during a rolling upgrade the leader may
// not know ProposeBatch yet; grouped writes then go one by one, and every
// caller still gets its own answer.
func TestForwarderFallsBackToPropose(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var batches atomic.Int64
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == irxv1.NodeService_ProposeBatch_FullMethodName {
			batches.Add(1)
		}
		return handler(ctx, req)
	}))
	irxv1.RegisterNodeServiceServer(srv, &olderLeader{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	n := &Node{cfg: Config{NodeID: "n2"}, stopObserving: make(chan struct{})}
	n.cfg.Raft.ApplyTimeout = 10 * time.Second
	defer close(n.stopObserving)
	f := newForwarder(n)
	go f.run()

	const writes = 200
	var wg sync.WaitGroup
	errs := make(chan error, writes)
	for i := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("req-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp, err := f.submit(ctx, conn, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{RequestId: id}}})
			if err != nil || resp.GetIncident().GetId() != id {
				errs <- fmt.Errorf("write %s: %v, %v", id, resp, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Grouping was tried (the fallback was exercised), and once the leader
	// said it has no ProposeBatch, not asked again beyond the calls that
	// were already in flight.
	if n := batches.Load(); n == 0 || n > maxForwardInFlight {
		t.Fatalf("%d ProposeBatch calls, want 1 to %d", n, maxForwardInFlight)
	}
}
