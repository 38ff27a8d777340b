package federation

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// stateWithPeers opens a real state machine of team cert-a holding the
// given peers.
func stateWithPeers(t *testing.T, peers ...*irxv1.Peer) *fsm.FSM {
	t.Helper()
	st, err := fsm.Open(filepath.Join(t.TempDir(), "state"), "cert-a", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for i, p := range peers {
		data, err := proto.Marshal(&irxv1.Command{ProposeTime: timestamppb.Now(), Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{Peer: p, Create: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if res := st.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	return st
}

func chainOf(t *testing.T, ca *pki.CA, id pki.Identity, usage pki.Usage) []*x509.Certificate {
	t.Helper()
	certPEM, _, err := ca.Issue(pki.IssueRequest{Identity: id, Usage: usage, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{cert}
}

// TestVerifyPeer is the peer-facing listener's admission decision: only a
// node certificate chaining to the CA pinned for the team it names, of an
// enabled peer, gets in.
func TestVerifyPeer(t *testing.T) {
	now := time.Now()
	caB, _ := pki.NewCA("cert-b", time.Hour, now)
	caC, _ := pki.NewCA("cert-c", time.Hour, now)
	impostorB, _ := pki.NewCA("cert-b", time.Hour, now) // right name, not the pinned key
	caD, _ := pki.NewCA("cert-d", time.Hour, now)
	f := &Federation{state: fsmState{stateWithPeers(t,
		&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM())},
		&irxv1.Peer{TeamId: "cert-c", CaCertificatePem: string(caC.CertPEM()), Disabled: true},
		// A misconfigured pin: cert-d's entry holds cert-b's CA.
		&irxv1.Peer{TeamId: "cert-d", CaCertificatePem: string(caB.CertPEM())},
	)}}
	cases := []struct {
		name  string
		chain []*x509.Certificate
		want  string // "" admits; else a word of the refusal
	}{
		{"node of a pinned peer", chainOf(t, caB, pki.NodeIdentity("cert-b", "n1"), pki.UsageNode), ""},
		{"operator of a pinned peer", chainOf(t, caB, pki.OperatorIdentity("cert-b", "ops"), pki.UsageClient), "not a node"},
		{"server-only certificate", chainOf(t, caB, pki.NodeIdentity("cert-b", "n2"), pki.UsageServer), "does not verify"},
		{"impostor CA with the peer's name", chainOf(t, impostorB, pki.NodeIdentity("cert-b", "n1"), pki.UsageNode), "does not verify"},
		{"disabled peer", chainOf(t, caC, pki.NodeIdentity("cert-c", "n1"), pki.UsageNode), "disabled"},
		{"pin holds another team's CA", chainOf(t, caD, pki.NodeIdentity("cert-d", "n1"), pki.UsageNode), "does not verify"},
		{"unknown team", chainOf(t, mustCA(t, "cert-z"), pki.NodeIdentity("cert-z", "n1"), pki.UsageNode), "not a configured peer"},
		{"no certificate", nil, "no certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := f.verifyPeer(tc.chain, x509.ExtKeyUsageClientAuth)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && id.Team != "cert-b":
				t.Fatalf("admitted as %v", id)
			case tc.want != "" && err == nil:
				t.Fatalf("admitted %v", id)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refused with %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func mustCA(t *testing.T, team string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(team, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestSplitFeedProperties: however a response is cut into commands, the
// commands chain cursor to cursor, keep every item once and in order, move
// the cursor past an entry only with its last item, and stay within the
// size bound (unless one item alone is larger) and near it. The response
// arrives encoded and its items are passed on undecoded, so the test
// encodes the response and decodes each command, as the state machine does.
func TestSplitFeedProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		from := rapid.Uint64Range(0, 1000).Draw(t, "from")
		seq := from
		var items []*irxv1.FeedItem
		for range rapid.IntRange(0, 40).Draw(t, "entries") {
			seq += rapid.Uint64Range(1, 3).Draw(t, "gap")
			for range rapid.IntRange(1, 3).Draw(t, "items") {
				size := rapid.IntRange(0, 3*maxCommandBytes/2).Draw(t, "size")
				items = append(items, &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Incident{Incident: &irxv1.Incident{
					Id: "cert-b:1", WithdrawReason: strings.Repeat("x", size),
				}}})
			}
		}
		cursor := seq + rapid.Uint64Range(0, 5).Draw(t, "tail")
		head := cursor + rapid.Uint64Range(0, 5).Draw(t, "ahead")
		headTime := timestamppb.New(time.Unix(rapid.Int64Range(0, 1<<32).Draw(t, "head time"), 0))
		encoded, err := proto.Marshal(&irxv1.SubscribeResponse{Items: items, Cursor: cursor, PolicyVersion: 3, Head: head, HeadTime: headTime})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := parseResponse(encoded)
		if err != nil {
			t.Fatal(err)
		}
		at, n := from, 0
		cmds := slices.Collect(feedCommands("cert-b", from, resp))
		for i, raw := range cmds {
			data, err := proto.Marshal(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: raw}})
			if err != nil {
				t.Fatal(err)
			}
			var decoded irxv1.Command
			if err := proto.Unmarshal(data, &decoded); err != nil {
				t.Fatal(err)
			}
			c := decoded.GetApplyPeerFeed()
			if c.GetFromCursor() != at || c.GetCursor() < at || c.GetPolicyVersion() != 3 || c.GetPeerTeamId() != "cert-b" ||
				c.GetHead() != head || !proto.Equal(c.GetHeadTime(), headTime) || !c.GetCheckText() {
				t.Fatalf("command %d: from %d to %d, previous ended at %d", i, c.GetFromCursor(), c.GetCursor(), at)
			}
			size := 0
			for _, it := range c.GetItems() {
				if !proto.Equal(it, items[n]) {
					t.Fatalf("command %d holds item %d out of order", i, n)
				}
				// An item lies in (from, cursor], or in the entry after
				// cursor when the command ends inside that entry's items.
				if it.GetSequence() <= c.GetFromCursor() || it.GetSequence() > c.GetCursor()+1 {
					t.Fatalf("item at %d outside (%d, %d+1]", it.GetSequence(), c.GetFromCursor(), c.GetCursor())
				}
				size += protowire.SizeTag(wire.ApplyPeerFeedItems) + protowire.SizeBytes(proto.Size(it))
				n++
			}
			split := n < len(items) && n > 0 && items[n].GetSequence() == items[n-1].GetSequence()
			if split && c.GetCursor() >= items[n].GetSequence() {
				t.Fatalf("command %d splits the items of sequence %d but moves the cursor to %d", i, items[n].GetSequence(), c.GetCursor())
			}
			if !split && n > 0 && n <= len(items) && c.GetCursor() < items[n-1].GetSequence() && i < len(cmds)-1 {
				t.Fatalf("command %d ends with the whole entry %d but leaves the cursor at %d", i, items[n-1].GetSequence(), c.GetCursor())
			}
			// Within the bound unless one item alone is larger, and cut
			// only where the next item would not fit.
			if len(c.GetItems()) > 1 && (size > maxCommandBytes || len(data) > wire.MaxEntryBytes) {
				t.Fatalf("command %d of %d items is %d bytes, %d encoded", i, len(c.GetItems()), size, len(data))
			}
			if i < len(cmds)-1 && size+protowire.SizeTag(wire.ApplyPeerFeedItems)+protowire.SizeBytes(proto.Size(items[n])) <= maxCommandBytes {
				t.Fatalf("command %d of %d bytes was cut before an item of %d that fits", i, size, proto.Size(items[n]))
			}
			at = c.GetCursor()
		}
		if n != len(items) || at != cursor {
			t.Fatalf("%d of %d items, ended at %d of %d", n, len(items), at, cursor)
		}
	})
}

// TestParseResponseRefusesMalformed: a response that is not a well-formed
// SubscribeResponse is an error, never a panic or a silently empty batch;
// fields a newer peer adds are skipped.
func TestParseResponseRefusesMalformed(t *testing.T) {
	good, err := proto.Marshal(&irxv1.SubscribeResponse{Cursor: 9, Items: []*irxv1.FeedItem{{Sequence: 9}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated":          good[:len(good)-1],
		"bad tag":            {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"item overruns":      {0x0a, 0x10, 0x08},
		"item is malformed":  {0x0a, 0x02, 0x08, 0x80},
		"head_time is bogus": {0x22, 0x02, 0x08, 0x80},
	} {
		if _, err := parseResponse(b); !errors.Is(err, errMalformedResponse) {
			t.Errorf("%s: %v, want %v", name, err, errMalformedResponse)
		}
	}
	withNewField := append(protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "from the future"), good...)
	r, err := parseResponse(withNewField)
	if err != nil || r.cursor != 9 || len(r.items) != 1 || r.items[0].sequence != 9 {
		t.Fatalf("with an unknown field: %+v, %v", r, err)
	}
}

// FuzzParseResponse: whatever bytes a peer sends, parsing never panics,
// and what it accepts proto.Unmarshal accepts with the same cursor and
// item sequences.
func FuzzParseResponse(f *testing.F) {
	seed, _ := proto.Marshal(&irxv1.SubscribeResponse{Cursor: 3, Head: 4, PolicyVersion: 2, Items: []*irxv1.FeedItem{
		{Sequence: 2, Kind: &irxv1.FeedItem_Withdrawal{Withdrawal: &irxv1.IncidentWithdrawal{IncidentId: "cert-a:1"}}},
		{Sequence: 3, Kind: &irxv1.FeedItem_Incident{Incident: &irxv1.Incident{Id: "cert-a:2"}}},
	}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResponse(b)
		if err != nil {
			return
		}
		var want irxv1.SubscribeResponse
		if err := proto.Unmarshal(b, &want); err != nil {
			return // an item's inside is the state machine's to refuse
		}
		if r.cursor != want.GetCursor() || r.head != want.GetHead() || r.policyVersion != want.GetPolicyVersion() || len(r.items) != len(want.GetItems()) {
			t.Fatalf("parsed %+v, proto.Unmarshal %v", r, &want)
		}
		for i, it := range want.GetItems() {
			if r.items[i].sequence != it.GetSequence() {
				t.Fatalf("item %d: sequence %d, want %d", i, r.items[i].sequence, it.GetSequence())
			}
		}
	})
}

// TestFeedCommandsSayWhenViewsAreChecked: a command whose incidents are
// all records the replicas may take as they are says so; one incident that
// is not (invalid, breaking the text rules, a withdrawn stub) leaves the
// whole command to be checked on every replica.
func TestFeedCommandsSayWhenViewsAreChecked(t *testing.T) {
	valid := func() *irxv1.Incident {
		return &irxv1.Incident{
			Id: "cert-b:1", Version: 1, Tlp: irxv1.Tlp_TLP_AMBER,
			Taxonomy:     &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
			Descriptions: []*irxv1.Description{{Lang: "en", Text: "defaced"}},
			Provenance:   &irxv1.Provenance{OriginTeam: "cert-b", Path: []string{"cert-b", "cert-a"}, ReceivedFrom: "cert-b"},
		}
	}
	invalid, bidi, withdrawn := valid(), valid(), valid()
	invalid.Tlp = irxv1.Tlp_TLP_UNSPECIFIED
	bidi.Descriptions[0].Text = "invoice \u202efdp.exe"
	withdrawn.WithdrawReason = "withdrawn at the origin"
	withdrawal := &irxv1.FeedItem{Sequence: 2, Kind: &irxv1.FeedItem_Withdrawal{Withdrawal: &irxv1.IncidentWithdrawal{IncidentId: "cert-b:2", Version: 1}}}
	for _, tc := range []struct {
		name    string
		view    *irxv1.Incident
		checked bool
	}{{"valid", valid(), true}, {"invalid", invalid, false}, {"bidi text", bidi, false}, {"withdrawn stub", withdrawn, false}} {
		items := []*irxv1.FeedItem{{Sequence: 1, Kind: &irxv1.FeedItem_Incident{Incident: valid()}}, withdrawal,
			{Sequence: 3, Kind: &irxv1.FeedItem_Incident{Incident: tc.view}}}
		encoded, err := proto.Marshal(&irxv1.SubscribeResponse{Items: items, Cursor: 3})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := parseResponse(encoded)
		if err != nil {
			t.Fatal(err)
		}
		cmds := slices.Collect(feedCommands("cert-b", 0, resp))
		if len(cmds) != 1 {
			t.Fatalf("%s: %d commands, want 1", tc.name, len(cmds))
		}
		if !cmds[0].GetCheckText() || cmds[0].GetViewsChecked() != tc.checked {
			t.Errorf("%s: check_text %v, views_checked %v, want %v", tc.name, cmds[0].GetCheckText(), cmds[0].GetViewsChecked(), tc.checked)
		}
	}
}
