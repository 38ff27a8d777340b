package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/irxfed/irx/policy/release"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// statsTable fetches the statistics the flags ask for, grouped by at most
// one dimension, as a table: a row per period of the range (empty ones
// too), a column per value of the dimension ("all" without one).
func statsTable(ctx context.Context, c *cli, req *irxv1.GetStatisticsRequest) (release.Table, error) {
	if len(req.GetGroupBy()) > 1 {
		return release.Table{}, usageErrorf("--by: a table has one dimension as its columns, not %d", len(req.GetGroupBy()))
	}
	var rows []*irxv1.StatisticsRow
	err := withClient(ctx, c, irxv1.NewStatisticsServiceClient, func(ctx context.Context, sc irxv1.StatisticsServiceClient) error {
		resp, err := sc.GetStatistics(ctx, req)
		rows = resp.GetRows()
		return err
	})
	if err != nil {
		return release.Table{}, err
	}
	var t release.Table
	index := map[string]int{}
	for p := periodStart(req.GetPeriod(), req.GetStartTime().AsTime()); p.Before(req.GetEndTime().AsTime()); p = nextPeriod(req.GetPeriod(), p) {
		index[p.Format(time.DateOnly)] = len(t.Rows)
		t.Rows = append(t.Rows, p.Format(time.DateOnly))
	}
	cols := map[string]bool{}
	label := func(r *irxv1.StatisticsRow) string {
		if l := statsLabel(req, r); len(l) > 0 {
			return l[0]
		}
		return "all"
	}
	for _, r := range rows {
		cols[label(r)] = true
	}
	for col := range cols {
		t.Cols = append(t.Cols, col)
	}
	slices.Sort(t.Cols)
	if len(t.Cols) == 0 {
		t.Cols = []string{"all"}
	}
	t.Counts = make([][]int64, len(t.Rows))
	for i := range t.Counts {
		t.Counts[i] = make([]int64, len(t.Cols))
	}
	for _, r := range rows {
		i, ok := index[r.GetPeriodStart().AsTime().UTC().Format(time.DateOnly)]
		if !ok {
			continue
		}
		t.Counts[i][slices.Index(t.Cols, label(r))] += r.GetCount()
	}
	return t, nil
}

// periodStart and nextPeriod step through the periods as the node counts
// them (UTC; ISO weeks).
func periodStart(p irxv1.StatisticsPeriod, t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_WEEK:
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_QUARTER:
		return time.Date(t.Year(), t.Month()-(t.Month()-1)%3, 1, 0, 0, 0, 0, time.UTC)
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_YEAR:
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return day
}

func nextPeriod(p irxv1.StatisticsPeriod, t time.Time) time.Time {
	switch p {
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_WEEK:
		return t.AddDate(0, 0, 7)
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH:
		return t.AddDate(0, 1, 0)
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_QUARTER:
		return t.AddDate(0, 3, 0)
	case irxv1.StatisticsPeriod_STATISTICS_PERIOD_YEAR:
		return t.AddDate(1, 0, 0)
	}
	return t.AddDate(0, 0, 1)
}

