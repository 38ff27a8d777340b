package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

func TestOpenRejectsBadTeam(t *testing.T) {
	for _, bad := range []string{"", "Cert-A", "cert_a", "-x"} {
		if f, err := Open(t.TempDir(), bad, discard); err == nil {
			_ = f.Close()
			t.Errorf("Open with team %q succeeded", bad)
		}
	}
}

func TestCreateAssignsGapFreeTickets(t *testing.T) {
	h := newHarness(t)
	const n = 7
	for i := uint64(1); i <= n; i++ {
		l := h.createLog(newIncident(), "")
		res := h.apply(l)
		if res.Err != nil {
			t.Fatalf("create %d: %v", i, res.Err)
		}
		inc := res.Incident
		propose := timestamppb.New(h.clock)
		if inc.GetId() != idOf(i) {
			t.Fatalf("create %d: id %q, want %q", i, inc.GetId(), idOf(i))
		}
		if inc.GetVersion() != 1 {
			t.Errorf("%s: version %d, want 1", inc.GetId(), inc.GetVersion())
		}
		for name, ts := range map[string]*timestamppb.Timestamp{
			"create_time": inc.GetCreateTime(), "generation_time": inc.GetGenerationTime(), "report_time": inc.GetReportTime(),
		} {
			if !proto.Equal(ts, propose) {
				t.Errorf("%s: %s = %v, want the propose time %v", inc.GetId(), name, ts.AsTime(), propose.AsTime())
			}
		}
		if got := inc.GetProvenance(); got.GetOriginTeam() != team || len(got.GetPath()) != 0 || got.GetReceivedFrom() != "" {
			t.Errorf("%s: provenance %v, want origin %s only", inc.GetId(), got, team)
		}
		if inc.GetStatus() != irxv1.Status_STATUS_NEW || inc.GetPurpose() != irxv1.Purpose_PURPOSE_REPORTING ||
			inc.GetRestriction() != irxv1.Restriction_RESTRICTION_PRIVATE {
			t.Errorf("%s: defaults not applied: status %v purpose %v restriction %v", inc.GetId(), inc.GetStatus(), inc.GetPurpose(), inc.GetRestriction())
		}
		if got := mustGet(t, h.f, inc.GetId(), 0); !proto.Equal(got, inc) {
			t.Errorf("Get(%s) = %v, want the applied result %v", inc.GetId(), got, inc)
		}
		if got := mustGet(t, h.f, inc.GetId(), 1); !proto.Equal(got, inc) {
			t.Errorf("Get(%s, 1) differs from the applied result", inc.GetId())
		}
		if c := countersOf(h.f); c != (counters{applied: l.Index, ticket: i, feed: i}) {
			t.Errorf("after create %d: counters %+v", i, c)
		}
	}

	// The feed holds one entry per version, numbered from 1 without gaps,
	// each naming the raft index that made it.
	kv := dump(t, h.f)
	for seq := uint64(1); seq <= n; seq++ {
		raw, ok := kv[string(feedKey(seq))]
		if !ok {
			t.Fatalf("feed entry %d missing", seq)
		}
		var e irxv1.FeedEntry
		if err := proto.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatal(err)
		}
		want := &irxv1.FeedEntry{Sequence: seq, IncidentId: idOf(seq), Version: 1, RaftIndex: seq, Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION}
		if e.GetCommitTime() == nil {
			t.Errorf("feed entry %d has no commit time", seq)
		}
		e.CommitTime = nil
		if !proto.Equal(&e, want) {
			t.Errorf("feed entry %d = %v, want %v", seq, &e, want)
		}
	}
	if got := hasPrefixKey(kv, string(prefixFeed)); got != n {
		t.Errorf("%d feed entries, want %d", got, n)
	}
	if be64(kv[string(keyTicket)]) != n || be64(kv[string(keyFeed)]) != n || storedApplied(t, h.f) != n {
		t.Errorf("stored counters: ticket %d feed %d applied %d", be64(kv[string(keyTicket)]), be64(kv[string(keyFeed)]), storedApplied(t, h.f))
	}
}

func TestCreateKeepsClientFieldsAndDropsOutputOnly(t *testing.T) {
	h := newHarness(t)
	inc := newIncident()
	reported := timestamppb.New(t0.Add(-72 * time.Hour))
	inc.ReportTime = reported
	inc.Status = irxv1.Status_STATUS_IN_PROGRESS
	inc.Restriction = irxv1.Restriction_RESTRICTION_PARTNER
	// Output-only fields a client might send: ignored, never trusted.
	inc.Id = "cert-z:99"
	inc.Version = 12
	inc.CreateTime = timestamppb.New(t0.Add(-time.Hour))
	inc.GenerationTime = timestamppb.New(t0.Add(-time.Hour))
	inc.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-y"}}
	sent := proto.Clone(inc)

	got := h.create(inc)
	if got.GetId() != idOf(1) || got.GetVersion() != 1 || got.GetProvenance().GetOriginTeam() != team ||
		len(got.GetProvenance().GetPath()) != 0 || got.GetCreateTime().AsTime().Equal(sent.(*irxv1.Incident).GetCreateTime().AsTime()) {
		t.Fatalf("output-only fields taken from the command: %v", got)
	}
	if !proto.Equal(got.GetReportTime(), reported) || got.GetStatus() != irxv1.Status_STATUS_IN_PROGRESS ||
		got.GetRestriction() != irxv1.Restriction_RESTRICTION_PARTNER {
		t.Fatalf("client fields overwritten by defaults: %v", got)
	}
	if !proto.Equal(inc, sent) {
		t.Fatalf("apply modified the command's incident")
	}
}

