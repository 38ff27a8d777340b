package federation

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// journalFixture is a team whose policy for cert-b forwards intruder data
// up to AMBER, with a Federation over its state machine whose proposals
// go through propose (set by the test), and a stream to cert-b that has
// served the feed as Subscribe does. create adds an incident; serve walks
// the stream to the head and returns it.
type journalFixture struct {
	f         *Federation
	st        *fsm.FSM
	apply     func(*irxv1.Command) *fsm.Result
	create    func(irxv1.Tlp)
	setPolicy func(ceiling irxv1.Tlp)
	serve     func() uint64
	propose   func(*irxv1.Command) (*fsm.Result, error)
}

func newJournalFixture(t *testing.T) *journalFixture {
	t.Helper()
	st := stateWithPeers(t, &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(mustCA(t, "cert-b").CertPEM())})
	x := &journalFixture{st: st}
	index := uint64(1) // stateWithPeers applied entry 1
	x.apply = func(cmd *irxv1.Command) *fsm.Result {
		t.Helper()
		index++
		cmd.ProposeTime = timestamppb.Now()
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return st.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*fsm.Result)
	}
	x.setPolicy = func(ceiling irxv1.Tlp) {
		t.Helper()
		res := x.apply(&irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: &irxv1.SetPolicyCommand{
			TeamSecret: make([]byte, fsm.TeamSecretLength),
			Policy: &irxv1.DisclosurePolicy{
				PeerTeamId: "cert-b", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM, TlpCeiling: ceiling,
				Rules: []*irxv1.ClassRule{{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD}},
			},
		}}})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		rediscloseAll(t, st, x.apply, stretch{stretchIncidents, stretchVersions, stretchBytes})
	}
	x.setPolicy(irxv1.Tlp_TLP_AMBER)
	x.create = func(tlp irxv1.Tlp) {
		t.Helper()
		res := x.apply(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{Incident: &irxv1.Incident{
			Tlp:            tlp,
			Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
			Taxonomy:       &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
			AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}},
		}}}})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	x.f = New(Config{})
	x.f.state, x.f.team = fsmState{st}, "cert-a"
	x.f.commit = func(_ context.Context, cmd *irxv1.Command) (proto.Message, error) {
		return committedResult(x.propose(cmd))
	}
	compiled, err := x.f.policy("cert-b", 0)
	if err != nil {
		t.Fatal(err)
	}
	w := newWalker(x.f, "cert-b", compiled)
	session := x.f.journals.begin("cert-b", 0)
	cursor := uint64(0)
	x.serve = func() uint64 {
		t.Helper()
		last, err := w.walk(cursor, 100, func(e *irxv1.FeedEntry, outs []outcome, withheld uint64) bool {
			x.f.journals.record("cert-b", session, e.GetSequence(), outs, withheld, w.version)
			return true
		})
		if err != nil || last != st.FeedSequence() {
			t.Fatalf("walked to %d (%v), want the head %d", last, err, st.FeedSequence())
		}
		cursor = last
		return last
	}
	return x
}

// The policy version is one we never had: recomputing the walk would refuse
// it, so only the journal can serve an acknowledgement naming it.
const unknownPolicyVersion = 99

func (x *journalFixture) checkAcknowledged(t *testing.T, head, sent, withheld uint64) {
	t.Helper()
	ps, err := x.st.PeerState("cert-b")
	if err != nil {
		t.Fatal(err)
	}
	if ps.GetOutboundAcknowledged() != head || ps.GetSent() != sent || ps.GetWithheld() != withheld {
		t.Fatalf("peer state after the acknowledgement: acknowledged %d, sent %d, withheld %d; want %d, %d, %d",
			ps.GetOutboundAcknowledged(), ps.GetSent(), ps.GetWithheld(), head, sent, withheld)
	}
	if _, ok := x.f.journals.ledger("cert-b", 0, head); ok {
		t.Fatal("the journal still offers what was committed")
	}
	if sent, ok := x.f.journals.ledger("cert-b", head, head); !ok || len(sent.entries) != 0 {
		t.Fatalf("the journal does not start at the committed cursor: %v, %d entries", ok, len(sent.entries))
	}
}

// failProposal makes the n-th proposal from now fail without committing
// (the others commit) and returns the count of proposals made.
func (x *journalFixture) failProposal(n int) *int {
	calls := 0
	x.propose = func(cmd *irxv1.Command) (*fsm.Result, error) {
		if calls++; calls == n {
			return nil, status.Error(codes.Unavailable, "leadership changed while the write was in flight")
		}
		return x.apply(cmd), nil
	}
	return &calls
}

