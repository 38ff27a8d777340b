package fsm

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// foreignView is what peer sends us (team cert-a) of its incident ticket at
// version: valid, with the provenance a sender stamps.
func foreignView(origin string, ticket uint64, version int64, path ...string) *irxv1.Incident {
	inc := newIncident()
	inc.Id = record.ID{Team: origin, Ticket: ticket}.String()
	inc.Version = version
	inc.Tlp = irxv1.Tlp_TLP_GREEN
	inc.Status = irxv1.Status_STATUS_NEW
	inc.Restriction = irxv1.Restriction_RESTRICTION_PARTNER
	inc.Purpose = irxv1.Purpose_PURPOSE_REPORTING
	inc.ReportTime = timestamppb.New(t0)
	inc.CreateTime = timestamppb.New(t0)
	from := origin
	if len(path) > 0 {
		from = path[len(path)-1]
	}
	inc.Provenance = &irxv1.Provenance{OriginTeam: origin, Path: append(path, team), ReceivedFrom: from}
	return inc
}

func viewItem(seq uint64, inc *irxv1.Incident) *irxv1.FeedItem {
	return &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Incident{Incident: inc}}
}

func withdrawalItem(seq uint64, id string, version int64, reason irxv1.WithdrawalReason) *irxv1.FeedItem {
	return &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Withdrawal{Withdrawal: &irxv1.IncidentWithdrawal{IncidentId: id, Version: version, Reason: reason}}}
}

func (h *harness) addPeer(id string) {
	h.t.Helper()
	res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{
		Peer: &irxv1.Peer{TeamId: id, CaCertificatePem: "pinned"}, Create: true,
	}}}))
	if res.Err != nil {
		h.t.Fatalf("put peer %s: %v", id, res.Err)
	}
}

func (h *harness) feed(peer string, from, to uint64, items ...*irxv1.FeedItem) *Result {
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: peer, FromCursor: from, Cursor: to, Items: items, Head: to,
	}}}))
}

func TestPeerFeedAppliesOnceAndInOrder(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	if res := h.addPeerAgain("cert-b"); !errors.Is(res.Err, ErrAlreadyExists) {
		t.Fatalf("second CreatePeer: %v", res.Err)
	}
	if res := h.feed("cert-z", 0, 1, viewItem(1, foreignView("cert-z", 1, 1))); !errors.Is(res.Err, ErrNotFound) {
		t.Fatalf("feed of an unknown peer: %v", res.Err)
	}

	v1 := foreignView("cert-b", 1, 1)
	if res := h.feed("cert-b", 0, 3, viewItem(2, v1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	// The same batch again (a second leader pulled it too): refused whole.
	before := contentDigest(t, h.f)
	if res := h.feed("cert-b", 0, 3, viewItem(2, foreignView("cert-b", 2, 1))); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("replayed batch: %v", res.Err)
	}
	if contentDigest(t, h.f) != before {
		t.Fatal("a refused batch changed the state")
	}
	got := mustGet(t, h.f, "cert-b:1", 0)
	if got.GetProvenance().GetReceiveTime() == nil || got.GetVersion() != 1 {
		t.Fatalf("stored copy: %v", got)
	}

	// Duplicates and older versions change nothing; newer versions replace.
	v3 := foreignView("cert-b", 1, 3)
	if res := h.feed("cert-b", 3, 5, viewItem(4, foreignView("cert-b", 1, 1)), viewItem(5, v3)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.feed("cert-b", 5, 6, viewItem(6, foreignView("cert-b", 1, 2))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:1", 0); got.GetVersion() != 3 {
		t.Fatalf("latest version %d, want 3 (versions never go backwards)", got.GetVersion())
	}
	st, _ := h.f.PeerState("cert-b")
	if st.GetInboundCursor() != 6 || st.GetReceived() != 2 || st.GetRejected() != 0 {
		t.Fatalf("peer state %v", st)
	}
}

func (h *harness) addPeerAgain(id string) *Result {
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{
		Peer: &irxv1.Peer{TeamId: id, CaCertificatePem: "pinned"}, Create: true,
	}}}))
}

