package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// roles returns the leader's index in nodes and the clients of all nodes.
// On a loaded machine a young team may be between leaders when asked, so
// it waits out an election (within 30 s).
func roles(t *testing.T, nodes []*irxdtest.Node) (leader int, clients []client) {
	t.Helper()
	for _, n := range nodes {
		clients = append(clients, dial(t, n))
	}
	eventually(t, 30*time.Second, "a leader among the nodes", func() error {
		for i, c := range clients {
			if clusterStatus(t, c).GetRole() == irxv1.NodeRole_NODE_ROLE_LEADER {
				leader = i
				return nil
			}
		}
		return errors.New("no node leads")
	})
	return leader, clients
}

func TestClusterForwardingAndLinearizableReads(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	leader, clients := roles(t, nodes)
	f1, f2 := clients[(leader+1)%3], clients[(leader+2)%3]
	ctx := ctxT(t)

	// A write sent to a follower is forwarded; the caller gets the leader's
	// answer, errors included.
	created := create(t, f1, sample(1))
	if created.GetId() != "dev:1" {
		t.Fatalf("created %s", created.GetId())
	}
	_, err := f1.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: &irxv1.Incident{Tlp: irxv1.Tlp_TLP_RED}})
	assertInvalid(t, err, "incident.taxonomy")
	upd, err := f2.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
		Incident:        &irxv1.Incident{Id: "dev:1", Status: irxv1.Status_STATUS_IN_PROGRESS},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"status"}},
		ExpectedVersion: 1,
	})
	if err != nil || upd.GetIncident().GetVersion() != 2 {
		t.Fatalf("update through a follower: %v, %v", upd, err)
	}
	_, err = f1.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
		Incident: &irxv1.Incident{Id: "dev:1"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}}, ExpectedVersion: 1,
	})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("stale update through a follower: %v, want ABORTED from the leader", err)
	}

	// Concurrent writes through a follower travel to the leader together
	// (NodeService/ProposeBatch); each caller still gets its own answer:
	// its own record, or its own refusal.
	const together = 120
	var wg sync.WaitGroup
	answers := make([]*irxv1.Incident, together)
	errs := make([]error, together)
	for i := range together {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%6 == 5 {
				_, errs[i] = f1.incidents.UpdateIncident(ctx, &irxv1.UpdateIncidentRequest{
					Incident: &irxv1.Incident{Id: "dev:1", Status: irxv1.Status_STATUS_RESOLVED}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}}, ExpectedVersion: 1,
				})
				return
			}
			resp, err := f1.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: sample(1000 + i)})
			answers[i], errs[i] = resp.GetIncident(), err
		}()
	}
	wg.Wait()
	tickets := map[string]bool{}
	for i := range together {
		if i%6 == 5 {
			if status.Code(errs[i]) != codes.Aborted {
				t.Fatalf("stale update %d among forwarded writes: %v, want ABORTED", i, errs[i])
			}
			continue
		}
		want := sample(1000 + i).GetDescriptions()[0].GetText()
		if errs[i] != nil || answers[i].GetDescriptions()[0].GetText() != want || tickets[answers[i].GetId()] {
			t.Fatalf("forwarded create %d: %v (%v), want its own record", i, answers[i], errs[i])
		}
		tickets[answers[i].GetId()] = true
	}

	// Linearizable (default) reads on every node see every acknowledged
	// write at once: create on one follower, read on the other.
	for i := 0; i < 30; i++ {
		inc := create(t, f1, sample(i))
		for _, c := range clients {
			got, err := c.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: inc.GetId()})
			if err != nil || !proto.Equal(got.GetIncident(), inc) {
				t.Fatalf("linearizable read of %s: %v, %v", inc.GetId(), got.GetIncident(), err)
			}
		}
	}
	// A stale read answers from local state without asking the leader.
	stale, err := f2.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:1", Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
	if err != nil || stale.GetIncident().GetVersion() != 2 {
		t.Fatalf("stale read: %v, %v", stale, err)
	}

	// Any node reports every member with its role and lag.
	st := clusterStatus(t, f2)
	if len(st.GetMembers()) != 3 {
		t.Fatalf("members: %v", st.GetMembers())
	}
	leaders := 0
	for _, m := range st.GetMembers() {
		if m.GetError() != "" || m.GetRole() == irxv1.NodeRole_NODE_ROLE_UNSPECIFIED || m.GetAppliedIndex() == 0 {
			t.Errorf("member %v", m)
		}
		if m.GetLeader() {
			leaders++
			if m.GetRole() != irxv1.NodeRole_NODE_ROLE_LEADER {
				t.Errorf("leader flag on a %v", m.GetRole())
			}
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in %v", leaders, st.GetMembers())
	}
}

