package federation

import (
	"context"
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

// TestAcknowledgeKeepsJournalUntilCommitted: an acknowledgement whose
// proposal fails leaves the stream's journal as it was, so the retry
// records what the stream sent without walking the feed again; once it
// commits, the journal lets go of what it acknowledged.
func TestAcknowledgeKeepsJournalUntilCommitted(t *testing.T) {
	st := stateWithPeers(t, &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(mustCA(t, "cert-b").CertPEM())})
	index := uint64(1) // stateWithPeers applied entry 1
	apply := func(cmd *irxv1.Command) *fsm.Result {
		t.Helper()
		index++
		cmd.ProposeTime = timestamppb.Now()
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return st.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*fsm.Result)
	}
	res := apply(&irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: &irxv1.SetPolicyCommand{
		TeamSecret: make([]byte, fsm.TeamSecretLength),
		Policy: &irxv1.DisclosurePolicy{
			PeerTeamId: "cert-b", RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM, TlpCeiling: irxv1.Tlp_TLP_AMBER,
			Rules: []*irxv1.ClassRule{{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD}},
		},
	}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, tlp := range []irxv1.Tlp{irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_RED, irxv1.Tlp_TLP_AMBER} {
		res := apply(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{Incident: &irxv1.Incident{
			Tlp:            tlp,
			Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
			Taxonomy:       &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
			AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}},
		}}}})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	head := st.FeedSequence()

	f := New(Config{})
	f.state, f.team = st, "cert-a"
	failNext := true
	f.propose = func(_ context.Context, cmd *irxv1.Command) (*fsm.Result, error) {
		if failNext {
			failNext = false
			return nil, status.Error(codes.Unavailable, "leadership changed while the write was in flight")
		}
		return apply(cmd), nil
	}

	// Serve the feed as Subscribe does, from the peer's cursor 0.
	compiled, err := f.policy("cert-b", 0)
	if err != nil {
		t.Fatal(err)
	}
	w := newWalker(f, "cert-b", compiled)
	session := f.journals.begin("cert-b", 0)
	last, err := w.walk(0, 100, func(e *irxv1.FeedEntry, outs []outcome, withheld uint64) {
		f.journals.record("cert-b", session, e.GetSequence(), outs, withheld, w.version)
	})
	if err != nil || last != head {
		t.Fatalf("walked to %d (%v), want the head %d", last, err, head)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The policy version is one we never had: recomputing the walk would
	// refuse it, so only the journal can serve these acknowledgements.
	const unknownVersion = 99
	if _, err := f.acknowledge(ctx, "cert-b", head, unknownVersion); status.Code(err) != codes.Unavailable {
		t.Fatalf("first acknowledgement: got %v, want the proposal's failure", err)
	}
	acked, err := f.acknowledge(ctx, "cert-b", head, unknownVersion)
	if err != nil || acked != head {
		t.Fatalf("retried acknowledgement: acknowledged %d, %v; want %d from the journal", acked, err, head)
	}
	ps, err := st.PeerState("cert-b")
	if err != nil {
		t.Fatal(err)
	}
	if ps.GetOutboundAcknowledged() != head || ps.GetSent() != 2 || ps.GetWithheld() != 1 {
		t.Fatalf("peer state after the acknowledgement: acknowledged %d, sent %d, withheld %d; want %d, 2, 1",
			ps.GetOutboundAcknowledged(), ps.GetSent(), ps.GetWithheld(), head)
	}
	if _, _, _, ok := f.journals.ledger("cert-b", 0, head); ok {
		t.Fatal("the journal still offers what was committed")
	}
	if entries, _, _, ok := f.journals.ledger("cert-b", head, head); !ok || len(entries) != 0 {
		t.Fatalf("the journal does not start at the committed cursor: %v, %d entries", ok, len(entries))
	}
}

// TestJournalDrop: a committed piece of an acknowledgement moves the
// journal to where the piece ended, keeping the rest with its withheld
// counts; a drop from a cursor the journal no longer starts at changes
// nothing.
func TestJournalDrop(t *testing.T) {
	j := journals{byPeer: map[string]*journal{}}
	session := j.begin("cert-b", 10)
	for seq := uint64(11); seq <= 14; seq++ {
		ledger := &irxv1.LedgerEntry{IncidentId: "cert-a:1", Sequence: seq}
		j.record("cert-b", session, seq, []outcome{{ledger: ledger}}, seq%2, int64(seq))
	}
	j.drop("cert-b", 10, 12)
	j.drop("cert-b", 10, 14) // stale: the journal starts at 12 now
	if _, _, _, ok := j.ledger("cert-b", 10, 14); ok {
		t.Fatal("the journal still starts at 10 after (10, 12] was dropped")
	}
	entries, withheld, version, ok := j.ledger("cert-b", 12, 14)
	if !ok || len(entries) != 2 || entries[0].GetSequence() != 13 || withheld != 1 || version != 14 {
		t.Fatalf("(12, 14]: ok %v, %d entries, withheld %d, version %d; want 13 and 14, withheld 1, version 14", ok, len(entries), withheld, version)
	}
}
