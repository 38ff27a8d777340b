package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func statsCommand() *command {
	return &command{
		name:  "stats",
		usage: "stats COMMAND",
		short: "Count the team's incidents by period, taxonomy, TLP, status, priority, origin, sector and country",
		subs:  []*command{statsGetCommand(), statsPublishCommand(), statsChartCommand()},
	}
}

// statsDimensions are the --by names of the dimensions.
var statsDimensions = map[string]irxv1.StatisticsDimension{
	"class":    irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_CLASS,
	"type":     irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_TYPE,
	"tlp":      irxv1.StatisticsDimension_STATISTICS_DIMENSION_TLP,
	"status":   irxv1.StatisticsDimension_STATISTICS_DIMENSION_STATUS,
	"priority": irxv1.StatisticsDimension_STATISTICS_DIMENSION_PRIORITY,
	"origin":   irxv1.StatisticsDimension_STATISTICS_DIMENSION_ORIGIN_TEAM,
	"sector":   irxv1.StatisticsDimension_STATISTICS_DIMENSION_SECTOR,
	"country":  irxv1.StatisticsDimension_STATISTICS_DIMENSION_COUNTRY,
}

var statsPeriods = map[string]irxv1.StatisticsPeriod{
	"day": irxv1.StatisticsPeriod_STATISTICS_PERIOD_DAY, "week": irxv1.StatisticsPeriod_STATISTICS_PERIOD_WEEK,
	"month": irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH, "quarter": irxv1.StatisticsPeriod_STATISTICS_PERIOD_QUARTER,
	"year": irxv1.StatisticsPeriod_STATISTICS_PERIOD_YEAR,
}

// statsFlags are the flags that make a GetStatisticsRequest.
type statsFlags struct {
	by, period, from, to, scope *string
	stale                       *bool
}

func addStatsFlags(fs *flag.FlagSet) statsFlags {
	return statsFlags{
		by:     fs.String("by", "", "group by these dimensions, comma-separated: class, type, tlp, status, priority, origin, sector, country"),
		scope:  fs.String("scope", "own", "own: every record the team holds; federation: the team's own and each peer's shared statistics"),
		period: fs.String("period", "month", "day, week, month, quarter or year (UTC)"),
		from:   fs.String("from", "", "first day counted, YYYY-MM-DD (default: the start of the month eleven months ago)"),
		to:     fs.String("to", "", "the day after the last counted, YYYY-MM-DD (default: tomorrow)"),
		stale:  fs.Bool("stale", false, "answer from the node's local state, even without a leader (may lag)"),
	}
}

// request makes the request the flags describe; now is the clock.
func (f statsFlags) request(now time.Time) (*irxv1.GetStatisticsRequest, error) {
	now = now.UTC()
	req := &irxv1.GetStatisticsRequest{Consistency: consistency(*f.stale)}
	p, ok := statsPeriods[*f.period]
	if !ok {
		return nil, usageErrorf("--period %q: use day, week, month, quarter or year", *f.period)
	}
	req.Period = p
	switch *f.scope {
	case "own":
	case "federation":
		req.Scope = irxv1.StatisticsScope_STATISTICS_SCOPE_FEDERATION
	default:
		return nil, usageErrorf("--scope %q: use own or federation", *f.scope)
	}
	if *f.by != "" {
		for _, name := range strings.Split(*f.by, ",") {
			d, ok := statsDimensions[strings.TrimSpace(name)]
			if !ok {
				return nil, usageErrorf("--by %q: use class, type, tlp, status, priority, origin, sector or country", name)
			}
			req.GroupBy = append(req.GroupBy, d)
		}
	}
	day := func(flagName, value string, def time.Time) (*timestamppb.Timestamp, error) {
		if value == "" {
			return timestamppb.New(def), nil
		}
		t, err := time.Parse(time.DateOnly, value)
		if err != nil {
			return nil, usageErrorf("--%s %q: want YYYY-MM-DD", flagName, value)
		}
		return timestamppb.New(t), nil
	}
	var err error
	if req.StartTime, err = day("from", *f.from, time.Date(now.Year(), now.Month()-11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return nil, err
	}
	if req.EndTime, err = day("to", *f.to, time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)); err != nil {
		return nil, err
	}
	return req, nil
}

