package fsm

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

var statTaxonomies = []*irxv1.Taxonomy{
	{Class: "intrusions", Type: "system-compromise"},
	{Class: "intrusions", Type: "burglary"},
	{Class: "fraud", Type: "phishing"},
	{Class: "availability", Type: "ddos"},
}

// bruteStatistics answers q by reading every record the state machine
// holds: the reference the kept counters must equal.
func bruteStatistics(t testing.TB, f *FSM, q StatsQuery) []StatsRow {
	t.Helper()
	type acc struct {
		count            int64
		response, resolv map[uint32]int64
	}
	rows := map[rowKey]*acc{}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixIncident, UpperBound: prefixEnd(prefixIncident)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		id, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			t.Fatal(err)
		}
		latest := int64(binary.BigEndian.Uint64(it.Value()))
		inc := mustGet(t, f, id.String(), latest)
		if inc.GetWithdrawTime() != nil {
			continue
		}
		at := inc.GetReportTime().AsTime()
		if inc.GetReportTime() == nil {
			at = inc.GetCreateTime().AsTime()
		}
		if at.Before(q.Start) || !at.Before(q.End) {
			continue
		}
		cell := Cell{id.Team, inc.GetTaxonomy().GetClass(), inc.GetTaxonomy().GetType(), inc.GetTlp(), inc.GetStatus(), inc.GetPriority(),
			inc.GetReportingSite().GetSector(), inc.GetReportingSite().GetCountry()}
		if !q.Filter.keeps(cell) {
			continue
		}
		k := rowKey{project(cell, q.GroupBy), q.Period.Start(at).Unix()}
		r := rows[k]
		if r == nil {
			r = &acc{response: map[uint32]int64{}, resolv: map[uint32]int64{}}
			rows[k] = r
		}
		r.count++
		if id.Team != f.team {
			continue
		}
		// The first version that responded, and the first resolved.
		var responded, resolved bool
		for v := int64(1); v <= latest; v++ {
			ver := mustGet(t, f, id.String(), v)
			minutes := uint32(ver.GetGenerationTime().AsTime().Sub(ver.GetCreateTime().AsTime()).Minutes())
			s := ver.GetStatus()
			if !responded && (s == irxv1.Status_STATUS_IN_PROGRESS || s == irxv1.Status_STATUS_FORWARDED || s == irxv1.Status_STATUS_RESOLVED) {
				responded = true
				r.response[minutes]++
			}
			if !resolved && s == irxv1.Status_STATUS_RESOLVED {
				resolved = true
				r.resolv[minutes]++
			}
		}
	}
	var out []StatsRow
	for k, r := range rows {
		out = append(out, StatsRow{Cell: k.cell, PeriodStart: time.Unix(k.start, 0).UTC(), Count: r.count,
			Response: brutePercentiles(r.response), Resolution: brutePercentiles(r.resolv)})
	}
	slices.SortFunc(out, func(a, b StatsRow) int {
		if c := a.PeriodStart.Compare(b.PeriodStart); c != 0 {
			return c
		}
		return compareCells(a.Cell, b.Cell)
	})
	return out
}

// brutePercentiles expands the counts into a sorted list and picks the
// nearest ranks.
func brutePercentiles(m map[uint32]int64) Percentiles {
	var all []uint32
	for v, c := range m {
		for range c {
			all = append(all, v)
		}
	}
	if len(all) == 0 {
		return Percentiles{}
	}
	slices.Sort(all)
	pick := func(p float64) time.Duration {
		// The smallest rank r (from 1) with r >= p% of n.
		for r := 1; r <= len(all); r++ {
			if float64(r)*100 >= p*float64(len(all)) {
				return time.Duration(all[r-1]) * time.Minute
			}
		}
		return time.Duration(all[len(all)-1]) * time.Minute
	}
	return Percentiles{N: int64(len(all)), P50: pick(50), P90: pick(90)}
}

