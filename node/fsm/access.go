package fsm

// Access control and accountability in the replicated state: who holds
// which roles (bindings), which certificates no node admits (revocations),
// and what operators did (actions). Every node enforces the same bindings
// and revocations because they are applied from the same log; the action
// of an operator call is written in the same batch as its change.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Key layout of access control:
//
//	acc/bootstrapped                      set once the first operator's bootstrap grant applied
//	acc/b/<identity>                      RoleBinding
//	acc/r/i/<identity>                    RevokedCertificate, by identity
//	acc/r/s/<serial hex>                  RevokedCertificate, by serial
//	act/<time12><index8><position4>       OperatorAction, in commit order of time
//	actv/<team>\0<ticket8><version8>      the act/ key of the action that made an incident version
var (
	keyAccessBootstrapped = []byte("acc/bootstrapped")
	prefixAccess          = []byte("acc/")
	prefixBinding         = []byte("acc/b/")
	prefixRevoked         = []byte("acc/r/")
	prefixRevokedID       = []byte("acc/r/i/")
	prefixRevokedSerial   = []byte("acc/r/s/")
	prefixAction          = []byte("act/")
	prefixVersionAction   = []byte("actv/")
)

// maxRevocations bounds the revocation list, which every node holds in
// memory and checks at every call.
const maxRevocations = 10000

// Access is the team's bindings and revocations as applied: an immutable
// value, replaced whenever a command changes them.
type Access struct {
	bindings       map[string][]irxv1.Role
	revokedIDs     map[string]bool
	revokedSerials map[string]bool
	bootstrapped   bool
}

// Roles returns the roles bound to identity, in enum order.
func (a *Access) Roles(identity string) []irxv1.Role { return a.bindings[identity] }

// Bootstrapped reports whether the first operator's bootstrap grant has
// applied.
func (a *Access) Bootstrapped() bool { return a.bootstrapped }

// Revoked reports whether the certificate with identity and serial (as
// SerialString writes it) is revoked, and what of it.
func (a *Access) Revoked(identity, serial string) (string, bool) {
	switch {
	case a.revokedIDs[identity]:
		return "identity " + identity, true
	case serial != "" && a.revokedSerials[serial]:
		return "serial number " + serial, true
	}
	return "", false
}

// HasRevocations reports whether anything is revoked.
func (a *Access) HasRevocations() bool { return len(a.revokedIDs)+len(a.revokedSerials) > 0 }

// SerialString is the canonical form of a certificate serial number:
// lower-case hex without leading zeros.
func SerialString(n *big.Int) string { return n.Text(16) }

// ParseSerial reads a serial number in hex, with or without colons (as
// openssl prints it), and returns its canonical form.
func ParseSerial(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(s), "0x"), ":", ""))
	if h == "" || len(h) > 40 { // RFC 5280 serials are at most 20 octets
		return "", fmt.Errorf("%q is not a certificate serial number: want up to 40 hex digits", s)
	}
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || n.Sign() < 0 {
		return "", fmt.Errorf("%q is not a certificate serial number: want hex digits", s)
	}
	return SerialString(n), nil
}

// Access returns the team's current bindings and revocations.
func (f *FSM) Access() *Access { return f.access.Load() }

func loadAccess(r pebble.Reader) (*Access, error) {
	a := &Access{bindings: map[string][]irxv1.Role{}, revokedIDs: map[string]bool{}, revokedSerials: map[string]bool{}}
	_, closer, err := r.Get(keyAccessBootstrapped)
	switch {
	case err == nil:
		a.bootstrapped = true
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return nil, fmt.Errorf("fsm: read access: %w", err)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixAccess, UpperBound: prefixEnd(prefixAccess)})
	if err != nil {
		return nil, fmt.Errorf("fsm: read access: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		switch {
		case bytes.HasPrefix(k, prefixBinding):
			b := &irxv1.RoleBinding{}
			if err := proto.Unmarshal(it.Value(), b); err != nil {
				return nil, errors.Join(fmt.Errorf("fsm: decode %q: %w", k, err), it.Close())
			}
			a.bindings[b.GetIdentity()] = b.GetRoles()
		case bytes.HasPrefix(k, prefixRevokedID):
			a.revokedIDs[string(k[len(prefixRevokedID):])] = true
		case bytes.HasPrefix(k, prefixRevokedSerial):
			a.revokedSerials[string(k[len(prefixRevokedSerial):])] = true
		}
	}
	return a, it.Close()
}

