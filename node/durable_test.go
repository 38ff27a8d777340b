package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/node/internal/heldsync"
	"github.com/irxfed/irx/node/raftstore"
)

// recordingFSM remembers the commands it applied.
type recordingFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *recordingFSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			f.applied = append(f.applied, string(l.Data))
		}
	}
	return make([]any, len(logs))
}

func (f *recordingFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *recordingFSM) has(cmd string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.applied, cmd)
}

func (f *recordingFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("recordingFSM takes no snapshots")
}
func (f *recordingFSM) Restore(io.ReadCloser) error {
	return errors.New("recordingFSM restores nothing")
}

type durableMember struct {
	raft  *raft.Raft
	store *raftstore.Store
	disk  *heldsync.Disk
	fsm   *recordingFSM
}

// startDurableTeam runs three hashicorp/raft nodes in this process, wired
// as the node wires them: write-ahead appends, durableFSM and
// durableTransport, over raft's in-memory transport.
func startDurableTeam(t *testing.T) []*durableMember {
	t.Helper()
	return startDurableTeamStall(t, 0)
}

// startDurableTeamStall is startDurableTeam with the log stores' stall
// timeout, and the transport silenced by a stalled store, as the node
// wires them.
func startDurableTeamStall(t *testing.T, stallAfter time.Duration) []*durableMember {
	t.Helper()
	const n = 3
	members := make([]*durableMember, n)
	trans := make([]*raft.InmemTransport, n)
	var servers []raft.Server
	for i := range n {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("node%d", i)))
		trans[i] = tr
		servers = append(servers, raft.Server{ID: raft.ServerID(addr), Address: addr, Suffrage: raft.Voter})
	}
	for i := range n {
		for j := range n {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	for i := range n {
		m := &durableMember{disk: &heldsync.Disk{}, fsm: &recordingFSM{}}
		members[i] = m
		var rf *raft.Raft
		var rfMu sync.Mutex
		leading := func() bool {
			rfMu.Lock()
			defer rfMu.Unlock()
			return rf != nil && rf.State() == raft.Leader
		}
		store, err := raftstore.Open("raft", raftstore.WithLogger(slog.New(slog.DiscardHandler)),
			raftstore.WithFS(errorfs.Wrap(vfs.NewMem(), m.disk)), raftstore.WithWriteAhead(leading), raftstore.WithStallTimeout(stallAfter))
		if err != nil {
			t.Fatal(err)
		}
		m.store = store
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		// Long enough that a loaded two-core machine under -race does not
		// lose the leader mid-test (a quorum must answer within the lease);
		// only the first election waits for it.
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Second, time.Second, time.Second
		conf.CommitTimeout = 5 * time.Millisecond
		conf.BatchApplyCh = true
		conf.Logger = hclog.NewNullLogger()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans[i], raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(conf, durableFSM{BatchingFSM: m.fsm, log: store}, store, store, snaps, durableTransport{raftTransport: trans[i], log: store, stalled: store.Stalled})
		if err != nil {
			t.Fatal(err)
		}
		rfMu.Lock()
		rf = r
		rfMu.Unlock()
		m.raft = r
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.disk.Release()
			_ = m.raft.Shutdown().Error()
			_ = m.store.Close()
		}
	})
	return members
}

func leaderOf(t *testing.T, members []*durableMember) (*durableMember, []*durableMember) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for i, m := range members {
			if m.raft.State() == raft.Leader {
				return m, slices.Delete(slices.Clone(members), i, i+1)
			}
		}
	}
	t.Fatal("no leader within a minute")
	return nil, nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within a minute: %s", what)
}

// While the leader's disk has not synced an entry, raft may count it
// committed (the followers have it on disk), but nothing applies it: not
// the leader's state machine, and not the followers', which are not told
// the commit. Once the leader's disk has it, everyone does.
func TestNothingAppliesWhatTheLeaderHasNotOnDisk(t *testing.T) {
	members := startDurableTeam(t)
	leader, followers := leaderOf(t, members)
	if err := leader.raft.Apply([]byte("first"), 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		eventually(t, "every node applies the first entry", func() bool { return m.fsm.has("first") })
	}

	leader.disk.Hold()
	future := leader.raft.Apply([]byte("held"), 10*time.Second)
	done := make(chan error, 1)
	go func() { done <- future.Error() }()
	index := func() uint64 { last, _ := leader.store.LastIndex(); return last }
	eventually(t, "the leader appends the entry", func() bool { return index() > 0 && leader.store.Durable() < index() })
	held := index()
	for _, f := range followers {
		eventually(t, "followers store the entry", func() bool { return f.store.Durable() >= held })
	}
	eventually(t, "raft counts it committed", func() bool { return leader.raft.CommitIndex() >= held })
	time.Sleep(100 * time.Millisecond) // twenty commit timeouts: time for a wrongly sent commit index to arrive
	for _, m := range members {
		if m.fsm.has("held") {
			t.Fatalf("%s applied an entry the leader's disk does not hold yet", m.raft.String())
		}
	}
	for _, f := range followers {
		if f.raft.CommitIndex() >= held {
			t.Fatalf("a follower was told commit index %d while the leader's log is on disk up to %d", f.raft.CommitIndex(), leader.store.Durable())
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the write was answered (%v) before the leader's disk held it", err)
	default:
	}

	leader.disk.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the write was not answered once the leader's disk held it")
	}
	for _, m := range members {
		eventually(t, "every node applies the entry", func() bool { return m.fsm.has("held") })
	}
}

// A leader whose disk stops finishing its writes is replaced: its stalled
// store silences its heartbeats, the others elect a leader among
// themselves and commit without it. This is the team that kept a leader
// stuck behind a full disk, and no write, for as long as the disk stayed
// full.
func TestStalledLeaderIsReplaced(t *testing.T) {
	members := startDurableTeamStall(t, 300*time.Millisecond)
	leader, followers := leaderOf(t, members)
	if err := leader.raft.Apply([]byte("before"), 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	leader.disk.Hold()
	// The write lands in the leader's log but its sync never returns.
	stuck := leader.raft.Apply([]byte("stuck"), 0)
	eventually(t, "the stalled leader's store says so", func() bool { return leader.store.Stalled() != nil })
	var next *durableMember
	eventually(t, "a follower leads", func() bool {
		for _, f := range followers {
			if f.raft.State() == raft.Leader {
				next = f
				return true
			}
		}
		return false
	})
	if err := next.raft.Apply([]byte("after"), 30*time.Second).Error(); err != nil {
		t.Fatalf("a write on the new leader: %v", err)
	}
	leader.disk.Release()
	_ = stuck.Error()
	eventually(t, "the old leader follows again", func() bool { return leader.raft.State() == raft.Follower && leader.store.Stalled() == nil })
}