func TestInvalidCreateConsumesNothing(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	before, content := countersOf(h.f), contentDigest(t, h.f)

	bad := newIncident()
	bad.Tlp = irxv1.Tlp_TLP_UNSPECIFIED
	bad.VictimHosts[0].Addresses = []string{"999.1.1.1"}
	cases := []struct {
		name string
		inc  *irxv1.Incident
		want []string
	}{
		{"no tlp and bad address", bad, []string{"incident.tlp", "incident.victim_hosts[0].addresses[0]"}},
		{"nil incident", nil, []string{"incident.taxonomy", "incident.tlp"}},
		{"undefined nested enum", func() *irxv1.Incident {
			i := newIncident()
			i.VictimHosts[0].Restriction = 99
			return i
		}(), []string{"incident.victim_hosts[0].restriction"}},
	}
	for _, c := range cases {
		l := h.createLog(c.inc, "req-"+c.name)
		res := h.apply(l)
		if res.Incident != nil {
			t.Errorf("%s: result has an incident: %v", c.name, res.Incident)
		}
		got := violations(t, res.Err)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: violations %q, want %q", c.name, got, c.want)
		}
		if c := countersOf(h.f); c != (counters{applied: l.Index, ticket: before.ticket, feed: before.feed}) {
			t.Errorf("counters after invalid create: %+v, want ticket %d feed %d applied %d", c, before.ticket, before.feed, l.Index)
		}
		if storedApplied(t, h.f) != l.Index {
			t.Errorf("applied index of a rejected entry not stored")
		}
	}
	if contentDigest(t, h.f) != content {
		t.Fatalf("an invalid create wrote to the database")
	}
	if _, err := h.f.Get(idOf(2), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%s) after invalid creates: %v, want ErrNotFound", idOf(2), err)
	}
	// The next valid create takes the next ticket: nothing was consumed.
	if got := h.create(newIncident()); got.GetId() != idOf(2) {
		t.Fatalf("next create got %s, want %s", got.GetId(), idOf(2))
	}
	if h.f.FeedSequence() != 2 {
		t.Fatalf("feed sequence %d, want 2", h.f.FeedSequence())
	}
}

func TestInvalidCommands(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	before, content := countersOf(h.f), contentDigest(t, h.f)

	noTime, _ := proto.Marshal(createCmd(newIncident(), ""))
	badTime, _ := proto.Marshal(&irxv1.Command{
		ProposeTime: &timestamppb.Timestamp{Seconds: 1, Nanos: -1},
		Kind:        &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{Incident: newIncident()}},
	})
	noKind, _ := proto.Marshal(&irxv1.Command{ProposeTime: timestamppb.New(t0)})
	for name, data := range map[string][]byte{
		"garbage":          []byte("\xff\xff\xff\xff not protobuf"),
		"truncated":        noTime[:len(noTime)-3],
		"no propose time":  noTime,
		"bad propose time": badTime,
		"no kind":          noKind,
		"empty":            nil,
		"invalid utf-8 id": {0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff},
	} {
		l := h.entry(raft.LogCommand, data)
		res := h.apply(l)
		if !errors.Is(res.Err, ErrInvalidCommand) {
			t.Errorf("%s: err %v, want ErrInvalidCommand", name, res.Err)
		}
		if res.Incident != nil {
			t.Errorf("%s: result has an incident", name)
		}
		if h.f.AppliedIndex() != l.Index {
			t.Errorf("%s: applied index %d, want %d", name, h.f.AppliedIndex(), l.Index)
		}
	}
	if c := countersOf(h.f); c.ticket != before.ticket || c.feed != before.feed {
		t.Fatalf("invalid commands moved the counters: %+v -> %+v", before, c)
	}
	if contentDigest(t, h.f) != content {
		t.Fatalf("invalid commands wrote to the database")
	}
}

func TestRequestIDDedupe(t *testing.T) {
	h := newHarness(t)
	first := h.apply(h.createLog(newIncident(), "req-1"))
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	content := contentDigest(t, h.f)

	// Without digests (a request id stored before they were kept, or a
	// command without one) a retry, even with different content, returns
	// the recorded incident: the first body is not known.
	other := newIncident()
	other.Tlp = irxv1.Tlp_TLP_RED
	again := h.apply(h.createLog(other, "req-1"))
	if again.Err != nil {
		t.Fatal(again.Err)
	}
	if !proto.Equal(again.Incident, first.Incident) {
		t.Fatalf("retry returned %v, want the first result %v", again.Incident, first.Incident)
	}
	if h.f.LastTicket() != 1 || h.f.FeedSequence() != 1 {
		t.Fatalf("retry consumed a ticket or feed sequence: ticket %d feed %d", h.f.LastTicket(), h.f.FeedSequence())
	}
	if contentDigest(t, h.f) != content {
		t.Fatalf("retry wrote to the database")
	}

	// Another request id is another incident; no request id never dedupes.
	if res := h.apply(h.createLog(newIncident(), "req-2")); res.Err != nil || res.Incident.GetId() != idOf(2) {
		t.Fatalf("req-2: %v %v", res.Incident.GetId(), res.Err)
	}
	if h.create(newIncident()).GetId() != idOf(3) || h.create(newIncident()).GetId() != idOf(4) {
		t.Fatalf("creates without request id were deduplicated")
	}

	// A rejected create does not reserve its request id.
	bad := newIncident()
	bad.Taxonomy = nil
	if res := h.apply(h.createLog(bad, "req-3")); res.Err == nil {
		t.Fatal("invalid create accepted")
	}
	if res := h.apply(h.createLog(newIncident(), "req-3")); res.Err != nil || res.Incident.GetId() != idOf(5) {
		t.Fatalf("req-3 after a rejected attempt: %v %v", res.Incident.GetId(), res.Err)
	}

	// After an update the retry still names the same incident, not a new one.
	h.update(&irxv1.Incident{Id: idOf(1), Tlp: irxv1.Tlp_TLP_GREEN}, "tlp")
	res := h.apply(h.createLog(newIncident(), "req-1"))
	if res.Err != nil || res.Incident.GetId() != idOf(1) {
		t.Fatalf("retry after update: %v %v", res.Incident.GetId(), res.Err)
	}
	if h.f.LastTicket() != 5 {
		t.Fatalf("last ticket %d, want 5", h.f.LastTicket())
	}
}