func TestClusterMembershipAndTransfer(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	leader, clients := roles(t, nodes)
	follower := clients[(leader+1)%3]
	ctx := ctxT(t)
	for i := 0; i < 20; i++ {
		create(t, clients[i%3], sample(i))
	}

	// A fourth node joins (shared team CA, no bootstrap), added through a
	// follower, and catches up.
	n4, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "node4"), "--node", "node4", "--join")
	if err != nil {
		t.Fatal(err)
	}
	if err := irxdtest.ShareDevCAFrom(nodes[0], n4); err != nil {
		t.Fatal(err)
	}
	irxdtest.LaunchNode(t, n4)
	added, err := follower.cluster.AddMember(ctx, &irxv1.AddMemberRequest{NodeId: "node4", Address: n4.RaftAddr})
	if err != nil || len(added.GetMembers()) != 4 {
		t.Fatalf("AddMember: %v, %v", added, err)
	}
	if err := n4.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	c4 := dial(t, n4)
	got, err := c4.incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:20"})
	if err != nil || got.GetIncident().GetId() != "dev:20" {
		t.Fatalf("new member read: %v, %v", got, err)
	}
	if inc := create(t, c4, sample(21)); inc.GetId() != "dev:21" {
		t.Fatalf("create on new member: %s", inc.GetId())
	}

	// Leadership moves to a named member.
	target := fmt.Sprintf("node%d", (leader+2)%3+1)
	moved, err := follower.cluster.TransferLeadership(ctx, &irxv1.TransferLeadershipRequest{NodeId: target})
	if err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if moved.GetLeaderId() != target {
		t.Errorf("leader after transfer %q, want %q", moved.GetLeaderId(), target)
	}
	if inc := create(t, clients[leader], sample(22)); inc.GetId() != "dev:22" {
		t.Fatalf("create after transfer: %s", inc.GetId())
	}

	removed, err := clients[leader].cluster.RemoveMember(ctx, &irxv1.RemoveMemberRequest{NodeId: "node4"})
	if err != nil || len(removed.GetMembers()) != 3 || slices.ContainsFunc(removed.GetMembers(), func(m *irxv1.ClusterMember) bool { return m.GetNodeId() == "node4" }) {
		t.Fatalf("RemoveMember: %v, %v", removed, err)
	}
	_, err = follower.cluster.RemoveMember(ctx, &irxv1.RemoveMemberRequest{NodeId: "node9"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("removing a stranger: %v, want NOT_FOUND", err)
	}
	_, err = follower.cluster.AddMember(ctx, &irxv1.AddMemberRequest{NodeId: "Node 5", Address: "nowhere"})
	assertInvalid(t, err, "node_id", "address")
}

// A node whose certificate comes from another CA is added to the
// configuration by an operator, yet can neither receive nor send Raft
// traffic: it never learns a leader or applies an entry.
func TestClusterRefusesForeignCA(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	_, clients := roles(t, nodes)
	ctx := ctxT(t)
	create(t, clients[0], sample(1))

	intruder, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "node4"), "--node", "node4", "--join")
	if err != nil {
		t.Fatal(err)
	}
	irxdtest.LaunchNode(t, intruder) // its own development CA
	if _, err := clients[1].cluster.AddMember(ctx, &irxv1.AddMemberRequest{NodeId: "node4", Address: intruder.RaftAddr}); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	create(t, clients[2], sample(2))
	time.Sleep(3 * time.Second) // several heartbeat and replication rounds

	ci := dial(t, intruder)
	st, err := ci.cluster.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetLeaderId() != "" || st.GetAppliedIndex() != 0 || st.GetLastTicket() != 0 {
		t.Fatalf("foreign-CA node took part in Raft: %v", st)
	}
	for _, m := range clusterStatus(t, clients[0]).GetMembers() {
		if m.GetNodeId() == "node4" && m.GetError() == "" {
			t.Errorf("the team reached the foreign-CA node: %v", m)
		}
	}
	if !strings.Contains(nodes[0].Logs()+nodes[1].Logs()+nodes[2].Logs(), "certificate") {
		t.Errorf("no refusal logged by the team")
	}
}

