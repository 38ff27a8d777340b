package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// TestIngestReportsAcknowledgedCreates runs the load tool against a team it
// starts, as the README's commands do, and checks the report: creates were
// acknowledged, none failed, and every process ran with its share of CPUs.
func TestIngestReportsAcknowledgedCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three irxd processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0)) // run sets the tool's
	var out bytes.Buffer
	err := run(ctx, []string{"ingest", "-clients", "8", "-warmup", "500ms", "-duration", "2s", "-gomaxprocs", "1"}, &out)
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, out.String())
	}
	report := out.String()
	m := regexp.MustCompile(`acknowledged creates: (\d+) in`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no count of acknowledged creates in the report:\n%s", report)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("no create acknowledged:\n%s", report)
	}
	for _, want := range []string{"GOMAXPROCS 1 for each node and the tool", "cpu per create:", "leader 127.0.0.1:"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if bytes.Contains(out.Bytes(), []byte("failed calls")) {
		t.Errorf("calls failed:\n%s", report)
	}
}

// TestNodeSetupGivesEachNodeItsShare checks what run hands every node it
// starts (irxdtest's TestNodeEnvReachesTheProcess checks that it arrives).
func TestNodeSetupGivesEachNodeItsShare(t *testing.T) {
	n := &irxdtest.Node{}
	nodeSetup(6070, 7480, procs(1))(2, n)
	if !slices.Equal(n.Env, []string{"GOMAXPROCS=1"}) {
		t.Errorf("node environment %q, want GOMAXPROCS=1", n.Env)
	}
	if want := []string{"--debug-addr", "127.0.0.1:6072", "--metrics-addr", "127.0.0.1:7482"}; !slices.Equal(n.Args, want) {
		t.Errorf("node flags %q, want %q", n.Args, want)
	}
	n = &irxdtest.Node{}
	nodeSetup(0, 0, procs(0))(0, n)
	if len(n.Env) != 0 || len(n.Args) != 0 {
		t.Errorf("with Go's default and no ports the node got env %q, flags %q", n.Env, n.Args)
	}
}

// TestCompareEtcdReportsBothSystems runs the side-by-side mode briefly
// (building etcd and its benchmark tool from the module proxy on first use)
// and checks that every round reports both systems and their ratio, and the
// closing table has a row per load.
func TestCompareEtcdReportsBothSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd and starts three etcd members and three irxd nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var out bytes.Buffer
	err := run(ctx, []string{"compare-etcd", "-rounds", "1", "-loads", "8,1", "-warmup", "300ms", "-duration", "1s", "-irxd", irxdtest.Binary(t)}, &out)
	if err != nil {
		t.Fatalf("compare-etcd: %v\n%s", err, out.String())
	}
	report := out.String()
	round := regexp.MustCompile(`(?m)^round 1, (8 clients|1 client on the leader): etcd (\d+)/s .*\| irx (\d+)/s .*\| irx/etcd ([0-9.]+)$`)
	rounds := round.FindAllStringSubmatch(report, -1)
	if len(rounds) != 2 {
		t.Fatalf("want a line for each of the 2 loads, got %d:\n%s", len(rounds), report)
	}
	for _, m := range rounds {
		etcd, _ := strconv.Atoi(m[2])
		irx, _ := strconv.Atoi(m[3])
		if etcd == 0 || irx == 0 {
			t.Errorf("%s: a system made no progress (etcd %d/s, irx %d/s):\n%s", m[1], etcd, irx, report)
		}
		if strings.Contains(m[0], "failed") {
			t.Errorf("%s: calls failed: %s", m[1], m[0])
		}
	}
	for _, row := range []string{"| 8 clients | ", "| 1 client on the leader | "} {
		if !strings.Contains(report, row) {
			t.Errorf("the table has no row %q:\n%s", row, report)
		}
	}
}