// acknowledge is cert-b acknowledging cursor under a policy version only
// the journal can serve.
func (x *journalFixture) acknowledge(cursor uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return x.f.acknowledge(ctx, "cert-b", cursor, unknownPolicyVersion)
}

func (x *journalFixture) wantProposalFailure(t *testing.T, cursor uint64) {
	t.Helper()
	if _, err := x.acknowledge(cursor); status.Code(err) != codes.Unavailable {
		t.Fatalf("acknowledging %d: got %v, want the proposal's failure", cursor, err)
	}
}

func (x *journalFixture) wantAcknowledged(t *testing.T, cursor uint64) {
	t.Helper()
	if acked, err := x.acknowledge(cursor); err != nil || acked != cursor {
		t.Fatalf("acknowledged %d, %v; want %d", acked, err, cursor)
	}
}

// TestAcknowledgeKeepsJournalUntilCommitted: an acknowledgement whose
// proposal fails leaves the stream's journal as it was, so the retry
// records what the stream sent without walking the feed again; once it
// commits, the journal lets go of what it acknowledged.
func TestAcknowledgeKeepsJournalUntilCommitted(t *testing.T) {
	x := newJournalFixture(t)
	for _, tlp := range []irxv1.Tlp{irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_RED, irxv1.Tlp_TLP_AMBER} {
		x.create(tlp)
	}
	head := x.serve()
	x.failProposal(1)
	x.wantProposalFailure(t, head)
	x.wantAcknowledged(t, head) // from the journal: the policy version is unknown
	x.checkAcknowledged(t, head, 2, 1)
}

// TestJournalFollowsCommitsItWasNotTold: a proposal that reports a failure
// although its entry committed (leadership changed after the commit) still
// moves the journal on, at the next acknowledgement, to the cursor the
// state holds, so the stream's later acknowledgements are served from it.
func TestJournalFollowsCommitsItWasNotTold(t *testing.T) {
	x := newJournalFixture(t)
	x.create(irxv1.Tlp_TLP_GREEN)
	x.create(irxv1.Tlp_TLP_RED)
	first := x.serve()
	x.propose = func(cmd *irxv1.Command) (*fsm.Result, error) {
		x.apply(cmd)
		return nil, status.Error(codes.Unavailable, "leadership changed after the write committed")
	}
	x.wantProposalFailure(t, first)
	x.create(irxv1.Tlp_TLP_AMBER)
	head := x.serve()
	x.propose = func(cmd *irxv1.Command) (*fsm.Result, error) { return x.apply(cmd), nil }
	x.wantAcknowledged(t, head) // from the journal: the policy version is unknown
	x.checkAcknowledged(t, head, 2, 1)
}

// TestSplitAcknowledgementKeepsCounts: an acknowledgement committed in
// pieces gives each piece the withheld count of its own stretch, so when a
// later piece fails and is retried, nothing withheld goes uncounted.
func TestSplitAcknowledgementKeepsCounts(t *testing.T) {
	x := newJournalFixture(t)
	x.f.maxLedgerPerCommand = 1
	for _, tlp := range []irxv1.Tlp{irxv1.Tlp_TLP_RED, irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_GREEN} {
		x.create(tlp)
	}
	head := x.serve()
	calls := x.failProposal(2)
	x.wantProposalFailure(t, head)
	x.wantAcknowledged(t, head)
	if *calls < 3 {
		t.Fatalf("%d proposals: the acknowledgement was not split", *calls)
	}
	x.checkAcknowledged(t, head, 2, 1)
}

// TestSplitAcknowledgementKeepsPolicyVersions: each committed piece of an
// acknowledgement records the policy version its own stretch was served
// under, not the version at the end of the whole range.
func TestSplitAcknowledgementKeepsPolicyVersions(t *testing.T) {
	x := newJournalFixture(t)
	x.f.maxLedgerPerCommand = 1
	x.create(irxv1.Tlp_TLP_AMBER)
	x.setPolicy(irxv1.Tlp_TLP_AMBER) // version 2: withdraws nothing
	x.create(irxv1.Tlp_TLP_AMBER)
	head := x.serve()
	x.failProposal(2)
	x.wantProposalFailure(t, head)
	ps, err := x.st.PeerState("cert-b")
	if err != nil {
		t.Fatal(err)
	}
	if ps.GetOutboundAcknowledged() == 0 || ps.GetOutboundAcknowledged() >= head || ps.GetOutboundPolicyVersion() != 1 {
		t.Fatalf("after the first piece: acknowledged %d of %d under policy version %d; want part of it under version 1",
			ps.GetOutboundAcknowledged(), head, ps.GetOutboundPolicyVersion())
	}
}

