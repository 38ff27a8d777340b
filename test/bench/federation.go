package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// fedTeam is a started team and a client of each node.
type fedTeam struct {
	id        string
	nodes     []*irxdtest.Node
	conns     []*grpc.ClientConn
	incidents []irxv1.IncidentServiceClient
	peers     irxv1.PeerServiceClient
	policies  irxv1.PolicyServiceClient
	alerts    irxv1.AlertServiceClient
}

// startTeams starts cert-a and cert-b with sizes[0] and sizes[1] nodes, and
// a client of each node; the teams it returns, also with an error, are
// for stopTeams.
func startTeams(ctx context.Context, bin, dir string, sizes []int, pprof int, procsUsed procs) ([]*fedTeam, error) {
	var teams []*fedTeam
	for k, id := range []string{"cert-a", "cert-b"} {
		pprofBase := 0
		if pprof > 0 {
			pprofBase = pprof + 10*k
		}
		startCtx, cancel := context.WithTimeout(ctx, time.Minute)
		ns, err := irxdtest.LaunchTeam(startCtx, bin, filepath.Join(dir, id), id, sizes[k], nodeSetup(pprofBase, 0, procsUsed))
		cancel()
		t := &fedTeam{id: id, nodes: ns}
		teams = append(teams, t)
		if err != nil {
			return teams, err
		}
		for i, n := range ns {
			conn, err := grpc.NewClient(n.APIAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return teams, err
			}
			t.conns = append(t.conns, conn)
			t.incidents = append(t.incidents, irxv1.NewIncidentServiceClient(conn))
			if i == 0 {
				t.peers, t.policies, t.alerts = irxv1.NewPeerServiceClient(conn), irxv1.NewPolicyServiceClient(conn), irxv1.NewAlertServiceClient(conn)
			}
		}
	}
	return teams, nil
}

func stopTeams(teams []*fedTeam) {
	for _, t := range teams {
		for _, c := range t.conns {
			_ = c.Close()
		}
		for _, n := range t.nodes {
			_ = n.Stop(10 * time.Second)
		}
	}
}