func drawStatsQuery(t *rapid.T) StatsQuery {
	dims := []Dimension{DimTaxonomyClass, DimTaxonomyType, DimTLP, DimStatus, DimPriority, DimOriginTeam, DimSector, DimCountry}
	var by []Dimension
	for _, d := range dims {
		if rapid.Bool().Draw(t, fmt.Sprintf("by%d", d)) {
			by = append(by, d)
		}
	}
	day := func(n int) time.Time { return time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n) }
	from := rapid.IntRange(0, 120).Draw(t, "from")
	q := StatsQuery{
		GroupBy: by,
		Period:  rapid.SampledFrom(periods).Draw(t, "period"),
		Start:   day(from),
		End:     day(from + rapid.IntRange(1, 150).Draw(t, "days")),
	}
	if rapid.Bool().Draw(t, "filter") {
		q.Filter.TLPs = []irxv1.Tlp{irxv1.Tlp_TLP_GREEN, irxv1.Tlp_TLP_AMBER}
	}
	if rapid.Bool().Draw(t, "filterSite") {
		q.Filter.Sectors = []irxv1.Sector{irxv1.Sector_SECTOR_UNSPECIFIED, irxv1.Sector_SECTOR_HEALTH}
		q.Filter.Countries = []string{"", "NL"}
	}
	return q
}

// drawSite is a reporting site with a sector and a country, each maybe
// unset; nil for none.
func drawSite(t *rapid.T) *irxv1.ReportingSite {
	if rapid.IntRange(0, 3).Draw(t, "site") == 0 {
		return nil
	}
	return &irxv1.ReportingSite{
		Name:    "a site",
		Sector:  rapid.SampledFrom([]irxv1.Sector{0, irxv1.Sector_SECTOR_HEALTH, irxv1.Sector_SECTOR_ENERGY, irxv1.Sector_SECTOR_OTHER}).Draw(t, "sector"),
		Country: rapid.SampledFrom([]string{"", "NL", "DE", "JP"}).Draw(t, "country"),
	}
}

func checkStats(t *rapid.T, tb testing.TB, f *FSM, q StatsQuery) {
	got, err := f.Statistics(q)
	if err != nil {
		t.Fatalf("Statistics: %v", err)
	}
	want := bruteStatistics(tb, f, q)
	if !slices.Equal(got.Rows, want) {
		t.Fatalf("Statistics(%+v)\n got  %+v\n want %+v", q, got.Rows, want)
	}
}

