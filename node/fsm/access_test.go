package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

const alice = "irx://" + team + "/operator/alice"

func actor(method, rid string) *irxv1.OperatorAction {
	return &irxv1.OperatorAction{Identity: alice, Method: method, RequestId: rid}
}

// The leader's group commit writes evaluated creates with their actors in
// one batch entry; the entry reader keeps them encoded (the fast path) and
// every create's action is stored with the incident it made.
func TestEvaluatedCreatesKeepTheirActors(t *testing.T) {
	h := newHarness(t)
	now := h.now()
	var cmds []*irxv1.Command
	for i := range 3 {
		c := &irxv1.CreateIncidentCommand{Incident: newIncident(), RequestId: "req-" + string(rune('a'+i))}
		_, data, err := CompleteCreate(team, c.GetIncident(), now)
		if err != nil {
			t.Fatal(err)
		}
		cmd := EvaluatedCreate(c, data)
		cmd.Actor = actor("/irx.v1.IncidentService/CreateIncident", "call-"+string(rune('a'+i)))
		cmds = append(cmds, cmd)
	}
	data, err := proto.Marshal(&irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := parseEntry(data)
	if !ok {
		t.Fatal("the entry reader did not take the batch of evaluated creates with actors")
	}
	for i, c := range e.commands {
		got := &irxv1.OperatorAction{}
		if c.evaluated == nil || proto.Unmarshal(c.actor, got) != nil || got.GetRequestId() != cmds[i].GetActor().GetRequestId() {
			t.Fatalf("command %d: evaluated %v, actor %v", i, c.evaluated != nil, c.actor)
		}
	}
	res := h.apply(h.entry(raft.LogCommand, data))
	for i, r := range res.Batch {
		if r.Err != nil {
			t.Fatalf("create %d: %v", i, r.Err)
		}
	}
	acts, next, err := h.f.OperatorActions(ActionQuery{Identity: alice}, 0, "")
	if err != nil || next != "" || len(acts) != 3 {
		t.Fatalf("actions: %v %q %v", acts, next, err)
	}
	for i, a := range acts {
		if a.GetTarget() != "incident/"+idOf(uint64(i+1)) || a.GetVersion() != 1 || a.GetRequestId() != cmds[i].GetActor().GetRequestId() ||
			a.GetIdentity() != alice || !proto.Equal(a.GetTime(), now) {
			t.Errorf("action %d: %v", i, a)
		}
	}
	vs, err := h.f.VersionActions(idOf(2), []int64{1, 2})
	if err != nil || vs[0].GetRequestId() != "call-b" || vs[1] != nil {
		t.Errorf("version actions of %s: %v %v", idOf(2), vs, err)
	}
}

// A command that changes nothing leaves no action: a refused update, and a
// create repeating a request id.
func TestNoActionWithoutAChange(t *testing.T) {
	h := newHarness(t)
	cmd := createCmd(newIncident(), "same")
	cmd.Actor = actor("/irx.v1.IncidentService/CreateIncident", "first")
	if res := h.apply(h.command(cmd)); res.Err != nil {
		t.Fatal(res.Err)
	}
	again := createCmd(newIncident(), "same")
	again.Actor = actor("/irx.v1.IncidentService/CreateIncident", "retry")
	if res := h.apply(h.command(again)); res.Err != nil {
		t.Fatal(res.Err)
	}
	bad := updateCmd(&irxv1.Incident{Id: idOf(1)}, 7, "tlp")
	bad.Actor = actor("/irx.v1.IncidentService/UpdateIncident", "conflict")
	if res := h.apply(h.command(bad)); res.Err == nil {
		t.Fatal("an update expecting version 7 of version 1 was applied")
	}
	acts, _, err := h.f.OperatorActions(ActionQuery{}, 0, "")
	if err != nil || len(acts) != 1 || acts[0].GetRequestId() != "first" {
		t.Fatalf("actions: %v %v", acts, err)
	}
}

// The bootstrap grant binds every role once, only while the team has never
// had a binding; grants, revocations and certificate revocations are in
// the Access every call checks as soon as their batch is applied.
func TestBindingsAndRevocations(t *testing.T) {
	h := newHarness(t)
	change := func(c *irxv1.ChangeRoleCommand) *Result {
		t.Helper()
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ChangeRole{ChangeRole: c}}))
	}
	admin := "irx://" + team + "/operator/admin"
	// A grant before the bootstrap (development mode may make one) does not
	// stand in its way.
	change(&irxv1.ChangeRoleCommand{Identity: alice, Role: irxv1.Role_ROLE_ANALYST, Grant: true})
	if h.f.Access().Bootstrapped() {
		t.Fatal("bootstrapped by another grant")
	}
	change(&irxv1.ChangeRoleCommand{Identity: alice, Role: irxv1.Role_ROLE_ANALYST})
	if res := change(&irxv1.ChangeRoleCommand{Identity: admin, Bootstrap: true}); len(res.Binding.GetRoles()) != 4 || !h.f.Access().Bootstrapped() {
		t.Fatalf("bootstrap: %v %v", res.Binding, res.Err)
	}
	change(&irxv1.ChangeRoleCommand{Identity: admin, Role: irxv1.Role_ROLE_ANALYST})
	if res := change(&irxv1.ChangeRoleCommand{Identity: admin, Bootstrap: true}); res.Binding != nil || res.Err != nil {
		t.Fatalf("a second bootstrap changed something: %v %v", res.Binding, res.Err)
	}
	if got := h.f.Access().Roles(admin); len(got) != 3 {
		t.Errorf("admin after revoking analyst and a second bootstrap: %v", got)
	}
	change(&irxv1.ChangeRoleCommand{Identity: alice, Role: irxv1.Role_ROLE_VIEWER, Grant: true})
	if got := h.f.Access().Roles(alice); len(got) != 1 || got[0] != irxv1.Role_ROLE_VIEWER {
		t.Errorf("alice: %v", got)
	}
	for _, bad := range []*irxv1.ChangeRoleCommand{
		{Identity: "irx://other/operator/bob", Role: irxv1.Role_ROLE_VIEWER, Grant: true},
		{Identity: "irx://" + team + "/node/node1", Role: irxv1.Role_ROLE_VIEWER, Grant: true},
		{Identity: alice, Role: 99, Grant: true},
	} {
		if res := change(bad); res.Err == nil {
			t.Errorf("%v was applied", bad)
		}
	}
	revoke := func(r *irxv1.RevokedCertificate) *Result {
		t.Helper()
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_RevokeCertificate{RevokeCertificate: &irxv1.RevokeCertificateCommand{Revoked: r}}}))
	}
	if res := revoke(&irxv1.RevokedCertificate{Identity: alice}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := revoke(&irxv1.RevokedCertificate{SerialNumber: "0A:FF"}); res.Err != nil || res.Revoked.GetSerialNumber() != "aff" {
		t.Fatalf("serial: %v %v", res.Revoked, res.Err)
	}
	a := h.f.Access()
	if _, revoked := a.Revoked(alice, "1"); !revoked {
		t.Error("alice is not revoked")
	}
	if _, revoked := a.Revoked(admin, "aff"); !revoked {
		t.Error("serial aff is not revoked")
	}
	if _, revoked := a.Revoked(admin, "1"); revoked {
		t.Error("admin is revoked")
	}
	// The state survives a restart.
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	if _, revoked := h.f.Access().Revoked(alice, ""); !revoked || !h.f.Access().Bootstrapped() || len(h.f.Access().Roles(admin)) != 3 {
		t.Error("the access state did not survive a restart")
	}
}