// TestAcknowledgementKeepsASequenceWhole: a stretch of a redisclosure that
// withdraws more records than one acknowledgement piece holds is
// acknowledged in one piece, whole, whether it ends the acknowledged range
// or not.
func TestAcknowledgementKeepsASequenceWhole(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("entries after it %v", after), func(t *testing.T) {
			x := newJournalFixture(t)
			x.f.maxLedgerPerCommand = 2
			x.propose = func(cmd *irxv1.Command) (*fsm.Result, error) { return x.apply(cmd), nil }
			for range 3 {
				x.create(irxv1.Tlp_TLP_AMBER)
			}
			x.wantAcknowledged(t, x.serve())
			x.setPolicy(irxv1.Tlp_TLP_GREEN) // withdraws the three AMBER records at one sequence, the stretch
			if after {
				x.create(irxv1.Tlp_TLP_GREEN)
				x.create(irxv1.Tlp_TLP_GREEN)
			}
			head := x.serve()
			x.wantAcknowledged(t, head)
			ps, err := x.st.PeerState("cert-b")
			if err != nil {
				t.Fatal(err)
			}
			if ps.GetSentWithdrawals() != 3 || ps.GetOutboundAcknowledged() != head {
				t.Fatalf("%d withdrawals acknowledged up to %d; want 3 up to %d", ps.GetSentWithdrawals(), ps.GetOutboundAcknowledged(), head)
			}
		})
	}
}

// TestJournalRelease: an acknowledged cursor moves the journal to it,
// keeping the rest with its withheld counts; a cursor at or before the
// journal's start changes nothing, and one past its end ends it.
func TestJournalRelease(t *testing.T) {
	j := journals{byPeer: map[string]*journal{}}
	session := j.begin("cert-b", 10)
	for seq := uint64(11); seq <= 14; seq++ {
		ledger := &irxv1.LedgerEntry{IncidentId: "cert-a:1", Sequence: seq}
		j.record("cert-b", session, seq, []outcome{{ledger: ledger}}, seq%2, int64(seq))
	}
	j.release("cert-b", 12)
	j.release("cert-b", 11) // already released
	if _, ok := j.ledger("cert-b", 10, 14); ok {
		t.Fatal("the journal still starts at 10 after 12 was acknowledged")
	}
	sent, ok := j.ledger("cert-b", 12, 14)
	withheld, version := sent.span(12, 14)
	if !ok || len(sent.entries) != 2 || sent.entries[0].GetSequence() != 13 || withheld != 1 || version != 14 {
		t.Fatalf("(12, 14]: ok %v, %d entries, withheld %d, version %d; want 13 and 14, withheld 1, version 14", ok, len(sent.entries), withheld, version)
	}
	if withheld, version := sent.span(12, 13); withheld != 1 || version != 13 {
		t.Fatalf("(12, 13]: withheld %d, version %d; want 1 and 13", withheld, version)
	}
	j.release("cert-b", 15) // acknowledged past what this stream served
	if _, ok := j.byPeer["cert-b"]; ok {
		t.Fatal("a journal behind the acknowledged cursor was kept")
	}
}

// rediscloseAll does what the leader does after a change of a peer's
// policy: it applies a RediscloseCommand for every stretch of what the
// peer holds, until none is pending.
func rediscloseAll(t interface {
	Helper()
	Fatal(...any)
	Fatalf(string, ...any)
}, st *fsm.FSM, apply func(*irxv1.Command) *fsm.Result, bound stretch) {
	t.Helper()
	for {
		pending, err := st.Redisclosures()
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			return
		}
		for peer, p := range pending {
			through, last, err := st.NextStretch(peer, p.GetAfterIncidentId(), bound.incidents, bound.versions, bound.bytes)
			if err != nil {
				t.Fatal(err)
			}
			res := apply(&irxv1.Command{Kind: &irxv1.Command_Redisclose{Redisclose: &irxv1.RediscloseCommand{
				PeerTeamId: peer, PolicyVersion: p.GetPolicyVersion(), AfterIncidentId: p.GetAfterIncidentId(),
				ThroughIncidentId: through, Last: last,
			}}})
			if res.Err != nil {
				t.Fatalf("redisclose %s after %q: %v", peer, p.GetAfterIncidentId(), res.Err)
			}
		}
	}
}

// stretch bounds the stretches rediscloseAll proposes.
type stretch struct{ incidents, versions, bytes int }