// Kill -9 the leader while 50 clients create incidents. Each client retries
// a create with the same request_id until it is acknowledged, on whichever
// node answers. Afterwards every acknowledged incident is readable on every
// surviving node, tickets are unique, and no create happened twice.
func TestClusterKillLeaderUnderLoad(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	leader, clients := roles(t, nodes)

	const workers = 50
	var (
		mu     sync.Mutex
		acked  = map[string]string{} // request id -> incident id
		stop   atomic.Bool
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !stop.Load(); seq++ {
				reqID := fmt.Sprintf("w%d-%d", w, seq)
				// A bound, not an expectation: an election takes a second
				// or two, longer on a loaded machine under -race.
				deadline := time.Now().Add(time.Minute)
				for attempt := 0; ; attempt++ {
					c := clients[(w+attempt)%3]
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					resp, err := c.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: sample(seq), RequestId: reqID})
					cancel()
					if err == nil {
						mu.Lock()
						acked[reqID] = resp.GetIncident().GetId()
						mu.Unlock()
						break
					}
					if time.Now().After(deadline) {
						failed.Add(1)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := nodes[leader].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d creates were never acknowledged within a minute", failed.Load())
	}

	var survivors []client
	for i, c := range clients {
		if i != leader {
			survivors = append(survivors, c)
		}
	}
	ids := map[string]string{}
	for reqID, id := range acked {
		if other, dup := ids[id]; dup {
			t.Fatalf("incident %s acknowledged for two requests %s and %s", id, reqID, other)
		}
		ids[id] = reqID
	}
	for _, c := range survivors {
		var listed []string
		req := &irxv1.ListIncidentsRequest{PageSize: 1000}
		for {
			resp, err := c.incidents.ListIncidents(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, inc := range resp.GetIncidents() {
				listed = append(listed, inc.GetId())
			}
			if resp.GetNextPageToken() == "" {
				break
			}
			req.PageToken = resp.GetNextPageToken()
		}
		if len(listed) != len(acked) {
			t.Errorf("node lists %d incidents for %d acknowledged creates (a create happened twice or was lost)", len(listed), len(acked))
		}
		for _, id := range listed {
			if _, ok := ids[id]; !ok {
				t.Errorf("incident %s exists but was never acknowledged to anyone", id)
			}
		}
		st := clusterStatus(t, c)
		if int(st.GetLastTicket()) != len(acked) {
			t.Errorf("last ticket %d for %d incidents: tickets are not gap-free", st.GetLastTicket(), len(acked))
		}
	}
	t.Logf("%d creates acknowledged across a leader kill", len(acked))
}

// A node stopped while the team records 10,000 incidents comes back, finds
// the log it missed compacted away, and catches up by snapshot install.
func TestClusterRejoinCatchesUpBySnapshot(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3,
		"--snapshot-threshold", "1000", "--trailing-logs", "200", "--snapshot-interval", "500ms")
	leader, clients := roles(t, nodes)
	down := (leader + 1) % 3
	if err := nodes[down].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	const total = 10_000
	const workers = 50
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[leader]
			for next.Add(1) <= total {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := c.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: sample(w)})
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create with one node down: %v", err)
	}
	target := clusterStatus(t, clients[leader])
	time.Sleep(2 * time.Second) // let the leader snapshot and compact past the stopped node

	nodes[down].Args = append(nodes[down].Args, "--log-level", "info")
	if err := nodes[down].Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, nodes[down])
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.cluster.GetClusterStatus(ctxT(t), &irxv1.GetClusterStatusRequest{})
		if err == nil && st.GetLastTicket() == total && st.GetAppliedIndex() >= target.GetAppliedIndex() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejoined node did not catch up: %v, %v (target applied %d)", st, err, target.GetAppliedIndex())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Raft logs the install after the state machine has restored it, and
	// the node answers from the restored state at once: the line may come
	// a moment after the status shows the node caught up.
	installed := func(logs string) bool {
		return strings.Contains(logs, "Installed remote snapshot") && strings.Contains(logs, "state machine restored from snapshot")
	}
	logs := nodes[down].Logs()
	for logDeadline := time.Now().Add(10 * time.Second); !installed(logs) && time.Now().Before(logDeadline); logs = nodes[down].Logs() {
		time.Sleep(100 * time.Millisecond)
	}
	if !installed(logs) {
		t.Fatalf("the node caught up without a snapshot install; its log:\n%s", tail(logs, 40))
	}
	got, err := c.incidents.GetIncident(ctxT(t), &irxv1.GetIncidentRequest{Id: fmt.Sprintf("dev:%d", total), Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
	if err != nil || got.GetIncident().GetVersion() != 1 {
		t.Fatalf("last incident on the rejoined node: %v, %v", got, err)
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	return strings.Join(parts[max(0, len(parts)-lines):], "\n")
}
