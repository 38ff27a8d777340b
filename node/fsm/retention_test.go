package fsm

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

func rule(name string, class irxv1.InfoClass, tlp irxv1.Tlp, keep time.Duration) *irxv1.RetentionRule {
	return &irxv1.RetentionRule{Name: name, InfoClass: class, Tlp: tlp, Keep: durationpb.New(keep)}
}

func (h *harness) setRetention(rules ...*irxv1.RetentionRule) *Result {
	h.t.Helper()
	return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_SetRetentionPolicy{SetRetentionPolicy: &irxv1.SetRetentionPolicyCommand{
		Policy: &irxv1.RetentionPolicy{Rules: rules},
	}}}))
}

// tick proposes a retention tick at the harness clock moved by d, and
// more ticks at the same time while the last says more is due. It
// returns how many entries it took.
func (h *harness) tick(d time.Duration) int {
	h.t.Helper()
	h.clock = h.clock.Add(d)
	for n := 1; ; n++ {
		res := h.apply(h.command(&irxv1.Command{ProposeTime: timestamppb.New(h.clock), Kind: &irxv1.Command_RetentionTick{RetentionTick: &irxv1.RetentionTickCommand{}}}))
		if res.Err != nil {
			h.t.Fatalf("tick: %v", res.Err)
		}
		if !res.RetentionMore {
			return n
		}
		if n > 100_000 {
			h.t.Fatal("retention ticks never finish")
		}
	}
}

func withExcerpt(inc *irxv1.Incident, text string) *irxv1.Incident {
	inc.LogExcerpts = []*irxv1.LogExcerpt{{Source: "sshd", Content: text}}
	return inc
}

