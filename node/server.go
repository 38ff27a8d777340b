package node

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/node/api"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func registerServices(s *grpc.Server, n *Node, store api.Store, h *health.Server) {
	irxv1.RegisterIncidentServiceServer(s, api.NewIncidentService(n, n, store, n.cfg.FutureSkew).WithImportDefaults(n.cfg.Import).WithTeam(n.cfg.TeamID))
	irxv1.RegisterClusterServiceServer(s, api.NewClusterService(n))
	irxv1.RegisterPolicyServiceServer(s, api.NewPolicyService(n, n, n.state, &n.policies))
	irxv1.RegisterAccessServiceServer(s, api.NewAccessService(n, n, n.state))
	irxv1.RegisterAlertServiceServer(s, api.NewAlertService(n, n, n.state))
	irxv1.RegisterStatisticsServiceServer(s, api.NewStatisticsService(n, n, n.state, n.cfg.StatisticsMaxPeriods, n.metrics.statisticsQuery))
	irxv1.RegisterBackupServiceServer(s, api.NewBackupService(n))
	irxv1.RegisterRetentionServiceServer(s, api.NewRetentionService(n, n, n.state, n.cfg.Retention.MinKeep))
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
}

// streamWorkers has a server run calls on long-lived worker goroutines, one
// per processor, and start a goroutine only for a call that finds them all
// busy. A call on a fresh goroutine grew its stack by copying each time: on
// a follower, whose handler forwards the write through a gRPC client call,
// that showed in the profile of one sequential client, whom the workers
// serve faster; at 1,000 clients calls outnumber workers and it changes
// nothing. The option is marked experimental in grpc-go; without it only
// speed changes.
func streamWorkers() grpc.ServerOption {
	return grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))
}

// statusUnary answers a handler's error as the status api.ToStatus makes
// of it: the services may return the core's errors as they are, and no
// error leaves the node as UNKNOWN. It runs innermost, so the metrics and
// the log see the status the caller gets.
//
// A read that failed on this node's damaged state machine is answered as
// that (UNAVAILABLE, naming the file), not as INTERNAL.
func (n *Node) statusUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err == nil {
		return resp, nil
	}
	return resp, api.ToStatus(n.storageClass(err))
}

// RequestIDKey is the metadata key of a call's request id: taken from the
// caller when it sends one (so a client can correlate its own logs), made
// up otherwise, returned in the response header and logged with the call.
const RequestIDKey = "x-request-id"

// maxRequestIDLength bounds a caller's request id in logs.
const maxRequestIDLength = 128

// logUnary logs each call's outcome with its request id. Request bodies are
// never logged: they hold exactly the information the disclosure policy
// protects.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		rid := ""
		// ValueFromIncomingContext reads the one key; FromIncomingContext
		// would copy every header of every call.
		if v := metadata.ValueFromIncomingContext(ctx, RequestIDKey); len(v) > 0 && len(v[0]) <= maxRequestIDLength && printable(v[0]) {
			rid = v[0]
		}
		if rid == "" {
			rid = randomID()
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDKey, rid))
		resp, err := handler(withRequestID(ctx, rid), req)
		code := status.Code(err)
		level := callLevel(code)
		if log.Enabled(ctx, level) { // spares building the attributes of a line nobody keeps
			log.Log(ctx, level, "rpc", "method", info.FullMethod, "code", code.String(), "duration", time.Since(start), "request_id", rid)
		}
		return resp, err
	}
}

// callLevel is the level of a call's log line. At the default level (info)
// every failed call is logged, so the request id an operator is given leads
// to its line; the thousands of successful calls a second are not. A call
// the caller got wrong (bad input, not found, a conflict, no permission) is
// info; one the node failed to serve (no leader, timed out, overloaded) is a
// warning; a bug or lost data is an error.
func callLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return slog.LevelError
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Unimplemented:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// printable reports whether s is safe to put in a log line.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}