func TestPeerFeedRefusesLoopsAndForgeries(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	own := foreignView(team, 1, 1, "cert-b") // our own record coming back
	wrongSender := foreignView("cert-c", 1, 1)
	notLast := foreignView("cert-c", 2, 1, "cert-b")
	notLast.Provenance.Path = []string{"cert-b"}
	crossed := foreignView("cert-c", 3, 1, team, "cert-b") // already crossed us
	invalid := foreignView("cert-b", 4, 1)
	invalid.Taxonomy = nil
	if res := h.feed("cert-b", 0, 5, viewItem(1, own), viewItem(2, wrongSender), viewItem(3, notLast), viewItem(4, crossed), viewItem(5, invalid)); res.Err != nil {
		t.Fatal(res.Err)
	}
	st, _ := h.f.PeerState("cert-b")
	if st.GetRejected() != 5 || st.GetReceived() != 0 || st.GetInboundCursor() != 5 {
		t.Fatalf("peer state %v, want 5 refused, cursor 5", st)
	}
	if n := len(listAll(t, h.f, Query{}, 100)); n != 0 {
		t.Fatalf("%d records stored from refused items", n)
	}
}

func TestPeerWithdrawals(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	// cert-b:1 directly from its origin; cert-c:1 re-shared by cert-b.
	if res := h.feed("cert-b", 0, 2, viewItem(1, foreignView("cert-b", 1, 1)), viewItem(2, foreignView("cert-c", 1, 1, "cert-b"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	// cert-c may not withdraw by policy a copy it did not give us; that is
	// no error (in a mesh a record arrives by several paths).
	if res := h.feed("cert-c", 0, 1, withdrawalItem(1, "cert-c:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY)); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustGet(t, h.f, "cert-c:1", 0)
	if st, err := h.f.PeerState("cert-c"); err != nil || st.GetRejected() != 0 {
		t.Fatalf("a withdrawal from another path counted as refused: %v", st)
	}
	// As the origin, it may: the copy goes, a stub says why, and a
	// tombstone keeps an old version arriving later from cert-b from coming
	// back.
	origin := withdrawalItem(2, "cert-c:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)
	origin.GetWithdrawal().Description = "reported in error"
	if res := h.feed("cert-c", 1, 2, origin); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustBeStub(t, h.f, "cert-c:1", "withdrawn by its origin cert-c: reported in error")
	if res := h.feed("cert-b", 2, 3, viewItem(3, foreignView("cert-c", 1, 1, "cert-b"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustBeStub(t, h.f, "cert-c:1", "withdrawn by its origin cert-c")
	// A policy withdrawal from the sender deletes; the feed records it so
	// teams we re-shared to are told.
	if res := h.feed("cert-b", 3, 4, withdrawalItem(4, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY)); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustBeStub(t, h.f, "cert-b:1", "withdrawn by cert-b: its disclosure policy no longer lets this team hold the record")
	entries, err := h.f.FeedEntries(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []irxv1.FeedEntryKind
	for _, e := range entries {
		kinds = append(kinds, e.GetKind())
	}
	want := []irxv1.FeedEntryKind{irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION, irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION,
		irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL, irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL}
	if !equalKinds(kinds, want) {
		t.Fatalf("feed kinds %v, want %v", kinds, want)
	}
	// Versions and indexes of the deleted copies are gone too: only each
	// stub's version and its handling indexes (status, TLP) are left.
	for k, v := range dump(t, h.f) {
		if hasAnyPrefix(k, "idx/ind/", "idx/tax/"+newIncident().GetTaxonomy().GetClass()) || strings.Contains(v, "www.example.org") {
			t.Errorf("left behind: %q", k)
		}
	}
	if list := listAll(t, h.f, Query{}, 10); len(list) != 0 {
		t.Errorf("withdrawn copies are listed: %v", list)
	}
}

// mustBeStub checks that a team holds only a withdrawn stub of id: no
// content, the withdrawal time, and a history item saying why.
func mustBeStub(t *testing.T, f *FSM, id, why string) {
	t.Helper()
	got, err := f.Get(id, 0)
	if err != nil {
		t.Fatalf("withdrawn copy of %s: %v", id, err)
	}
	if got.GetWithdrawTime() == nil || got.GetTaxonomy() != nil || len(got.GetVictimHosts())+len(got.GetAttackingHosts())+len(got.GetIndicators()) > 0 {
		t.Fatalf("withdrawn copy of %s is not a stub: %v", id, got)
	}
	h := got.GetHistory()
	if len(h) != 1 || h[0].GetAction() != irxv1.HistoryAction_HISTORY_ACTION_WITHDRAWN || !strings.HasPrefix(h[0].GetDescription(), why) {
		t.Fatalf("history of the withdrawn copy of %s: %v, want it to say %q", id, h, why)
	}
	versions, _, err := f.Versions(id, 100, "")
	if err != nil || len(versions) != 1 {
		t.Fatalf("versions of the withdrawn copy of %s: %d, %v", id, len(versions), err)
	}
}

func equalKinds(a, b []irxv1.FeedEntryKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hasAnyPrefix(k string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(k) >= len(p) && k[:len(p)] == p {
			return true
		}
	}
	return false
}

func TestWithdrawOwnIncident(t *testing.T) {
	h := newHarness(t)
	inc := h.create(newIncident())
	res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: inc.GetId(), Reason: "duplicate"}}}))
	if res.Err != nil || res.Incident.GetVersion() != 2 || res.Incident.GetWithdrawTime() == nil {
		t.Fatalf("withdraw: %v, %v", res.Incident, res.Err)
	}
	if n := len(listAll(t, h.f, Query{}, 10)); n != 0 {
		t.Errorf("a withdrawn incident is listed by default (%d)", n)
	}
	if n := len(listAll(t, h.f, Query{IncludeWithdrawn: true}, 10)); n != 1 {
		t.Errorf("IncludeWithdrawn lists %d", n)
	}
	if res := h.apply(h.updateLog(&irxv1.Incident{Id: inc.GetId(), Status: irxv1.Status_STATUS_RESOLVED}, 0, "status")); !errors.Is(res.Err, ErrWithdrawn) {
		t.Errorf("update of a withdrawn incident: %v", res.Err)
	}
	again := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: inc.GetId()}}}))
	if !errors.Is(again.Err, ErrWithdrawn) {
		t.Errorf("second withdrawal: %v", again.Err)
	}
}