// bodyDigest stands for the digest the receiving node computes of a
// request's incident (api.RequestDigest).
func bodyDigest(t testing.TB, inc *irxv1.Incident) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// TestRequestIDWithDigest: a request id kept with the digest of its body
// answers a retry of the same body with the first record (marked replayed)
// and refuses another body with ALREADY_EXISTS naming the record, storing
// nothing; both for creates the leader evaluated and for plain ones.
func TestRequestIDWithDigest(t *testing.T) {
	for _, evaluated := range []bool{false, true} {
		t.Run(fmt.Sprintf("evaluated=%v", evaluated), func(t *testing.T) {
			h := newHarness(t)
			create := func(inc *irxv1.Incident, requestID string, digest []byte) *Result {
				t.Helper()
				c := &irxv1.CreateIncidentCommand{Incident: inc, RequestId: requestID, RequestDigest: digest}
				if !evaluated {
					return h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: c}}))
				}
				now := h.now()
				_, data, err := CompleteCreate(team, inc, now)
				if err != nil {
					t.Fatal(err)
				}
				cmd := EvaluatedCreate(c, data)
				cmd.ProposeTime = now
				return h.apply(h.command(cmd))
			}
			green := newIncident()
			green.Tlp = irxv1.Tlp_TLP_GREEN
			first := create(green, "req-1", bodyDigest(t, green))
			if first.Err != nil || first.Replayed {
				t.Fatalf("first create: replayed %v, %v", first.Replayed, first.Err)
			}
			stored, err := first.Created()
			if err != nil {
				t.Fatal(err)
			}
			content := contentDigest(t, h.f)

			again := create(proto.CloneOf(green), "req-1", bodyDigest(t, green))
			if again.Err != nil || !again.Replayed || again.Incident.GetId() != idOf(1) || again.Incident.GetTlp() != irxv1.Tlp_TLP_GREEN {
				t.Fatalf("retry with the same body: replayed %v, %v, %v", again.Replayed, again.Incident.GetId(), again.Err)
			}
			if !proto.Equal(again.Incident, stored) {
				t.Fatalf("retry answered %v, want the stored %v", again.Incident, stored)
			}

			red := newIncident()
			red.Tlp = irxv1.Tlp_TLP_RED
			refused := create(red, "req-1", bodyDigest(t, red))
			var exists *errdefs.ExistsError
			if !errors.As(refused.Err, &exists) || !errors.Is(refused.Err, errdefs.ErrAlreadyExists) || exists.Name != idOf(1) {
				t.Fatalf("another body under the same request id: %v, want ALREADY_EXISTS naming %s", refused.Err, idOf(1))
			}
			if !strings.Contains(refused.Err.Error(), "different incident body") || refused.Incident != nil || refused.Replayed {
				t.Fatalf("refusal %q does not say the body differs, or answers a record", refused.Err)
			}
			if contentDigest(t, h.f) != content || h.f.LastTicket() != 1 || h.f.FeedSequence() != 1 {
				t.Fatal("the refused create changed the state")
			}
			if got := mustGet(t, h.f, idOf(1), 0); got.GetTlp() != irxv1.Tlp_TLP_GREEN {
				t.Fatalf("stored record's TLP is %v", got.GetTlp())
			}

			// A command without a digest (a proposer that predates them) is
			// answered with the first record, as before.
			if res := create(red, "req-1", nil); res.Err != nil || res.Incident.GetId() != idOf(1) {
				t.Fatalf("retry without a digest: %v %v", res.Incident.GetId(), res.Err)
			}
		})
	}
}

// TestRequestIDStoredWithoutDigest: a request id stored before digests
// were kept (its value is the incident id alone) still answers its first
// record, whatever the body.
func TestRequestIDStoredWithoutDigest(t *testing.T) {
	h := newHarness(t)
	if res := h.apply(h.createLog(newIncident(), "")); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := h.f.db.Set(requestKey("legacy"), []byte(idOf(1)), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	red := newIncident()
	red.Tlp = irxv1.Tlp_TLP_RED
	c := &irxv1.CreateIncidentCommand{Incident: red, RequestId: "legacy", RequestDigest: bodyDigest(t, red)}
	res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: c}}))
	if res.Err != nil || !res.Replayed || res.Incident.GetId() != idOf(1) || h.f.LastTicket() != 1 {
		t.Fatalf("legacy request id: replayed %v, %v, %v, last ticket %d", res.Replayed, res.Incident.GetId(), res.Err, h.f.LastTicket())
	}
}

