package e2e

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// statsPeriodStart is the start of the period that holds t (UTC, ISO
// weeks), written apart from the state machine's.
func statsPeriodStart(p irxv1.StatisticsPeriod, t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_WEEK:
		for day.Weekday() != time.Monday {
			day = day.AddDate(0, 0, -1)
		}
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH:
		day = day.AddDate(0, 0, 1-day.Day())
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_QUARTER:
		day = time.Date(t.Year(), time.Month((int(t.Month())-1)/3*3+1), 1, 0, 0, 0, 0, time.UTC)
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_YEAR:
		day = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return day
}

// statsNode is a node's incident and statistics clients.
type statsNode struct {
	client
	stats irxv1.StatisticsServiceClient
}

func dialStats(t *testing.T, n *irxdtest.Node) statsNode {
	t.Helper()
	conn, err := n.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return statsNode{clientOf(conn), irxv1.NewStatisticsServiceClient(conn)}
}

// bruteStatistics counts, over every record the node holds (read through
// the API), what GetStatistics must answer for req.
func bruteStatistics(t *testing.T, c client, req *irxv1.GetStatisticsRequest) []*irxv1.StatisticsRow {
	t.Helper()
	type acc struct {
		row              *irxv1.StatisticsRow
		response, resolv []time.Duration
	}
	rows := map[string]*acc{}
	has := func(d irxv1.StatisticsDimension) bool { return slices.Contains(req.GetGroupBy(), d) }
	token := ""
	for {
		resp, err := c.incidents.ListIncidents(ctxT(t), &irxv1.ListIncidentsRequest{PageSize: 1000, PageToken: token, IncludeWithdrawn: true})
		if err != nil {
			t.Fatalf("ListIncidents: %v", err)
		}
		for _, inc := range resp.GetIncidents() {
			if inc.GetWithdrawTime() != nil {
				continue
			}
			at := inc.GetReportTime().AsTime()
			if at.Before(req.GetStartTime().AsTime()) || !at.Before(req.GetEndTime().AsTime()) {
				continue
			}
			if tlps := req.GetFilter().GetTlps(); len(tlps) > 0 && !slices.Contains(tlps, inc.GetTlp()) {
				continue
			}
			if cs := req.GetFilter().GetCountries(); len(cs) > 0 && !slices.Contains(cs, inc.GetReportingSite().GetCountry()) {
				continue
			}
			row := &irxv1.StatisticsRow{PeriodStart: timestamppb.New(statsPeriodStart(req.GetPeriod(), at))}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_ORIGIN_TEAM) {
				row.OriginTeam = inc.GetProvenance().GetOriginTeam()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_CLASS) || has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_TYPE) {
				row.TaxonomyClass = inc.GetTaxonomy().GetClass()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_TYPE) {
				row.TaxonomyType = inc.GetTaxonomy().GetType()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_TLP) {
				row.Tlp = inc.GetTlp()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_STATUS) {
				row.Status = inc.GetStatus()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_PRIORITY) {
				row.Priority = inc.GetPriority()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_SECTOR) {
				row.Sector = inc.GetReportingSite().GetSector()
			}
			if has(irxv1.StatisticsDimension_STATISTICS_DIMENSION_COUNTRY) {
				row.Country = inc.GetReportingSite().GetCountry()
			}
			key := prototext.Format(row)
			a := rows[key]
			if a == nil {
				a = &acc{row: row}
				rows[key] = a
			}
			a.row.Count++
			versions, err := c.incidents.ListIncidentVersions(ctxT(t), &irxv1.ListIncidentVersionsRequest{Id: inc.GetId(), PageSize: 1000})
			if err != nil {
				t.Fatalf("ListIncidentVersions: %v", err)
			}
			var responded, resolved bool
			for _, v := range versions.GetIncidents() {
				took := v.GetGenerationTime().AsTime().Sub(v.GetCreateTime().AsTime()).Truncate(time.Minute)
				s := v.GetStatus()
				if !responded && (s == irxv1.Status_STATUS_IN_PROGRESS || s == irxv1.Status_STATUS_FORWARDED || s == irxv1.Status_STATUS_RESOLVED) {
					responded = true
					a.response = append(a.response, took)
				}
				if !resolved && s == irxv1.Status_STATUS_RESOLVED {
					resolved = true
					a.resolv = append(a.resolv, took)
				}
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	pct := func(ds []time.Duration) *irxv1.DurationPercentiles {
		if len(ds) == 0 {
			return nil
		}
		slices.Sort(ds)
		at := func(p int) *durationpb.Duration { return durationpb.New(ds[max((len(ds)*p+99)/100, 1)-1]) }
		return &irxv1.DurationPercentiles{Count: int64(len(ds)), P50: at(50), P90: at(90)}
	}
	var out []*irxv1.StatisticsRow
	for _, a := range rows {
		a.row.TimeToFirstResponse, a.row.TimeToResolution = pct(a.response), pct(a.resolv)
		out = append(out, a.row)
	}
	sortStatsRows(out)
	return out
}

func sortStatsRows(rows []*irxv1.StatisticsRow) {
	slices.SortFunc(rows, func(a, b *irxv1.StatisticsRow) int {
		return strings.Compare(prototext.Format(a), prototext.Format(b))
	})
}

// TestStatisticsEqualBruteForceOnEveryNode: random creates, updates and
// withdrawals through the operator API of a three-node team; after every
// step GetStatistics on each running node equals a count over the records;
// a node that was down throughout catches up by installing a snapshot and
// answers the same.
func TestStatisticsEqualBruteForceOnEveryNode(t *testing.T) {
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == "100" {
		// Each check drives real processes: a few are plenty.
		_ = f.Value.Set("6")
		t.Cleanup(func() { _ = f.Value.Set("100") })
	}
	nodes := irxdtest.StartCluster(t, irxdBin, 3,
		"--snapshot-threshold", "40", "--trailing-logs", "10", "--snapshot-interval", "300ms")
	leader, clients := roles(t, nodes)
	down := (leader + 1) % 3
	if err := nodes[down].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	up := []statsNode{dialStats(t, nodes[leader]), dialStats(t, nodes[(leader+2)%3])}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	base := today.AddDate(0, 0, -60)
	taxonomies := []*irxv1.Taxonomy{{Class: "malicious-code", Type: "c2-server"}, {Class: "fraud", Type: "phishing"}, {Class: "availability", Type: "ddos"}}
	statuses := []irxv1.Status{irxv1.Status_STATUS_NEW, irxv1.Status_STATUS_IN_PROGRESS, irxv1.Status_STATUS_RESOLVED}
	var ids []string
	drawQuery := func(rt *rapid.T) *irxv1.GetStatisticsRequest {
		req := &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod(rapid.IntRange(1, 5).Draw(rt, "period"))}
		for d := irxv1.StatisticsDimension(1); d <= 8; d++ {
			if rapid.Bool().Draw(rt, fmt.Sprint("by", d)) {
				req.GroupBy = append(req.GroupBy, d)
			}
		}
		from := rapid.IntRange(-10, 50).Draw(rt, "from")
		req.StartTime = timestamppb.New(base.AddDate(0, 0, from))
		req.EndTime = timestamppb.New(base.AddDate(0, 0, from+rapid.IntRange(1, 80).Draw(rt, "days")))
		if rapid.Bool().Draw(rt, "filter") {
			req.Filter = &irxv1.StatisticsFilter{Tlps: []irxv1.Tlp{irxv1.Tlp_TLP_GREEN}}
		}
		if rapid.Bool().Draw(rt, "filterCountry") {
			req.Filter = &irxv1.StatisticsFilter{Countries: []string{"NL", "JP"}}
		}
		return req
	}
	sites := []*irxv1.ReportingSite{nil, {Name: "a clinic", Sector: irxv1.Sector_SECTOR_HEALTH, Country: "NL"},
		{Name: "a grid", Sector: irxv1.Sector_SECTOR_ENERGY, Country: "DE"}, {Name: "a lab", Country: "JP"}}
	withSite := func(inc *irxv1.Incident, site *irxv1.ReportingSite) *irxv1.Incident {
		if site != nil {
			inc.ReportingSite = proto.CloneOf(site)
		}
		return inc
	}
	check := func(rt *rapid.T, nodes []statsNode, req *irxv1.GetStatisticsRequest) {
		want := bruteStatistics(t, nodes[0].client, req)
		for i, c := range nodes {
			resp, err := c.stats.GetStatistics(ctxT(t), req)
			if err != nil {
				rt.Fatalf("node %d: GetStatistics: %v", i, err)
			}
			got := resp.GetRows()
			sortStatsRows(got)
			if len(got) != len(want) || !slices.EqualFunc(got, want, func(a, b *irxv1.StatisticsRow) bool { return proto.Equal(a, b) }) {
				rt.Fatalf("node %d: GetStatistics(%v)\n got  %v\n want %v", i, req, got, want)
			}
		}
	}
	var queries []*irxv1.GetStatisticsRequest
	rapid.Check(t, func(rt *rapid.T) {
		for range rapid.IntRange(1, 6).Draw(rt, "steps") {
			c := rapid.SampledFrom(up).Draw(rt, "via") // writes to a follower are forwarded
			report := timestamppb.New(base.Add(time.Duration(rapid.IntRange(0, 59*24).Draw(rt, "hour")) * time.Hour))
			switch action := rapid.IntRange(0, 3).Draw(rt, "action"); {
			case action <= 1 || len(ids) == 0:
				inc := sample(len(ids))
				inc.Taxonomy = proto.CloneOf(rapid.SampledFrom(taxonomies).Draw(rt, "tax"))
				inc.Tlp = irxv1.Tlp(rapid.IntRange(1, 4).Draw(rt, "tlp"))
				inc.Status = rapid.SampledFrom(statuses).Draw(rt, "status")
				inc.ReportTime = report
				inc = withSite(inc, rapid.SampledFrom(sites).Draw(rt, "site"))
				ids = append(ids, create(t, c.client, inc).GetId())
			case action == 2:
				patch := &irxv1.Incident{
					Id: rapid.SampledFrom(ids).Draw(rt, "id"), Status: rapid.SampledFrom(statuses).Draw(rt, "status"),
					Tlp: irxv1.Tlp(rapid.IntRange(1, 4).Draw(rt, "tlp")), Taxonomy: proto.CloneOf(rapid.SampledFrom(taxonomies).Draw(rt, "tax")),
					ReportTime: report,
				}
				patch = withSite(patch, rapid.SampledFrom(sites).Draw(rt, "site"))
				paths := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"status", "tlp", "taxonomy", "report_time", "reporting_site"}), 1, 5, rapid.ID).Draw(rt, "paths")
				// A withdrawn incident refuses: nothing changes.
				_, _ = c.incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{Incident: patch, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
			default:
				_, _ = c.incidents.WithdrawIncident(ctxT(t), &irxv1.WithdrawIncidentRequest{Id: rapid.SampledFrom(ids).Draw(rt, "id"), Reason: "test"})
			}
			req := drawQuery(rt)
			check(rt, up, req)
			if len(queries) < 8 {
				queries = append(queries, req)
			}
		}
	})

	// Enough writes that the leader snapshots and compacts its log past
	// the node that is down.
	for i := range 60 {
		inc := sample(i)
		inc.ReportTime = timestamppb.New(base.AddDate(0, 0, i%50))
		inc.Status = statuses[i%len(statuses)]
		create(t, up[i%2].client, inc)
	}
	// The node that was down comes back past the compacted log: it
	// installs a snapshot, and its statistics (in the snapshot) are exact.
	target := clusterStatus(t, clients[leader])
	time.Sleep(time.Second) // let the leader snapshot and compact past the stopped node
	nodes[down].Args = append(nodes[down].Args, "--log-level", "info")
	if err := nodes[down].Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	restored := dialStats(t, nodes[down])
	eventually(t, 30*time.Second, "the restarted node to catch up", func() error {
		st, err := restored.cluster.GetClusterStatus(ctxT(t), &irxv1.GetClusterStatusRequest{})
		if err != nil || st.GetAppliedIndex() < target.GetAppliedIndex() {
			return fmt.Errorf("status %v, %v (target applied %d)", st, err, target.GetAppliedIndex())
		}
		return nil
	})
	// Raft logs the install once the restore it waited on has returned,
	// which the applied index above may show first.
	eventually(t, 10*time.Second, "the restarted node to log its snapshot install", func() error {
		if logs := nodes[down].Logs(); !strings.Contains(logs, "Installed remote snapshot") {
			return fmt.Errorf("the restarted node caught up without a snapshot install; its log:\n%s", tail(logs, 20))
		}
		return nil
	})
	all := []statsNode{up[0], up[1], restored}
	rapid.Check(t, func(rt *rapid.T) {
		for _, req := range queries {
			check(rt, all, req)
		}
		check(rt, all, drawQuery(rt))
	})
}

