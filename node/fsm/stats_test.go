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
		cell := Cell{id.Team, inc.GetTaxonomy().GetClass(), inc.GetTaxonomy().GetType(), inc.GetTlp(), inc.GetStatus(), inc.GetPriority()}
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
	dims := []Dimension{DimTaxonomyClass, DimTaxonomyType, DimTLP, DimStatus, DimPriority, DimOriginTeam}
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
	return q
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
					Status:     rapid.SampledFrom(statuses).Draw(rt, "status"),
					Tlp:        irxv1.Tlp(rapid.IntRange(1, 4).Draw(rt, "tlp")),
					Priority:   irxv1.Priority(rapid.IntRange(0, 4).Draw(rt, "priority")),
					Taxonomy:   proto.CloneOf(rapid.SampledFrom(statTaxonomies).Draw(rt, "tax")),
					ReportTime: reportTime("report"),
				}
				paths := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"status", "tlp", "priority", "taxonomy", "report_time"}), 1, 5, rapid.ID).Draw(rt, "paths")
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