// TestVersionTimesNeverGoBackwards: entries proposed by a leader whose
// clock is behind the previous leader's (propose times stepping back) make
// versions whose times do not go back, on every replica alike.
func TestVersionTimesNeverGoBackwards(t *testing.T) {
	h := newHarness(t)
	created := h.create(newIncident())
	v1 := created.GetGenerationTime().AsTime()
	behind := timestamppb.New(v1.Add(-time.Hour))
	patch := &irxv1.Incident{Id: created.GetId(), Status: irxv1.Status_STATUS_IN_PROGRESS}
	cmd := updateCmd(patch, 0, "status")
	cmd.ProposeTime = behind
	res := h.apply(h.command(cmd))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := res.Incident.GetGenerationTime().AsTime(); !got.Equal(v1) {
		t.Fatalf("version 2 made by a leader an hour behind has time %v, want version 1's %v", got, v1)
	}
	withdraw := &irxv1.Command{ProposeTime: timestamppb.New(v1.Add(-2 * time.Hour)), Kind: &irxv1.Command_WithdrawIncident{
		WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: created.GetId(), Reason: "duplicate"},
	}}
	res = h.apply(h.command(withdraw))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := res.Incident.GetGenerationTime().AsTime(); got.Before(v1) || !res.Incident.GetWithdrawTime().AsTime().Equal(got) {
		t.Fatalf("withdrawal at %v (withdraw time %v) is before version 1's %v", got, res.Incident.GetWithdrawTime().AsTime(), v1)
	}
	// A clock ahead again moves times forward as usual.
	ahead := timestamppb.New(v1.Add(time.Hour))
	if versionTime(res.Incident, ahead) != ahead {
		t.Fatal("a later propose time was not taken")
	}
}

func TestUpdateMakesNewVersions(t *testing.T) {
	h := newHarness(t)
	v1 := h.create(newIncident())
	h.create(newIncident()) // a neighbour whose versions must not leak in
	id := v1.GetId()

	res := h.apply(h.updateLog(&irxv1.Incident{Id: id, Tlp: irxv1.Tlp_TLP_RED, NamedRecipients: []string{"cert-b"}}, 1, "tlp", "named_recipients"))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v2 := res.Incident
	if v2.GetVersion() != 2 || v2.GetTlp() != irxv1.Tlp_TLP_RED || !slices.Equal(v2.GetNamedRecipients(), []string{"cert-b"}) {
		t.Fatalf("v2 = %v", v2)
	}
	if !proto.Equal(v2.GetGenerationTime(), timestamppb.New(h.clock)) {
		t.Errorf("v2 generation_time %v, want the update's propose time %v", v2.GetGenerationTime().AsTime(), h.clock)
	}
	if !proto.Equal(v2.GetCreateTime(), v1.GetCreateTime()) || !proto.Equal(v2.GetReportTime(), v1.GetReportTime()) ||
		v2.GetId() != id || !proto.Equal(v2.GetProvenance(), v1.GetProvenance()) {
		t.Errorf("update changed fields outside its mask: v1 %v v2 %v", v1, v2)
	}
	// Everything outside the mask is as it was.
	want := proto.Clone(v1).(*irxv1.Incident)
	want.Version, want.Tlp, want.NamedRecipients, want.GenerationTime = 2, irxv1.Tlp_TLP_RED, []string{"cert-b"}, v2.GetGenerationTime()
	if !proto.Equal(v2, want) {
		t.Errorf("v2 = %v\nwant %v", v2, want)
	}

	v3 := h.update(&irxv1.Incident{Id: id, Status: irxv1.Status_STATUS_RESOLVED}, "status")
	if v3.GetVersion() != 3 || v3.GetTlp() != irxv1.Tlp_TLP_RED {
		t.Fatalf("v3 = %v", v3)
	}
	if h.f.LastTicket() != 2 || h.f.FeedSequence() != 4 {
		t.Fatalf("ticket %d feed %d, want 2 and 4", h.f.LastTicket(), h.f.FeedSequence())
	}

	// Every version stays readable.
	if got := mustGet(t, h.f, id, 1); !proto.Equal(got, v1) {
		t.Errorf("Get(%s, 1) = %v, want %v", id, got, v1)
	}
	if got := mustGet(t, h.f, id, 2); !proto.Equal(got, v2) {
		t.Errorf("Get(%s, 2) = %v", id, got)
	}
	if got := mustGet(t, h.f, id, 0); !proto.Equal(got, v3) {
		t.Errorf("Get(%s, 0) = %v, want v3", id, got)
	}
	if _, err := h.f.Get(id, 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(%s, 4): %v, want ErrNotFound", id, err)
	}

	// Versions: oldest first, paged.
	all, next, err := h.f.Versions(id, 0, "")
	if err != nil || next != "" {
		t.Fatalf("Versions: %v, next %q", err, next)
	}
	if len(all) != 3 || !proto.Equal(all[0], v1) || !proto.Equal(all[1], v2) || !proto.Equal(all[2], v3) {
		t.Fatalf("Versions = %v", all)
	}
	page1, tok, err := h.f.Versions(id, 2, "")
	if err != nil || len(page1) != 2 || page1[0].GetVersion() != 1 || page1[1].GetVersion() != 2 || tok == "" {
		t.Fatalf("Versions page 1: %d versions, token %q, err %v", len(page1), tok, err)
	}
	page2, tok2, err := h.f.Versions(id, 2, tok)
	if err != nil || len(page2) != 1 || page2[0].GetVersion() != 3 || tok2 != "" {
		t.Fatalf("Versions page 2: %v, token %q, err %v", page2, tok2, err)
	}
	// The token belongs to this incident's history.
	if _, _, err := h.f.Versions(idOf(2), 2, tok); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("Versions of another incident with this token: %v, want ErrBadPageToken", err)
	}
	if _, _, err := h.f.List(Query{}, 2, tok); !errors.Is(err, ErrBadPageToken) {
		t.Errorf("List with a Versions token: %v, want ErrBadPageToken", err)
	}
	if vs, _, err := h.f.Versions(idOf(2), 0, ""); err != nil || len(vs) != 1 {
		t.Errorf("Versions(%s) = %d versions, %v; want 1", idOf(2), len(vs), err)
	}
	if _, _, err := h.f.Versions(idOf(9), 0, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Versions of an unknown incident: %v, want ErrNotFound", err)
	}
	if _, _, err := h.f.Versions("nope", 0, ""); !errors.Is(err, record.ErrInvalidID) {
		t.Errorf("Versions with a bad id: %v, want ErrInvalidID", err)
	}
}