// TestStatisticsBadInput: every refusal names its field.
func TestStatisticsBadInput(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 1)
	c := dialStats(t, nodes[0]).stats
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good := func() *irxv1.GetStatisticsRequest {
		return &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH,
			StartTime: timestamppb.New(day), EndTime: timestamppb.New(day.AddDate(1, 0, 0))}
	}
	if _, err := c.GetStatistics(ctxT(t), good()); err != nil {
		t.Fatalf("a good request: %v", err)
	}
	for field, mutate := range map[string]func(*irxv1.GetStatisticsRequest){
		"group_by[0]": func(r *irxv1.GetStatisticsRequest) { r.GroupBy = []irxv1.StatisticsDimension{42} },
		"group_by[1]": func(r *irxv1.GetStatisticsRequest) {
			r.GroupBy = []irxv1.StatisticsDimension{irxv1.StatisticsDimension_STATISTICS_DIMENSION_COUNTRY, 9}
		},
		"filter.countries[1]": func(r *irxv1.GetStatisticsRequest) {
			r.Filter = &irxv1.StatisticsFilter{Countries: []string{"NL", "XK"}}
		},
		"filter.sectors[0]": func(r *irxv1.GetStatisticsRequest) {
			r.Filter = &irxv1.StatisticsFilter{Sectors: []irxv1.Sector{20}}
		},
		"period":     func(r *irxv1.GetStatisticsRequest) { r.Period = 0 },
		"start_time": func(r *irxv1.GetStatisticsRequest) { r.StartTime = timestamppb.New(day.Add(time.Hour)) },
		"end_time":   func(r *irxv1.GetStatisticsRequest) { r.StartTime, r.EndTime = r.EndTime, r.StartTime },
		"filter.taxonomy_classes[0]": func(r *irxv1.GetStatisticsRequest) {
			r.Filter = &irxv1.StatisticsFilter{TaxonomyClasses: []string{""}}
		},
	} {
		req := good()
		mutate(req)
		_, err := c.GetStatistics(ctxT(t), req)
		assertInvalid(t, err, field)
	}
	// A record's sector and country are checked when it is written, and
	// a refused one is not stored.
	inc := sample(1)
	inc.ReportingSite = &irxv1.ReportingSite{Sector: 20, Country: "XK"}
	_, err := dialStats(t, nodes[0]).incidents.CreateIncident(ctxT(t), &irxv1.CreateIncidentRequest{Incident: inc})
	assertInvalid(t, err, "incident.reporting_site.sector", "incident.reporting_site.country")
	if resp, err := c.GetStatistics(ctxT(t), good()); err != nil || len(resp.GetRows()) != 0 {
		t.Fatalf("after a refused create: %v, %v", resp, err)
	}
	// Too many periods: days over a century.
	req := good()
	req.Period, req.EndTime = irxv1.StatisticsPeriod_STATISTICS_PERIOD_DAY, timestamppb.New(day.AddDate(100, 0, 0))
	_, err = c.GetStatistics(ctxT(t), req)
	assertInvalid(t, err, "end_time")
}