func bindingKey(identity string) []byte { return cat(prefixBinding, []byte(identity)) }

func violation(field, format string, args ...any) error {
	return &record.ValidationError{Violations: []record.Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// checkOperator checks that identity names an operator of this team.
func (a *applier) checkOperator(identity string) error {
	id, err := pki.ParseIdentityString(identity)
	if err != nil {
		return violation("identity", "%v", err)
	}
	if id.Team != a.fsm.team || id.Kind != pki.KindOperator {
		return violation("identity", "%s is not an operator of team %q: want irx://%s/operator/<name>", identity, a.fsm.team, a.fsm.team)
	}
	return nil
}

// changeRole grants or revokes a role. A bootstrap grant gives every role,
// once in the team's life: the first leader of a new team proposes it for
// the operator certificate made with the team, and whichever leader's
// proposal comes first is the only one applied. Other grants do not stand
// in its way (in development mode a caller may grant before it applies),
// and once applied it never applies again (a first operator whose roles
// were taken away does not get them back by a restart).
func (a *applier) changeRole(c *irxv1.ChangeRoleCommand) *Result {
	if err := a.checkOperator(c.GetIdentity()); err != nil {
		return &Result{Err: err}
	}
	key := bindingKey(c.GetIdentity())
	b := &irxv1.RoleBinding{}
	if _, err := getProto(a.reads(), key, b); err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	roles := b.GetRoles()
	switch {
	case c.GetBootstrap():
		if a.fsm.access.Load().bootstrapped || a.bound {
			return &Result{}
		}
		roles = []irxv1.Role{irxv1.Role_ROLE_VIEWER, irxv1.Role_ROLE_ANALYST, irxv1.Role_ROLE_POLICY_ADMIN, irxv1.Role_ROLE_CLUSTER_ADMIN}
	case c.GetRole() == irxv1.Role_ROLE_UNSPECIFIED || irxv1.Role_name[int32(c.GetRole())] == "":
		return &Result{Err: violation("role", "%d is not a role: want ROLE_VIEWER, ROLE_ANALYST, ROLE_POLICY_ADMIN or ROLE_CLUSTER_ADMIN", c.GetRole())}
	case c.GetGrant():
		if !slices.Contains(roles, c.GetRole()) {
			roles = append(roles, c.GetRole())
			slices.Sort(roles)
		}
	default:
		roles = slices.DeleteFunc(roles, func(r irxv1.Role) bool { return r == c.GetRole() })
	}
	b = &irxv1.RoleBinding{Identity: c.GetIdentity(), Roles: roles, UpdateTime: a.now}
	if len(roles) == 0 {
		a.del(key)
	} else {
		a.setProto(b, key)
	}
	if c.GetBootstrap() {
		a.set(keyAccessBootstrapped, nil)
		a.bound = true
	}
	a.accessChanged = true
	return &Result{Binding: b}
}

// revokeCertificate adds a certificate to the revocation list.
func (a *applier) revokeCertificate(c *irxv1.RevokeCertificateCommand, actor *irxv1.OperatorAction) *Result {
	r := proto.CloneOf(c.GetRevoked())
	if r == nil {
		return &Result{Err: violation("revoked", "is required")}
	}
	var key []byte
	switch {
	case (r.GetIdentity() == "") == (r.GetSerialNumber() == ""):
		return &Result{Err: violation("identity", "give exactly one of identity and serial_number")}
	case r.GetIdentity() != "":
		id, err := pki.ParseIdentityString(r.GetIdentity())
		if err != nil {
			return &Result{Err: violation("identity", "%v", err)}
		}
		if id.Team != a.fsm.team || (id.Kind != pki.KindOperator && id.Kind != pki.KindNode) {
			return &Result{Err: violation("identity", "%s is not an operator or node of team %q", r.GetIdentity(), a.fsm.team)}
		}
		key = cat(prefixRevokedID, []byte(r.GetIdentity()))
	default:
		s, err := ParseSerial(r.GetSerialNumber())
		if err != nil {
			return &Result{Err: violation("serial_number", "%v", err)}
		}
		r.SerialNumber = s
		key = cat(prefixRevokedSerial, []byte(s))
	}
	if len(r.GetReason()) > 256 {
		return &Result{Err: violation("reason", "is longer than 256 bytes")}
	}
	cur := a.fsm.access.Load()
	if len(cur.revokedIDs)+len(cur.revokedSerials) >= maxRevocations {
		return &Result{Err: violation("revoked", "the team already revokes %d certificates: make a new CA instead", maxRevocations)}
	}
	r.RevokeTime, r.RevokedBy = a.now, actor.GetIdentity()
	a.setProto(r, key)
	a.accessChanged = true
	return &Result{Revoked: r}
}

// actionTarget names what a command changed, and the version it made.
func (a *applier) actionTarget(cmd *irxv1.Command, res *Result, ticketBefore uint64) (string, int64) {
	if a.ticket != ticketBefore {
		// A create took a ticket: the new incident's version 1.
		return "incident/" + record.ID{Team: a.fsm.team, Ticket: a.ticket}.String(), 1
	}
	switch k := cmd.GetKind().(type) {
	case *irxv1.Command_UpdateIncident:
		return "incident/" + res.Incident.GetId(), res.Incident.GetVersion()
	case *irxv1.Command_WithdrawIncident:
		return "incident/" + k.WithdrawIncident.GetIncidentId(), res.Incident.GetVersion()
	case *irxv1.Command_SetPolicy:
		return "policy/" + res.Policy.GetPeerTeamId(), res.Policy.GetVersion()
	case *irxv1.Command_PutPeer:
		return "peer/" + k.PutPeer.GetPeer().GetTeamId(), 0
	case *irxv1.Command_DeletePeer:
		return "peer/" + k.DeletePeer.GetTeamId(), 0
	case *irxv1.Command_SetTeamDescription:
		return "team", res.TeamDescription.GetVersion()
	case *irxv1.Command_SetRetentionPolicy:
		return "retention", res.Retention.GetVersion()
	case *irxv1.Command_ChangeRole:
		return "binding/" + k.ChangeRole.GetIdentity(), 0
	case *irxv1.Command_AcknowledgeAlert:
		return "alert/" + k.AcknowledgeAlert.GetAlertId(), 0
	case *irxv1.Command_UpdateAlertSettings:
		return "alerts", 0
	case *irxv1.Command_PutSharingGroup:
		return "sharing-group/" + k.PutSharingGroup.GetGroup().GetName(), 0
	case *irxv1.Command_DeleteSharingGroup:
		return "sharing-group/" + k.DeleteSharingGroup.GetName(), 0
	case *irxv1.Command_IssueWarning, *irxv1.Command_AcknowledgeWarning:
		return "warning/" + res.Warning.GetWarningId(), 0
	case *irxv1.Command_SpendPrivacyBudget:
		return "privacy-budget/" + k.SpendPrivacyBudget.GetDataset(), res.Budget.GetReleases()
	case *irxv1.Command_RevokeCertificate:
		if id := res.Revoked.GetIdentity(); id != "" {
			return "certificate/" + id, 0
		}
		return "certificate/serial:" + res.Revoked.GetSerialNumber(), 0
	}
	return cmd.GetActor().GetTarget(), 0
}

// recordAction stores what an operator call changed, in the batch of the
// change: under its time, and for an incident (target empty, incident
// set) also under the version. actor is the encoded OperatorAction the
// proposer made (identity, method, request id); the stored action is that
// encoding with target, version and time appended, which decodes as the
// whole action without decoding and encoding the actor on every create.
func (a *applier) recordAction(actor []byte, target string, incident record.ID, version int64, index uint64) {
	v := make([]byte, 0, len(actor)+len(target)+len(incident.Team)+64)
	v = append(v, actor...)
	v = protowire.AppendTag(v, wire.ActionTarget, protowire.BytesType)
	if incident.Team != "" {
		v = protowire.AppendVarint(v, uint64(len("incident/")+len(incident.Team)+1+decimalLen(incident.Ticket)))
		v = append(v, "incident/"...)
		v = append(v, incident.Team...)
		v = append(v, ':')
		v = strconv.AppendUint(v, incident.Ticket, 10)
	} else {
		v = protowire.AppendString(v, target)
	}
	if version != 0 {
		v = protowire.AppendTag(v, wire.ActionVersion, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(version))
	}
	var ts []byte
	if s := a.now.GetSeconds(); s != 0 {
		ts = protowire.AppendTag(ts, wire.TimestampSeconds, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if n := a.now.GetNanos(); n != 0 {
		ts = protowire.AppendTag(ts, wire.TimestampNanos, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(n))
	}
	v = protowire.AppendTag(v, wire.ActionTime, protowire.BytesType)
	v = protowire.AppendBytes(v, ts)

	k := make([]byte, 0, len(prefixAction)+timeKeyLen+12)
	k = append(k, prefixAction...)
	k = appendTimeKey(k, a.now.AsTime())
	k = binary.BigEndian.AppendUint64(k, index)
	k = binary.BigEndian.AppendUint32(k, a.position)
	a.position++
	a.set(k, v)
	if incident.Team != "" && version > 0 {
		// The key, not the action again: a create's second key stays
		// small, and reading a record's history is rare.
		vk := make([]byte, 0, len(prefixVersionAction)+len(incident.Team)+17)
		vk = append(vk, prefixVersionAction...)
		vk = append(vk, incident.Team...)
		vk = append(vk, 0)
		vk = binary.BigEndian.AppendUint64(vk, incident.Ticket)
		vk = binary.BigEndian.AppendUint64(vk, uint64(version))
		a.set(vk, k)
	}
}

func decimalLen(n uint64) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

// RoleBindings lists the bindings by identity.
func (f *FSM) RoleBindings(pageSize int, pageToken string) ([]*irxv1.RoleBinding, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	return pageDecoded[irxv1.RoleBinding](f, prefixBinding, pageSize, pageToken, valueItself)
}

// RevokedCertificates lists the revocations, by identity then by serial.
func (f *FSM) RevokedCertificates(pageSize int, pageToken string) ([]*irxv1.RevokedCertificate, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	return pageDecoded[irxv1.RevokedCertificate](f, prefixRevoked, pageSize, pageToken, valueItself)
}

// ActionQuery filters ListOperatorActions; zero fields match everything.
type ActionQuery struct {
	Identity, Target string
	Start, End       time.Time
}

// maxActionScan bounds the actions one page reads past its filters, so a
// filter that matches little answers a short page and a token instead of
// reading the whole record.
const maxActionScan = 50000

// OperatorActions returns up to pageSize actions matching q, oldest first.
func (f *FSM) OperatorActions(q ActionQuery, pageSize int, pageToken string) ([]*irxv1.OperatorAction, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	pageSize = clampPageSize(pageSize)
	fp := fnv64([]byte("act\x00" + q.Identity + "\x00" + q.Target + "\x00" + q.Start.String() + "\x00" + q.End.String()))
	lower, upper := prefixAction, prefixEnd(prefixAction)
	if !q.Start.IsZero() {
		lower = appendTimeKey(bytes.Clone(prefixAction), q.Start)
	}
	if !q.End.IsZero() {
		upper = appendTimeKey(bytes.Clone(prefixAction), q.End)
	}
	lower, err := resume(lower, pageToken, fp)
	if err != nil {
		return nil, "", err
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("fsm: scan actions: %w", err)
	}
	var (
		out  []*irxv1.OperatorAction
		last []byte
	)
	scanned := 0
	for valid := it.First(); valid; valid = it.Next() {
		if len(out) == pageSize || scanned == maxActionScan {
			return out, encodeToken(fp, last), it.Close()
		}
		scanned++
		last = append(last[:0], it.Key()...)
		act := &irxv1.OperatorAction{}
		if err := proto.Unmarshal(it.Value(), act); err != nil {
			return nil, "", errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close())
		}
		if (q.Identity != "" && act.GetIdentity() != q.Identity) || (q.Target != "" && act.GetTarget() != q.Target) {
			continue
		}
		out = append(out, act)
	}
	return out, "", it.Close()
}

// VersionActions returns the action that made each of an incident's
// versions, nil where no operator call did.
func (f *FSM) VersionActions(incidentID string, versions []int64) ([]*irxv1.OperatorAction, error) {
	id, err := record.ParseID(incidentID)
	if err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	out := make([]*irxv1.OperatorAction, len(versions))
	for i, v := range versions {
		ref, closer, err := f.db.Get(cat(prefixVersionAction, idKey(id), u64(uint64(v))))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fsm: read the action of %s version %d: %w", incidentID, v, err)
		}
		key := bytes.Clone(ref)
		_ = closer.Close()
		act := &irxv1.OperatorAction{}
		found, err := getProto(f.db, key, act)
		if err != nil {
			return nil, err
		}
		if found {
			out[i] = act
		}
	}
	return out, nil
}
