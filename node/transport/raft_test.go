package transport_test

import (
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/node/transport"
	"github.com/irxfed/irx/pki"
)

// listFSM records applied entries in order.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(slices.Clone(f.entries)), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = nil
	if len(data) > 0 {
		f.entries = strings.Split(string(data), "\n")
	}
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write([]byte(strings.Join(s, "\n"))); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

type raftNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	raft  *raft.Raft
	trans *raft.NetworkTransport
	fsm   *listFSM
	log   *logBuffer
}

func startRaftNode(t *testing.T, ca *pki.CA, name string, attacker bool) *raftNode {
	t.Helper()
	n := &raftNode{id: raft.ServerID(name), fsm: &listFSM{}, log: &logBuffer{}}
	var layer *transport.StreamLayer
	if attacker {
		layer = attackerLayer(t, ca, name)
	} else {
		layer = newLayer(t, ca, name, transport.WithLogger(n.log.logger()), transport.WithHandshakeTimeout(10*time.Second))
	}
	n.addr = raft.ServerAddress(layer.Addr().String())
	n.trans = raft.NewNetworkTransport(layer, 3, 10*time.Second, io.Discard)

	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	// A second: a loaded two-core machine under -race must not lose the
	// leader (a quorum must answer within the lease) while TLS handshakes
	// and the intruder's refusals compete for the CPU.
	conf.HeartbeatTimeout = time.Second
	conf.ElectionTimeout = time.Second
	conf.LeaderLeaseTimeout = time.Second
	conf.CommitTimeout = 10 * time.Millisecond
	conf.LogOutput = io.Discard
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(conf, n.fsm, store, store, raft.NewInmemSnapshotStore(), n.trans)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
		_ = n.trans.Close()
	})
	return n
}

func leaderOf(nodes []*raftNode) *raftNode {
	for _, n := range nodes {
		if n.raft.State() == raft.Leader {
			return n
		}
	}
	return nil
}

func TestRaftOverMutualTLS(t *testing.T) {
	ca := newCA(t)
	var nodes []*raftNode
	for _, name := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, startRaftNode(t, ca, name, false))
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: n.id, Address: n.addr})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}

	var leader *raftNode
	waitFor(t, time.Minute, "a leader", func() bool {
		leader = leaderOf(nodes)
		return leader != nil
	})

	want := []string{"a", "b", "c", "d", "e"}
	for _, e := range want {
		if err := leader.raft.Apply([]byte(e), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply %q: %v", e, err)
		}
	}
	waitFor(t, time.Minute, "replication to all three nodes", func() bool {
		for _, n := range nodes {
			if !slices.Equal(n.fsm.list(), want) {
				return false
			}
		}
		return true
	})

	// A node whose certificate comes from another CA (with the right team
	// id) is added as a voter: the three real nodes still form a quorum of
	// four, but the intruder never receives the log.
	intruder := startRaftNode(t, newCA(t), "n4", true)
	if err := leader.raft.AddVoter(intruder.id, intruder.addr, 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("add intruder as voter: %v", err)
	}
	if err := leader.raft.Apply([]byte("f"), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply with intruder in configuration: %v", err)
	}
	want = append(want, "f")
	waitFor(t, time.Minute, "replication of f", func() bool {
		for _, n := range nodes {
			if !slices.Equal(n.fsm.list(), want) {
				return false
			}
		}
		return true
	})
	// The leader kept trying to reach the intruder and was refused.
	leader.log.waitLog(t, 30*time.Second, "level=WARN", "outbound connection failed", "remote="+string(intruder.addr), "unknown authority")
	if got := intruder.fsm.list(); len(got) != 0 {
		t.Fatalf("intruder applied %v", got)
	}
	if idx := intruder.raft.LastIndex(); idx != 0 {
		t.Fatalf("intruder has log up to %d", idx)
	}
	if n := intruder.raft.GetConfiguration(); n.Error() == nil && len(n.Configuration().Servers) != 0 {
		t.Fatalf("intruder learned the configuration %v", n.Configuration())
	}

	// Nor can the intruder send raft traffic: a vote request to each node
	// fails at the transport, and the nodes log the refusal.
	for _, n := range nodes {
		var resp raft.RequestVoteResponse
		err := intruder.trans.RequestVote(n.id, n.addr, &raft.RequestVoteRequest{
			RPCHeader:    raft.RPCHeader{ID: []byte(intruder.id), Addr: []byte(intruder.addr)},
			Term:         1000,
			LastLogIndex: 1000,
			LastLogTerm:  1000,
		}, &resp)
		if err == nil {
			t.Fatalf("intruder's RequestVote to %s succeeded: %+v", n.id, resp)
		}
		n.log.waitLog(t, 30*time.Second, "level=WARN", "refused inbound", "unknown authority")
	}
	// The vote requests did not disturb the cluster.
	waitFor(t, time.Minute, "a leader after the intrusion attempt", func() bool { return leaderOf(nodes) != nil })
	for _, n := range nodes {
		if term := n.raft.Stats()["term"]; len(term) >= 4 {
			t.Fatalf("intruder's term leaked into %s: %s", n.id, term)
		}
	}
}