func feedEntries(t *testing.T, f *FSM) []*irxv1.FeedEntry {
	t.Helper()
	es, err := f.FeedEntries(0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestRetentionPurgesAClassFromEveryVersion(t *testing.T) {
	h := newHarness(t)
	inc := h.create(withExcerpt(newIncident(), "root login from 203.0.113.9 by alice"))
	h.update(withExcerpt(&irxv1.Incident{Id: inc.GetId()}, "alice again"), "log_excerpts")
	if res := h.setRetention(rule("private-user-1h", irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, 0, time.Hour)); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.tick(30 * time.Minute)
	if got := mustGet(t, h.f, inc.GetId(), 1); len(got.GetLogExcerpts()) == 0 {
		t.Fatal("purged before its term")
	}
	h.tick(time.Hour)
	for v := int64(1); v <= 2; v++ {
		got := mustGet(t, h.f, inc.GetId(), v)
		if len(got.GetLogExcerpts()) != 0 {
			t.Errorf("version %d still holds private user information: %v", v, got.GetLogExcerpts())
		}
		if len(got.GetVictimHosts()) == 0 {
			t.Errorf("version %d lost another class", v)
		}
	}
	d := dump(t, h.f)
	for k, v := range d {
		if strings.Contains(v, "alice") {
			t.Errorf("key %q still holds the purged value", k)
		}
	}
	var replaced []int64
	for _, e := range feedEntries(t, h.f) {
		if e.GetKind() == irxv1.FeedEntryKind_FEED_ENTRY_KIND_REPLACEMENT && e.GetReplacementReason() == irxv1.ReplacementReason_REPLACEMENT_REASON_RETENTION {
			replaced = append(replaced, e.GetVersion())
		}
	}
	if !slices.Equal(replaced, []int64{1, 2}) {
		t.Errorf("feed replacements of versions %v, want [1 2]", replaced)
	}
	ds, _, err := h.f.RetentionDecisions("", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].GetRule() != "private-user-1h" || !strings.HasPrefix(ds[0].GetDigestBefore(), "SHA256:") || ds[0].GetDigestAfter() == ds[0].GetDigestBefore() {
		t.Fatalf("decisions %v", ds)
	}
	if _, _, ok := h.f.PendingErasure(); !ok {
		t.Error("the purge noted nothing to erase at rest")
	}
	// A second pass over the same clock purges nothing again.
	h.tick(0)
	if n := hasPrefixKey(dump(t, h.f), string(prefixRetentionLog)); n != 2 {
		t.Errorf("%d decisions after a repeated tick, want 2", n)
	}
}

func TestRetentionRemovesWholeRecordsFromEveryIndex(t *testing.T) {
	h := newHarness(t)
	red := newIncident()
	red.Tlp, red.Status = irxv1.Tlp_TLP_RED, irxv1.Status_STATUS_RESOLVED
	red.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7"}}
	gone := h.create(red)
	open := proto.CloneOf(red)
	open.Status = irxv1.Status_STATUS_IN_PROGRESS
	live := h.create(open)
	amber := h.create(newIncident())
	if res := h.setRetention(rule("red-1h", 0, irxv1.Tlp_TLP_RED, time.Hour)); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.tick(2 * time.Hour)
	if _, err := h.f.Get(gone.GetId(), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed record: %v", err)
	}
	mustGet(t, h.f, live.GetId(), 0)
	mustGet(t, h.f, amber.GetId(), 0)
	id, _ := record.ParseID(gone.GetId())
	suffix := string(idKey(id))
	for k := range dump(t, h.f) {
		if (strings.HasPrefix(k, "idx/") || strings.HasPrefix(k, "ver/") || strings.HasPrefix(k, "inc/")) && strings.HasSuffix(k, suffix) ||
			strings.HasPrefix(k, "ver/"+suffix) {
			t.Errorf("key %q of the removed record remains", k)
		}
	}
	for _, ind := range listAll(t, h.f, Query{Indicator: "198.51.100.7"}, 10) {
		if ind == gone.GetId() {
			t.Error("the indicator index still finds the removed record")
		}
	}
	last := feedEntries(t, h.f)
	e := last[len(last)-1]
	if e.GetKind() != irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL || e.GetWithdrawalReason() != irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION || e.GetIncidentId() != gone.GetId() {
		t.Errorf("last feed entry %v, want the retention withdrawal of %s", e, gone.GetId())
	}
	// The open one is removed once it is resolved and its resolution
	// has aged.
	h.update(&irxv1.Incident{Id: live.GetId(), Status: irxv1.Status_STATUS_RESOLVED}, "status")
	h.tick(30 * time.Minute)
	mustGet(t, h.f, live.GetId(), 0)
	h.tick(time.Hour)
	if _, err := h.f.Get(live.GetId(), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resolved record past its term: %v", err)
	}
	// Its time to resolution leaves the statistics with it: the one
	// record left was never resolved.
	for _, k := range statKeys(t, h.f) {
		if strings.HasPrefix(k, string(prefixStatDur)) {
			t.Errorf("a response-time cell of a removed record remains: %s", k)
		}
	}
	liveID, _ := record.ParseID(live.GetId())
	if _, ok := dump(t, h.f)[string(statMemoKey(liveID))]; ok {
		t.Error("the statistics memo of a removed record remains")
	}
}

func TestRetentionPolicyRefusesTheHandlingClassAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	before := contentDigest(t, h.f)
	for _, tc := range []struct {
		rules []*irxv1.RetentionRule
		field string
	}{
		{[]*irxv1.RetentionRule{rule("contacts", irxv1.InfoClass_INFO_CLASS_CONTACT, 0, time.Hour)}, "policy.rules[0].info_class"},
		{[]*irxv1.RetentionRule{rule("ok", irxv1.InfoClass_INFO_CLASS_INTRUDER, 0, time.Hour), rule("handling", irxv1.InfoClass_INFO_CLASS_HANDLING, 0, time.Hour)}, "policy.rules[1].info_class"},
		{[]*irxv1.RetentionRule{rule("zero", irxv1.InfoClass_INFO_CLASS_INTRUDER, 0, 0)}, "policy.rules[0].keep"},
		{[]*irxv1.RetentionRule{rule("a", 0, 0, time.Hour), rule("a", 0, 0, time.Hour)}, "policy.rules[1].name"},
		{[]*irxv1.RetentionRule{rule("", 0, 0, time.Hour)}, "policy.rules[0].name"},
	} {
		res := h.setRetention(tc.rules...)
		if res.Err == nil || !slices.Contains(violations(t, res.Err), tc.field) {
			t.Errorf("%v: %v, want a violation of %s", tc.rules, res.Err, tc.field)
		}
	}
	if err := record.ValidateRetentionPolicy(&irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{rule("short", 0, 0, time.Minute)}}, time.Hour); err == nil ||
		!strings.Contains(err.Error(), "policy.rules[0].keep") || !strings.Contains(err.Error(), "floor") {
		t.Errorf("a keep under the floor: %v", err)
	}
	if contentDigest(t, h.f) != before {
		t.Error("a refused policy changed the state")
	}
	if _, err := h.f.RetentionPolicy(""); !errors.Is(err, ErrNotFound) {
		t.Errorf("policy after refusals: %v", err)
	}
}

