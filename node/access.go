package node

// Access control of the operator API. Every method declares the permission
// it needs in the proto (irx.v1.required_permission); the interceptors
// resolve those options once, when the server's services are registered,
// and admit a call only when the caller's certificate is a team operator's,
// is not revoked, and is bound to a role that holds the permission. Nodes
// are not operators: their certificates call only the intra-cluster port.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// DevelopmentIdentity is the actor of calls in development mode, where
// the operator API is plaintext on loopback and nobody presents a
// certificate.
const DevelopmentIdentity = "development"

// openServices answer any admitted caller, with no role: their methods are
// not irx's own (no option can be declared on them) and reveal nothing
// the team holds (whether the node serves, and the API's schema, which is
// public).
var openServices = []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}

// rolePermissions is what each role may do. Roles do not include each
// other: least privilege is binding exactly the roles someone needs.
var rolePermissions = map[irxv1.Role][]irxv1.Permission{
	irxv1.Role_ROLE_VIEWER:        {irxv1.Permission_PERMISSION_READ},
	irxv1.Role_ROLE_ANALYST:       {irxv1.Permission_PERMISSION_INCIDENTS_WRITE},
	irxv1.Role_ROLE_POLICY_ADMIN:  {irxv1.Permission_PERMISSION_POLICIES_WRITE},
	irxv1.Role_ROLE_CLUSTER_ADMIN: {irxv1.Permission_PERMISSION_CLUSTER_WRITE, irxv1.Permission_PERMISSION_ACCESS_WRITE},
}

