package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The values records are drawn from: few enough that records share them,
// in forms that normalise to the same value (case, a final dot, a mapped
// address, a default port), with prefixes that contain addresses and
// names above names.
var correlationPool = []*irxv1.Indicator{
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.8"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.0/24"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.0.0/16"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV6, Value: "2001:db8::1"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV6, Value: "2001:db8::/32"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "evil.example"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "C2.Evil.Example."},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2.evil.example"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "x.c2.evil.example"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: "HTTP://Evil.Example:80/a"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_URL, Value: "http://evil.example/a#frag"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: strings.Repeat("aB", 32)},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: strings.Repeat("ab", 32)},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_OTHER, Value: "pseud:aaaaaaaaaaaaaaaaaaaaaaaaaa"},
	{Kind: irxv1.IndicatorKind_INDICATOR_KIND_OTHER, Value: "free text, never compared"},
}

// modelRecord is what the test knows a record holds.
type modelRecord struct {
	values []string // raw
	report time.Time
	sender string
}

// bruteForceAlerts joins every pair of records the model holds: for every
// value some record holds, the records that hold it, a prefix containing
// it or a name above it, and have a partner among those within window.
func bruteForceAlerts(held map[string]modelRecord, window time.Duration) map[string][]string {
	type norm struct {
		id string
		n  record.Normalized
		at time.Time
	}
	var all []norm
	for id, r := range held {
		for _, v := range r.values {
			if n, ok := record.Normalize(v, r.sender); ok {
				all = append(all, norm{id, n, r.report})
			}
		}
	}
	covers := func(holder, anchor record.Normalized) bool {
		if holder.Text == anchor.Text {
			return true
		}
		switch {
		case anchor.Kind == record.ValueIP && holder.Kind == record.ValueNet:
			return holder.Prefix.Contains(anchor.Prefix.Addr())
		case anchor.Kind == record.ValueDomain && holder.Kind == record.ValueDomain:
			return strings.HasSuffix(anchor.Domain, "."+holder.Domain) && strings.Contains(holder.Domain, ".")
		}
		return false
	}
	out := map[string][]string{}
	for _, anchor := range all {
		if _, done := out[anchor.n.Text]; done {
			continue
		}
		times := map[string]time.Time{}
		for _, h := range all {
			if covers(h.n, anchor.n) {
				times[h.id] = h.at
			}
		}
		var members []string
		for id, t := range times {
			for other, u := range times {
				if other != id && t.Sub(u).Abs() <= window {
					members = append(members, id)
					break
				}
			}
		}
		slices.Sort(members)
		if len(members) >= 2 {
			out[anchor.n.Text] = members
		} else {
			out[anchor.n.Text] = nil
		}
	}
	for k, v := range out {
		if v == nil {
			delete(out, k)
		}
	}
	return out
}

func openAlerts(t testing.TB, f *FSM) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	token := ""
	for {
		alerts, next, err := f.Alerts(irxv1.AlertState_ALERT_STATE_OPEN, 7, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, al := range alerts {
			if _, dup := out[al.GetValue()]; dup {
				t.Fatalf("alert %s listed twice", al.GetValue())
			}
			var ids []string
			for _, r := range al.GetRecords() {
				ids = append(ids, r.GetIncidentId())
			}
			slices.Sort(ids)
			if int64(len(ids)) != al.GetCount() || al.GetAlertId() != AlertID(al.GetValue()) {
				t.Fatalf("alert %v: count or id does not match", al)
			}
			out[al.GetValue()] = ids
		}
		if next == "" {
			return out
		}
		token = next
	}
}