func TestUpdateErrors(t *testing.T) {
	h := newHarness(t)
	v1 := h.create(newIncident())
	id := v1.GetId()
	h.update(&irxv1.Incident{Id: id, Priority: irxv1.Priority_PRIORITY_HIGH}, "priority") // now at version 2
	before, content := countersOf(h.f), contentDigest(t, h.f)

	tests := []struct {
		name    string
		cmd     *irxv1.Command
		wantErr error
		want    []string // violation fields, for validation errors
	}{
		{"expected version behind", updateCmd(&irxv1.Incident{Id: id, Tlp: irxv1.Tlp_TLP_RED}, 1, "tlp"), ErrVersionConflict, nil},
		{"expected version ahead", updateCmd(&irxv1.Incident{Id: id, Tlp: irxv1.Tlp_TLP_RED}, 3, "tlp"), ErrVersionConflict, nil},
		{"unknown incident", updateCmd(&irxv1.Incident{Id: idOf(42), Tlp: irxv1.Tlp_TLP_RED}, 0, "tlp"), ErrNotFound, nil},
		{"unknown team", updateCmd(&irxv1.Incident{Id: "cert-q:1", Tlp: irxv1.Tlp_TLP_RED}, 0, "tlp"), ErrNotFound, nil},
		{"bad id", updateCmd(&irxv1.Incident{Id: "cert-a:01", Tlp: irxv1.Tlp_TLP_RED}, 0, "tlp"), nil, []string{"incident.id"}},
		{"no incident", updateCmd(nil, 0, "tlp"), nil, []string{"incident.id"}},
		{"no mask", updateCmd(&irxv1.Incident{Id: id}, 0), nil, []string{"update_mask"}},
		{"unknown path", updateCmd(&irxv1.Incident{Id: id}, 0, "tlp", "colour"), nil, []string{"update_mask.paths[1]"}},
		{"output-only path", updateCmd(&irxv1.Incident{Id: id, Version: 9}, 0, "version"), nil, []string{"update_mask.paths[0]"}},
		{"result invalid", updateCmd(&irxv1.Incident{Id: id}, 0, "tlp", "taxonomy.type"), nil,
			[]string{"incident.taxonomy.type", "incident.tlp"}},
		{"patch value invalid", updateCmd(&irxv1.Incident{Id: id, VictimHosts: []*irxv1.Host{{}}}, 2, "victim_hosts"), nil,
			[]string{"incident.victim_hosts[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.apply(h.command(tt.cmd))
			if res.Incident != nil {
				t.Errorf("result has an incident: %v", res.Incident)
			}
			if tt.wantErr != nil {
				if !errors.Is(res.Err, tt.wantErr) {
					t.Fatalf("err %v, want %v", res.Err, tt.wantErr)
				}
				return
			}
			got := violations(t, res.Err)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("violations %q, want %q", got, tt.want)
			}
		})
	}
	if c := countersOf(h.f); c.ticket != before.ticket || c.feed != before.feed {
		t.Fatalf("failed updates moved the counters: %+v -> %+v", before, c)
	}
	if contentDigest(t, h.f) != content {
		t.Fatalf("failed updates wrote to the database")
	}
	if got := mustGet(t, h.f, id, 0); got.GetVersion() != 2 {
		t.Fatalf("version %d after failed updates, want 2", got.GetVersion())
	}
	// expected_version equal to the latest succeeds.
	if res := h.apply(h.updateLog(&irxv1.Incident{Id: id, Tlp: irxv1.Tlp_TLP_RED}, 2, "tlp")); res.Err != nil || res.Incident.GetVersion() != 3 {
		t.Fatalf("update at expected version 2: %v", res.Err)
	}
}

// TestUpdateClearingDefaultedField checks that naming a defaulted field in
// the mask without a value resets it to its documented default, as create
// does, instead of storing STATUS_UNSPECIFIED or RESTRICTION_UNSPECIFIED.
func TestUpdateClearingDefaultedField(t *testing.T) {
	h := newHarness(t)
	inc := newIncident()
	inc.Status = irxv1.Status_STATUS_IN_PROGRESS
	inc.Purpose = irxv1.Purpose_PURPOSE_MITIGATION
	inc.Restriction = irxv1.Restriction_RESTRICTION_PUBLIC
	inc.ReportTime = timestamppb.New(t0.Add(-time.Hour))
	v1 := h.create(inc)

	v2 := h.update(&irxv1.Incident{Id: v1.GetId()}, "status", "purpose", "restriction", "report_time")
	if v2.GetStatus() != irxv1.Status_STATUS_NEW || v2.GetPurpose() != irxv1.Purpose_PURPOSE_REPORTING ||
		v2.GetRestriction() != irxv1.Restriction_RESTRICTION_PRIVATE {
		t.Fatalf("cleared fields: status %v purpose %v restriction %v, want the create defaults", v2.GetStatus(), v2.GetPurpose(), v2.GetRestriction())
	}
	// report_time "defaults to the creation time".
	if !proto.Equal(v2.GetReportTime(), v1.GetCreateTime()) {
		t.Fatalf("cleared report_time = %v, want create_time %v", v2.GetReportTime(), v1.GetCreateTime())
	}
	// The status index agrees: the incident is found under its status.
	if got := listAll(t, h.f, Query{Status: irxv1.Status_STATUS_NEW}, 10); !slices.Equal(got, ids(1)) {
		t.Fatalf("List(status NEW) = %v, want [%s]", got, idOf(1))
	}

	// A whole-record replace without the defaulted fields, same result.
	patch := newIncident()
	patch.Id = v1.GetId()
	v3 := h.update(patch, "*")
	if v3.GetStatus() != irxv1.Status_STATUS_NEW || v3.GetRestriction() != irxv1.Restriction_RESTRICTION_PRIVATE || v3.GetReportTime() == nil {
		t.Fatalf("after \"*\" without defaulted fields: %v", v3)
	}
}