func TestRetentionIsBoundedPerEntryAndDeterministic(t *testing.T) {
	h := newHarness(t)
	var logs []*raft.Log
	do := func(l *raft.Log) *Result {
		logs = append(logs, l)
		return h.apply(l)
	}
	for i := 0; i < 3*retentionBudget/2; i++ {
		if res := do(h.createLog(withExcerpt(newIncident(), "user data"), "")); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if res := do(h.command(&irxv1.Command{Kind: &irxv1.Command_SetRetentionPolicy{SetRetentionPolicy: &irxv1.SetRetentionPolicyCommand{
		Policy: &irxv1.RetentionPolicy{Rules: []*irxv1.RetentionRule{rule("pu", irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, 0, time.Hour)}},
	}}})); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.clock = h.clock.Add(2 * time.Hour)
	ticks := 0
	for more := true; more; ticks++ {
		res := do(h.command(&irxv1.Command{ProposeTime: timestamppb.New(h.clock), Kind: &irxv1.Command_RetentionTick{RetentionTick: &irxv1.RetentionTickCommand{}}}))
		more = res.RetentionMore
	}
	if ticks != 2 {
		t.Errorf("purging %d versions took %d ticks, want 2 (at most %d each)", 3*retentionBudget/2, ticks, retentionBudget)
	}
	for n := uint64(1); n <= 3*retentionBudget/2; n++ {
		if len(mustGet(t, h.f, idOf(n), 1).GetLogExcerpts()) != 0 {
			t.Fatalf("%s not purged", idOf(n))
		}
	}
	// Every replica applying the same entries holds the same state.
	other := openFSM(t, t.TempDir()+"/state")
	for _, l := range logs {
		asResult(t, other.Apply(l))
	}
	if contentDigest(t, other) != contentDigest(t, h.f) {
		t.Fatal("a replica replaying the log holds another state")
	}
}

func TestReceiversApplyTheOriginsCarriedTerms(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	terms := &irxv1.RetentionPolicy{TeamId: "cert-b", Version: 1, Rules: []*irxv1.RetentionRule{
		rule("pu", irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, 0, time.Hour),
		rule("all", 0, 0, 3*time.Hour),
	}}
	v := withExcerpt(foreignView("cert-b", 1, 1), "bob's session")
	v.Status = irxv1.Status_STATUS_RESOLVED
	v.GenerationTime = timestamppb.New(h.clock)
	item := viewItem(1, v)
	item.Retention = terms
	if res := h.feed("cert-b", 0, 1, item); res.Err != nil {
		t.Fatal(res.Err)
	}
	got, err := h.f.RetentionPolicy("cert-b")
	if err != nil || !proto.Equal(got, terms) {
		t.Fatalf("terms held for cert-b: %v, %v", got, err)
	}
	h.tick(2 * time.Hour)
	if held := mustGet(t, h.f, "cert-b:1", 1); len(held.GetLogExcerpts()) != 0 {
		t.Fatal("the copy outlived the origin's term for private user information")
	}
	h.tick(2 * time.Hour)
	if _, err := h.f.Get("cert-b:1", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the copy outlived the origin's term for the record: %v", err)
	}
	// Whoever we passed the copy on to is told, as by the origin.
	var passed []string
	for _, e := range feedEntries(t, h.f) {
		if e.GetReplacementReason() == irxv1.ReplacementReason_REPLACEMENT_REASON_RETENTION || e.GetWithdrawalReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION {
			passed = append(passed, e.GetKind().String())
		}
	}
	if !slices.Equal(passed, []string{"FEED_ENTRY_KIND_REPLACEMENT", "FEED_ENTRY_KIND_WITHDRAWAL"}) {
		t.Errorf("feed entries of the purges: %v", passed)
	}
	// The same version coming back by another path stays out.
	if res := h.feed("cert-b", 1, 2, viewItem(2, withExcerpt(foreignView("cert-b", 1, 1), "bob"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.f.Get("cert-b:1", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a removed copy came back: %v", err)
	}
}

// TestRetentionIndexIsBuiltForOlderState: a state written before the time
// index existed gets it when opened, and retention then sees its records.
func TestRetentionIndexIsBuiltForOlderState(t *testing.T) {
	h := newHarness(t)
	inc := h.create(withExcerpt(newIncident(), "carol"))
	want := dump(t, h.f)
	h.f.mu.Lock()
	err := h.f.db.DeleteRange(prefixRetentionTime, prefixEnd(prefixRetentionTime), pebble.NoSync)
	h.f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if hasPrefixKey(dump(t, h.f), string(prefixRetentionTime)) != 0 {
		t.Fatal("the index is still there")
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	if got := dump(t, h.f); !maps.Equal(got, want) {
		t.Fatalf("rebuilt state differs:\n got %q\nwant %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	if res := h.setRetention(rule("pu", irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, 0, time.Hour)); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.tick(2 * time.Hour)
	if len(mustGet(t, h.f, inc.GetId(), 1).GetLogExcerpts()) != 0 {
		t.Fatal("retention missed a record of the older state")
	}
}

// TestOriginsRetentionWithdrawalLeavesNothing: the origin's retention
// removal reaching us deletes our copy without a stub, keeps a tombstone,
// and is passed on.
func TestOriginsRetentionWithdrawalLeavesNothing(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	if res := h.feed("cert-b", 0, 1, viewItem(1, withExcerpt(foreignView("cert-b", 1, 1), "dave"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := h.feed("cert-b", 1, 2, withdrawalItem(2, "cert-b:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.f.Get("cert-b:1", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("copy after the origin's retention removal: %v", err)
	}
	for k, v := range dump(t, h.f) {
		if strings.Contains(v, "dave") {
			t.Errorf("key %q still holds the removed value", k)
		}
	}
	es := feedEntries(t, h.f)
	if last := es[len(es)-1]; last.GetWithdrawalReason() != irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION || last.GetIncidentId() != "cert-b:1" {
		t.Errorf("last feed entry %v", last)
	}
	if res := h.feed("cert-b", 2, 3, viewItem(3, foreignView("cert-b", 1, 1))); res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := h.f.Get("cert-b:1", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a removed copy came back: %v", err)
	}
}

// TestTermsItemsAreKeptRelayedAndRefused: a retention terms item keeps an
// origin's newer terms and becomes a feed entry of ours (for the teams we
// pass its records on to); older terms change nothing; terms of this team,
// terms without a team and malformed terms are refused, naming why.
func TestTermsItemsAreKeptRelayedAndRefused(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	terms := func(team string, version int64, keep time.Duration) *irxv1.FeedItem {
		return &irxv1.FeedItem{Kind: &irxv1.FeedItem_RetentionTerms{RetentionTerms: &irxv1.RetentionPolicy{
			TeamId: team, Version: version, Rules: []*irxv1.RetentionRule{rule("pu", irxv1.InfoClass_INFO_CLASS_PRIVATE_USER, 0, keep)},
		}}}
	}
	relayed := func() []string {
		var out []string
		for _, e := range feedEntries(t, h.f) {
			if e.GetKind() == irxv1.FeedEntryKind_FEED_ENTRY_KIND_RETENTION {
				out = append(out, e.GetOriginTeamId())
			}
		}
		return out
	}
	contactTerms := terms("cert-c", 9, time.Hour)
	contactTerms.GetRetentionTerms().Rules[0].InfoClass = irxv1.InfoClass_INFO_CLASS_CONTACT
	cursor := uint64(0)
	send := func(item *irxv1.FeedItem) *irxv1.PeerState {
		t.Helper()
		cursor++
		item.Sequence = cursor
		if res := h.feed("cert-b", cursor-1, cursor, item); res.Err != nil {
			t.Fatal(res.Err)
		}
		st, err := h.f.PeerState("cert-b")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := send(terms("cert-c", 2, 48*time.Hour)); st.GetLastRejection() != "" {
		t.Fatalf("terms refused: %s", st.GetLastRejection())
	}
	if got, err := h.f.RetentionPolicy("cert-c"); err != nil || got.GetVersion() != 2 {
		t.Fatalf("terms of cert-c: %v, %v", got, err)
	}
	send(terms("cert-c", 1, time.Hour)) // older: kept out, not refused
	if got, _ := h.f.RetentionPolicy("cert-c"); got.GetVersion() != 2 || got.GetRules()[0].GetKeep().AsDuration() != 48*time.Hour {
		t.Fatalf("older terms replaced newer ones: %v", got)
	}
	if got := relayed(); !slices.Equal(got, []string{"cert-c"}) {
		t.Fatalf("retention entries relayed: %v, want one for cert-c", got)
	}
	for _, bad := range []struct {
		item *irxv1.FeedItem
		want string
	}{
		{terms(team, 9, time.Hour), "only this team sets"},
		{terms("", 9, time.Hour), "without a team"},
		{contactTerms, "cert-c"},
	} {
		if st := send(bad.item); !strings.Contains(st.GetLastRejection(), bad.want) {
			t.Errorf("item %v: last rejection %q, want it to name %q", bad.item, st.GetLastRejection(), bad.want)
		}
	}
	if _, err := h.f.RetentionPolicy(""); !errors.Is(err, ErrNotFound) {
		t.Errorf("a peer set this team's own terms: %v", err)
	}
	if got, _ := h.f.RetentionPolicy("cert-c"); got.GetVersion() != 2 {
		t.Errorf("malformed terms replaced cert-c's: %v", got)
	}
}