// TestCorrelationEqualsBruteForce: after any sequence of creates, updates,
// withdrawals, peers' views and peers' withdrawals, applied in entries of
// any grouping, the open alerts are exactly what a join over the records
// held gives.
func TestCorrelationEqualsBruteForce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t)
		h.addPeer("cert-b")
		window := time.Duration(rapid.IntRange(1, 20).Draw(rt, "window days")) * 24 * time.Hour
		if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_UpdateAlertSettings{UpdateAlertSettings: &irxv1.UpdateAlertSettingsCommand{
			Settings: &irxv1.AlertSettings{Window: durationpb.New(window)},
		}}})); res.Err != nil {
			rt.Fatal(res.Err)
		}
		held := map[string]modelRecord{}
		var ownTickets []uint64
		ownCreated := uint64(0)
		peerTickets := map[uint64]int64{} // ticket -> version held
		cursor := uint64(0)
		drawValues := func(label string) ([]*irxv1.Indicator, []string) {
			picks := rapid.SliceOfNDistinct(rapid.IntRange(0, len(correlationPool)-1), 0, 4, rapid.ID).Draw(rt, label)
			var inds []*irxv1.Indicator
			var raw []string
			for _, i := range picks {
				inds = append(inds, &irxv1.Indicator{Kind: correlationPool[i].GetKind(), Value: correlationPool[i].GetValue()})
				raw = append(raw, correlationPool[i].GetValue())
			}
			return inds, raw
		}
		drawTime := func(label string) time.Time {
			return t0.Add(time.Duration(rapid.IntRange(0, 40).Draw(rt, label)) * 24 * time.Hour)
		}
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		var pending []*raft.Log
		flush := func() {
			if len(pending) == 0 {
				return
			}
			for i, r := range h.f.ApplyBatch(pending) {
				if res := r.(*Result); res.Err != nil {
					rt.Fatalf("entry %d: %v", i, res.Err)
				}
			}
			pending = nil
		}
		for range steps {
			op := rapid.IntRange(0, 4).Draw(rt, "op")
			switch {
			case op == 0 || (op <= 2 && len(ownTickets) == 0):
				inc := newIncident()
				inds, raw := drawValues("indicators")
				inc.Indicators = inds
				at := drawTime("report")
				inc.ReportTime = timestamppb.New(at)
				inc.AttackingHosts = []*irxv1.Host{{Hostname: "host.c2.evil.example"}}
				raw = append(raw, "host.c2.evil.example")
				pending = append(pending, h.createLog(inc, ""))
				ownCreated++
				ownTickets = append(ownTickets, ownCreated)
				held[idOf(ownCreated)] = modelRecord{values: raw, report: at}
			case op == 1:
				ticket := rapid.SampledFrom(ownTickets).Draw(rt, "update")
				inds, raw := drawValues("new indicators")
				at := drawTime("new report")
				patch := &irxv1.Incident{Id: idOf(ticket), Indicators: inds, ReportTime: timestamppb.New(at)}
				pending = append(pending, h.updateLog(patch, 0, "indicators", "report_time"))
				held[idOf(ticket)] = modelRecord{values: append(raw, "host.c2.evil.example"), report: at}
			case op == 2:
				i := rapid.IntRange(0, len(ownTickets)-1).Draw(rt, "withdraw")
				ticket := ownTickets[i]
				ownTickets = slices.Delete(ownTickets, i, i+1)
				pending = append(pending, h.command(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: idOf(ticket)}}}))
				delete(held, idOf(ticket))
			case op == 3:
				ticket := uint64(rapid.IntRange(1, 4).Draw(rt, "peer ticket"))
				version := peerTickets[ticket] + 1
				view := foreignView("cert-b", ticket, version)
				inds, raw := drawValues("peer indicators")
				view.Indicators = inds
				at := drawTime("peer report")
				view.ReportTime = timestamppb.New(at)
				cursor++
				pending = append(pending, h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
					PeerTeamId: "cert-b", FromCursor: cursor - 1, Cursor: cursor, Items: []*irxv1.FeedItem{viewItem(cursor, view)}, Head: cursor,
				}}}))
				peerTickets[ticket] = version
				held[view.GetId()] = modelRecord{values: raw, report: at, sender: "cert-b"}
			default:
				if len(peerTickets) == 0 {
					continue
				}
				var tickets []uint64
				for tk := range peerTickets {
					tickets = append(tickets, tk)
				}
				slices.Sort(tickets)
				ticket := rapid.SampledFrom(tickets).Draw(rt, "peer withdraws")
				id := record.ID{Team: "cert-b", Ticket: ticket}.String()
				cursor++
				pending = append(pending, h.command(&irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
					PeerTeamId: "cert-b", FromCursor: cursor - 1, Cursor: cursor, Head: cursor,
					Items: []*irxv1.FeedItem{withdrawalItem(cursor, id, peerTickets[ticket], irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN)},
				}}}))
				// The tombstone keeps every version up to the one withdrawn
				// out; a later view must come after it (and a withdrawn
				// ticket's next view is made to jump far ahead).
				peerTickets[ticket] = max(peerTickets[ticket], 1<<40)
				delete(held, id)
			}
			if rapid.Bool().Draw(rt, "end entry group") {
				flush()
			}
		}
		flush()
		got, want := openAlerts(t, h.f), bruteForceAlerts(held, window)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			rt.Fatalf("open alerts\n%v\nbrute-force join\n%v", got, want)
		}
		// What a node opening or restoring this state rebuilds is what
		// applying the entries kept.
		_, rebuilt, err := loadCorrelationMemory(h.f.db)
		if err != nil {
			rt.Fatal(err)
		}
		if a, b := heldElements(h.f.held), heldElements(rebuilt); !slices.Equal(a, b) {
			rt.Fatalf("memory of held values as applied\n%q\nas rebuilt\n%q", a, b)
		}
		if !maps.Equal(h.f.held.others, rebuilt.others) {
			rt.Fatalf("memory of held digests, URLs and prefixes as applied\n%v\nas rebuilt\n%v", h.f.held.others, rebuilt.others)
		}
		assertNoValueInKeys(rt, h.f)
	})
}