func TestUpdateMovesIndexEntries(t *testing.T) {
	h := newHarness(t)
	for range 3 {
		inc := newIncident()
		inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "old.example"}}
		h.create(inc)
	}
	id := idOf(2)
	h.update(&irxv1.Incident{
		Id: id, Status: irxv1.Status_STATUS_IN_PROGRESS, Tlp: irxv1.Tlp_TLP_RED,
		Taxonomy:   &irxv1.Taxonomy{Class: "fraud", Type: "phishing"},
		Indicators: []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "new.example"}},
		ReportTime: timestamppb.New(t0.Add(-24 * time.Hour)),
	}, "status", "tlp", "taxonomy", "indicators", "report_time")

	checks := []struct {
		q    Query
		want []string
	}{
		{Query{Status: irxv1.Status_STATUS_NEW}, ids(1, 3)},
		{Query{Status: irxv1.Status_STATUS_IN_PROGRESS}, ids(2)},
		{Query{TLP: irxv1.Tlp_TLP_AMBER}, ids(1, 3)},
		{Query{TLP: irxv1.Tlp_TLP_RED}, ids(2)},
		{Query{TaxonomyClass: "intrusions"}, ids(1, 3)},
		{Query{TaxonomyClass: "intrusions", TaxonomyType: "system-compromise"}, ids(1, 3)},
		{Query{TaxonomyClass: "fraud"}, ids(2)},
		{Query{TaxonomyClass: "fraud", TaxonomyType: "phishing"}, ids(2)},
		{Query{Indicator: "old.example"}, ids(1, 3)},
		{Query{Indicator: "new.example"}, ids(2)},
		{Query{ReportedBefore: t0}, ids(2)},
		{Query{ReportedAfter: t0}, ids(1, 3)},
	}
	for _, c := range checks {
		if got := listAll(t, h.f, c.q, 10); !slices.Equal(got, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.q, got, c.want)
		}
	}
	// No stale index entry is left behind: each incident has exactly one
	// status, tlp, taxonomy and time entry and one per indicator.
	kv := dump(t, h.f)
	for prefix, want := range map[string]int{
		string(prefixStatus): 3, string(prefixTLP): 3, string(prefixTaxonomy): 3, string(prefixTime): 3, string(prefixInd): 3,
	} {
		if got := hasPrefixKey(kv, prefix); got != want {
			t.Errorf("%d keys under %q, want %d", got, prefix, want)
		}
	}
}

func TestUpdateForeignIncident(t *testing.T) {
	h := newHarness(t)
	var foreign *irxv1.Incident
	h.asTeam("cert-b", func() { foreign = h.create(newIncident()) })
	if foreign.GetId() != "cert-b:1" || foreign.GetProvenance().GetOriginTeam() != "cert-b" {
		t.Fatalf("foreign record = %v", foreign)
	}
	content := contentDigest(t, h.f)
	res := h.apply(h.updateLog(&irxv1.Incident{Id: foreign.GetId(), Tlp: irxv1.Tlp_TLP_RED}, 0, "tlp"))
	if !errors.Is(res.Err, ErrForeignIncident) {
		t.Fatalf("update of a foreign incident: %v, want ErrForeignIncident", res.Err)
	}
	if contentDigest(t, h.f) != content {
		t.Fatalf("rejected foreign update wrote to the database")
	}
}

