package main

import (
	"bytes"
	"strings"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// A node's disk problem is shown above the members, and the members table
// is unchanged.
func TestClusterStatusShowsDiskProblem(t *testing.T) {
	st := &irxv1.GetClusterStatusResponse{
		TeamId: "dev", NodeId: "node2", LeaderId: "node1",
		Disks: []*irxv1.DiskStatus{
			{Disk: "raft log", Path: "/d/raft", Problem: "raft log disk /d/raft: 3.0 MiB free of 1.0 GiB, below the 256.0 MiB this node keeps free"},
			{Disk: "state machine", Path: "/d/state"},
		},
		Members: []*irxv1.ClusterMember{{NodeId: "node1", Address: "127.0.0.1:1", Voter: true, Leader: true}},
	}
	var out bytes.Buffer
	if err := writeClusterStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "node2 refuses writes: raft log disk /d/raft: 3.0 MiB free") {
		t.Errorf("no disk problem in:\n%s", out.String())
	}
	if strings.Count(out.String(), "refuses writes") != 1 {
		t.Errorf("a disk without a problem is shown as one:\n%s", out.String())
	}
	if rows := tableRows(t, out.String()); len(rows) != 1 || rows[0][0] != "node1" {
		t.Errorf("members table: %v", rows)
	}
}