func heldElements(h *heldValues) []string {
	var out []string
	h.each(func(k []byte, c heldCount) bool {
		out = append(out, fmt.Sprintf("%q×%d@%d", k, c.count, c.journal))
		return true
	})
	return out
}

// assertNoValueInKeys: no key of the correlation index, the alerts or the
// saturation marks holds a value of the pool, in text or as address
// bytes: keys reach the MANIFEST, which erasure does not reach.
func assertNoValueInKeys(t interface{ Fatalf(string, ...any) }, f *FSM) {
	var needles [][]byte
	for _, ind := range correlationPool {
		n, ok := record.Normalize(ind.GetValue(), "cert-b")
		if !ok {
			continue
		}
		needles = append(needles, []byte(strings.ToLower(strings.TrimSuffix(ind.GetValue(), "."))))
		switch n.Kind {
		case record.ValueIP, record.ValueNet:
			needles = append(needles, n.Prefix.Addr().AsSlice())
		case record.ValueDomain:
			needles = append(needles, []byte(n.Domain), []byte(reverseLabels(n.Domain)))
		}
	}
	for _, prefix := range [][]byte{prefixCorrelation, prefixCorJournal, prefixAlertFamily} {
		it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			t.Fatalf("%v", err)
		}
		for valid := it.First(); valid; valid = it.Next() {
			for _, nd := range needles {
				if bytes.Contains(it.Key(), nd) {
					t.Fatalf("key %q holds the value %q", it.Key(), nd)
				}
			}
		}
		if err := it.Close(); err != nil {
			t.Fatalf("%v", err)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, sender, want string }{
		{"198.51.100.7", "", "ip:198.51.100.7"},
		{"::ffff:198.51.100.7", "", "ip:198.51.100.7"},
		{"198.51.100.7/32", "", "ip:198.51.100.7"},
		{"198.51.100.9/24", "", "net:198.51.100.0/24"},
		{"2001:DB8::1", "", "ip:2001:db8::1"},
		{"C2.Evil.Example.", "", "domain:c2.evil.example"},
		{"HTTP://Evil.Example:80", "", "url:http://evil.example/"},
		{"https://evil.example:443/A?b=C#x", "", "url:https://evil.example/A?b=C"},
		{strings.Repeat("AB", 32), "", "hash:" + strings.Repeat("ab", 32)},
		{"Mallory@Evil.Example", "", "email:mallory@evil.example"},
		{"pseud:abc", "cert-b", "pseudonym:cert-b:pseud:abc"},
		{"240.1.2.3", "cert-b", "pseudonym:cert-b:240.1.2.3"},
		{"100::1234", "cert-b", "pseudonym:cert-b:100::1234"},
		{"240.1.2.3", "", "ip:240.1.2.3"},
		{"pseud:abc", "", ""},
		{"just text", "", ""},
		{"1.2.3", "", ""},
		{"localhost", "", ""},
	} {
		n, ok := record.Normalize(c.in, c.sender)
		if got := map[bool]string{true: n.Text}[ok]; got != c.want {
			t.Errorf("Normalize(%q, %q) = %q, want %q", c.in, c.sender, got, c.want)
		}
	}
}