func TestApplyBatch(t *testing.T) {
	h := newHarness(t)
	existing := h.create(newIncident())

	badCreate := newIncident()
	badCreate.Tlp = 0
	logs := []*raft.Log{
		h.createLog(newIncident(), "r1"), // cert-a:2
		h.updateLog(&irxv1.Incident{Id: idOf(2), Status: irxv1.Status_STATUS_IN_PROGRESS}, 1, "status"),
		h.updateLog(&irxv1.Incident{Id: idOf(2), Status: irxv1.Status_STATUS_RESOLVED}, 2, "status"),
		h.createLog(badCreate, ""),
		h.entry(raft.LogConfiguration, []byte("not a command")),
		h.createLog(newIncident(), ""),   // cert-a:3
		h.createLog(newIncident(), "r1"), // retry of the first: cert-a:2, latest
		h.updateLog(&irxv1.Incident{Id: existing.GetId(), Tlp: irxv1.Tlp_TLP_CLEAR}, 1, "tlp"),
		h.updateLog(&irxv1.Incident{Id: idOf(2), Tlp: irxv1.Tlp_TLP_RED}, 2, "tlp"), // stale within the batch
	}
	results := h.f.ApplyBatch(logs)
	if len(results) != len(logs) {
		t.Fatalf("%d results for %d logs", len(results), len(logs))
	}
	type want struct {
		id      string
		version int64
		err     error
	}
	wants := []*want{
		{idOf(2), 1, nil},
		{idOf(2), 2, nil},
		{idOf(2), 3, nil},
		{"", 0, nil}, // validation error, checked below
		nil,          // configuration: no result
		{idOf(3), 1, nil},
		{idOf(2), 3, nil},
		{idOf(1), 2, nil},
		{"", 0, ErrVersionConflict},
	}
	for i, w := range wants {
		if w == nil {
			if results[i] != nil {
				t.Errorf("result %d for a configuration entry: %v", i, results[i])
			}
			continue
		}
		res := asResult(t, results[i])
		switch {
		case w.err != nil:
			if !errors.Is(res.Err, w.err) {
				t.Errorf("result %d: err %v, want %v", i, res.Err, w.err)
			}
		case w.id == "":
			if got := violations(t, res.Err); !slices.Equal(got, []string{"incident.tlp"}) {
				t.Errorf("result %d: violations %v", i, got)
			}
		default:
			if res.Err != nil || res.Incident.GetId() != w.id || res.Incident.GetVersion() != w.version {
				t.Errorf("result %d: %s v%d err %v, want %s v%d", i, res.Incident.GetId(), res.Incident.GetVersion(), res.Err, w.id, w.version)
			}
		}
	}
	if c := countersOf(h.f); c != (counters{applied: logs[len(logs)-1].Index, ticket: 3, feed: 6}) {
		t.Fatalf("counters after batch: %+v", c)
	}
	if got := mustGet(t, h.f, idOf(2), 0); got.GetVersion() != 3 || got.GetStatus() != irxv1.Status_STATUS_RESOLVED || got.GetTlp() != irxv1.Tlp_TLP_AMBER {
		t.Fatalf("incident 2 after batch: %v", got)
	}
	if vs, _, _ := h.f.Versions(idOf(2), 0, ""); len(vs) != 3 {
		t.Fatalf("%d versions of incident 2, want 3", len(vs))
	}
	if got := listAll(t, h.f, Query{Status: irxv1.Status_STATUS_RESOLVED}, 10); !slices.Equal(got, ids(2)) {
		t.Fatalf("List(resolved) = %v", got)
	}
	if got := listAll(t, h.f, Query{Status: irxv1.Status_STATUS_IN_PROGRESS}, 10); len(got) != 0 {
		t.Fatalf("List(in progress) = %v: stale index entry from inside the batch", got)
	}

	// An empty batch, and a batch of only already-applied entries, change nothing.
	d := digest(t, h.f)
	if res := h.f.ApplyBatch(nil); len(res) != 0 {
		t.Fatalf("ApplyBatch(nil) = %v", res)
	}
	if res := h.f.ApplyBatch(logs[2:5]); res[0] != nil || res[1] != nil || res[2] != nil {
		t.Fatalf("re-applied entries returned results: %v", res)
	}
	if !bytes.Equal(digest(t, h.f), d) {
		t.Fatalf("digest changed")
	}
}

// buildLog makes a mixed log of n entries: creates, updates, retries,
// invalid commands and configuration entries.
func buildLog(h *harness, n int) []*raft.Log {
	var logs []*raft.Log
	created := 0
	for i := 0; len(logs) < n; i++ {
		switch {
		case i%7 == 3 && created > 0:
			logs = append(logs, h.updateLog(&irxv1.Incident{Id: idOf(uint64(1 + i%created)), Status: irxv1.Status(1 + i%5)}, 0, "status"))
		case i%11 == 5:
			bad := newIncident()
			bad.Taxonomy.Type = "nope"
			logs = append(logs, h.createLog(bad, ""))
		case i%13 == 6:
			logs = append(logs, h.entry(raft.LogConfiguration, nil))
		case i%17 == 8:
			logs = append(logs, h.createLog(newIncident(), "retry-1"))
		case i%19 == 9:
			logs = append(logs, h.entry(raft.LogCommand, []byte("junk")))
		default:
			inc := newIncident()
			inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_OTHER, Value: fmt.Sprint("v", i%4)}}
			logs = append(logs, h.createLog(inc, ""))
			created++
		}
	}
	return logs
}

func applyInBatches(t testing.TB, f *FSM, logs []*raft.Log, size int) {
	t.Helper()
	for len(logs) > 0 {
		n := min(size, len(logs))
		if res := f.ApplyBatch(logs[:n]); len(res) != n {
			t.Fatalf("%d results for %d logs", len(res), n)
		}
		logs = logs[n:]
	}
}

func TestReplayAfterRestartIsIdempotent(t *testing.T) {
	h := newHarness(t)
	logs := buildLog(h, 60)
	applyInBatches(t, h.f, logs, 16)
	d, c := digest(t, h.f), countersOf(h.f)
	if c.applied != 60 || c.ticket == 0 || c.feed <= c.ticket {
		t.Fatalf("setup: counters %+v", c)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}

	// Raft replays the log from its last snapshot (here: the start).
	f := openFSM(t, h.dir)
	if got := countersOf(f); got != c {
		t.Fatalf("counters after reopen %+v, want %+v", got, c)
	}
	if !bytes.Equal(digest(t, f), d) {
		t.Fatalf("digest changed across close and open")
	}
	for _, size := range []int{64, 1, 7} {
		results := f.ApplyBatch(logs)
		for i, r := range results {
			if r != nil {
				t.Fatalf("replayed entry %d returned %v", logs[i].Index, r)
			}
		}
		applyInBatches(t, f, logs, size)
		if !bytes.Equal(digest(t, f), d) || countersOf(f) != c {
			t.Fatalf("replay (batch size %d) changed the state: counters %+v, want %+v", size, countersOf(f), c)
		}
	}

	// A batch straddling the applied index applies only the new part.
	h.f = f
	next := h.createLog(newIncident(), "")
	results := f.ApplyBatch(append(slices.Clone(logs[57:]), next))
	for _, r := range results[:3] {
		if r != nil {
			t.Fatalf("already-applied entry returned %v", r)
		}
	}
	res := asResult(t, results[3])
	if res.Err != nil || res.Incident.GetId() != idOf(c.ticket+1) {
		t.Fatalf("entry %d: %v %v, want %s", next.Index, res.Incident.GetId(), res.Err, idOf(c.ticket+1))
	}
	if got := countersOf(f); got != (counters{applied: 61, ticket: c.ticket + 1, feed: c.feed + 1}) {
		t.Fatalf("counters %+v", got)
	}
}

