package node

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
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
