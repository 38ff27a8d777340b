// Package errdefs names the kinds of failure irx's core reports, so that
// the edge (errdefs/errgrpc) can turn each into the right gRPC status
// without knowing where it came from.
//
// The core returns errors that wrap one of these classes, with what went
// wrong in the words of the layer that found it:
//
//	fmt.Errorf("incident %s: %w", id, errdefs.ErrNotFound)
//	errdefs.New(errdefs.ErrConflict, "stale cursor")   // a sentinel of its own class
//
// and callers test the class with errors.Is. A package keeps sentinels of
// its own (fsm.ErrStaleCursor) where callers must tell two failures of one
// class apart.
package errdefs

import "errors"

// The classes. Each maps to one gRPC code at the edge.
var (
	// ErrInvalidArgument: the request is wrong whatever the state; fix it
	// (INVALID_ARGUMENT). record.ValidationError carries the fields.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: what the request names does not exist (NOT_FOUND).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: what the request would create exists
	// (ALREADY_EXISTS).
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the state does not allow it, and retrying
	// will not change that until something else does
	// (FAILED_PRECONDITION).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrConflict: another change got there first; read again and retry
	// (ABORTED).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the team cannot answer now (no leader, shutting
	// down); retry with the same request id (UNAVAILABLE).
	ErrUnavailable = errors.New("unavailable")
	// ErrDeadlineExceeded: not confirmed in the caller's time; the change
	// may still apply (DEADLINE_EXCEEDED).
	ErrDeadlineExceeded = errors.New("deadline exceeded")
	// ErrPermissionDenied: the caller may not do it (PERMISSION_DENIED).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrOutOfRange: a position beyond the end, such as a cursor past the
	// feed's last sequence (OUT_OF_RANGE).
	ErrOutOfRange = errors.New("out of range")
	// ErrResourceExhausted: over a limit (RESOURCE_EXHAUSTED).
	ErrResourceExhausted = errors.New("resource exhausted")
)

// classed is an error of a class with its own message.
type classed struct {
	msg   string
	class error
}

func (e *classed) Error() string { return e.msg }
func (e *classed) Unwrap() error { return e.class }

// New returns an error with message msg of class: errors.Is finds both the
// error itself and its class.
func New(class error, msg string) error {
	return &classed{msg: msg, class: class}
}

// StorageError reports that one of a node's disks cannot take writes, or
// holds a damaged file: which one (its role, such as "raft log disk" or
// "state machine"), where (its directory or the file), and why. Its
// class says what a client can do: ErrResourceExhausted when the disk is
// short of space (nothing was written; retry once space is freed or on
// another node), ErrUnavailable when a write stalled or failed (the write
// may still land; retry with the same request id).
type StorageError struct {
	Disk   string
	Path   string
	Reason string
	Class  error
}

func (e *StorageError) Error() string {
	return e.Disk + " " + e.Path + ": " + e.Reason
}

// Unwrap returns the error's class.
func (e *StorageError) Unwrap() error { return e.Class }

// ExistsError is an ErrAlreadyExists that names what exists, so that a
// client can go on from it (read it, change it). The edge answers it with
// a google.rpc.ResourceInfo.
type ExistsError struct {
	// Resource is the type of what exists (e.g. "irx.v1.Incident"), Name
	// its name (e.g. "dev:12").
	Resource, Name string
	Msg            string
}

func (e *ExistsError) Error() string { return e.Msg }
func (e *ExistsError) Unwrap() error { return ErrAlreadyExists }
