package federation

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// countingWarnings counts the sender's reads of every warning.
type countingWarnings struct {
	fsmState
	reads atomic.Int32
}

func (c *countingWarnings) EachWarning(fn func(*irxv1.Warning) error) error {
	c.reads.Add(1)
	return c.fsmState.EachWarning(fn)
}

// leadingNode is a node that always leads; nothing else of it is used.
type leadingNode struct{ Node }

func (leadingNode) IsLeader() bool { return true }

// TestWarningSenderIdlesWithoutWork: with nothing to deliver or pass back
// the leader's sender reads the warnings when it comes to lead and when
// they change, not every poll; with a delivery left to retry it keeps
// polling.
func TestWarningSenderIdlesWithoutWork(t *testing.T) {
	st := stateWithPeers(t, &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: "pinned"}) // no endpoints: deliveries fail
	index := st.AppliedIndex()
	issue := func(to ...string) {
		t.Helper()
		w := &irxv1.Warning{Title: "scan", Severity: irxv1.WarningSeverity_WARNING_SEVERITY_HIGH, Tlp: irxv1.Tlp_TLP_GREEN,
			ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}
		for _, p := range to {
			w.Deliveries = append(w.Deliveries, &irxv1.WarningDelivery{PeerTeamId: p, State: irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_PENDING})
		}
		index++
		data, err := proto.Marshal(&irxv1.Command{ProposeTime: timestamppb.Now(), Actor: &irxv1.OperatorAction{Identity: "alice"},
			Kind: &irxv1.Command_IssueWarning{IssueWarning: &irxv1.IssueWarningCommand{Warning: w}}})
		if err != nil {
			t.Fatal(err)
		}
		if res := st.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	issue() // no recipients: nothing to do
	state := &countingWarnings{fsmState: fsmState{st}}
	f := New(Config{})
	f.state, f.team, f.log, f.node = state, "cert-a", slog.New(slog.DiscardHandler), leadingNode{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&warningSender{f: f, retry: map[string]retryState{}, inflight: map[string]bool{}}).run(stop)
	}()
	defer func() { close(stop); <-done }()

	waitFor(t, "the first pass", func() bool { return state.reads.Load() >= 1 })
	time.Sleep(3 * warningPoll)
	if n := state.reads.Load(); n != 1 {
		t.Fatalf("with nothing to do the warnings were read %d times in %v", n, 3*warningPoll)
	}
	issue("cert-b") // a delivery that fails and is retried
	waitFor(t, "polls while a delivery is left", func() bool { return state.reads.Load() >= 4 })
}
