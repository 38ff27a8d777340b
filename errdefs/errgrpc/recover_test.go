package errgrpc

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRecoverTurnsPanicsIntoInternal: a handler's panic becomes INTERNAL
// with nothing of the panic in the status, and the panic is logged.
func TestRecoverTurnsPanicsIntoInternal(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const secret = "value-from-the-request"
	_, err := RecoverUnary(log)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/irx.v1.X/Y"},
		func(context.Context, any) (any, error) { panic(secret) })
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), secret) {
		t.Fatalf("unary: %v", err)
	}
	err = RecoverStream(log)(nil, nil, &grpc.StreamServerInfo{FullMethod: "/irx.v1.X/Z"},
		func(any, grpc.ServerStream) error { panic(secret) })
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), secret) {
		t.Fatalf("stream: %v", err)
	}
	if n := strings.Count(logs.String(), "handler panic"); n != 2 || !strings.Contains(logs.String(), "/irx.v1.X/Z") {
		t.Fatalf("log:\n%s", logs.String())
	}
	// Without a panic the handler's answer passes unchanged.
	resp, err := RecoverUnary(log)(context.Background(), nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { return 7, nil })
	if resp != 7 || err != nil {
		t.Fatalf("no panic: %v %v", resp, err)
	}
}
