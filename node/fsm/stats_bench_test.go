package fsm

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// BenchmarkStatistics reads the statistics of a state holding
// IRX_BENCH_STATS_INCIDENTS incidents (default 1,000,000) reported over
// two years, of ten taxonomy types, four TLPs, five statuses and five
// priorities: a year by month grouped by class and TLP, and the whole two
// years by week. One op is one query; cells/op is its cost.
func BenchmarkStatistics(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("IRX_BENCH_STATS_INCIDENTS")); err == nil && v > 0 {
		n = v
	}
	h := &harness{t: b, f: openFSM(b, b.TempDir()), clock: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	types := [][2]string{{"intrusions", "system-compromise"}, {"intrusions", "burglary"}, {"fraud", "phishing"}, {"fraud", "masquerade"},
		{"availability", "ddos"}, {"availability", "dos"}, {"malicious-code", "c2-server"}, {"malicious-code", "infected-system"},
		{"information-gathering", "scanner"}, {"vulnerable", "vulnerable-system"}}
	const perEntry = 1000
	made := time.Now()
	for done := 0; done < n; done += perEntry {
		cmds := make([]*irxv1.Command, 0, perEntry)
		for i := done; i < min(done+perEntry, n); i++ {
			inc := &irxv1.Incident{
				Tlp:        irxv1.Tlp(1 + i%4),
				Taxonomy:   &irxv1.Taxonomy{Class: types[i%10][0], Type: types[i%10][1]},
				Status:     irxv1.Status(1 + (i/7)%5),
				Priority:   irxv1.Priority((i / 3) % 5),
				ReportTime: timestamppb.New(start.Add(time.Duration(i%(730*24)) * time.Hour)),
			}
			cmds = append(cmds, createCmd(inc, ""))
		}
		data, err := proto.Marshal(&irxv1.Command{ProposeTime: timestamppb.New(h.clock), Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range asResult(b, h.f.ApplyBatch([]*raft.Log{h.entry(raft.LogCommand, data)})[0]).Batch {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.Logf("%d incidents stored in %v", n, time.Since(made).Round(time.Second))
	for _, q := range []struct {
		name string
		q    StatsQuery
	}{
		{"year-by-month-class-tlp", StatsQuery{Period: PeriodMonth, GroupBy: []Dimension{DimTaxonomyClass, DimTLP},
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"two-years-by-week", StatsQuery{Period: PeriodWeek,
			Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"cut-months-by-status", StatsQuery{Period: PeriodMonth, GroupBy: []Dimension{DimStatus},
			Start: time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)}},
	} {
		b.Run(q.name, func(b *testing.B) {
			var cells int
			var total int64
			for b.Loop() {
				res, err := h.f.Statistics(q.q)
				if err != nil {
					b.Fatal(err)
				}
				cells, total = res.CellsRead, 0
				for _, r := range res.Rows {
					total += r.Count
				}
			}
			b.ReportMetric(float64(cells), "cells/op")
			if total == 0 {
				b.Fatal(fmt.Sprint("no incidents counted"))
			}
		})
	}
}
