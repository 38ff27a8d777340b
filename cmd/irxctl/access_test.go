package main

import (
	"strings"
	"testing"

	"github.com/irxfed/irx/test/irxdtest"
)

// TestAccessCommands drives bindings, certificate revocation and the record
// of actions through irxctl, against a node in development mode (where the
// caller is recorded as "development").
func TestAccessCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	const bob = "irx://dev/operator/bob"

	r := mustSucceed(t, ctl("", "access", "grant", bob, "viewer"))
	r = mustSucceed(t, ctl("", "access", "grant", bob, "policy-admin"))
	if rows := tableRows(t, r.stdout); len(rows) != 1 || rows[0][0] != bob || rows[0][1] != "viewer,policy-admin" {
		t.Fatalf("grant:\n%s", r.stdout)
	}
	mustSucceed(t, ctl("", "access", "revoke", bob, "viewer"))
	r = mustSucceed(t, ctl("", "access", "list"))
	rows := tableRows(t, r.stdout)
	got := map[string]string{}
	for _, row := range rows {
		got[row[0]] = row[1]
	}
	// The team's first operator was bound to every role at its first start.
	if got[bob] != "policy-admin" || got["irx://dev/operator/admin"] != "viewer,analyst,policy-admin,cluster-admin" {
		t.Fatalf("list:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "access", "grant", bob, "superuser"), 2, "not a role")
	mustFail(t, ctl("", "access", "grant", "irx://dev/node/node1", "viewer"), 1, "irxctl: InvalidArgument: ", "only operators hold roles")

	mustFail(t, ctl("", "access", "revoke-cert"), 2, "give one of --identity and --serial")
	mustSucceed(t, ctl("", "access", "revoke-cert", "--identity", bob, "--reason", "left the team"))
	mustSucceed(t, ctl("", "access", "revoke-cert", "--serial", "01:AB"))
	r = mustSucceed(t, ctl("", "access", "revoked"))
	if !strings.Contains(r.stdout, bob) || !strings.Contains(r.stdout, "left the team") || !strings.Contains(r.stdout, "1ab") {
		t.Fatalf("revoked:\n%s", r.stdout)
	}

	r = mustSucceed(t, ctl("", "access", "actions", "--target", "binding/"+bob))
	rows = tableRows(t, r.stdout)
	if len(rows) != 3 || rows[0][1] != "development" || rows[0][2] != "/irx.v1.AccessService/GrantRole" || rows[2][2] != "/irx.v1.AccessService/RevokeRole" {
		t.Fatalf("actions on bob's binding:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl("", "access", "actions", "--operator", "development", "--limit", "2"))
	if rows := tableRows(t, r.stdout); len(rows) != 2 {
		t.Fatalf("--limit 2:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "access", "actions", "--since", "yesterday"), 2, "want RFC 3339")
}
