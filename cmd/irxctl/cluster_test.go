package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// members parses "cluster status" (or add/remove) output into node id ->
// row.
func members(t *testing.T, out string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, row := range tableRows(t, out) {
		m[row[0]] = row
	}
	return m
}

func TestClusterCommands(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdtest.Binary(t), 3)
	ctl := cliAt(t, nodes[1].APIAddr)

	// Status from any node lists every member; exactly one leads.
	r := mustSucceed(t, ctl("", "cluster", "status"))
	ms := members(t, r.stdout)
	if len(ms) != 3 || !strings.HasPrefix(r.stdout, "team dev, leader node") {
		t.Fatalf("cluster status:\n%s", r.stdout)
	}
	leader := ""
	for id, row := range ms {
		// NODE ADDRESS ROLE LEADER VOTER APPLIED LAG [ERROR]
		if len(row) != 7 || row[4] != "true" || strings.Trim(row[5]+row[6], "0123456789") != "" {
			t.Errorf("member %s: %v", id, row)
		}
		if row[3] == "true" {
			if row[2] != "leader" || leader != "" {
				t.Errorf("leader row %v (leader so far %q)", row, leader)
			}
			leader = id
		} else if row[2] != "follower" {
			t.Errorf("member %s is a %s", id, row[2])
		}
	}
	r = mustSucceed(t, ctl("", "cluster", "status", "-o", "json"))
	var st irxv1.GetClusterStatusResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.GetMembers()) != 3 || st.GetTeamId() != "dev" {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}

	// A fourth node joins, added through a follower.
	n4, err := irxdtest.NewNode(irxdtest.Binary(t), filepath.Join(t.TempDir(), "node4"), "--node", "node4", "--join")
	if err != nil {
		t.Fatal(err)
	}
	if err := irxdtest.ShareDevCAFrom(nodes[0], n4); err != nil {
		t.Fatal(err)
	}
	irxdtest.LaunchNode(t, n4)
	follower := nodes[0].APIAddr
	if leader == "node1" {
		follower = nodes[2].APIAddr
	}
	r = mustSucceed(t, irxctl(t, isolatedEnv(t), "", "--addr", follower, "cluster", "add", "node4", n4.RaftAddr))
	if ms := members(t, r.stdout); len(ms) != 4 || ms["node4"][1] != n4.RaftAddr || ms["node4"][3] != "true" {
		t.Fatalf("cluster add:\n%s", r.stdout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n4.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	r = mustSucceed(t, cliAt(t, n4.APIAddr)("", "cluster", "status"))
	if ms := members(t, r.stdout); len(ms) != 4 || ms["node4"][2] != "follower" {
		t.Fatalf("status on the new member:\n%s", r.stdout)
	}

	// Leadership moves to a named member, then to whichever Raft picks.
	target := "node2"
	if leader == "node2" {
		target = "node3"
	}
	r = mustSucceed(t, ctl("", "cluster", "transfer", target))
	if r.stdout != fmt.Sprintf("leader: %s\n", target) {
		t.Fatalf("cluster transfer %s: %q", target, r.stdout)
	}
	r = mustSucceed(t, ctl("", "cluster", "transfer", "-o", "json"))
	var moved irxv1.TransferLeadershipResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &moved); err != nil || moved.GetLeaderId() == "" {
		t.Fatalf("cluster transfer -o json: %v\n%s", err, r.stdout)
	}

	r = mustSucceed(t, ctl("", "cluster", "remove", "node4"))
	ms = members(t, r.stdout)
	var ids []string
	for id := range ms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"node1", "node2", "node3"}) {
		t.Fatalf("cluster remove:\n%s", r.stdout)
	}
	mustFail(t, ctl("", "cluster", "remove", "node9"), 1, "irxctl: NotFound: ")
	mustFail(t, ctl("", "cluster", "add", "Node 5", "nowhere"), 1, "irxctl: InvalidArgument: ", "\n  node_id: ", "\n  address: ")
}