// TestStatisticsEqualBruteForce: after every step of random creates,
// updates and withdrawals of own incidents, and versions and withdrawals
// received from a peer, the kept statistics equal a count over the
// records, for random queries; and so they do after the state is
// restored from a snapshot into a fresh replica, and when a database's
// statistics are built anew from its records.
func TestStatisticsEqualBruteForce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t)
		h.clock = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		h.addPeer("cert-b")
		var own []string
		foreign := map[uint64]int64{} // ticket -> version received
		cursor := uint64(0)
		reportTime := func(label string) *timestamppb.Timestamp {
			return timestamppb.New(time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rapid.IntRange(0, 110*24).Draw(rt, label)) * time.Hour))
		}
		statuses := []irxv1.Status{irxv1.Status_STATUS_NEW, irxv1.Status_STATUS_IN_PROGRESS, irxv1.Status_STATUS_FORWARDED, irxv1.Status_STATUS_RESOLVED, irxv1.Status_STATUS_FUTURE}
		for step := range rapid.IntRange(1, 25).Draw(rt, "steps") {
			// Let minutes pass between versions, so response times differ.
			h.clock = h.clock.Add(time.Duration(rapid.IntRange(0, 600).Draw(rt, "minutes")) * time.Minute)
			switch action := rapid.IntRange(0, 5).Draw(rt, fmt.Sprint("action", step)); {
			case action <= 1 || len(own) == 0:
				// A few creates in one batch (the ingest path: no reads).
				var logs []*raft.Log
				for range rapid.IntRange(1, 3).Draw(rt, "creates") {
					inc := newIncident()
					inc.Taxonomy = proto.CloneOf(rapid.SampledFrom(statTaxonomies).Draw(rt, "tax"))
					inc.Tlp = irxv1.Tlp(rapid.IntRange(1, 4).Draw(rt, "tlp"))
					inc.Status = rapid.SampledFrom(statuses).Draw(rt, "status")
					inc.Priority = irxv1.Priority(rapid.IntRange(0, 4).Draw(rt, "priority"))
					inc.ReportingSite = drawSite(rt)
					if rapid.Bool().Draw(rt, "hasReport") {
						inc.ReportTime = reportTime("report")
					}
					logs = append(logs, h.createLog(inc, ""))
				}
				for i, r := range h.f.ApplyBatch(logs) {
					res := asResult(t, r)
					if res.Err != nil {
						rt.Fatalf("create %d: %v", i, res.Err)
					}
					created, _ := res.Created()
					own = append(own, created.GetId())
				}
			case action == 2:
				id := rapid.SampledFrom(own).Draw(rt, "id")
				patch := &irxv1.Incident{Id: id,
					Status:        rapid.SampledFrom(statuses).Draw(rt, "status"),
					Tlp:           irxv1.Tlp(rapid.IntRange(1, 4).Draw(rt, "tlp")),
					Priority:      irxv1.Priority(rapid.IntRange(0, 4).Draw(rt, "priority")),
					Taxonomy:      proto.CloneOf(rapid.SampledFrom(statTaxonomies).Draw(rt, "tax")),
					ReportTime:    reportTime("report"),
					ReportingSite: drawSite(rt),
				}
				paths := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"status", "tlp", "priority", "taxonomy", "report_time", "reporting_site"}), 1, 6, rapid.ID).Draw(rt, "paths")
				h.apply(h.updateLog(patch, 0, paths...)) // a withdrawn one refuses: nothing changes
			case action == 3:
				id := rapid.SampledFrom(own).Draw(rt, "id")
				h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_WithdrawIncident{WithdrawIncident: &irxv1.WithdrawIncidentCommand{IncidentId: id}}}))
			case action == 4:
				ticket := uint64(rapid.IntRange(1, 4).Draw(rt, "ticket"))
				view := foreignView("cert-b", ticket, foreign[ticket]+1)
				view.Taxonomy = proto.CloneOf(rapid.SampledFrom(statTaxonomies).Draw(rt, "tax"))
				view.Status = rapid.SampledFrom(statuses).Draw(rt, "status")
				view.ReportTime = reportTime("report")
				view.ReportingSite = drawSite(rt)
				if res := h.feed("cert-b", cursor, cursor+1, viewItem(cursor+1, view)); res.Err != nil {
					rt.Fatalf("feed: %v", res.Err)
				}
				cursor++
				foreign[ticket]++
			default:
				ticket := uint64(rapid.IntRange(1, 4).Draw(rt, "ticket"))
				item := withdrawalItem(cursor+1, fmt.Sprintf("cert-b:%d", ticket), foreign[ticket], irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY)
				if res := h.feed("cert-b", cursor, cursor+1, item); res.Err != nil {
					rt.Fatalf("feed: %v", res.Err)
				}
				cursor++
			}
			checkStats(rt, t, h.f, drawStatsQuery(rt))
		}
		queries := []StatsQuery{drawStatsQuery(rt), drawStatsQuery(rt)}

		snap := takeSnapshot(t, h.f)
		dst := newHarness(t)
		if err := dst.f.Restore(snap.reader()); err != nil {
			rt.Fatalf("Restore: %v", err)
		}
		for _, q := range queries {
			checkStats(rt, t, dst.f, q)
		}

		// A database whose statistics are built from its records (one made
		// before they were kept) holds the same counters.
		before := statKeys(t, h.f)
		if err := h.f.db.Set(keyStatsVersion, u64(0), pebble.NoSync); err != nil {
			rt.Fatal(err)
		}
		if err := buildStats(h.f.db, h.f.team); err != nil {
			rt.Fatal(err)
		}
		if after := statKeys(t, h.f); !slices.Equal(before, after) {
			rt.Fatalf("built statistics differ from the kept ones:\n kept  %q\n built %q", before, after)
		}
	})
}

// statKeys lists the statistics' keys and values.
func statKeys(t testing.TB, f *FSM) []string {
	t.Helper()
	var out []string
	for k, v := range dump(t, f) {
		if len(k) > 3 && k[:3] == "st/" {
			out = append(out, k+"="+fmt.Sprintf("%x", v))
		}
	}
	slices.Sort(out)
	return out
}