// RolesWith returns the roles that hold p.
func RolesWith(p irxv1.Permission) []irxv1.Role {
	var out []irxv1.Role
	for r, ps := range rolePermissions {
		if slices.Contains(ps, p) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func allows(roles []irxv1.Role, p irxv1.Permission) bool {
	for _, r := range roles {
		if slices.Contains(rolePermissions[r], p) {
			return true
		}
	}
	return false
}

// MethodPermissions returns the permission every method of the services
// registered on s declares, by full method name; open services map to
// PERMISSION_UNSPECIFIED with open true. It fails naming every method of
// an irx service that declares none.
func MethodPermissions(s *grpc.Server) (perms map[string]irxv1.Permission, open map[string]bool, err error) {
	perms, open = map[string]irxv1.Permission{}, map[string]bool{}
	var missing []string
	for svc, info := range s.GetServiceInfo() {
		isOpen := slices.Contains(openServices, svc)
		var sd protoreflect.ServiceDescriptor
		if !isOpen {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
			if err != nil {
				return nil, nil, fmt.Errorf("service %s: no descriptor: %w", svc, err)
			}
			sd, _ = d.(protoreflect.ServiceDescriptor)
		}
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if isOpen {
				open[full] = true
				continue
			}
			var p irxv1.Permission
			if sd != nil {
				if md := sd.Methods().ByName(protoreflect.Name(m.Name)); md != nil && md.Options() != nil {
					p = proto.GetExtension(md.Options(), irxv1.E_RequiredPermission).(irxv1.Permission)
				}
			}
			if p == irxv1.Permission_PERMISSION_UNSPECIFIED {
				missing = append(missing, full)
				continue
			}
			perms[full] = p
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return perms, open, fmt.Errorf("methods without (irx.v1.required_permission): %s", strings.Join(missing, ", "))
	}
	return perms, open, nil
}

// ctxKey keys what the interceptors hand the handlers.
type ctxKey int

const (
	requestIDKey ctxKey = iota
	actorKey
)

// withRequestID and requestIDFrom carry the call's request id from the
// logging interceptor to the authorizer, which puts it in the actor.
func withRequestID(ctx context.Context, rid string) context.Context {
	return context.WithValue(ctx, requestIDKey, rid)
}

func requestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// actorFrom returns the operator call a command is proposed for, or nil.
func actorFrom(ctx context.Context) *irxv1.OperatorAction {
	a, _ := ctx.Value(actorKey).(*irxv1.OperatorAction)
	return a
}

// authorizer admits the calls of the operator API.
type authorizer struct {
	team      string
	plaintext bool // development mode: every caller is an administrator
	state     *fsm.FSM

	// Set once, after the services are registered and before serving.
	perms map[string]irxv1.Permission
	open  map[string]bool

	streams *operatorStreams
}

// caller is an admitted certificate.
type caller struct {
	identity string
	serial   string
}

func (a *authorizer) authorize(ctx context.Context, method string) (context.Context, caller, error) {
	rid := requestIDFrom(ctx)
	if a.plaintext {
		return context.WithValue(ctx, actorKey, &irxv1.OperatorAction{Identity: DevelopmentIdentity, Method: method, RequestId: rid}), caller{identity: DevelopmentIdentity}, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, caller{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(tlsInfo.State.PeerCertificates) == 0 {
		return nil, caller{}, status.Error(codes.Unauthenticated, "a client certificate from the team CA is required")
	}
	id, err := pki.PeerIdentity(tlsInfo.State)
	if err != nil {
		return nil, caller{}, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	who := id.String()
	switch {
	case id.Team != a.team:
		return nil, caller{}, status.Errorf(codes.PermissionDenied, "%s is not an operator of team %q", who, a.team)
	case id.Kind == pki.KindNode:
		return nil, caller{}, status.Errorf(codes.PermissionDenied, "%s is a node certificate: nodes are not operators and call only the intra-cluster port; use an operator certificate", who)
	case id.Kind != pki.KindOperator:
		return nil, caller{}, status.Errorf(codes.PermissionDenied, "%s is not an operator certificate", who)
	}
	c := caller{identity: who, serial: certSerial(tlsInfo.State.PeerCertificates[0])}
	access := a.state.Access()
	if what, revoked := access.Revoked(c.identity, c.serial); revoked {
		return nil, caller{}, status.Errorf(codes.PermissionDenied, "the certificate of %s is revoked (%s)", who, what)
	}
	if a.open[method] {
		return ctx, c, nil
	}
	perm, ok := a.perms[method]
	if !ok {
		return nil, caller{}, status.Errorf(codes.PermissionDenied, "%s declares no permission: refused to everybody", method)
	}
	if roles := access.Roles(who); !allows(roles, perm) {
		return nil, caller{}, status.Errorf(codes.PermissionDenied, "%s may not call %s: it needs %s (role %s); it holds %s",
			who, method, perm, rolesText(RolesWith(perm)), rolesText(roles))
	}
	return context.WithValue(ctx, actorKey, &irxv1.OperatorAction{Identity: who, Method: method, RequestId: rid}), c, nil
}

func certSerial(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return fsm.SerialString(c.SerialNumber)
}

func rolesText(roles []irxv1.Role) string {
	if len(roles) == 0 {
		return "no role"
	}
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = r.String()
	}
	return strings.Join(s, " or ")
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, _, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, c, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	ctx, release := a.streams.track(ctx, c)
	defer release()
	// A revocation applied between the check above and the tracking was
	// looked for among the tracked streams without this one.
	if what, revoked := a.state.Access().Revoked(c.identity, c.serial); revoked {
		return status.Errorf(codes.PermissionDenied, "the certificate of %s is revoked (%s)", c.identity, what)
	}
	err = handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	if cause := context.Cause(ctx); errors.Is(cause, errRevoked) {
		return status.Error(codes.PermissionDenied, cause.Error())
	}
	return err
}

// contextStream is a stream with the context the authorizer made.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

var errRevoked = errors.New("certificate revoked")

// operatorStreams are the open streams of operators, so that revoking a
// certificate ends them: each stream's context is cancelled, with the
// revocation as its cause, within a recheck of the applied state.
type operatorStreams struct {
	mu      sync.Mutex
	streams map[*operatorStream]struct{}
}

type operatorStream struct {
	caller caller
	cancel context.CancelCauseFunc
}

func (s *operatorStreams) track(ctx context.Context, c caller) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	st := &operatorStream{caller: c, cancel: cancel}
	s.mu.Lock()
	if s.streams == nil {
		s.streams = map[*operatorStream]struct{}{}
	}
	s.streams[st] = struct{}{}
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.streams, st)
		s.mu.Unlock()
		cancel(nil)
	}
}

// cutRevoked ends every open stream whose certificate access revokes.
func (s *operatorStreams) cutRevoked(access *fsm.Access) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := 0
	for st := range s.streams {
		if what, revoked := access.Revoked(st.caller.identity, st.caller.serial); revoked {
			st.cancel(fmt.Errorf("%w: the certificate of %s is revoked (%s)", errRevoked, st.caller.identity, what))
			delete(s.streams, st)
			cut++
		}
	}
	return cut
}

