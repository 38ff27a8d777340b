package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// A load of the comparison: how many clients, and whether they all talk
// to the leader (the one-client case, which is latency-bound: a follower's
// forwarding hop would be measured, not the replication path).
type compareLoad struct {
	clients    int
	leaderOnly bool
}

func (l compareLoad) String() string {
	if l.clients == 1 {
		return "1 client on the leader"
	}
	if l.leaderOnly {
		return fmt.Sprintf("%d clients on the leader", l.clients)
	}
	return fmt.Sprintf("%d clients", l.clients)
}

// A side is one system's figures for one load in one round.
type side struct {
	rate      float64
	p50, p99  time.Duration
	serverCPU time.Duration // per op, all members
	loadCPU   time.Duration // per op, the load tool
	failures  int64
}

func (s side) String() string {
	str := fmt.Sprintf("%.0f/s p50 %v p99 %v, server cpu/op %.0f µs, load tool cpu/op %.0f µs",
		s.rate, s.p50.Round(10*time.Microsecond), s.p99.Round(10*time.Microsecond),
		float64(s.serverCPU.Nanoseconds())/1e3, float64(s.loadCPU.Nanoseconds())/1e3)
	if s.failures > 0 {
		str += fmt.Sprintf(", %d failed", s.failures)
	}
	return str
}