// TestStatisticsQueryReadsCellsNotRecords: a year's statistics by month
// read the cells of the months, however many incidents they hold.
func TestStatisticsQueryReadsCellsNotRecords(t *testing.T) {
	h := newHarness(t)
	var logs []*raft.Log
	for i := range 200 {
		inc := newIncident()
		inc.ReportTime = timestamppb.New(time.Date(2026, time.Month(1+i%10), 1+i%28, 0, 0, 0, 0, time.UTC))
		logs = append(logs, h.createLog(inc, ""))
	}
	h.f.ApplyBatch(logs)
	res, err := h.f.Statistics(StatsQuery{Period: PeriodMonth, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range res.Rows {
		total += r.Count
	}
	if total != 200 || len(res.Rows) != 10 || res.CellsRead != 10 {
		t.Fatalf("total %d in %d rows from %d cells, want 200 in 10 rows from 10 cells", total, len(res.Rows), res.CellsRead)
	}
}

func (h *harness) publish() {
	h.t.Helper()
	if res := h.apply(h.command(&irxv1.Command{Kind: &irxv1.Command_PublishStatistics{PublishStatistics: &irxv1.PublishStatisticsCommand{}}})); res.Err != nil {
		h.t.Fatalf("publish: %v", res.Err)
	}
}

// TestPublishStatisticsOnlyWhenChanged: a publish appends a feed entry
// only when the team's own counts changed, a later one supersedes it, and
// the counts are the team's own only.
func TestPublishStatisticsOnlyWhenChanged(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	h.create(newIncident())
	if res := h.feed("cert-b", 0, 1, viewItem(1, foreignView("cert-b", 1, 1))); res.Err != nil {
		t.Fatal(res.Err)
	}
	h.publish()
	first := h.f.FeedSequence()
	h.publish() // nothing changed
	if h.f.FeedSequence() != first {
		t.Fatalf("an unchanged publish appended to the feed: %d -> %d", first, h.f.FeedSequence())
	}
	r, err := h.f.NewVersionReader()
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.PublishedStatistics(first)
	_ = r.Close()
	if err != nil || s.GetTeamId() != team || len(s.GetCells()) != 5 || s.GetCells()[0].GetCount() != 1 {
		t.Fatalf("published %v, %v: want one incident of %s in one cell per period", s, err, team)
	}
	h.create(newIncident())
	h.publish()
	if h.f.FeedSequence() <= first+1 {
		t.Fatalf("a changed publish appended nothing")
	}
	r, err = h.f.NewVersionReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if s, err := r.PublishedStatistics(first); s != nil || err != nil {
		t.Fatalf("superseded statistics still served: %v, %v", s, err)
	}
}

// TestReceiveStatisticsRefusesOthers: a peer's statistics are kept only
// when they are its own, well formed and newer.
func TestReceiveStatisticsRefusesOthers(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-b")
	day := timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	cell := func(class, typ string) *irxv1.StatisticsCell {
		return &irxv1.StatisticsCell{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH, PeriodStart: day, TaxonomyClass: class, TaxonomyType: typ, Count: 2}
	}
	item := func(seq uint64, s *irxv1.SharedStatistics) *irxv1.FeedItem {
		return &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Statistics{Statistics: s}}
	}
	bad := []*irxv1.SharedStatistics{
		{TeamId: "cert-c", AsOfTime: day, Cells: []*irxv1.StatisticsCell{cell("fraud", "phishing")}},
		{TeamId: "cert-b", AsOfTime: day, Cells: []*irxv1.StatisticsCell{cell("fraud\u202e", "phishing")}},
		{TeamId: "cert-b", Cells: []*irxv1.StatisticsCell{cell("fraud", "phishing")}},
		{TeamId: "cert-b", AsOfTime: day, Cells: []*irxv1.StatisticsCell{{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH, PeriodStart: timestamppb.New(day.AsTime().Add(time.Hour)), Count: 1}}},
	}
	for i, s := range bad {
		if res := h.feed("cert-b", uint64(i), uint64(i+1), item(uint64(i+1), s)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if st, _ := h.f.PeerState("cert-b"); st.GetRejected() != uint64(len(bad)) {
		t.Fatalf("rejected %d of %d bad statistics: %v", st.GetRejected(), len(bad), st.GetLastRejection())
	}
	good := &irxv1.SharedStatistics{TeamId: "cert-b", AsOfTime: day, Cells: []*irxv1.StatisticsCell{cell("fraud", "phishing")}}
	if res := h.feed("cert-b", 4, 5, item(5, good)); res.Err != nil {
		t.Fatal(res.Err)
	}
	q := StatsQuery{Period: PeriodMonth, Start: day.AsTime(), End: day.AsTime().AddDate(0, 1, 0)}
	teams, total, err := h.f.FederationStatistics(q, h.clock)
	if err != nil || len(teams) != 2 || teams[1].Team != "cert-b" || len(total.Rows) != 1 || total.Rows[0].Count != 2 {
		t.Fatalf("federation statistics: %+v, %+v, %v", teams, total, err)
	}
}

// TestStatisticsOfAnOlderLayoutAreBuiltAgain: a data directory whose
// statistics were kept in layout 1 (cells without the reporting site's
// sector and country) has them built again from its records when it is
// opened, so counts by sector and country are exact at once, and the
// counters equal those a node kept from the start.
func TestStatisticsOfAnOlderLayoutAreBuiltAgain(t *testing.T) {
	h := newHarness(t)
	report := timestamppb.New(time.Date(2026, 9, 14, 10, 0, 0, 0, time.UTC))
	for _, site := range []*irxv1.ReportingSite{
		{Sector: irxv1.Sector_SECTOR_HEALTH, Country: "NL"}, {Sector: irxv1.Sector_SECTOR_HEALTH, Country: "NL"},
		{Sector: irxv1.Sector_SECTOR_ENERGY, Country: "DE"}, {Country: "DE"}, nil,
	} {
		inc := newIncident()
		inc.ReportingSite, inc.ReportTime = site, report
		h.create(inc)
	}
	updated := h.update(&irxv1.Incident{Id: idOf(5), Status: irxv1.Status_STATUS_RESOLVED}, "status")
	if updated.GetVersion() != 2 {
		t.Fatalf("update: %v", updated)
	}
	q := StatsQuery{GroupBy: []Dimension{DimSector, DimCountry}, Period: PeriodMonth,
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	want := bruteStatistics(t, h.f, q)
	if len(want) != 4 || want[0].Count != 1 || want[0].Cell != (Cell{}) {
		t.Fatalf("brute force: %+v", want)
	}
	kept := statKeys(t, h.f)

	// Write the counters as layout 1 did, summed over sector and country.
	old := map[string]uint64{}
	b := h.f.db.NewBatch()
	for _, prefix := range [][]byte{prefixStatCount, prefixStatDur} {
		it, err := h.f.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		for valid := it.First(); valid; valid = it.Next() {
			k := it.Key()[len(prefix):]
			cell, rest, ok := parseCell(k[9:])
			if !ok {
				t.Fatalf("key %q", it.Key())
			}
			key := cat(prefix, k[:9], []byte(cell.Team+"\x00"+cell.Class+"\x00"+cell.Type+"\x00"),
				[]byte{byte(cell.TLP), byte(cell.Status), byte(cell.Priority)}, rest)
			old[string(key)] += binary.BigEndian.Uint64(it.Value())
			if err := b.Delete(it.Key(), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range old {
		if err := b.Set([]byte(k), u64(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(keyStatsVersion, u64(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if len(old) == 0 || slices.Equal(statKeys(t, h.f), kept) {
		t.Fatal("the layout 1 counters were not written")
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}

	f := openFSM(t, h.dir)
	got, err := f.Statistics(q)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Rows, want) {
		t.Fatalf("after reopening a layout 1 directory:\n got  %+v\n want %+v", got.Rows, want)
	}
	if after := statKeys(t, f); !slices.Equal(after, kept) {
		t.Fatalf("rebuilt counters differ from the kept ones:\n kept  %q\n built %q", kept, after)
	}
	if v, err := getUint64(f.db, keyStatsVersion); err != nil || v != statsLayout {
		t.Fatalf("layout marker %d, %v; want %d", v, err, statsLayout)
	}
}

// TestSharedStatisticsHaveNoSiteDimensions: the cells a team shares sum
// over the reporting site's sector and country, which its peers' records
// carry only where their policies disclose private-site information.
func TestSharedStatisticsHaveNoSiteDimensions(t *testing.T) {
	h := newHarness(t)
	for _, country := range []string{"NL", "DE", "NL"} {
		inc := newIncident()
		inc.ReportingSite = &irxv1.ReportingSite{Sector: irxv1.Sector_SECTOR_HEALTH, Country: country}
		h.create(inc)
	}
	h.publish()
	r, err := h.f.NewVersionReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.PublishedStatistics(h.f.FeedSequence())
	if err != nil || len(s.GetCells()) != 5 {
		t.Fatalf("published %v, %v: want one cell per period", s, err)
	}
	for _, c := range s.GetCells() {
		if c.GetCount() != 3 {
			t.Fatalf("shared cell %v: want the three incidents in one cell", c)
		}
	}
}