// publication is the release as written to release.json: the cells and
// what was applied, with what it counts.
type publication struct {
	Dataset   string    `json:"dataset,omitempty"`
	Period    string    `json:"period"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Dimension string    `json:"dimension,omitempty"`
	Made      time.Time `json:"made"`
	*release.Release
	Budget *budgetState `json:"privacy_budget,omitempty"`
}

type budgetState struct {
	Budget   float64 `json:"budget"`
	Spent    float64 `json:"spent"`
	Releases int64   `json:"releases"`
}

func statsPublishCommand() *command {
	return &command{
		name:  "publish",
		usage: "stats publish --out DIR [--by class] [--period month] [--from ..] [--to ..] [--k 5] [--epsilon E --dataset NAME --budget B [--mechanism geometric]] [--format svg|png] [--size 900x420]",
		short: "Write a public release of the statistics: release.json, release.csv and a chart, release.svg or .png",
		long: `Counts per period (rows) and, with --by, per value of one dimension
(columns), generalised for the public: counts in [1, k) are suppressed, and
more cells are suppressed until none of them can be computed from the
published row, column and grand totals and the visible cells. With
--epsilon, every count first gets differentially private noise (geometric,
or laplace) of privacy loss epsilon, which is spent from the dataset's
replicated privacy budget: a release that would spend past --budget is
refused, and nothing is written. The first release of a dataset fixes its
budget. release.json records what was applied. The chart draws the
published cells as stacked bars, a suppressed cell as none.`,
		connects: true,
		setup: func(fs *flag.FlagSet) action {
			flags := addStatsFlags(fs)
			out := fs.String("out", "", "the directory to write release.json, release.csv and the chart in (required)")
			chartOpts := addChartFlags(fs, string(formatSVG), false)
			k := fs.Int("k", release.DefaultK, "the smallest count published (at least 2)")
			eps := fs.Float64("epsilon", 0, "differential privacy: the privacy loss of this release (0: no noise)")
			mech := fs.String("mechanism", string(release.Geometric), "the noise: geometric or laplace")
			dataset := fs.String("dataset", "", "with --epsilon: the dataset whose privacy budget the release spends")
			budget := fs.Float64("budget", 1, "with --epsilon: the dataset's total budget (fixed by its first release)")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *out == "" {
					return usageErrorf("--out is required")
				}
				if *k < 2 {
					return usageErrorf("--k %d: must be at least 2", *k)
				}
				look, err := chartOpts.look("")
				if err != nil {
					return err
				}
				opts := release.Options{K: *k}
				if *eps != 0 {
					if *dataset == "" {
						return usageErrorf("--epsilon needs --dataset: the budget is kept per dataset")
					}
					opts.Mechanism, opts.Epsilon = release.Mechanism(*mech), *eps
					if opts.Mechanism != release.Geometric && opts.Mechanism != release.Laplace {
						return usageErrorf("--mechanism %q: use geometric or laplace", *mech)
					}
				}
				req, err := flags.request(time.Now())
				if err != nil {
					return err
				}
				table, err := statsTable(ctx, c, req)
				if err != nil {
					return err
				}
				pub := publication{Dataset: *dataset, Period: *flags.period, From: req.GetStartTime().AsTime().Format(time.DateOnly),
					To: req.GetEndTime().AsTime().Format(time.DateOnly), Dimension: *flags.by, Made: time.Now().UTC().Truncate(time.Second)}
				var rng *rand.Rand
				if opts.Mechanism != release.NoNoise {
					// Spend first: a refused spend writes nothing.
					err := withClient(ctx, c, irxv1.NewStatisticsServiceClient, func(ctx context.Context, sc irxv1.StatisticsServiceClient) error {
						resp, err := sc.SpendPrivacyBudget(ctx, &irxv1.SpendPrivacyBudgetRequest{Dataset: *dataset, Epsilon: *eps, Budget: *budget})
						if err == nil {
							b := resp.GetBudget()
							pub.Budget = &budgetState{Budget: b.GetBudget(), Spent: b.GetSpent(), Releases: b.GetReleases()}
						}
						return err
					})
					if err != nil {
						return err
					}
					var seed [32]byte
					if _, err := crand.Read(seed[:]); err != nil {
						return err
					}
					rng = rand.New(rand.NewChaCha8(seed))
				}
				rel, err := release.Make(table, opts, rng)
				if err != nil {
					return usageErrorf("%v", err)
				}
				pub.Release = rel
				if err := writeRelease(*out, &pub, look); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "wrote %s: %d cells, %d suppressed as small, %d complementary; k=%d",
					filepath.Join(*out, "release.{json,csv,"+string(look.format)+"}"), len(rel.Rows)*len(rel.Cols), rel.Applied.SmallSuppressed, rel.Applied.ComplementarySuppress, rel.Applied.K)
				if pub.Budget != nil {
					fmt.Fprintf(c.stdout, "; %s noise, epsilon %v (dataset %s: %v of %v spent)", rel.Applied.Mechanism, rel.Applied.Epsilon, *dataset, pub.Budget.Spent, pub.Budget.Budget)
				}
				fmt.Fprintln(c.stdout)
				return nil
			}
		},
	}
}

// writeRelease writes the three files of a release.
func writeRelease(dir string, pub *publication, look chartLook) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(pub, "", "  ")
	if err != nil {
		return err
	}
	var csvBuf bytes.Buffer
	w := csv.NewWriter(&csvBuf)
	_ = w.Write(append(append([]string{"period"}, pub.Cols...), "total"))
	for i, row := range pub.Cells {
		rec := []string{pub.Rows[i]}
		for _, cell := range row {
			if cell.Suppressed != "" {
				rec = append(rec, "suppressed")
			} else {
				rec = append(rec, fmt.Sprint(cell.Count))
			}
		}
		if pub.RowTotals != nil {
			rec = append(rec, fmt.Sprint(pub.RowTotals[i]))
		} else {
			rec = append(rec, "")
		}
		_ = w.Write(rec)
	}
	if pub.ColTotals != nil {
		rec := []string{"total"}
		for _, v := range pub.ColTotals {
			rec = append(rec, fmt.Sprint(v))
		}
		_ = w.Write(append(rec, fmt.Sprint(pub.Total)))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	ch := look.chart(fmt.Sprintf("Incidents per %s, %s to %s (k=%d)", pub.Period, pub.From, pub.To, pub.Applied.K), pub.Rows, pub.Cols)
	for i, row := range pub.Cells {
		ch.Counts[i] = make([]int64, len(row))
		for j, cell := range row {
			ch.Counts[i][j] = cell.Count // a suppressed cell's count is 0
		}
	}
	var img bytes.Buffer
	if err := ch.write(&img, look.format); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"release.json": append(js, '\n'), "release.csv": csvBuf.Bytes(),
		"release." + string(look.format): img.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func statsChartCommand() *command {
	return &command{
		name:  "chart",
		usage: "stats chart --out FILE.svg|FILE.png [--kind bars|trend] [--by class] [--period month] [--from ..] [--to ..] [--format svg|png] [--size 900x420]",
		short: "Draw incidents per period by one dimension (default: RSIT class) as stacked bars or trend lines, SVG or PNG",
		long: `The team's own view (no suppression: for the team, not the public;
stats publish makes the public one). --by tlp draws them by TLP, --by status
by status; --kind trend draws a line per value over the periods instead of
stacked bars. The format is the file's extension, or --format. A range with
no incidents draws an empty chart whose title says so.`,
		connects: true,
		setup: func(fs *flag.FlagSet) action {
			flags := addStatsFlags(fs)
			out := fs.String("out", "", "the chart file to write, .svg or .png (required)")
			chartOpts := addChartFlags(fs, "", true)
			return func(ctx context.Context, c *cli, _ []string) error {
				if *out == "" {
					return usageErrorf("--out is required")
				}
				look, err := chartOpts.look(*out)
				if err != nil {
					return err
				}
				if *flags.by == "" {
					*flags.by = "class"
				}
				req, err := flags.request(time.Now())
				if err != nil {
					return err
				}
				t, err := statsTable(ctx, c, req)
				if err != nil {
					return err
				}
				title := fmt.Sprintf("Incidents per %s by %s, %s to %s", *flags.period, *flags.by,
					req.GetStartTime().AsTime().Format(time.DateOnly), req.GetEndTime().AsTime().Format(time.DateOnly))
				ch := look.chart(title, t.Rows, t.Cols)
				ch.Counts = t.Counts
				var img bytes.Buffer
				if err := ch.write(&img, look.format); err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(*out, img.Bytes(), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "wrote %s: %d incidents in %d periods, %d series\n", *out, ch.total(), len(t.Rows), len(t.Cols))
				return nil
			}
		},
	}
}