// A peer's pseudonym never matches the same text in clear, nor another
// peer's token; the same peer's token matches itself.
func TestCorrelationKeepsPseudonymsApart(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.addPeer("cert-c")
	own := newIncident()
	own.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "240.1.2.3"}}
	own.ReportTime = timestamppb.New(t0)
	h.create(own)
	send := func(peer string, cursor, ticket uint64) {
		v := foreignView(peer, ticket, 1)
		v.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "240.1.2.3"}}
		if res := h.feed(peer, cursor-1, cursor, viewItem(cursor, v)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	send("cert-b", 1, 1)
	send("cert-c", 1, 1)
	if got := openAlerts(t, h.f); len(got) != 0 {
		t.Fatalf("pseudonyms matched a value in clear or another peer's: %v", got)
	}
	send("cert-b", 2, 2)
	want := map[string][]string{"pseudonym:cert-b:240.1.2.3": {"cert-b:1", "cert-b:2"}}
	if got := openAlerts(t, h.f); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
}

// An acknowledgement names the operator and holds until the alert gains
// a record.
func TestAcknowledgeAlert(t *testing.T) {
	h := newHarness(t)
	mk := func() {
		inc := newIncident()
		inc.Indicators = []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "203.0.113.9"}}
		inc.ReportTime = timestamppb.New(t0)
		h.create(inc)
	}
	mk()
	mk()
	id := AlertID("ip:203.0.113.9")
	ack := func() *Result {
		return h.apply(h.command(&irxv1.Command{
			Actor: &irxv1.OperatorAction{Identity: "irx://cert-a/operator/alice"},
			Kind:  &irxv1.Command_AcknowledgeAlert{AcknowledgeAlert: &irxv1.AcknowledgeAlertCommand{AlertId: id}},
		}))
	}
	if res := ack(); res.Err != nil || res.Alert.GetAcknowledgedBy() != "irx://cert-a/operator/alice" {
		t.Fatalf("acknowledge: %v %v", res.Alert, res.Err)
	}
	if res := h.apply(h.command(&irxv1.Command{
		Actor: &irxv1.OperatorAction{Identity: "irx://cert-a/operator/alice"},
		Kind:  &irxv1.Command_AcknowledgeAlert{AcknowledgeAlert: &irxv1.AcknowledgeAlertCommand{AlertId: "nope"}},
	})); res.Err == nil {
		t.Fatal("acknowledging an unknown alert succeeded")
	}
	al, err := h.f.Alert(id)
	if err != nil || al.GetAcknowledgedBy() == "" || al.GetCount() != 2 {
		t.Fatalf("alert %v %v", al, err)
	}
	mk()
	al, err = h.f.Alert(id)
	if err != nil || al.GetAcknowledgedBy() != "" || al.GetCount() != 3 {
		t.Fatalf("after a third record: %v %v", al, err)
	}
	changed, err := h.f.AlertsChangedAfter(0, 10)
	if err != nil || len(changed) != 1 || changed[0].GetRevision() != al.GetRevision() {
		t.Fatalf("changes %v %v", changed, err)
	}
}

