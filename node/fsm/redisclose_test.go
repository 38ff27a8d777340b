package fsm

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// heldView is cert-b's view of its incident cert-b:1 at version, as this
// team (cert-a) holds it: an indicator, a contact, under cert-b's policy
// version policyVersion.
func heldView(version, policyVersion int64) *irxv1.Incident {
	inc := foreignView("cert-b", 1, version)
	inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "canary-c2.example"}}
	inc.Contacts = []*irxv1.Contact{{Name: "canary contact", Email: "soc@canary.example"}}
	inc.Provenance.Transfers = []*irxv1.Transfer{{TeamId: team, PolicyVersion: policyVersion}}
	inc.Provenance.TermsVersion = version
	return inc
}

func replacementItem(seq uint64, version int64, view *irxv1.Incident) *irxv1.FeedItem {
	return &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Replacement{Replacement: &irxv1.IncidentReplacement{
		IncidentId: "cert-b:1", Version: version, Incident: view, Reason: irxv1.ReplacementReason_REPLACEMENT_REASON_POLICY,
	}}}
}

// receivedTwoVersions makes a team that received versions 1 and 2 of
// cert-b:1 from cert-b under cert-b's policy version 1.
func receivedTwoVersions(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	if res := h.feed("cert-b", 0, 2, viewItem(1, heldView(1, 1)), viewItem(2, heldView(2, 1))); res.Err != nil {
		t.Fatal(res.Err)
	}
	return h
}