func statsGetCommand() *command {
	return &command{
		name:  "get",
		usage: "stats get [--by class,tlp,...] [--period month] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--scope own|federation] [--stale]",
		short: "Print incident counts per period and group, with response-time percentiles",
		long: `Counts the incidents the team holds (its own and those received from
peers, under their origin team) whose report time falls in [--from, --to),
per period and per combination of the --by dimensions; withdrawn records do
not count. RESPONSE and RESOLUTION are the p50/p90 times from an own
incident's creation to its first version in progress (or forwarded or
resolved) and to its first resolved version, to the minute.`,
		connects: true, printsOutput: true,
		setup: func(fs *flag.FlagSet) action {
			flags := addStatsFlags(fs)
			return func(ctx context.Context, c *cli, _ []string) error {
				req, err := flags.request(time.Now())
				if err != nil {
					return err
				}
				return withClient(ctx, c, irxv1.NewStatisticsServiceClient, func(ctx context.Context, sc irxv1.StatisticsServiceClient) error {
					resp, err := sc.GetStatistics(ctx, req)
					if err != nil {
						return err
					}
					return c.printList(resp, "rows", len(resp.GetRows()), func(w io.Writer) error {
						for _, t := range resp.GetTeams() {
							fmt.Fprintf(w, "== %s (as of %s) ==\n", t.GetTeamId(), timeLabel(t.GetAsOfTime()))
							if err := writeStatsTable(w, req, t.GetRows()); err != nil {
								return err
							}
						}
						if len(resp.GetTeams()) > 0 {
							fmt.Fprintln(w, "== federation total ==")
						}
						return writeStatsTable(w, req, resp.GetRows())
					})
				})
			}
		},
	}
}

// statsLabel names a row's group by the dimensions asked for.
func statsLabel(req *irxv1.GetStatisticsRequest, r *irxv1.StatisticsRow) []string {
	var out []string
	for _, d := range req.GetGroupBy() {
		switch d {
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_CLASS:
			out = append(out, dash(r.GetTaxonomyClass()))
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_TYPE:
			out = append(out, dash(r.GetTaxonomyClass())+"/"+dash(r.GetTaxonomyType()))
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_TLP:
			out = append(out, strings.TrimPrefix(r.GetTlp().String(), "TLP_"))
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_STATUS:
			out = append(out, strings.TrimPrefix(r.GetStatus().String(), "STATUS_"))
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_PRIORITY:
			out = append(out, strings.TrimPrefix(r.GetPriority().String(), "PRIORITY_"))
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_ORIGIN_TEAM:
			out = append(out, dash(r.GetOriginTeam()))
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_SECTOR:
			if r.GetSector() == irxv1.Sector_SECTOR_UNSPECIFIED {
				out = append(out, "-")
			} else {
				out = append(out, strings.ToLower(strings.TrimPrefix(r.GetSector().String(), "SECTOR_")))
			}
		case irxv1.StatisticsDimension_STATISTICS_DIMENSION_COUNTRY:
			out = append(out, dash(r.GetCountry()))
		}
	}
	return out
}

func writeStatsTable(w io.Writer, req *irxv1.GetStatisticsRequest, rows []*irxv1.StatisticsRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No incidents in the range.")
		return err
	}
	tw := newTable(w)
	head := []string{"PERIOD"}
	for _, d := range req.GetGroupBy() {
		head = append(head, strings.TrimPrefix(d.String(), "STATISTICS_DIMENSION_"))
	}
	fmt.Fprintln(tw, strings.Join(append(head, "COUNT", "RESPONSE p50/p90", "RESOLUTION p50/p90"), "\t"))
	var total int64
	for _, r := range rows {
		cols := append([]string{r.GetPeriodStart().AsTime().UTC().Format(time.DateOnly)}, statsLabel(req, r)...)
		cols = append(cols, fmt.Sprint(r.GetCount()), percentileLabel(r.GetTimeToFirstResponse()), percentileLabel(r.GetTimeToResolution()))
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
		total += r.GetCount()
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d incidents in %d rows.\n", total, len(rows))
	return err
}

func percentileLabel(p *irxv1.DurationPercentiles) string {
	if p == nil {
		return "-"
	}
	return p.GetP50().AsDuration().String() + "/" + p.GetP90().AsDuration().String()
}
