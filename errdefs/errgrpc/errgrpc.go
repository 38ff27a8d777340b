// Package errgrpc is where irx's errors become gRPC statuses: the services
// at the edge return ToStatus of what the core returned, and nothing in the
// core builds a status. Between the nodes of a team (a write forwarded to
// the leader) FromStatus turns a status back into the error it was made
// from, so the node that answers the client sees the same class, message
// and field violations as the one that applied the write.
package errgrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/record"
)

// classes maps each errdefs class to its code, in the order they are
// checked.
var classes = []struct {
	class error
	code  codes.Code
}{
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
	{errdefs.ErrConflict, codes.Aborted},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrDeadlineExceeded, codes.DeadlineExceeded},
	{errdefs.ErrPermissionDenied, codes.PermissionDenied},
	{errdefs.ErrOutOfRange, codes.OutOfRange},
	{errdefs.ErrResourceExhausted, codes.ResourceExhausted},
}

// ToStatus returns err as a gRPC status error (nil for nil):
//   - a *record.ValidationError is INVALID_ARGUMENT with a
//     google.rpc.BadRequest naming every field;
//   - an error of an errdefs class has that class's code;
//   - the caller's context ending is DEADLINE_EXCEEDED or CANCELLED;
//   - an error that is already a status (from a call this one made) keeps
//     its status;
//   - anything else is INTERNAL: a fault of ours, not of the request.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	var verr *record.ValidationError
	if errors.As(err, &verr) {
		return invalidArgument(verr.Violations)
	}
	var exists *errdefs.ExistsError
	if errors.As(err, &exists) {
		st := status.New(codes.AlreadyExists, err.Error())
		if withDetails, dErr := st.WithDetails(&errdetails.ResourceInfo{
			ResourceType: exists.Resource, ResourceName: exists.Name, Description: exists.Msg,
		}); dErr == nil {
			st = withDetails
		}
		return st.Err()
	}
	for _, c := range classes {
		if errors.Is(err, c.class) {
			return status.Error(c.code, err.Error())
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// invalidArgument builds INVALID_ARGUMENT with a google.rpc.BadRequest
// naming every bad field. A violation located in YAML names the request
// field and says where in the YAML.
func invalidArgument(vs []record.Violation) error {
	br := &errdetails.BadRequest{}
	msgs := make([]string, len(vs))
	for i, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		msgs[i] = v.Field + " " + v.Description
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(msgs, "; "))
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// FromStatus is the error a status stands for: of the class of its code,
// with its message, and a *record.ValidationError when it names fields.
// An OK status is nil.
func FromStatus(st *status.Status) error {
	if st.Code() == codes.OK {
		return nil
	}
	if st.Code() == codes.AlreadyExists {
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.ResourceInfo); ok && ri.GetResourceName() != "" {
				return &errdefs.ExistsError{Resource: ri.GetResourceType(), Name: ri.GetResourceName(), Msg: st.Message()}
			}
		}
	}
	if st.Code() == codes.InvalidArgument {
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				verr := &record.ValidationError{What: "request"}
				for _, v := range br.GetFieldViolations() {
					verr.Violations = append(verr.Violations, record.Violation{Field: v.GetField(), Description: v.GetDescription()})
				}
				return verr
			}
		}
	}
	for _, c := range classes {
		if c.code == st.Code() {
			return errdefs.New(c.class, st.Message())
		}
	}
	return st.Err()
}

// UnaryServerInterceptor answers a handler's error as ToStatus makes it:
// handlers may return the core's errors as they are.
func UnaryServerInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, ToStatus(err)
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func StreamServerInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return ToStatus(handler(srv, ss))
}

// RecoverUnary turns a handler's panic into INTERNAL instead of letting it
// end the process: no input, from an operator or a peer, may stop a node.
// The panic and its stack go to the log, never to the caller.
func RecoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = recovered(log, info.FullMethod, r)
			}
		}()
		return handler(ctx, req)
	}
}

// RecoverStream is RecoverUnary for streaming calls.
func RecoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = recovered(log, info.FullMethod, r)
			}
		}()
		return handler(srv, ss)
	}
}

func recovered(log *slog.Logger, method string, r any) error {
	log.Error("handler panic", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}
