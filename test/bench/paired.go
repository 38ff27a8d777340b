package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// leftOutFeatures are what -without can name.
const leftOutFeatures = "correlation, statistics"

// leftOutTag is the build tag that leaves feature out of irxd (node/fsm's
// *_left_out.go files).
func leftOutTag(feature string) (tag string, ok bool) {
	switch feature {
	case "statistics", "correlation":
		return "irx_bench_without_" + feature, true
	}
	return "", false
}

// A pairedBuild is one irxd the paired runs alternate between.
type pairedBuild struct {
	name, bin string
}

// runPaired measures what keeping a feature costs ingest, as paired runs:
// irxd as it ships and irxd built without the feature, on the same team
// and the same store, one after the other, alternating which goes first in
// each round. Each build's cost shows in its rate and, more steadily on a
// machine whose speed drifts, in the nodes' CPU per create.
//
//	go run ./test/bench paired -without statistics
//	go run ./test/bench paired -without statistics,correlation -records 1000000 -unique-values
//
// The team is preloaded once, by the shipped build, through the operator
// API; every run then restarts the same nodes on its build and data.
func runPaired(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("paired", flag.ContinueOnError)
	var (
		without  = fs.String("without", "statistics", "features to leave out, comma-separated, each in a build of its own: "+leftOutFeatures)
		nodes    = fs.Int("nodes", 3, "nodes of the team")
		records  = fs.Int("records", 0, "records to preload before the first round (with the shipped build)")
		clients  = fs.Int("clients", 1000, "concurrent clients, for the preload and every run")
		rounds   = fs.Int("rounds", 3, "rounds; each runs every build once")
		duration = fs.Duration("duration", 15*time.Second, "measured window of each run")
		warmup   = fs.Duration("warmup", 5*time.Second, "load after each restart before the window opens")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		conns    = fs.Int("conns", 4, "gRPC connections per node, shared by the clients")
		unique   = fs.Bool("unique-values", false, "every create names a C2 domain of its own (each a new indicator for the correlation index), rather than every record sharing its values")
		keep     = fs.Bool("keep", false, "keep the data directory")
		irxdArgs = fs.String("irxd-args", "", "extra flags for every started irxd, space-separated")
		procs    = fs.Int("gomaxprocs", 0, gomaxprocsUsage)
		profiles = fs.String("profile-dir", "", "write each node's CPU profile over each measured window to this directory (<build>-r<round>-node<i>.prof)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *clients < 1 || *duration <= 0 {
		return errors.New("-rounds and -clients must be at least 1 and -duration positive")
	}
	var features, tags []string
	for f := range strings.SplitSeq(*without, ",") {
		f = strings.TrimSpace(f)
		tag, ok := leftOutTag(f)
		if !ok {
			return fmt.Errorf("-without: %q is not a feature a build can leave out (%s)", f, leftOutFeatures)
		}
		features, tags = append(features, f), append(tags, tag)
	}
	dir, shipped, cleanup, err := workDir(ctx, "irx-paired", *keep, "")
	if err != nil {
		return err
	}
	defer cleanup()
	builds := []pairedBuild{{name: "as shipped", bin: shipped}}
	for i, f := range features {
		bin, err := irxdtest.Build(ctx, dir, tags[i])
		if err != nil {
			return err
		}
		builds = append(builds, pairedBuild{name: "without " + f, bin: bin})
	}

	procsUsed := setProcs(*procs, *nodes+1)
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	debugAddrs := make([]string, *nodes)
	setup, profiled := nodeSetup(0, 0, procsUsed), debugAddrSetup(debugAddrs, *profiles != "")
	team, err := irxdtest.LaunchClusterEach(startCtx, shipped, dir, *nodes, func(i int, n *irxdtest.Node) {
		setup(i, n)
		profiled(i, n)
	}, strings.Fields(*irxdArgs)...)
	cancel()
	defer stopAll(team, 30*time.Second)
	if err != nil {
		return err
	}
	request, values, err := createRequest(paddedIncident(*size), *unique)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "paired: %d-node team in %s, %d-byte incidents, %s, %d clients, %v warm-up, %v measured, %s\n",
		*nodes, dir, *size, values, *clients, *warmup, *duration, procsUsed.note(true))

	if *records > 0 {
		pool, closePool, err := dialPool(apiAddrs(team), *conns)
		if err != nil {
			return err
		}
		began := time.Now()
		pre := drive(ctx, pool, *clients, []*encoded{request}, 0, *records, nil)
		closePool()
		fmt.Fprintf(out, "preload: %d records in %v (%d failed calls)\n", pre.total, time.Since(began).Round(time.Second), pre.failed)
	}

	results := make(map[string][]pairedRun)
	for r := range *rounds {
		order := slices.Clone(builds)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, b := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			profiled := pairedProfiles{debugAddrs: debugAddrs, dir: *profiles, out: out,
				prefix: fmt.Sprintf("%s-r%d-", strings.ReplaceAll(b.name, " ", "-"), r+1)}
			run, err := pairedMeasure(ctx, team, b.bin, *clients, *conns, request, *warmup, *duration, profiled)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, b.name, err)
			}
			results[b.name] = append(results[b.name], run)
			fmt.Fprintf(out, "round %d, %-22s %s\n", r+1, b.name+":", run)
		}
	}
	fmt.Fprint(out, pairedSummary(builds, results))
	return nil
}

