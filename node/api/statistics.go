package api

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// DefaultMaxStatisticsPeriods bounds the periods one GetStatistics call
// may produce: ten years of days.
const DefaultMaxStatisticsPeriods = 3660

// StatisticsStore is the state machine's statistics.
type StatisticsStore interface {
	Statistics(q fsm.StatsQuery) (*fsm.StatsResult, error)
	FederationStatistics(q fsm.StatsQuery, now time.Time) ([]fsm.TeamStats, *fsm.StatsResult, error)
}

// StatisticsObserver is told the cost of every query answered: the cells
// it read and the time it took.
type StatisticsObserver func(cells int, took time.Duration)

// StatisticsService implements irx.v1.StatisticsService.
type StatisticsService struct {
	irxv1.UnimplementedStatisticsServiceServer
	proposer   Proposer
	barrier    ReadBarrier
	store      StatisticsStore
	maxPeriods int
	observe    StatisticsObserver
}

// NewStatisticsService returns the service over a proposer (for privacy
// budgets), a read barrier and the statistics. A query of more than maxPeriods periods is refused (0:
// DefaultMaxStatisticsPeriods); observe, if not nil, is told each query's
// cost.
func NewStatisticsService(p Proposer, b ReadBarrier, s StatisticsStore, maxPeriods int, observe StatisticsObserver) *StatisticsService {
	if maxPeriods <= 0 {
		maxPeriods = DefaultMaxStatisticsPeriods
	}
	return &StatisticsService{proposer: p, barrier: b, store: s, maxPeriods: maxPeriods, observe: observe}
}

// MaxDatasetLength bounds a privacy budget's dataset name.
const MaxDatasetLength = 128

// SpendPrivacyBudget implements irx.v1.StatisticsService.
func (s *StatisticsService) SpendPrivacyBudget(ctx context.Context, req *irxv1.SpendPrivacyBudgetRequest) (*irxv1.SpendPrivacyBudgetResponse, error) {
	var vs []record.Violation
	switch d := req.GetDataset(); {
	case d == "":
		vs = append(vs, record.Violation{Field: "dataset", Description: "is required"})
	case len(d) > MaxDatasetLength:
		vs = append(vs, record.Violation{Field: "dataset", Description: fmt.Sprintf("is longer than %d bytes", MaxDatasetLength)})
	default:
		if why := record.CheckText(d, record.Identifier); why != "" {
			vs = append(vs, record.Violation{Field: "dataset", Description: why})
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"epsilon", req.GetEpsilon()}, {"budget", req.GetBudget()}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			vs = append(vs, record.Violation{Field: f.name, Description: fmt.Sprintf("must be a positive finite number, not %v", f.v)})
		}
	}
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	res, err := s.proposer.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_SpendPrivacyBudget{SpendPrivacyBudget: &irxv1.SpendPrivacyBudgetCommand{
		Dataset: req.GetDataset(), Epsilon: req.GetEpsilon(), Budget: req.GetBudget(),
	}}})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, ToStatus(res.Err)
	}
	return &irxv1.SpendPrivacyBudgetResponse{Budget: res.Budget}, nil
}

// GetStatistics implements irx.v1.StatisticsService.
func (s *StatisticsService) GetStatistics(ctx context.Context, req *irxv1.GetStatisticsRequest) (*irxv1.GetStatisticsResponse, error) {
	q, vs := StatisticsQuery(req, s.maxPeriods)
	vs = append(vs, record.CheckConsistency(req.GetConsistency())...)
	if len(vs) > 0 {
		return nil, invalidArgument(vs)
	}
	if err := s.barrier.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	began := time.Now()
	out := &irxv1.GetStatisticsResponse{}
	var res *fsm.StatsResult
	var err error
	if req.GetScope() == irxv1.StatisticsScope_STATISTICS_SCOPE_FEDERATION {
		var teams []fsm.TeamStats
		teams, res, err = s.store.FederationStatistics(q, began)
		for _, t := range teams {
			ts := &irxv1.TeamStatistics{TeamId: t.Team, AsOfTime: timestamppb.New(t.AsOf)}
			for _, r := range t.Rows {
				ts.Rows = append(ts.Rows, StatisticsRow(r))
			}
			out.Teams = append(out.Teams, ts)
		}
	} else {
		res, err = s.store.Statistics(q)
	}
	if err != nil {
		return nil, ToStatus(err)
	}
	if s.observe != nil {
		s.observe(res.CellsRead, time.Since(began))
	}
	out.CellsRead = int64(res.CellsRead)
	for _, r := range res.Rows {
		out.Rows = append(out.Rows, StatisticsRow(r))
	}
	return out, nil
}

// StatisticsRow is the API's form of a row.
func StatisticsRow(r fsm.StatsRow) *irxv1.StatisticsRow {
	return &irxv1.StatisticsRow{
		PeriodStart: timestamppb.New(r.PeriodStart), OriginTeam: r.Cell.Team,
		TaxonomyClass: r.Cell.Class, TaxonomyType: r.Cell.Type,
		Tlp: r.Cell.TLP, Status: r.Cell.Status, Priority: r.Cell.Priority,
		Sector: r.Cell.Sector, Country: r.Cell.Country,
		Count: r.Count, TimeToFirstResponse: percentiles(r.Response), TimeToResolution: percentiles(r.Resolution),
	}
}