// runCompareEtcd measures three etcd members and three irxd nodes on this
// machine, alternately, under the same loads, and prints each round and
// the ratios. Ratios measured in one run hold where absolute figures do
// not: this kind of machine drifts by tens of percent within an hour.
func runCompareEtcd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("compare-etcd", flag.ContinueOnError)
	var (
		rounds   = fs.Int("rounds", 3, "rounds; each runs every load on both systems, alternating which goes first")
		loads    = fs.String("loads", "1000,1", "client counts, comma-separated; 1 runs on the leader")
		duration = fs.Duration("duration", 15*time.Second, "measured window of each run")
		warmup   = fs.Duration("warmup", 3*time.Second, "load before each irx window; etcd's warm-up is a run of 10 puts per client (at least 1,000), whose rate sizes the measured run to the window")
		size     = fs.Int("size", 1024, "etcd value size and encoded irx incident size, in bytes")
		conns    = fs.Int("conns", 12, "client connections in all (divided among the members), as etcd's benchmark --conns")
		members  = fs.Int("members", 3, "members of each cluster")
		etcdBin  = fs.String("etcd", "", "etcd binary (default: build "+etcdVersion+" from the module proxy, once)")
		benchBin = fs.String("etcd-benchmark", "", "etcd's tools/benchmark binary (default: build "+etcdBenchmarkVersion+"'s, once)")
		prebuilt = fs.String("irxd", "", "irxd binary (default: build ./cmd/irxd)")
		procs    = fs.Int("gomaxprocs", 0, gomaxprocsUsage)
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var plan []compareLoad
	for f := range strings.SplitSeq(*loads, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-loads: %q is not a client count", f)
		}
		plan = append(plan, compareLoad{clients: n, leaderOnly: n == 1})
	}
	if *rounds < 1 || *conns < 1 || *members < 1 {
		return errors.New("-rounds, -conns and -members must be at least 1")
	}
	// Each server process and the load tool get the same share of the
	// CPUs: what a container limit would give them.
	share := setProcs(*procs, *members+1)
	dir, err := os.MkdirTemp("", "irx-compare")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	etcd, bench, err := etcdTools(ctx, *etcdBin, *benchBin, out)
	if err != nil {
		return err
	}
	irxd, err := buildOrUse(ctx, dir, *prebuilt)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "compare-etcd: etcd %s (benchmark of %s) vs irxd, %d members each, %d-byte values/incidents, %d connections, %v windows, %s\n",
		etcdVersion, etcdBenchmarkVersion, *members, *size, *conns, *duration, share.note(true))

	type pair struct{ etcd, irx side }
	results := make([][]pair, len(plan))
	for r := 1; r <= *rounds; r++ {
		for li, load := range plan {
			var p pair
			runEtcd := func() error {
				s, err := compareEtcdRun(ctx, etcd, bench, dir, *members, load, *conns, *size, *duration, share)
				p.etcd = s
				return err
			}
			runIrx := func() error {
				s, err := compareIrxRun(ctx, irxd, dir, *members, load, *conns, *size, *warmup, *duration, share)
				p.irx = s
				return err
			}
			order := []func() error{runEtcd, runIrx}
			if r%2 == 0 { // whichever runs second may find a warmer (or hotter) machine
				order[0], order[1] = order[1], order[0]
			}
			for _, f := range order {
				if err := f(); err != nil {
					return fmt.Errorf("round %d, %v: %w", r, load, err)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			results[li] = append(results[li], p)
			fmt.Fprintf(out, "round %d, %v: etcd %v | irx %v | irx/etcd %.2f\n", r, load, p.etcd, p.irx, p.irx.rate/p.etcd.rate)
		}
	}

	fmt.Fprintln(out, "\n| load | etcd puts/s | irx creates/s | irx / etcd | p50 etcd / irx | p99 etcd / irx | server CPU per op etcd / irx |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	for li, load := range plan {
		var e, x, ratio, p50, p99, cpu []string
		for _, p := range results[li] {
			e = append(e, fmt.Sprintf("%.0f", p.etcd.rate))
			x = append(x, fmt.Sprintf("%.0f", p.irx.rate))
			ratio = append(ratio, fmt.Sprintf("%.2f", p.irx.rate/p.etcd.rate))
			p50 = append(p50, fmt.Sprintf("%v / %v", p.etcd.p50.Round(10*time.Microsecond), p.irx.p50.Round(10*time.Microsecond)))
			p99 = append(p99, fmt.Sprintf("%v / %v", p.etcd.p99.Round(10*time.Microsecond), p.irx.p99.Round(10*time.Microsecond)))
			cpu = append(cpu, fmt.Sprintf("%.0f / %.0f µs", float64(p.etcd.serverCPU.Nanoseconds())/1e3, float64(p.irx.serverCPU.Nanoseconds())/1e3))
		}
		fmt.Fprintf(out, "| %v | %s | %s | %s | %s | %s | %s |\n", load,
			strings.Join(e, " / "), strings.Join(x, " / "), strings.Join(ratio, " / "),
			strings.Join(p50, ", "), strings.Join(p99, ", "), strings.Join(cpu, ", "))
	}
	return nil
}

// compareEtcdRun starts a fresh etcd cluster, warms it up with a run of
// about the warm-up's length, sizes the measured run from the warm-up's
// rate so it lasts about window, runs it, and stops the cluster.
func compareEtcdRun(ctx context.Context, bin, bench, dir string, members int, load compareLoad, conns, size int, window time.Duration, share procs) (side, error) {
	runDir, err := os.MkdirTemp(dir, "etcd-")
	if err != nil {
		return side{}, err
	}
	defer os.RemoveAll(runDir)
	c, err := startEtcd(ctx, bin, runDir, members, share.env())
	if err != nil {
		return side{}, err
	}
	defer c.stop()
	endpoints := c.endpoints
	if load.leaderOnly {
		leader, err := c.leader(ctx)
		if err != nil {
			return side{}, err
		}
		endpoints = []string{leader}
		conns = 1
	}
	conns = min(conns, max(load.clients, 1))
	// Warm-up: enough puts for every client to make a few, and at least a
	// second's worth at a slow rate.
	warm, err := benchmarkPut(ctx, bench, c, endpoints, load.clients, conns, max(10*load.clients, 1000), size, share.env())
	if err != nil {
		return side{}, err
	}
	total := max(int(warm.rate*window.Seconds()), load.clients)
	run, err := benchmarkPut(ctx, bench, c, endpoints, load.clients, conns, total, size, share.env())
	if err != nil {
		return side{}, err
	}
	per := func(d time.Duration) time.Duration { return d / time.Duration(max(run.requests, 1)) }
	return side{rate: run.rate, p50: run.p50, p99: run.p99, serverCPU: per(run.serverCPU), loadCPU: per(run.loadCPU), failures: int64(run.failures)}, nil
}

// compareIrxRun starts a fresh irx team, runs the load through the
// ingest driver, and stops the team.
func compareIrxRun(ctx context.Context, bin, dir string, members int, load compareLoad, conns, size int, warmup, window time.Duration, share procs) (side, error) {
	runDir, err := os.MkdirTemp(dir, "irx-")
	if err != nil {
		return side{}, err
	}
	defer os.RemoveAll(runDir)
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	team, err := irxdtest.LaunchClusterEach(startCtx, bin, runDir, members, nodeSetup(0, 0, share))
	cancel()
	defer stopAll(team, 10*time.Second)
	if err != nil {
		return side{}, err
	}
	var addrs []string
	for _, n := range team {
		addrs = append(addrs, n.APIAddr)
	}
	perNode := max(1, conns/len(addrs))
	if load.leaderOnly {
		leader, err := findLeader(ctx, addrs)
		if err != nil {
			return side{}, err
		}
		addrs, perNode = []string{leader}, 1
	}
	pool, closePool, err := dialPool(addrs, perNode)
	if err != nil {
		return side{}, err
	}
	defer closePool()
	request, err := encodedCreate(paddedIncident(size))
	if err != nil {
		return side{}, err
	}
	res, err := driveCreates(ctx, pool, request, team, load.clients, warmup, window, windowHooks{})
	if err != nil {
		return side{}, err
	}
	n := time.Duration(max(res.acked(), 1))
	return side{rate: res.rate(), p50: res.pct(0.5), p99: res.pct(0.99),
		serverCPU: res.cpu.nodeUsed / n, loadCPU: res.cpu.selfUsed / n, failures: res.failures}, nil
}
