package node

import (
	"context"
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
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
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

// TestDecodeStatus: the leader's encoded answers come back as the errors
// they were, and an undecodable one is an INTERNAL error, not a success.
func TestDecodeStatus(t *testing.T) {
	want := errNotLeader
	st, _ := grpcstatus.FromError(want)
	b, err := proto.Marshal(st.Proto())
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeStatus(b); !isNotLeader(got) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	if got := decodeStatus([]byte{0xff}); grpcstatus.Code(got) != codes.Internal {
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