func percentiles(p fsm.Percentiles) *irxv1.DurationPercentiles {
	if p.N == 0 {
		return nil
	}
	return &irxv1.DurationPercentiles{Count: p.N, P50: durationpb.New(p.P50), P90: durationpb.New(p.P90)}
}

// maxFilterValues bounds each list of a statistics filter.
const maxFilterValues = 100

// StatisticsQuery checks a request and makes the state machine's query of
// it; the violations name the fields.
func StatisticsQuery(req *irxv1.GetStatisticsRequest, maxPeriods int) (fsm.StatsQuery, []record.Violation) {
	var vs []record.Violation
	bad := func(field, format string, args ...any) {
		vs = append(vs, record.Violation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	q := fsm.StatsQuery{Period: fsm.Period(req.GetPeriod())}
	for i, d := range req.GetGroupBy() {
		field := fmt.Sprintf("group_by[%d]", i)
		switch {
		case d <= irxv1.StatisticsDimension_STATISTICS_DIMENSION_UNSPECIFIED || d > irxv1.StatisticsDimension_STATISTICS_DIMENSION_COUNTRY:
			bad(field, "unknown dimension %d: use one of TAXONOMY_CLASS, TAXONOMY_TYPE, TLP, STATUS, PRIORITY, ORIGIN_TEAM, SECTOR, COUNTRY", d)
		case slices.Contains(q.GroupBy, fsm.Dimension(d)):
			bad(field, "%s is named twice", d)
		default:
			q.GroupBy = append(q.GroupBy, fsm.Dimension(d))
		}
	}
	switch req.GetScope() {
	case irxv1.StatisticsScope_STATISTICS_SCOPE_UNSPECIFIED, irxv1.StatisticsScope_STATISTICS_SCOPE_OWN, irxv1.StatisticsScope_STATISTICS_SCOPE_FEDERATION:
	default:
		bad("scope", "unknown scope %d: use OWN or FEDERATION", req.GetScope())
	}
	if !q.Period.Valid() {
		bad("period", "is required: one of DAY, WEEK, MONTH, QUARTER, YEAR")
	}
	day := func(ts *timestamppb.Timestamp, field string) time.Time {
		switch {
		case ts == nil:
			bad(field, "is required")
		case !ts.IsValid():
			bad(field, "is not a valid time")
		case !ts.AsTime().Truncate(24*time.Hour).Equal(ts.AsTime()) || ts.AsTime().Year() < 1900 || ts.AsTime().Year() > 9000:
			bad(field, "must be midnight UTC of a day between the years 1900 and 9000 (statistics are counted by day): %s", ts.AsTime().UTC().Format(time.RFC3339Nano))
		default:
			return ts.AsTime().UTC()
		}
		return time.Time{}
	}
	q.Start, q.End = day(req.GetStartTime(), "start_time"), day(req.GetEndTime(), "end_time")
	if !q.Start.IsZero() && !q.End.IsZero() {
		if !q.Start.Before(q.End) {
			bad("end_time", "must be after start_time")
		} else if q.Period.Valid() {
			n := 0
			for t := q.Period.Start(q.Start); t.Before(q.End) && n <= maxPeriods; t = q.Period.Next(t) {
				n++
			}
			if n > maxPeriods {
				bad("end_time", "the range holds more than %d periods of the period asked for: narrow it or choose a longer period", maxPeriods)
			}
		}
	}
	f := req.GetFilter()
	strs := func(field string, values []string) []string {
		if len(values) > maxFilterValues {
			bad("filter."+field, "lists more than %d values", maxFilterValues)
		}
		for i, v := range values {
			if why := record.CheckText(v, record.Identifier); why != "" || v == "" {
				if why == "" {
					why = "is empty"
				}
				bad(fmt.Sprintf("filter.%s[%d]", field, i), "%s", why)
			}
		}
		return values
	}
	q.Filter = fsm.StatsFilter{
		Teams: strs("origin_teams", f.GetOriginTeams()), Classes: strs("taxonomy_classes", f.GetTaxonomyClasses()),
		Types: strs("taxonomy_types", f.GetTaxonomyTypes()),
		TLPs:  f.GetTlps(), Statuses: f.GetStatuses(), Priorities: f.GetPriorities(),
		Sectors: f.GetSectors(), Countries: f.GetCountries(),
	}
	for _, n := range []struct {
		field string
		count int
	}{{"tlps", len(f.GetTlps())}, {"statuses", len(f.GetStatuses())}, {"priorities", len(f.GetPriorities())},
		{"sectors", len(f.GetSectors())}, {"countries", len(f.GetCountries())}} {
		if n.count > maxFilterValues {
			bad("filter."+n.field, "lists more than %d values", maxFilterValues)
		}
	}
	for i, v := range f.GetSectors() {
		if _, ok := irxv1.Sector_name[int32(v)]; !ok {
			bad(fmt.Sprintf("filter.sectors[%d]", i), "unknown sector %d: use one of the Sector values (SECTOR_ENERGY, ..., SECTOR_OTHER), or SECTOR_UNSPECIFIED for records that give none", v)
		}
	}
	for i, v := range f.GetCountries() {
		if !record.ValidCountry(v) {
			bad(fmt.Sprintf("filter.countries[%d]", i), "%q is not an ISO 3166-1 alpha-2 country code (two capital letters the standard assigns, e.g. \"NL\")", v)
		}
	}
	return q, vs
}