// TestCrashBeforeDurableReplays simulates losing the tail of the applied
// entries: the node restarts with a database that stops at K < N and raft
// replays 1..N. The result must equal a replica that applied 1..N once.
func TestCrashBeforeDurableReplays(t *testing.T) {
	h := newHarness(t)
	logs := buildLog(h, 50)
	applyInBatches(t, h.f, logs[:30], 8)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t, h.dir)
	applyInBatches(t, f, logs, 9)

	ref := openFSM(t, t.TempDir())
	applyInBatches(t, ref, logs, 50)
	if !bytes.Equal(digest(t, f), digest(t, ref)) || countersOf(f) != countersOf(ref) {
		t.Fatalf("replica after crash and replay differs: %+v vs %+v", countersOf(f), countersOf(ref))
	}
}

// TestReplicasAgree applies one log with different batchings (as different
// nodes would) and compares digests.
func TestReplicasAgree(t *testing.T) {
	h := newHarness(t)
	logs := buildLog(h, 80)
	var digests [][]byte
	for _, size := range []int{1, 5, 80} {
		f := openFSM(t, t.TempDir())
		applyInBatches(t, f, logs, size)
		digests = append(digests, digest(t, f))
		if f.AppliedIndex() != 80 {
			t.Fatalf("applied %d", f.AppliedIndex())
		}
	}
	for i := 1; i < len(digests); i++ {
		if !bytes.Equal(digests[0], digests[i]) {
			t.Fatalf("replicas with different batching disagree")
		}
	}
	// A replica that applied one more entry disagrees: the digest is not
	// blind.
	f := openFSM(t, t.TempDir())
	applyInBatches(t, f, logs[:79], 10)
	if bytes.Equal(digest(t, f), digests[0]) {
		t.Fatalf("digest of a shorter log equals the full one")
	}
}

func TestNonCommandLogsOnlyAdvanceIndex(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	content, c := contentDigest(t, h.f), countersOf(h.f)
	valid, _ := proto.Marshal(&irxv1.Command{ProposeTime: timestamppb.New(t0), Kind: createCmd(newIncident(), "").Kind})
	for _, typ := range []raft.LogType{raft.LogConfiguration, raft.LogNoop, raft.LogBarrier, raft.LogAddPeerDeprecated} {
		// Even with the bytes of a valid command: only LogCommand is applied.
		l := h.entry(typ, valid)
		if res := h.f.Apply(l); res != nil {
			t.Errorf("%v entry returned %v", typ, res)
		}
		if h.f.AppliedIndex() != l.Index || storedApplied(t, h.f) != l.Index {
			t.Errorf("%v entry: applied index %d (stored %d), want %d", typ, h.f.AppliedIndex(), storedApplied(t, h.f), l.Index)
		}
	}
	if contentDigest(t, h.f) != content || h.f.LastTicket() != c.ticket || h.f.FeedSequence() != c.feed {
		t.Fatalf("non-command entries changed the state")
	}
	if got := h.create(newIncident()); got.GetId() != idOf(2) {
		t.Fatalf("create after non-command entries: %s", got.GetId())
	}
}

func TestClosed(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := h.f.Get(idOf(1), 0); err == nil {
		t.Errorf("Get after Close succeeded")
	}
	if _, _, err := h.f.List(Query{}, 0, ""); err == nil {
		t.Errorf("List after Close succeeded")
	}
	if _, _, err := h.f.Versions(idOf(1), 0, ""); err == nil {
		t.Errorf("Versions after Close succeeded")
	}
	if _, err := h.f.Digest(); err == nil {
		t.Errorf("Digest after Close succeeded")
	}
}

func TestGetErrors(t *testing.T) {
	h := newHarness(t)
	h.create(newIncident())
	for _, bad := range []string{"", "cert-a", "cert-a:0", "CERT-A:1"} {
		if _, err := h.f.Get(bad, 0); !errors.Is(err, record.ErrInvalidID) {
			t.Errorf("Get(%q): %v, want ErrInvalidID", bad, err)
		}
	}
	for _, missing := range []struct {
		id string
		v  int64
	}{{idOf(2), 0}, {idOf(1), 2}, {idOf(1), -1}, {"cert-b:1", 0}} {
		if _, err := h.f.Get(missing.id, missing.v); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s, %d): %v, want ErrNotFound", missing.id, missing.v, err)
		}
	}
}

// TestConcurrentReads runs readers against the apply goroutine and a
// restore, for the race detector.
func TestConcurrentReads(t *testing.T) {
	h := newHarness(t)
	for range 10 {
		h.create(newIncident())
	}
	snap := takeSnapshot(t, h.f)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch (i + r) % 4 {
				case 0:
					_, err = h.f.Get(idOf(uint64(1+i%20)), 0)
				case 1:
					_, _, err = h.f.List(Query{Status: irxv1.Status_STATUS_NEW}, 5, "")
				case 2:
					_, _, err = h.f.Versions(idOf(1), 0, "")
				case 3:
					_, err = h.f.Digest()
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
					return
				}
			}
		})
	}
	for range 20 {
		h.create(newIncident())
		h.update(&irxv1.Incident{Id: idOf(1), Status: irxv1.Status_STATUS_IN_PROGRESS}, "status")
	}
	if err := h.f.Restore(snap.reader()); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		h.create(newIncident())
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent read: %v", err)
	}
}