func runFederation(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("federation", flag.ContinueOnError)
	var (
		nodes    = fs.Int("nodes", 3, "nodes of team A (the origin)")
		bNodes   = fs.Int("b-nodes", 3, "nodes of team B (the receiver)")
		pprof    = fs.Int("pprof-base-port", 0, "serve pprof from A's node i on 127.0.0.1:(port+i), B's on port+10+i")
		rate     = fs.Int("rate", 1000, "incidents per second created at team A while measuring propagation (0: skip)")
		duration = fs.Duration("duration", 20*time.Second, "how long to create at -rate")
		backlog  = fs.Int("backlog", 100000, "records team A creates while B does not follow it, for the catch-up measurement (0: skip)")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		keep     = fs.Bool("keep", false, "keep the data directories")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd (to compare two builds run after run)")
		gmp      = fs.Int("gomaxprocs", 0, gomaxprocsUsage)
		narrow   = fs.Bool("redisclose", false, "after the catch-up, narrow A's policy for B and measure until B has every record it holds replaced and acknowledged")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "irx-bench-fed")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	procsUsed := setProcs(*gmp, *nodes+*bNodes+1)
	bin, err := buildOrUse(ctx, dir, *prebuilt)
	if err != nil {
		return err
	}
	teams, err := startTeams(ctx, bin, dir, []int{*nodes, *bNodes}, *pprof, procsUsed)
	defer stopTeams(teams)
	if err != nil {
		return err
	}
	a, b := teams[0], teams[1]
	fmt.Fprintf(out, "started team A (%d nodes) and team B (%d nodes) in %s, %s\n", *nodes, *bNodes, dir, procsUsed.note(true))
	if err := peer(ctx, a, b, false); err != nil {
		return err
	}
	if _, err := a.policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: benchPolicy}); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	incident := paddedIncident(*size)
	incident.Tlp = irxv1.Tlp_TLP_GREEN
	incident.Restriction = irxv1.Restriction_RESTRICTION_PARTNER

	if *backlog > 0 {
		fmt.Fprintf(out, "catch-up: team A records %d incidents while B does not follow it\n", *backlog)
		began := time.Now()
		if err := createBacklog(ctx, a, incident, *backlog); err != nil {
			return err
		}
		fmt.Fprintf(out, "catch-up: backlog recorded in %v; B starts following A\n", time.Since(began).Round(time.Millisecond))
		start, cpu, cpuA, cpuB := time.Now(), startCPU(append(slices.Clone(a.nodes), b.nodes...)), startCPU(a.nodes), startCPU(b.nodes)
		if err := peer(ctx, b, a, true); err != nil {
			return err
		}
		if err := waitReceived(ctx, b, uint64(*backlog), 10*time.Minute); err != nil {
			return err
		}
		took := time.Since(start)
		cpu.stop()
		cpuA.stop()
		cpuB.stop()
		fmt.Fprintf(out, "catch-up: %d records in %v = %.0f records/s (from CreatePeer at B to the last one committed at B)\n",
			*backlog, took.Round(time.Millisecond), float64(*backlog)/took.Seconds())
		fmt.Fprintf(out, "catch-up: %s; team A %v, team B %v\n", cpu.report(*backlog, "record"), cpuA.nodeUsed.Round(time.Millisecond), cpuB.nodeUsed.Round(time.Millisecond))
	} else if err := peer(ctx, b, a, true); err != nil {
		return err
	}

	if *narrow {
		if err := measureRedisclosure(ctx, a, b, *backlog, out); err != nil {
			return err
		}
	}
	if *rate <= 0 {
		return nil
	}
	fmt.Fprintf(out, "propagation: team A creates %d incidents/s for %v, %d-byte records\n", *rate, *duration, proto.Size(incident))
	ids, err := steady(ctx, a, incident, *rate, *duration)
	if err != nil {
		return err
	}
	if err := waitReceived(ctx, b, uint64(*backlog+len(ids)), 2*time.Minute); err != nil {
		return err
	}
	var lat []time.Duration
	for _, id := range ids {
		resp, err := b.incidents[0].GetIncident(ctx, &irxv1.GetIncidentRequest{Id: id, Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
		if err != nil {
			return fmt.Errorf("%s at B: %w", id, err)
		}
		inc := resp.GetIncident()
		lat = append(lat, inc.GetProvenance().GetReceiveTime().AsTime().Sub(inc.GetCreateTime().AsTime()))
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(out, "propagation A commit -> B commit over %d records: p50 %v  p90 %v  p99 %v  max %v\n", len(lat),
		pct(0.5).Round(100*time.Microsecond), pct(0.9).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), pct(1).Round(100*time.Microsecond))
	return nil
}

const benchPolicy = `peer_team_id: cert-b
recipient_class: response-team
tlp_ceiling: amber
rules:
  intruder: forward
  statistical: forward
  vulnerability: forward
  private-site: forward
  private-user: pseudonymise
`

// narrowPolicy is benchPolicy without the private site information (the
// victims), the one change that replaces every view B holds.
const narrowPolicy = `peer_team_id: cert-b
recipient_class: response-team
tlp_ceiling: amber
rules:
  intruder: forward
  statistical: forward
  vulnerability: forward
  private-user: pseudonymise
`

// measureRedisclosure narrows A's policy for B and reports how long until B
// has applied and acknowledged the replacement of every view it holds.
func measureRedisclosure(ctx context.Context, a, b *fedTeam, held int, out io.Writer) error {
	if err := waitAcknowledged(ctx, a, 0, 10*time.Minute); err != nil {
		return err
	}
	before, err := b.peers.GetPeer(ctx, &irxv1.GetPeerRequest{TeamId: "cert-a"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "redisclosure: B holds %d records; A narrows its policy for B (private site stripped)\n", held)
	start, cpu := time.Now(), startCPU(append(slices.Clone(a.nodes), b.nodes...))
	resp, err := a.policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: narrowPolicy})
	if err != nil {
		return fmt.Errorf("narrowing policy: %w", err)
	}
	if err := waitAcknowledged(ctx, a, resp.GetPolicy().GetVersion(), 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(start)
	cpu.stop()
	after, err := b.peers.GetPeer(ctx, &irxv1.GetPeerRequest{TeamId: "cert-a"})
	if err != nil {
		return err
	}
	replaced := after.GetPeer().GetStatus().GetReceivedReplacements() - before.GetPeer().GetStatus().GetReceivedReplacements()
	fmt.Fprintf(out, "redisclosure: %d replacements applied and acknowledged in %v = %.0f/s (from SetPolicy at A to B's acknowledgement committed at A); refused %d\n",
		replaced, took.Round(time.Millisecond), float64(replaced)/took.Seconds(), after.GetPeer().GetStatus().GetRejected())
	fmt.Fprintf(out, "redisclosure: %s\n", cpu.report(int(max(replaced, 1)), "replacement"))
	return nil
}

// waitAcknowledged waits until A's policy for B is at version (0: any),
// no redisclosure is pending and B acknowledged A's whole feed.
func waitAcknowledged(ctx context.Context, a *fedTeam, version int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := a.peers.GetPeer(ctx, &irxv1.GetPeerRequest{TeamId: "cert-b"})
		p := resp.GetPeer()
		if err == nil && (version == 0 || p.GetPolicyVersion() == version) && p.GetStatus().GetRedisclosurePolicyVersion() == 0 && p.GetStatus().GetOutboundLagRecords() == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("B has not acknowledged A's feed in %v: %v (%v)", within, p.GetStatus(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// peer makes other a peer of t; with follow, t pulls other's feed.
func peer(ctx context.Context, t, other *fedTeam, follow bool) error {
	p, err := irxdtest.PeerRecord(other.id, other.nodes, follow)
	if err != nil {
		return err
	}
	if _, err := t.peers.CreatePeer(ctx, &irxv1.CreatePeerRequest{Peer: p}); err != nil {
		return fmt.Errorf("%s: CreatePeer %s: %w", t.id, other.id, err)
	}
	return nil
}

func waitReceived(ctx context.Context, t *fedTeam, want uint64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := t.peers.GetPeer(ctx, &irxv1.GetPeerRequest{TeamId: "cert-a"})
		if err == nil && resp.GetPeer().GetStatus().GetReceived() >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s received %d of %d records in %v (%v)", t.id, resp.GetPeer().GetStatus().GetReceived(), want, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// createBacklog creates n incidents at a with 200 concurrent clients.
func createBacklog(ctx context.Context, a *fedTeam, inc *irxv1.Incident, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a.incidents[w%len(a.incidents)]
			for next.Add(1) <= int64(n) {
				if _, err := c.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: inc}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// steady creates incidents at a fixed rate (open loop: a slow call does
// not slow the generator) and returns their ids.
func steady(ctx context.Context, a *fedTeam, inc *irxv1.Incident, rate int, d time.Duration) ([]string, error) {
	interval := time.Second / time.Duration(rate)
	var (
		mu   sync.Mutex
		ids  []string
		errs []string
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := a.incidents[i%len(a.incidents)].CreateIncident(callCtx, &irxv1.CreateIncidentRequest{Incident: inc})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			ids = append(ids, resp.GetIncident().GetId())
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return ids, fmt.Errorf("%d creates failed, first: %s", len(errs), strings.TrimSpace(errs[0]))
	}
	return ids, nil
}