func heldVersion(t *testing.T, f *FSM, peer, id string) int64 {
	t.Helper()
	r, err := f.NewVersionReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	held, err := r.HeldVersions(peer, id)
	if err != nil {
		t.Fatal(err)
	}
	var v int64
	for version := range held {
		v = max(v, version)
	}
	return v
}

func TestAcknowledgementLedger(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	a := h.create(newIncident())
	ack := func(from, to uint64, entries ...*irxv1.LedgerEntry) *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_AcknowledgePeer{AcknowledgePeer: &irxv1.AcknowledgePeerCommand{
			PeerTeamId: "cert-b", FromCursor: from, Cursor: to, PolicyVersion: 1, Entries: entries, Withheld: 1,
		}}}))
	}
	if res := ack(0, 1, &irxv1.LedgerEntry{IncidentId: a.GetId(), Version: 1, Sequence: 1, PolicyVersion: 1}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if v := heldVersion(t, h.f, "cert-b", a.GetId()); v != 1 {
		t.Fatalf("held version %d", v)
	}
	if res := ack(0, 1); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("repeated acknowledgement: %v", res.Err)
	}
	// A refused acknowledgement changes nothing, not even its valid entries.
	if res := ack(1, 2,
		&irxv1.LedgerEntry{IncidentId: a.GetId(), Version: 2, Sequence: 2, PolicyVersion: 1, WithdrawalReason: irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN},
		&irxv1.LedgerEntry{IncidentId: a.GetId(), Version: 1, Sequence: 9}); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("entry outside the range: %v", res.Err)
	}
	if v := heldVersion(t, h.f, "cert-b", a.GetId()); v != 1 {
		t.Fatalf("a refused acknowledgement changed what the peer holds: %d", v)
	}
	if res := ack(1, 2, &irxv1.LedgerEntry{IncidentId: a.GetId(), Version: 2, Sequence: 2, PolicyVersion: 1, WithdrawalReason: irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if v := heldVersion(t, h.f, "cert-b", a.GetId()); v != 0 {
		t.Fatalf("held after withdrawal: %d", v)
	}
	byPeer, _, err := h.f.Disclosures("cert-b", "", 10, "")
	if err != nil || len(byPeer) != 2 || !byPeer[1].GetWithdrawal() {
		t.Fatalf("ledger by peer: %v, %v", byPeer, err)
	}
	byIncident, _, err := h.f.Disclosures("", a.GetId(), 10, "")
	if err != nil || len(byIncident) != 2 || !proto.Equal(byIncident[0], byPeer[0]) {
		t.Fatalf("ledger by incident: %v, %v", byIncident, err)
	}
	st, err := h.f.PeerState("cert-b")
	if err != nil {
		t.Fatal(err)
	}
	if st.GetSent() != 1 || st.GetSentWithdrawals() != 1 || st.GetWithheld() != 2 || st.GetOutboundAcknowledged() != 2 {
		t.Fatalf("peer state %v", st)
	}
}

// TestReceivedStateSurvivesRestartAndRestore: after the node restarts, and
// on a node restored from a snapshot, the origin's withdrawal still keeps
// an older version from coming back, and a version older than the one held
// is still a no-op. The state machine keeps the tombstones and the highest
// ticket held per origin in memory, rebuilt from the database on both
// paths.
func TestReceivedStateSurvivesRestartAndRestore(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	if res := h.feed("cert-b", 0, 2, viewItem(1, foreignView("cert-b", 1, 1)), viewItem(2, foreignView("cert-b", 2, 2))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.feed("cert-b", 2, 3, withdrawalItem(3, "cert-b:1", 3, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)); res.Err != nil {
		t.Fatal(res.Err)
	}
	snap := takeSnapshot(t, h.f)

	// Restart.
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	checkReceivedState(t, h, "a restart", 2)

	// Restore on another node.
	other := newHarness(t)
	if err := other.f.Restore(snap.reader()); err != nil {
		t.Fatal(err)
	}
	other.index = h.index
	checkReceivedState(t, other, "a restore", 3)
	// A version newer than the withdrawal is a new disclosure, and is kept.
	if res := other.feed("cert-b", 5, 6, viewItem(6, foreignView("cert-b", 1, 4))); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustGet(t, other.f, "cert-b:1", 4)
}

// checkReceivedState feeds h, at cursor 3 after cert-b withdrew cert-b:1
// at version 3 and sent cert-b:2 at version 2, a withdrawn version of
// cert-b:1 and an older one of cert-b:2: both must change nothing.
func checkReceivedState(t *testing.T, h *harness, after string, withdrawnVersion int64) {
	t.Helper()
	if res := h.feed("cert-b", 3, 4, viewItem(4, foreignView("cert-b", 1, withdrawnVersion))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:1", 0); got.GetWithdrawTime() == nil {
		t.Fatalf("after %s a withdrawn incident came back: %v", after, got)
	}
	if res := h.feed("cert-b", 4, 5, viewItem(5, foreignView("cert-b", 2, 1))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:2", 0); got.GetVersion() != 2 {
		t.Fatalf("after %s an older version replaced the one held: version %d", after, got.GetVersion())
	}
}

// TestHighestTicketsPerOrigin: the per-origin ticket bound rebuilt at open
// is the highest ticket held of each other team, for team ids that are
// prefixes of one another too, and never covers this team's own records.
func TestHighestTicketsPerOrigin(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.create(newIncident())
	if res := h.feed("cert-b", 0, 4,
		viewItem(1, foreignView("cert-b", 7, 1)), viewItem(2, foreignView("cert-b", 3, 1)),
		viewItem(3, foreignView("cert-bb", 2, 1, "cert-b")), viewItem(4, foreignView("cert", 9, 1, "cert-b"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	want := map[string]uint64{"cert-b": 7, "cert-bb": 2, "cert": 9}
	if !maps.Equal(h.f.foreignHigh, want) {
		t.Fatalf("while running: %v, want %v", h.f.foreignHigh, want)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	if !maps.Equal(h.f.foreignHigh, want) {
		t.Fatalf("after a restart: %v, want %v", h.f.foreignHigh, want)
	}
}

func (h *harness) feedChecked(peer string, from, to uint64, items ...*irxv1.FeedItem) *Result {
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: peer, FromCursor: from, Cursor: to, Items: items, Head: to, CheckText: true,
	}}}))
}

// TestPeerFeedTextRules: a feed entry that asks for the text rules refuses
// a view holding a bidirectional override or a control character; one
// logged before the rules (check_text unset) applies as it did. A
// withdrawal is honoured even when its reason breaks the rules (only the
// reason is not kept), and a replacement that does is taken as an erasure
// of the version, never as a reason to keep the wider copy.
func TestPeerFeedTextRules(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	trojan := foreignView("cert-b", 1, 1)
	trojan.Descriptions = []*irxv1.Description{{Lang: "en", Text: "access\u202e level"}}
	escape := foreignView("cert-b", 2, 1)
	escape.VictimHosts = []*irxv1.Host{{Hostname: "ws1.example.org", Site: "site\x1b[2J"}}
	if res := h.feedChecked("cert-b", 0, 2, viewItem(1, trojan), viewItem(2, escape)); res.Err != nil {
		t.Fatal(res.Err)
	}
	st := peerState(t, h.f, "cert-b")
	if st.GetRejected() != 2 || st.GetReceived() != 0 || !strings.Contains(st.GetLastRejection(), "victim_hosts[0].site") {
		t.Fatalf("peer state after views breaking the text rules: %v", st)
	}
	if res := h.feed("cert-b", 2, 3, viewItem(3, trojan)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:1", 1); got.GetDescriptions()[0].GetText() != "access\u202e level" {
		t.Fatalf("an entry without check_text applied differently: %v", got)
	}

	w := withdrawalItem(4, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)
	w.GetWithdrawal().Description = "bye\x1b]0;owned\x07"
	if res := h.feedChecked("cert-b", 3, 4, w); res.Err != nil {
		t.Fatal(res.Err)
	}
	mustBeStub(t, h.f, "cert-b:1", "withdrawn by its origin cert-b: (the reason the peer sent was not kept")

	h2 := receivedTwoVersions(t)
	bad := heldView(1, 1)
	bad.Contacts = []*irxv1.Contact{{Name: "canary\u2066 contact"}}
	bad.Indicators = nil
	if res := h2.feedChecked("cert-b", 2, 3, replacementItem(3, 1, bad)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h2.f.Get("cert-b:1", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("version 1 after a replacement breaking the text rules: %v, want it erased", err)
	}
}

// TestPutPeerComparesEtags: an update naming the etag of the stored
// configuration applies and moves the etag; one naming another is refused
// as a conflict and changes nothing; the etag is not stored (a replica of
// an older release stores the same bytes), and a peer that an older
// release stored can be updated under the etag of what it stored.
func TestPutPeerComparesEtags(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	put := func(p *irxv1.Peer, etag string) *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{Peer: p, ExpectedEtag: etag}}}))
	}
	etagOf := func(team string) string {
		t.Helper()
		p, err := h.f.Peer(team)
		if err != nil {
			t.Fatal(err)
		}
		if p.GetEtag() != "" {
			t.Fatalf("the etag is stored: %v", p)
		}
		return record.PeerEtag(p)
	}
	first := etagOf("cert-b")
	res := put(&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: "pinned", DisplayName: "B"}, first)
	if res.Err != nil || record.PeerEtag(res.Peer) == first {
		t.Fatalf("update with the stored etag: %v, %v", res.Peer, res.Err)
	}
	if second := etagOf("cert-b"); second != record.PeerEtag(res.Peer) {
		t.Fatalf("read after the update: etag %s, the update answered %s", second, record.PeerEtag(res.Peer))
	}
	before := contentDigest(t, h.f)
	if res := put(&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: "pinned", DisplayName: "C"}, first); !errors.Is(res.Err, ErrPeerChanged) || !errors.Is(res.Err, errdefs.ErrConflict) {
		t.Fatalf("update with a stale etag: %v", res.Err)
	}
	if contentDigest(t, h.f) != before {
		t.Fatal("the refused update changed the state")
	}
	// A peer as an older release stored it.
	legacy := &irxv1.Peer{TeamId: "cert-c", CaCertificatePem: "pinned", CreateTime: timestamppb.New(t0), UpdateTime: timestamppb.New(t0)}
	data, err := proto.Marshal(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.f.db.Set(peerKey("cert-c"), data, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if res := put(&irxv1.Peer{TeamId: "cert-c", CaCertificatePem: "pinned", DisplayName: "C"}, etagOf("cert-c")); res.Err != nil {
		t.Fatalf("update of a legacy peer with its etag: %v", res.Err)
	}
}