// createHolding creates n records reported at t0 whose one attacking
// host has address addr, applied in entries of up to 256.
func createHolding(t *testing.T, h *harness, n int, addr string) {
	t.Helper()
	var logs []*raft.Log
	for range n {
		inc := newIncident()
		inc.ReportTime = timestamppb.New(t0)
		inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{addr}}}
		logs = append(logs, h.createLog(inc, ""))
	}
	for i := 0; i < len(logs); i += 256 {
		for _, r := range h.f.ApplyBatch(logs[i:min(i+256, len(logs))]) {
			if err := r.(*Result).Err; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A value in more records than an alert lists saturates its alert: it
// stays open, lists maxAlertRecords of them, and is not recomputed on
// every new record.
func TestCorrelationSaturates(t *testing.T) {
	h := newHarness(t)
	createHolding(t, h, maxAlertRecords+2, "198.51.100.7")
	al, err := h.f.Alert(AlertID("ip:198.51.100.7"))
	if err != nil || !al.GetSaturated() || al.GetCount() != maxAlertRecords || len(al.GetRecords()) != maxAlertRecords {
		t.Fatalf("alert %v, %v (%d records)", al.GetSaturated(), err, len(al.GetRecords()))
	}

	// The saturation is remembered across a restart (the node keeps the
	// marks in memory), and a record that stops holding the value
	// unsaturates the alert once few enough do.
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	if len(h.f.saturated) != 1 {
		t.Fatalf("saturation marks after a restart: %d, want 1", len(h.f.saturated))
	}
	for ticket := range uint64(3) {
		id := record.ID{Team: team, Ticket: ticket + 1}.String()
		if r := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: id}}})); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	al, err = h.f.Alert(AlertID("ip:198.51.100.7"))
	if err != nil || al.GetSaturated() || al.GetCount() != maxAlertRecords-1 || len(h.f.saturated) != 0 {
		t.Fatalf("after withdrawals: saturated %v, count %d, %v, marks %d", al.GetSaturated(), al.GetCount(), err, len(h.f.saturated))
	}
}

// An address inside a prefix that more records hold than an alert lists
// has a saturated alert. When its one record stops holding it, the alert
// goes, and its saturation mark with it: a record that holds the address
// again gets the alert back (a mark left behind once kept it from being
// made).
func TestCorrelationUnsaturatesAValueNoRecordHolds(t *testing.T) {
	h := newHarness(t)
	const inPrefix = maxAlertRecords + 2
	createHolding(t, h, inPrefix, "198.51.100.0/24")
	holdAddress := func() {
		inc := newIncident()
		inc.ReportTime = timestamppb.New(t0)
		inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{"198.51.100.7"}}}
		h.create(inc)
	}
	id := AlertID("ip:198.51.100.7")
	holdAddress()
	if al, err := h.f.Alert(id); err != nil || !al.GetSaturated() {
		t.Fatalf("alert of the address inside the prefix: %v, %v", al, err)
	}
	withdrawn := record.ID{Team: team, Ticket: inPrefix + 1}.String()
	if r := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: withdrawn}}})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, err := h.f.Alert(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alert of an address no record holds: %v", err)
	}
	holdAddress()
	if al, err := h.f.Alert(id); err != nil || !al.GetSaturated() || al.GetCount() != maxAlertRecords {
		t.Fatalf("alert of the address held again: %v, %v", al, err)
	}
}

// Journal positions number an entry's values after its raft index; an
// entry that used them all, or an index too large to shift, gets none,
// and its fresh values' keys go to the index proper.
func TestJournalPositions(t *testing.T) {
	a := &applier{index: 7}
	first, second := a.nextJournalPos(), a.nextJournalPos()
	if first != 7<<journalPosBits|1 || second != first+1 {
		t.Fatalf("positions %d, %d; want %d and the next", first, second, uint64(7<<journalPosBits|1))
	}
	a.journalPos = 1<<journalPosBits - 1
	if got := a.nextJournalPos(); got != 0 {
		t.Fatalf("position after the entry's last: %d, want none", got)
	}
	a = &applier{index: 1 << (64 - journalPosBits)}
	if got := a.nextJournalPos(); got != 0 {
		t.Fatalf("position at raft index 2^%d: %d, want none", 64-journalPosBits, got)
	}
}