func TestParseBenchmarkSummary(t *testing.T) {
	// The tail of what etcd's benchmark (tools/benchmark, report package)
	// prints after a put run with errors.
	out := `
Summary:
  Total:	2.0106 secs.
  Slowest:	0.1321 secs.
  Fastest:	0.0012 secs.
  Average:	0.0421 secs.
  Stddev:	0.0198 secs.
  Requests/sec:	4973.6612

Response time histogram:
  0.0012 [1]	|
  0.0143 [412]	|∎∎∎

Latency distribution:
  10% in 0.0190 secs.
  50% in 0.0401 secs.
  90% in 0.0663 secs.
  99% in 0.1002 secs.
  99.9% in 0.1290 secs.

Error distribution:
  [3]	context deadline exceeded
  [2]	etcdserver: too many requests
`
	r, err := parseBenchmark(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.rate != 4973.6612 || r.p50 != 40100*time.Microsecond || r.p99 != 100200*time.Microsecond || r.failures != 5 {
		t.Errorf("parsed rate %v p50 %v p99 %v failures %d", r.rate, r.p50, r.p99, r.failures)
	}
	if _, err := parseBenchmark("panic: no endpoints"); err == nil {
		t.Error("output without a summary was accepted")
	}
}

// TestWarningReportsLatencies runs the warning mode briefly with two
// one-node teams and checks the report: warnings were issued during the
// catch-up, every one reached B, and the idle comparison ran.
func TestWarningReportsLatencies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two irxd processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var out bytes.Buffer
	err := run(ctx, []string{"warning", "-nodes", "1", "-b-nodes", "1", "-backlog", "3000", "-every", "20ms", "-idle-warnings", "3",
		"-gomaxprocs", "1", "-irxd", irxdtest.Binary(t)}, &out)
	if err != nil {
		t.Fatalf("warning: %v\n%s", err, out.String())
	}
	report := out.String()
	m := regexp.MustCompile(`(\d+) warnings issued while B caught up`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no count of warnings in the report:\n%s", report)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("no warning issued during the catch-up:\n%s", report)
	}
	for _, want := range []string{"during catch-up, IssueWarning returned at A -> listed at B: p50 ", "B idle, IssueWarning returned at A -> stored at B: p50 ", "(3 warnings)"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestPairedReportsEachBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds irxd twice more and restarts a node on each build")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var out bytes.Buffer
	err := run(ctx, []string{"paired", "-without", "statistics,correlation", "-nodes", "1", "-records", "300", "-clients", "4",
		"-rounds", "2", "-warmup", "200ms", "-duration", "1s", "-unique-values", "-gomaxprocs", "1"}, &out)
	if err != nil {
		t.Fatalf("paired: %v\n%s", err, out.String())
	}
	report := out.String()
	// Clients whose calls were in flight when the 300th was acknowledged
	// finish them: the preload may create a few more.
	if m := regexp.MustCompile(`preload: (\d+) records`).FindStringSubmatch(report); m == nil {
		t.Errorf("the report lacks the preload:\n%s", report)
	} else if n, _ := strconv.Atoi(m[1]); n < 300 {
		t.Errorf("the preload made %d records, want at least 300:\n%s", n, report)
	}
	for _, want := range []string{"round 1, as shipped:", "round 1, without statistics:", "round 2, without correlation:",
		"statistics: share of the shipped build's cpu per create spent on it, per round: ",
		"correlation: shipped build's rate as a share of the rate without it, per round: "} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	if strings.Count(report, " 0 failed calls") != 6 {
		t.Errorf("every run of the three builds in two rounds should report no failed calls:\n%s", report)
	}
	if strings.Contains(report, "/  /") || strings.Contains(report, "round: \n") {
		t.Errorf("a round's comparison is missing:\n%s", report)
	}
	if err := run(ctx, []string{"paired", "-without", "sightings"}, io.Discard); err == nil || !strings.Contains(err.Error(), `"sightings"`) {
		t.Errorf("-without sightings: err %v, want one naming the unknown feature", err)
	}
}
