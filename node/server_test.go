package node

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// At the default level every failed call leaves a line with its method,
// code, duration and request id, and no successful one does.
func TestFailedCallsAreLoggedAtTheDefaultLevel(t *testing.T) {
	var got records
	logger := slog.New(&got)
	info := &grpc.UnaryServerInfo{FullMethod: "/irx.v1.IncidentService/GetIncident"}
	for _, tc := range []struct {
		code codes.Code
		want slog.Level
	}{
		{codes.OK, slog.LevelDebug},
		{codes.NotFound, slog.LevelInfo},
		{codes.InvalidArgument, slog.LevelInfo},
		{codes.Aborted, slog.LevelInfo},
		{codes.PermissionDenied, slog.LevelInfo},
		{codes.Unavailable, slog.LevelWarn},
		{codes.DeadlineExceeded, slog.LevelWarn},
		{codes.Internal, slog.LevelError},
	} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(RequestIDKey, "req-"+tc.code.String()))
		_, _ = logUnary(logger)(ctx, nil, info, func(context.Context, any) (any, error) {
			return nil, status.Error(tc.code, "the secret 192.0.2.7 is not an incident")
		})
		recs := got.take()
		if len(recs) != 1 {
			t.Fatalf("%v: %d lines", tc.code, len(recs))
		}
		r := recs[0]
		if r.Level != tc.want {
			t.Errorf("%v logged at %v, want %v", tc.code, r.Level, tc.want)
		}
		if attr(r, "method") != info.FullMethod || attr(r, "code") != tc.code.String() || attr(r, "request_id") != "req-"+tc.code.String() || attr(r, "duration") == "" {
			t.Errorf("%v: line without method, code, duration and request id: %v", tc.code, r)
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" || a.Key == "message" {
				t.Errorf("%v: the error's message is logged (it may quote the request): %v", tc.code, a)
			}
			return true
		})
	}
}