// A pairedRun is one build's window in one round.
type pairedRun struct {
	driven
	cpuPerCreate time.Duration // all nodes
}

func (p pairedRun) String() string {
	return fmt.Sprintf("%s; nodes' cpu per create %.0f µs", p.driven, float64(p.cpuPerCreate.Nanoseconds())/1e3)
}

// pairedMeasure restarts the team's nodes on bin (their data directories
// unchanged), warms up and measures one window.
func pairedMeasure(ctx context.Context, team []*irxdtest.Node, bin string, clients, conns int, request *encoded, warmup, duration time.Duration, profiled pairedProfiles) (pairedRun, error) {
	for _, n := range team {
		if err := n.Stop(30 * time.Second); err != nil {
			return pairedRun{}, fmt.Errorf("stop %s: %w", n.DataDir, err)
		}
		n.Bin = bin
	}
	// Every member must run before any can elect a leader: launch all,
	// then wait for each to serve. Opening a large store takes a while.
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for _, n := range team {
		if err := n.Launch(startCtx); err != nil {
			return pairedRun{}, err
		}
	}
	for _, n := range team {
		if err := n.WaitServing(startCtx); err != nil {
			return pairedRun{}, err
		}
	}
	pool, closePool, err := dialPool(apiAddrs(team), conns)
	if err != nil {
		return pairedRun{}, err
	}
	defer closePool()
	if warmup > 0 {
		drive(ctx, pool, clients, []*encoded{request}, warmup, 0, nil)
	}
	meter := startCPU(team)
	profilesDone := profiled.start(ctx, duration-time.Second)
	d := drive(ctx, pool, clients, []*encoded{request}, duration, 0, nil)
	meter.stop()
	profilesDone()
	if d.failed > 0 {
		// Failures are the nodes' story: what they logged (at warn and
		// above) says whether a leader changed or a disk stalled.
		for i, n := range team {
			d.lastErr += fmt.Sprintf("\n    node%d's last log lines:\n      %s", i+1, lastLogLines(n, 3, "\n      "))
		}
	}
	run := pairedRun{driven: d}
	if d.total > 0 && !meter.unreadable {
		run.cpuPerCreate = meter.nodeUsed / time.Duration(d.total)
	}
	return run, nil
}

// pairedProfiles says where one window's node profiles go: into dir, as
// prefix + "node<i>.prof"; with dir empty, nowhere.
type pairedProfiles struct {
	debugAddrs  []string
	dir, prefix string
	out         io.Writer
}

func (p pairedProfiles) start(ctx context.Context, over time.Duration) func() {
	return profileNodes(ctx, p.debugAddrs, p.dir, over, p.out, p.prefix)
}

// pairedSummary compares each build without a feature to the shipped
// build of the same round: the feature's cost is the shipped build's
// extra CPU per create, as a share of its CPU per create, and the rate the
// shipped build reached as a share of the one without the feature.
func pairedSummary(builds []pairedBuild, results map[string][]pairedRun) string {
	var b strings.Builder
	base := results[builds[0].name]
	for _, other := range builds[1:] {
		runs := results[other.name]
		var cpuShares, rateShares []string
		for r := range min(len(base), len(runs)) {
			with, without := base[r], runs[r]
			if with.cpuPerCreate > 0 {
				cpuShares = append(cpuShares, fmt.Sprintf("%.1f%%", 100*float64(with.cpuPerCreate-without.cpuPerCreate)/float64(with.cpuPerCreate)))
			}
			if without.rate() > 0 {
				rateShares = append(rateShares, fmt.Sprintf("%.1f%%", 100*with.rate()/without.rate()))
			}
		}
		feature := strings.TrimPrefix(other.name, "without ")
		fmt.Fprintf(&b, "%s: share of the shipped build's cpu per create spent on it, per round: %s\n", feature, strings.Join(cpuShares, " / "))
		fmt.Fprintf(&b, "%s: shipped build's rate as a share of the rate without it, per round: %s\n", feature, strings.Join(rateShares, " / "))
	}
	return b.String()
}

// lastLogLines is the last n lines a node logged (at warn and above, as
// the tool starts them), joined by sep.
func lastLogLines(node *irxdtest.Node, n int, sep string) string {
	logs := strings.Split(strings.TrimSpace(node.Logs()), "\n")
	return strings.Join(logs[max(0, len(logs)-n):], sep)
}
