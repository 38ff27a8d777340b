// Command bench is irx's load tool. "ingest" starts a three-node team on
// loopback (or targets running nodes) and measures acknowledged creates per
// second and their latency for a number of concurrent clients:
//
//	go run ./test/bench ingest -clients 1000 -duration 20s -size 1024
//	go run ./test/bench ingest -clients 1 -duration 10s
//	go run ./test/bench ingest -targets 127.0.0.1:7400 -clients 50
//
// "federation" starts team A and team B (three nodes each, or -nodes and
// -b-nodes), has A share with B, and measures how long a record takes from
// its commit at A to its commit at B at a steady rate, and how fast B
// catches up a backlog:
//
//	go run ./test/bench federation -rate 1000 -duration 20s -backlog 100000
//
// With -redisclose it then narrows A's policy for B and measures how long
// until B has replaced and acknowledged every view it holds:
//
//	go run ./test/bench federation -nodes 1 -b-nodes 1 -backlog 100000 -redisclose -rate 0
//
// "compare-etcd" runs three etcd members and three irxd nodes alternately
// on this machine under the same loads (etcd's own benchmark tool drives
// etcd) and prints each round and the ratios:
//
//	go run ./test/bench compare-etcd -rounds 3 -loads 1000,1 -duration 15s
//
// "iodef" imports IODEF documents into a one-node team (ImportIncidents)
// and exports every record again (ExportIncidents, XML and JSON):
//
//	go run ./test/bench iodef -docs 10000
//
// "scale" preloads a team with a million records and measures what a full
// store costs; "stats" preloads one with records spread over the
// statistics' dimensions and times GetStatistics:
//
//	go run ./test/bench stats -records 200000
//
// "warning" has team A issue emergency warnings while team B catches up on
// a backlog of A's records, and reports each warning's time from
// IssueWarning's return at A to the warning listed at B:
//
//	go run ./test/bench warning -backlog 100000 -every 100ms
//
// "paired" measures what keeping statistics or correlation costs ingest:
// it alternates irxd as it ships with irxd built without the feature on
// the same team and store, and compares their rates and CPU per create:
//
//	go run ./test/bench paired -without statistics,correlation -records 1000000 -unique-values
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "federation" {
		return runFederation(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "streams" {
		return runStreams(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "compare-etcd" {
		return runCompareEtcd(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "iodef" {
		return runIODEF(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "scale" {
		return runScale(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "stats" {
		return runStats(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "warning" {
		return runWarning(ctx, args[1:], out)
	}
	if len(args) > 0 && args[0] == "paired" {
		return runPaired(ctx, args[1:], out)
	}
	if len(args) == 0 || args[0] != "ingest" {
		return errors.New("usage: bench ingest|federation|streams|compare-etcd|iodef|scale|stats|warning|paired [flags]  (bench ingest -h for the flags)")
	}
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var (
		nodes    = fs.Int("nodes", 3, "nodes of the team to start (ignored with -targets)")
		targets  = fs.String("targets", "", "operator API addresses of running nodes (comma-separated, plaintext loopback); default: start a team")
		clients  = fs.Int("clients", 1000, "concurrent clients, each creating one incident after another")
		duration = fs.Duration("duration", 20*time.Second, "how long to measure")
		warmup   = fs.Duration("warmup", 3*time.Second, "load before measuring starts")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		conns    = fs.Int("conns", 4, "gRPC connections per node, shared by the clients")
		keep     = fs.Bool("keep", false, "keep the data directory of a started team")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd (to compare two builds run after run)")
		irxdArgs = fs.String("irxd-args", "", "extra flags for every started irxd, space-separated")
		pprof    = fs.Int("pprof-base-port", 0, "serve pprof from started node i on 127.0.0.1:(port+i)")
		leader   = fs.Bool("leader-only", false, "send every call to the leader (no forwarding), to measure what forwarding costs")
		follower = fs.Bool("followers-only", false, "send every call to the followers, which forward each write to the leader")
		metrics  = fs.Int("metrics-base-port", 0, "serve metrics from started node i on 127.0.0.1:(port+i) and report Raft's log append and commit times")
		profile  = fs.String("cpuprofile", "", "write the load tool's own CPU profile over the measured window to this file")
		procs    = fs.Int("gomaxprocs", 0, gomaxprocsUsage)
		unique   = fs.Bool("unique-values", false, "every create names a C2 domain of its own, rather than every record sharing its values")
	)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *leader && *follower {
		return errors.New("-leader-only and -followers-only exclude each other")
	}
	addrs := strings.Split(*targets, ",")
	share := *procs
	if *targets != "" && share == 0 {
		share = -1 // the nodes' machine is not ours to divide
	}
	procsUsed := setProcs(share, *nodes+1)
	var started []*irxdtest.Node // empty with -targets: their CPU is not ours to read
	if *targets == "" {
		dir, bin, cleanup, err := workDir(ctx, "irx-bench", *keep, *prebuilt)
		if err != nil {
			return err
		}
		defer cleanup()
		startCtx, cancel := context.WithTimeout(ctx, time.Minute)
		team, err := irxdtest.LaunchClusterEach(startCtx, bin, dir, *nodes, nodeSetup(*pprof, *metrics, procsUsed), strings.Fields(*irxdArgs)...)
		cancel()
		defer stopAll(team, 10*time.Second)
		if err != nil {
			return err
		}
		addrs, started = addrs[:0], team
		for _, n := range team {
			addrs = append(addrs, n.APIAddr)
		}
		fmt.Fprintf(out, "started a %d-node team in %s\n", *nodes, dir)
	}

	// Which node leads matters to a run of few clients: client c uses the
	// pool's connection c mod (nodes × conns), the first conns of which go
	// to the first node, and a follower forwards each write, one hop more.
	leaderAddr, err := findLeader(ctx, addrs)
	if *leader || *follower {
		if err != nil {
			return err
		}
		if *leader {
			addrs = []string{leaderAddr}
		} else if addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == leaderAddr }); len(addrs) == 0 {
			return errors.New("-followers-only: the team has no follower")
		}
	}
	pool, closePool, err := dialPool(addrs, *conns)
	if err != nil {
		return err
	}
	defer closePool()
	incident := paddedIncident(*size)
	request, values, err := createRequest(incident, *unique)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ingest: %d clients over %d nodes, %d-byte incidents, %s, %v warm-up, %v measured, %s\n",
		*clients, len(addrs), proto.Size(incident), values, *warmup, *duration, procsUsed.note(len(started) > 0))
	if leaderAddr != "" {
		fmt.Fprintf(out, "leader %s; the first client sends to %s\n", leaderAddr, addrs[0])
	}

	var metricsAddrs []string
	if *metrics > 0 {
		if len(started) == 0 {
			fmt.Fprintln(out, "-metrics-base-port applies to nodes the tool starts; with -targets it is ignored")
		}
		for i := range started {
			metricsAddrs = append(metricsAddrs, fmt.Sprintf("127.0.0.1:%d", *metrics+i))
		}
	}
	var raftBefore, raftAfter *raftTimes
	stopProfile := func() {}
	res, err := driveCreates(ctx, pool, request, started, *clients, *warmup, *duration, windowHooks{
		begin: func() error {
			var err error
			if raftBefore, err = readRaftTimes(ctx, metricsAddrs); err != nil {
				return err
			}
			if *profile != "" {
				stopProfile, err = startCPUProfile(*profile)
			}
			return err
		},
		end: func() error {
			stopProfile()
			// Read even after an interrupt: the nodes still run, and the
			// window's figures are what the run was for.
			var err error
			raftAfter, err = readRaftTimes(context.WithoutCancel(ctx), metricsAddrs)
			return err
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "acknowledged creates: %d in %v = %.0f creates/s\n", res.acked(), res.measured.Round(time.Millisecond), res.rate())
	fmt.Fprintf(out, "latency: p50 %v  p90 %v  p99 %v  max %v\n",
		res.pct(0.50).Round(10*time.Microsecond), res.pct(0.90).Round(10*time.Microsecond), res.pct(0.99).Round(10*time.Microsecond), res.pct(1).Round(10*time.Microsecond))
	fmt.Fprintln(out, res.cpu.report(res.acked(), "create"))
	if len(metricsAddrs) > 0 {
		fmt.Fprintln(out, raftAfter.since(raftBefore))
		fmt.Fprintln(out, raftAfter.storage(raftBefore, res.acked()))
	}
	if res.failures > 0 {
		fmt.Fprintf(out, "failed calls: %d (last: %v)\n", res.failures, res.lastErr)
	}
	return nil
}

// nodeSetup gives started node i its debug and metrics ports (when their
// base ports are set) and its GOMAXPROCS.
func nodeSetup(pprofBase, metricsBase int, p procs) func(int, *irxdtest.Node) {
	return func(i int, n *irxdtest.Node) {
		if pprofBase > 0 {
			n.Args = append(n.Args, "--debug-addr", fmt.Sprintf("127.0.0.1:%d", pprofBase+i))
		}
		if metricsBase > 0 {
			n.Args = append(n.Args, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsBase+i))
		}
		n.Env = append(n.Env, p.env()...)
	}
}

// paddedIncident is a realistic report grown to size bytes with its
// description, like a report with a long free-text account.
func paddedIncident(size int) *irxv1.Incident {
	inc := &irxv1.Incident{
		Tlp:            irxv1.Tlp_TLP_AMBER,
		Taxonomy:       &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"},
		Priority:       irxv1.Priority_PRIORITY_MEDIUM,
		VictimHosts:    []*irxv1.Host{{Hostname: "mail.example.org", Addresses: []string{"192.0.2.25"}}},
		AttackingHosts: []*irxv1.Host{{Addresses: []string{"198.51.100.7"}, Services: []*irxv1.Service{{IpProtocol: 6, Port: 22, Application: "ssh"}}}},
		Indicators:     []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: "198.51.100.7"}},
		Descriptions:   []*irxv1.Description{{Lang: "en"}},
	}
	if pad := size - proto.Size(inc) - 3; pad > 0 {
		inc.Descriptions[0].Text = strings.Repeat("SSH password guessing against the mail relay. ", pad/47+1)[:pad]
	}
	return inc
}

func findLeader(ctx context.Context, addrs []string) (string, error) {
	for _, addr := range addrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return "", err
		}
		st, err := irxv1.NewClusterServiceClient(conn).GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
		conn.Close()
		if err == nil && st.GetRole() == irxv1.NodeRole_NODE_ROLE_LEADER {
			return addr, nil
		}
	}
	return "", errors.New("no leader among the targets")
}

// stopAll stops the nodes, each given timeout to exit.
func stopAll(team []*irxdtest.Node, timeout time.Duration) {
	for _, n := range team {
		_ = n.Stop(timeout)
	}
}

// workDir makes a directory for a run's teams (removed by cleanup unless
// keep) and returns the irxd to start: prebuilt, or one built into it.
func workDir(ctx context.Context, prefix string, keep bool, prebuilt string) (dir, bin string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() {
		if !keep {
			_ = os.RemoveAll(dir)
		}
	}
	if bin, err = buildOrUse(ctx, dir, prebuilt); err != nil {
		cleanup()
		return "", "", nil, err
	}
	return dir, bin, cleanup, nil
}

// buildOrUse returns prebuilt when it is set, or builds irxd into dir.
func buildOrUse(ctx context.Context, dir, prebuilt string) (string, error) {
	if prebuilt != "" {
		return filepath.Abs(prebuilt)
	}
	return irxdtest.Build(ctx, dir)
}
