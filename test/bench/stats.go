package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
	"github.com/irxfed/irx/test/irxdtest"
)

// runStats starts a team, preloads it through the operator API as scale
// does (CreateIncident from concurrent clients) with records spread over
// the statistics' dimensions (every RSIT class and type, TLP, status,
// priority, sector, a few dozen countries, report times over two years),
// then times GetStatistics for queries a team would ask, each -calls
// times, and reports the cells each read.
//
//	go run ./test/bench stats -records 200000
func runStats(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	var (
		nodes    = fs.Int("nodes", 3, "nodes of the team")
		records  = fs.Int("records", 200000, "records to preload")
		clients  = fs.Int("clients", 500, "concurrent clients for the preload")
		variants = fs.Int("variants", 8192, "distinct records the preload cycles through (each a random combination of the dimensions)")
		calls    = fs.Int("calls", 200, "GetStatistics calls per query")
		warm     = fs.Int("warmup-calls", 5, "GetStatistics calls per query made before the measured ones, not counted")
		settle   = fs.Duration("settle", 20*time.Second, "wait this long after the preload before the first query, for the nodes to flush and compact its tail")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		keep     = fs.Bool("keep", false, "keep the data directory")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd")
		irxdArgs = fs.String("irxd-args", "", "extra flags for every started irxd, space-separated")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *variants < 1 || *calls < 1 {
		return fmt.Errorf("-variants and -calls must be at least 1")
	}
	// The records are reported over the two years before today (a report
	// time in the future is refused), and the queries are of that span.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	requests, err := statsVariants(*variants, *size, today.AddDate(-2, 0, 0), today)
	if err != nil {
		return err
	}
	dir, bin, cleanup, err := workDir(ctx, "irx-stats", *keep, *prebuilt)
	if err != nil {
		return err
	}
	defer cleanup()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	team, err := irxdtest.LaunchCluster(startCtx, bin, dir, *nodes, strings.Fields(*irxdArgs)...)
	cancel()
	defer stopAll(team, 30*time.Second)
	if err != nil {
		return err
	}
	pool, closePool, err := dialPool(apiAddrs(team), 4)
	if err != nil {
		return err
	}
	defer closePool()
	fmt.Fprintf(out, "stats: %d-node team in %s, %d records of %d distinct kinds, %d-byte incidents, %d clients\n",
		*nodes, dir, *records, len(requests), *size, *clients)
	began := time.Now()
	var done atomic.Int64
	pre := drive(ctx, pool, *clients, requests, 0, *records, &done)
	fmt.Fprintf(out, "preload: %d records in %v (%.0f creates/s; %d failed calls%s)\n", pre.total, time.Since(began).Round(time.Second),
		float64(pre.total)/time.Since(began).Seconds(), pre.failed, pre.lastErr)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	leader, err := findLeader(ctx, apiAddrs(team))
	if err != nil {
		return err
	}
	// A follower answers: a linearizable read there waits for the leader's
	// read index, the dearer path.
	addr := team[0].APIAddr
	if addr == leader {
		addr = team[len(team)-1].APIAddr
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	sc := irxv1.NewStatisticsServiceClient(conn)
	dims := func(ds ...irxv1.StatisticsDimension) []irxv1.StatisticsDimension { return ds }
	const (
		class   = irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_CLASS
		typ     = irxv1.StatisticsDimension_STATISTICS_DIMENSION_TAXONOMY_TYPE
		tlp     = irxv1.StatisticsDimension_STATISTICS_DIMENSION_TLP
		status  = irxv1.StatisticsDimension_STATISTICS_DIMENSION_STATUS
		sector  = irxv1.StatisticsDimension_STATISTICS_DIMENSION_SECTOR
		country = irxv1.StatisticsDimension_STATISTICS_DIMENSION_COUNTRY
	)
	ts := timestamppb.New
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	quarter := month.AddDate(0, -(int(month.Month())-1)%3, 0)
	queries := []struct {
		name string
		req  *irxv1.GetStatisticsRequest
	}{
		{"25 months by month", &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH,
			StartTime: ts(month.AddDate(0, -24, 0)), EndTime: ts(month.AddDate(0, 1, 0))}},
		{"13 months by month and RSIT class", &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH,
			GroupBy: dims(class), StartTime: ts(month.AddDate(0, -12, 0)), EndTime: ts(month.AddDate(0, 1, 0))}},
		{"5 quarters by quarter, class, sector and country", &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_QUARTER,
			GroupBy: dims(class, sector, country), StartTime: ts(quarter.AddDate(0, -12, 0)), EndTime: ts(quarter.AddDate(0, 3, 0))}},
		{"90 days by day, TLP and status", &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_DAY,
			GroupBy: dims(tlp, status), StartTime: ts(today.AddDate(0, 0, -89)), EndTime: ts(today.AddDate(0, 0, 1))}},
		{"months cut by the range's ends, by type", &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH,
			GroupBy: dims(typ), StartTime: ts(today.AddDate(0, 0, -330)), EndTime: ts(today.AddDate(0, 0, -17))}},
		{"25 months by month, one country", &irxv1.GetStatisticsRequest{Period: irxv1.StatisticsPeriod_STATISTICS_PERIOD_MONTH,
			StartTime: ts(month.AddDate(0, -24, 0)), EndTime: ts(month.AddDate(0, 1, 0)), Filter: &irxv1.StatisticsFilter{Countries: []string{"NL"}}}},
	}
	select {
	case <-time.After(*settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, q := range queries {
		for _, consistency := range []irxv1.ReadConsistency{irxv1.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED, irxv1.ReadConsistency_READ_CONSISTENCY_STALE} {
			req := proto.CloneOf(q.req)
			req.Consistency = consistency
			var lat []time.Duration
			var resp *irxv1.GetStatisticsResponse
			for range *warm {
				if _, err := sc.GetStatistics(ctx, req); err != nil {
					return fmt.Errorf("%s: %w", q.name, err)
				}
			}
			for range *calls {
				t0 := time.Now()
				resp, err = sc.GetStatistics(ctx, req)
				if err != nil {
					return fmt.Errorf("%s: %w", q.name, err)
				}
				lat = append(lat, time.Since(t0))
			}
			var total int64
			for _, r := range resp.GetRows() {
				total += r.GetCount()
			}
			slices.Sort(lat)
			read := "linearizable"
			if consistency == irxv1.ReadConsistency_READ_CONSISTENCY_STALE {
				read = "stale"
			}
			fmt.Fprintf(out, "GetStatistics, %s (%s): %d rows, %d incidents, %d cells read; p50 %v p99 %v max %v\n",
				q.name, read, len(resp.GetRows()), total, resp.GetCellsRead(),
				lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
		}
	}
	return nil
}

// statsVariants makes n encoded creates, each a random combination of the
// statistics' dimensions reported in [from, to) (seeded: every run on the
// same day preloads the same records).
func statsVariants(n, size int, from, to time.Time) ([]*encoded, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var pairs [][2]string
	for _, c := range record.TaxonomyClasses() {
		for _, t := range record.TaxonomyTypes(c) {
			pairs = append(pairs, [2]string{c, t})
		}
	}
	countries := strings.Fields("NL DE FR BE LU AT CH IT ES PT IE GB DK SE NO FI PL CZ SK HU SI HR RO BG GR EE LV LT CY MT US JP")
	statuses := []irxv1.Status{irxv1.Status_STATUS_NEW, irxv1.Status_STATUS_IN_PROGRESS, irxv1.Status_STATUS_FORWARDED, irxv1.Status_STATUS_RESOLVED, irxv1.Status_STATUS_FUTURE}
	out := make([]*encoded, 0, n)
	for range n {
		inc := paddedIncident(size)
		pair := pairs[rng.IntN(len(pairs))]
		inc.Taxonomy = &irxv1.Taxonomy{Class: pair[0], Type: pair[1]}
		inc.Tlp = irxv1.Tlp(1 + rng.IntN(4))
		inc.Status = statuses[rng.IntN(len(statuses))]
		inc.Priority = irxv1.Priority(rng.IntN(5))
		inc.ReportingSite = &irxv1.ReportingSite{Sector: irxv1.Sector(rng.IntN(20)), Country: countries[rng.IntN(len(countries))]}
		inc.ReportTime = timestamppb.New(from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)/time.Minute))) * time.Minute))
		req, err := encodedCreate(inc)
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	return out, nil
}