func peerState(t *testing.T, f *FSM, peer string) *irxv1.PeerState {
	t.Helper()
	st, err := f.PeerState(peer)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReplacementNarrowsAHeldVersion: a replacement that takes things away
// from a version we hold replaces it in place; replacing the latest moves
// the indexes, so the indicator lookup no longer finds the record by a
// value it does not hold; and the feed records it so teams we passed the
// record on to get it too.
func TestReplacementNarrowsAHeldVersion(t *testing.T) {
	h := receivedTwoVersions(t)
	for _, v := range []int64{1, 2} {
		narrowed := heldView(v, 1)
		narrowed.Contacts, narrowed.Indicators = nil, nil
		if res := h.feed("cert-b", 2+uint64(v)-1, 2+uint64(v), replacementItem(2+uint64(v), v, narrowed)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	for _, v := range []int64{1, 2} {
		got := mustGet(t, h.f, "cert-b:1", v)
		if len(got.GetContacts()) != 0 || len(got.GetIndicators()) != 0 || got.GetProvenance().GetReceiveTime() == nil {
			t.Fatalf("version %d after the replacement: %v", v, got)
		}
	}
	if indexed(t, h.f, "canary-c2.example") {
		t.Fatal("the indicator index still holds a value the record no longer holds")
	}
	// The replaced views are owed an erasure at rest: both versions and the
	// index keys of the latest.
	if _, ranges, ok := h.f.PendingErasure(); !ok || ranges < 2 {
		t.Fatalf("pending erasure after two replacements: %d ranges, %v", ranges, ok)
	}
	if st := peerState(t, h.f, "cert-b"); st.GetReceivedReplacements() != 2 || st.GetRejected() != 0 {
		t.Fatalf("peer state %v", st)
	}
	entries, _ := h.f.FeedEntries(2, 10)
	if len(entries) != 2 || entries[0].GetKind() != irxv1.FeedEntryKind_FEED_ENTRY_KIND_REPLACEMENT || entries[1].GetVersion() != 2 {
		t.Fatalf("feed after the replacements: %v", entries)
	}
	// The same replacement again changes nothing and adds no feed entry.
	again := heldView(1, 1)
	again.Contacts, again.Indicators = nil, nil
	if res := h.feed("cert-b", 4, 5, replacementItem(5, 1, again)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if entries, _ := h.f.FeedEntries(4, 10); len(entries) != 0 {
		t.Fatalf("a replacement with what we hold made feed entries: %v", entries)
	}
}

// TestReplacementThatWidensNeedsNewerTerms: a replacement that would give
// us more than we hold is refused, counted and named, and changes nothing,
// unless a newer policy version of the sender or a newer version of the
// record justifies it.
func TestReplacementThatWidensNeedsNewerTerms(t *testing.T) {
	h := receivedTwoVersions(t)
	wider := heldView(1, 1)
	wider.Contacts[0].Telephone = "+1 555 0100"
	before := dump(t, h.f)
	if res := h.feed("cert-b", 2, 3, replacementItem(3, 1, wider)); res.Err != nil {
		t.Fatal(res.Err)
	}
	st := peerState(t, h.f, "cert-b")
	if st.GetRejected() != 1 || !strings.Contains(st.GetLastRejection(), "would widen") {
		t.Fatalf("a widening replacement was not refused: %v", st)
	}
	if got := mustGet(t, h.f, "cert-b:1", 1); got.GetContacts()[0].GetTelephone() != "" {
		t.Fatal("the widening replacement was stored")
	}
	after := dump(t, h.f)
	for k, v := range before {
		if after[k] != v && !strings.HasPrefix(k, "peerst/") && !strings.HasPrefix(k, "m/") {
			t.Errorf("the refused replacement changed %q", k)
		}
	}
	// Under a newer policy version of cert-b, it is what cert-b's terms now
	// allow: it replaces ours.
	wider.Provenance.Transfers[0].PolicyVersion = 2
	if res := h.feed("cert-b", 3, 4, replacementItem(4, 1, wider)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:1", 1); got.GetContacts()[0].GetTelephone() != "+1 555 0100" {
		t.Fatalf("a replacement under a newer policy version was not stored: %v", peerState(t, h.f, "cert-b"))
	}
	// A version narrowed by version 2's markings may widen again once
	// version 3 arrived.
	narrowed := heldView(2, 2)
	narrowed.Contacts, narrowed.Provenance.TermsVersion = nil, 2
	older := heldView(1, 2)
	older.Contacts, older.Provenance.TermsVersion = nil, 2
	if res := h.feed("cert-b", 4, 5, replacementItem(5, 1, older)); res.Err != nil {
		t.Fatal(res.Err)
	}
	widened := heldView(1, 2)
	widened.Provenance.TermsVersion = 1
	if res := h.feed("cert-b", 5, 6, replacementItem(6, 1, widened)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if st := peerState(t, h.f, "cert-b"); st.GetRejected() != 2 {
		t.Fatalf("widening a version narrowed by version 2 before version 3 arrived was not refused: %v", st)
	}
	if res := h.feed("cert-b", 6, 8, viewItem(7, heldView(3, 2)), replacementItem(8, 1, widened)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := mustGet(t, h.f, "cert-b:1", 1); len(got.GetContacts()) != 1 || peerState(t, h.f, "cert-b").GetRejected() != 2 {
		t.Fatalf("widening after version 3 arrived was refused: %v", peerState(t, h.f, "cert-b"))
	}
}

// TestReplacementRefusals: a replacement whose provenance does not name
// the sender, or which names another version, is refused; one from a team
// that did not give us the copy, or of a version we do not hold, changes
// nothing and is no error (a mesh delivers a record by several paths).
func TestReplacementRefusals(t *testing.T) {
	h := receivedTwoVersions(t)
	forged := heldView(1, 1)
	forged.Provenance.ReceivedFrom = "cert-c"
	other := heldView(2, 1)
	before := dump(t, h.f)
	if res := h.feed("cert-b", 2, 4, replacementItem(3, 1, forged), replacementItem(4, 1, other)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if st := peerState(t, h.f, "cert-b"); st.GetRejected() != 2 || !strings.Contains(st.GetLastRejection(), "holds cert-b:1 version 2") {
		t.Fatalf("peer state %v", st)
	}
	narrowed := heldView(1, 1)
	narrowed.Contacts = nil
	narrowed.Provenance.ReceivedFrom = "cert-c"
	if res := h.feed("cert-c", 0, 2, replacementItem(1, 1, narrowed), replacementItem(2, 7, nil)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if st := peerState(t, h.f, "cert-c"); st.GetRejected() != 0 || st.GetReceivedReplacements() != 0 {
		t.Fatalf("a replacement from another path: %v", st)
	}
	after := dump(t, h.f)
	for k, v := range before {
		if after[k] != v && !strings.HasPrefix(k, "peerst/") && !strings.HasPrefix(k, "m/") {
			t.Errorf("refused or ignored replacements changed %q", k)
		}
	}
}

// TestErasureOfHeldVersions: an erasure deletes the version; erasing the
// latest moves the latest to the newest left (and its indexes), and
// erasing the last one deletes the copy.
func TestErasureOfHeldVersions(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	v2 := heldView(2, 1)
	v2.Indicators[0].Value = "canary-only-in-v2.example"
	if res := h.feed("cert-b", 0, 2, viewItem(1, heldView(1, 1)), viewItem(2, v2)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !indexed(t, h.f, "canary-only-in-v2.example") {
		t.Fatal("the latest version is not indexed")
	}
	if res := h.feed("cert-b", 2, 4, replacementItem(4, 2, nil)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.f.Get("cert-b:1", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("erased version 2: %v", err)
	}
	if got := mustGet(t, h.f, "cert-b:1", 0); got.GetVersion() != 1 {
		t.Fatalf("latest after erasing version 2 is %d, want 1", got.GetVersion())
	}
	if !indexed(t, h.f, "canary-c2.example") || indexed(t, h.f, "canary-only-in-v2.example") {
		t.Fatal("the indexes do not follow the latest version left")
	}
	if res := h.feed("cert-b", 4, 5, replacementItem(5, 1, nil)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.f.Get("cert-b:1", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the copy after erasing its last version: %v", err)
	}
	for k := range dump(t, h.f) {
		if hasAnyPrefix(k, "ver/cert-b", "inc/cert-b", "idx/") {
			t.Errorf("left behind: %q", k)
		}
	}
	if st := peerState(t, h.f, "cert-b"); st.GetReceivedReplacements() != 2 {
		t.Fatalf("peer state %v", st)
	}
}

// TestRedisclosureStretches: a policy change starts a redisclosure; each
// stretch applies only where the last one ended, under the latest policy
// version, and a newer version starts over.
func TestRedisclosureStretches(t *testing.T) {
	h := newHarness(t)
	secret := make([]byte, TeamSecretLength)
	if res := setPolicyLog(h, testPolicy("cert-b"), secret); res.Err != nil {
		t.Fatal(res.Err)
	}
	redisclose := func(version int64, after, through string, last bool) *Result {
		return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_Redisclose{Redisclose: &irxv1.RediscloseCommand{
			PeerTeamId: "cert-b", PolicyVersion: version, AfterIncidentId: after, ThroughIncidentId: through, Last: last,
		}}}))
	}
	pending := func() *irxv1.RedisclosureProgress {
		all, err := h.f.Redisclosures()
		if err != nil {
			t.Fatal(err)
		}
		return all["cert-b"]
	}
	if p := pending(); p.GetPolicyVersion() != 1 || p.GetAfterIncidentId() != "" {
		t.Fatalf("after the first policy: %v", p)
	}
	if res := redisclose(1, "", "cert-a:5", false); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := redisclose(1, "", "cert-a:5", false); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("the same stretch twice: %v", res.Err)
	}
	if res := redisclose(1, "cert-a:5", "cert-a:3", false); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("a stretch that goes backwards: %v", res.Err)
	}
	if res := setPolicyLog(h, testPolicy("cert-b"), nil); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := redisclose(1, "cert-a:5", "cert-a:9", false); !errors.Is(res.Err, ErrStaleCursor) {
		t.Fatalf("a stretch of a superseded policy version: %v", res.Err)
	}
	if res := redisclose(2, "", "", true); res.Err != nil {
		t.Fatal(res.Err)
	}
	if p := pending(); p != nil {
		t.Fatalf("after the last stretch: %v", p)
	}
	entries, _ := h.f.FeedEntries(0, 10)
	var stretches []string
	for _, e := range entries {
		if e.GetKind() == irxv1.FeedEntryKind_FEED_ENTRY_KIND_REDISCLOSURE {
			stretches = append(stretches, e.GetAfterIncidentId()+".."+e.GetIncidentId())
		}
	}
	if strings.Join(stretches, " ") != "..cert-a:5 .." {
		t.Fatalf("stretches in the feed: %v", stretches)
	}
}

// TestLateAcknowledgementRedisclosesAgain: a view sent under an older
// policy and acknowledged after a newer one was set is disclosed again:
// the redisclosure starts over when it had passed the view or ended, and
// is left alone when its stretches still to come cover it, or when the
// acknowledgement is of views sent under the newest policy.
func TestLateAcknowledgementRedisclosesAgain(t *testing.T) {
	h := newHarness(t)
	secret := make([]byte, TeamSecretLength)
	for _, sec := range [][]byte{secret, nil} { // policy versions 1 and 2
		if res := setPolicyLog(h, testPolicy("cert-b"), sec); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	var ids []string
	for range 3 {
		ids = append(ids, h.create(newIncident()).GetId())
	}
	cursor := uint64(0)
	ack := func(policyVersion int64, id string) {
		t.Helper()
		res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_AcknowledgePeer{AcknowledgePeer: &irxv1.AcknowledgePeerCommand{
			PeerTeamId: "cert-b", FromCursor: cursor, Cursor: cursor + 1, PolicyVersion: policyVersion,
			Entries: []*irxv1.LedgerEntry{{IncidentId: id, Version: 1, Sequence: cursor + 1, PolicyVersion: policyVersion}},
		}}}))
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		cursor++
	}
	redisclose := func(after, through string, last bool) {
		t.Helper()
		if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_Redisclose{Redisclose: &irxv1.RediscloseCommand{
			PeerTeamId: "cert-b", PolicyVersion: 2, AfterIncidentId: after, ThroughIncidentId: through, Last: last,
		}}})); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	pending := func() *irxv1.RedisclosureProgress {
		t.Helper()
		all, err := h.f.Redisclosures()
		if err != nil {
			t.Fatal(err)
		}
		return all["cert-b"]
	}
	// Under way, at ids[0]: a late view after it is covered.
	redisclose("", ids[0], false)
	ack(1, ids[2])
	if p := pending(); p.GetPolicyVersion() != 2 || p.GetAfterIncidentId() != ids[0] {
		t.Fatalf("a late view the stretches to come cover restarted the redisclosure: %v", p)
	}
	// One at or before where it is starts it over.
	ack(1, ids[0])
	if p := pending(); p.GetPolicyVersion() != 2 || p.GetAfterIncidentId() != "" {
		t.Fatalf("after a late view the redisclosure had passed: %v", p)
	}
	// Ended: a late view starts a new one; a view of the newest policy
	// does not.
	redisclose("", "", true)
	ack(2, ids[1])
	if p := pending(); p != nil {
		t.Fatalf("a view sent under the newest policy started a redisclosure: %v", p)
	}
	ack(1, ids[1])
	if p := pending(); p.GetPolicyVersion() != 2 || p.GetAfterIncidentId() != "" {
		t.Fatalf("after a late view once the redisclosure ended: %v", p)
	}
}

// TestNextStretchBounds: stretches of what a peer holds end within the
// bounds, take at least one incident, and reach the end.
func TestNextStretchBounds(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	var entries []*irxv1.LedgerEntry
	for ticket := range 5 {
		inc := h.create(newIncident())
		for v := int64(1); v <= int64(ticket%3+1); v++ {
			entries = append(entries, &irxv1.LedgerEntry{IncidentId: inc.GetId(), Version: v, Sequence: uint64(ticket + 1)})
		}
	}
	res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_AcknowledgePeer{AcknowledgePeer: &irxv1.AcknowledgePeerCommand{
		PeerTeamId: "cert-b", Cursor: 5, Entries: entries,
	}}}))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	// Held versions per incident: 1, 2, 3, 1, 2.
	var got []string
	after := ""
	for {
		through, last, err := h.f.NextStretch("cert-b", after, 2, 3, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, through)
		if last {
			break
		}
		after = through
	}
	if want := "cert-a:2 cert-a:3 cert-a:5"; strings.Join(got, " ") != want {
		// (, 2]: 1+2 versions; (2, 3]: 3 versions alone; (3, 5]: 1+2 and the end.
		t.Fatalf("stretches end at %v, want %v", got, want)
	}
}

// indexed reports whether the indicator index holds value for any record.
func indexed(t *testing.T, f *FSM, value string) bool {
	t.Helper()
	prefix := string(cat(prefixInd, indicatorKey(value)))
	for k := range dump(t, f) {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// TestLegacyHeldKeysMigrate: a state machine that kept only the latest
// version each peer acknowledged (held/) knows, once opened, that the peer
// may hold every version up to it, so the next change of terms discloses
// them all again.
func TestLegacyHeldKeysMigrate(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	a := h.create(newIncident())
	id, _ := record.ParseID(a.GetId())
	h.f.mu.RLock()
	err := h.f.db.Set(cat(legacyHeld, []byte("cert-b"), []byte{0}, idKey(id)), u64(3), pebble.NoSync)
	h.f.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	r, err := h.f.NewVersionReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	held, err := r.HeldVersions("cert-b", a.GetId())
	if _, ok := held[3]; err != nil || len(held) != 3 || !ok {
		t.Fatalf("held versions after the migration: %v, %v", held, err)
	}
	for k := range dump(t, h.f) {
		if strings.HasPrefix(k, "held/") {
			t.Errorf("legacy key left: %q", k)
		}
	}
}