// watchAccess ends the open streams of revoked certificates after every
// change of the access state, until stop closes. The state machine
// replaces its Access value only when a command changed it, so comparing
// pointers finds the changes.
func (n *Node) watchAccess(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	last := n.state.Access()
	for {
		if err := n.state.WaitApplied(ctx, n.state.AppliedIndex()+1); err != nil {
			return
		}
		cur := n.state.Access()
		if cur == last {
			continue
		}
		last = cur
		if cut := n.operatorStreams.cutRevoked(cur); cut > 0 {
			n.log.Warn("ended operator streams of revoked certificates", "streams", cut)
		}
		n.cutRevokedNodes(cur)
	}
}

// bootstrapAccess binds every role to the team's first operator
// certificate at the team's first start: the leader proposes it until the
// state says the team has had a binding (the state machine applies only
// the first such grant, so two leaders in turn cannot grant it twice).
func (n *Node) bootstrapAccess(stop <-chan struct{}) {
	identity := pki.OperatorIdentity(n.cfg.TeamID, n.cfg.FirstOperator).String()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for !n.state.Access().Bootstrapped() {
		if n.IsLeader() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := n.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_ChangeRole{ChangeRole: &irxv1.ChangeRoleCommand{Identity: identity, Bootstrap: true}}})
			cancel()
			if err == nil {
				n.log.Info("bound every role to the team's first operator", "identity", identity)
			} else {
				n.log.Debug("bootstrap binding not yet committed", "error", err)
			}
		}
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

// RecordAction commits the action of an operator call whose change is not
// a state machine command (membership, leadership), naming target. Calls
// without an operator (forwarded between nodes) record nothing: the node
// that took the operator's call records it.
func (n *Node) RecordAction(ctx context.Context, target string) error {
	actor := actorFrom(ctx)
	if actor == nil {
		return nil
	}
	a := proto.CloneOf(actor)
	a.Target = target
	_, err := n.Propose(ctx, &irxv1.Command{Actor: a, Kind: &irxv1.Command_RecordAction{RecordAction: &irxv1.RecordActionCommand{}}})
	return err
}

// admitNode refuses a node certificate the team revoked, at every
// intra-cluster handshake in both directions.
func (n *Node) admitNode(id pki.Identity, leaf *x509.Certificate) error {
	if n.state == nil {
		return nil
	}
	if what, revoked := n.state.Access().Revoked(id.String(), certSerial(leaf)); revoked {
		return fmt.Errorf("certificate revoked (%s)", what)
	}
	return nil
}

// cutRevokedNodes closes the intra-cluster connections (Raft and forwarded
// calls) of node certificates access revokes.
func (n *Node) cutRevokedNodes(access *fsm.Access) {
	if n.stream == nil || !access.HasRevocations() {
		return
	}
	if closed := n.stream.CloseRefused(); closed > 0 {
		n.log.Warn("closed intra-cluster connections of revoked node certificates", "connections", closed)
	}
}
