package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// runStreams is the greedy peer: one authorised peer opens many Subscribe
// streams on a one-node team, some of which never read, while an operator
// asks for the cluster's status. It reports the node's Go heap and the
// operator's latency.
func runStreams(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("streams", flag.ContinueOnError)
	var (
		streams  = fs.Int("streams", 500, "Subscribe streams the peer opens")
		idle     = fs.Float64("idle-fraction", 0.5, "part of the streams that never read")
		perConn  = fs.Int("streams-per-conn", 50, "streams per TLS connection of the peer")
		records  = fs.Int("records", 20000, "records the team holds before the peer subscribes")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		duration = fs.Duration("duration", 20*time.Second, "how long to hold the streams and measure")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd (to compare two builds)")
		irxdArgs = fs.String("irxd-args", "", "extra flags for the started irxd, space-separated")
		metrics  = fs.Int("metrics-port", 0, "the node's metrics port (default: a free one)")
		keep     = fs.Bool("keep", false, "keep the data directory")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "irx-bench-streams")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	bin, err := buildOrUse(ctx, dir, *prebuilt)
	if err != nil {
		return err
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", *metrics)
	if *metrics == 0 {
		if metricsAddr, err = irxdtest.FreePort(); err != nil {
			return err
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	nodes, err := irxdtest.LaunchTeam(startCtx, bin, filepath.Join(dir, "cert-a"), "cert-a", 1, func(_ int, n *irxdtest.Node) {
		n.Args = append(n.Args, "--metrics-addr", metricsAddr)
		n.Args = append(n.Args, strings.Fields(*irxdArgs)...)
	})
	cancel()
	defer stopAll(nodes, 10*time.Second)
	if err != nil {
		return err
	}
	a := nodes[0]
	conn, err := grpc.NewClient(a.APIAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()

	// The peer: team cert-b's CA, pinned at A, and a node certificate it
	// issued, which is what a real peer's puller presents.
	caB, err := pki.NewCA("cert-b", 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := caB.Issue(pki.IssueRequest{Identity: pki.NodeIdentity("cert-b", "node1"), Usage: pki.UsageNode, Validity: 24 * time.Hour})
	if err != nil {
		return err
	}
	certB, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	if _, err := irxv1.NewPeerServiceClient(conn).CreatePeer(ctx, &irxv1.CreatePeerRequest{Peer: &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM())}}); err != nil {
		return fmt.Errorf("CreatePeer cert-b: %w", err)
	}
	if _, err := irxv1.NewPolicyServiceClient(conn).SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: benchPolicy}); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	inc := paddedIncident(*size)
	inc.Tlp, inc.Restriction = irxv1.Tlp_TLP_GREEN, irxv1.Restriction_RESTRICTION_PARTNER
	began := time.Now()
	if err := createBacklog(ctx, &fedTeam{incidents: []irxv1.IncidentServiceClient{irxv1.NewIncidentServiceClient(conn)}}, inc, *records); err != nil {
		return err
	}
	fmt.Fprintf(out, "team cert-a (1 node) holds %d records of %d bytes (created in %v); its policy for cert-b discloses them\n",
		*records, *size, time.Since(began).Round(time.Millisecond))

	caA, err := a.CACertPEM()
	if err != nil {
		return err
	}
	poolA, err := pki.NewCertPool([]byte(caA))
	if err != nil {
		return err
	}
	tlsConf, err := pki.ClientConfig(pki.StaticCertificate(certB), poolA, pki.ExpectNode("cert-a"))
	if err != nil {
		return err
	}
	heap0, _ := heapOf(ctx, metricsAddr)

	// The streams: each connection carries perConn of them; the idle
	// ones never call Recv after the first response.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		opened, refused, failed, items atomic.Int64
		firstErr                       atomic.Value
		wg                             sync.WaitGroup
	)
	idleStreams := int(float64(*streams) * *idle)
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := 0; i < *streams; i++ {
		if i%*perConn == 0 {
			c, err := grpc.NewClient(a.FedAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		client := irxv1.NewFederationServiceClient(conns[len(conns)-1])
		// Idle and reading streams alternate, so that those a limit
		// admits are of both kinds.
		reads := int(float64(i+1)**idle) == int(float64(i)**idle)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := client.Subscribe(runCtx, &irxv1.SubscribeRequest{MaxItems: 4096})
			if err == nil {
				// The first response (or the refusal) says whether the
				// stream was admitted; an idle stream reads nothing after.
				var resp *irxv1.SubscribeResponse
				if resp, err = stream.Recv(); err == nil {
					opened.Add(1)
					items.Add(int64(len(resp.GetItems())))
					for reads {
						if resp, err = stream.Recv(); err != nil {
							break
						}
						items.Add(int64(len(resp.GetItems())))
					}
					if !reads {
						<-runCtx.Done()
						return
					}
				}
			}
			switch {
			case status.Code(err) == codes.ResourceExhausted:
				refused.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			case runCtx.Err() != nil:
			default:
				failed.Add(1)
			}
		}()
	}

	// The window: the heap sampled, and an operator's GetClusterStatus
	// called one after another.
	cluster := irxv1.NewClusterServiceClient(conn)
	var lat []time.Duration
	var heaps []float64
	type slow struct{ at, took time.Duration }
	var calls []slow
	began = time.Now()
	end := time.Now().Add(*duration)
	nextHeap := time.Now()
	for time.Now().Before(end) {
		t0 := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cluster.GetClusterStatus(callCtx, &irxv1.GetClusterStatusRequest{})
		cancel()
		if err != nil {
			return fmt.Errorf("GetClusterStatus: %w", err)
		}
		lat = append(lat, time.Since(t0))
		calls = append(calls, slow{t0.Sub(began), time.Since(t0)})
		if time.Now().After(nextHeap) {
			if h, err := heapOf(ctx, metricsAddr); err == nil {
				heaps = append(heaps, h)
			}
			nextHeap = time.Now().Add(250 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(out, "peer cert-b opened %d Subscribe streams (%d never reading) on %d connections: %d admitted, %d refused RESOURCE_EXHAUSTED, %d failed otherwise; %d items received\n",
		*streams, idleStreams, len(conns), opened.Load(), refused.Load(), failed.Load(), items.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(out, "  refusal: %s\n", e)
	}
	peak := 0.0
	for _, h := range heaps {
		peak = max(peak, h)
	}
	fmt.Fprintf(out, "node heap (go_memstats_heap_inuse_bytes): %.0f MiB before the streams, peak %.0f MiB over %d samples in %v\n",
		heap0/(1<<20), peak/(1<<20), len(heaps), *duration)
	fmt.Fprintf(out, "GetClusterStatus meanwhile, %d calls: p50 %v  p99 %v  max %v\n", len(lat),
		pct(0.5).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), pct(1).Round(100*time.Microsecond))
	// When the slowest calls were made: at the streams' opening, or all
	// along.
	slices.SortFunc(calls, func(a, b slow) int { return int(b.took - a.took) })
	var when []string
	for _, c := range calls[:min(5, len(calls))] {
		when = append(when, fmt.Sprintf("%v at +%v", c.took.Round(time.Millisecond), c.at.Round(100*time.Millisecond)))
	}
	fmt.Fprintf(out, "  slowest: %s\n", strings.Join(when, ", "))
	return nil
}

// heapOf reads a node's in-use heap from its metrics endpoint.
func heapOf(ctx context.Context, addr string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), "go_memstats_heap_inuse_bytes "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := lines.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metrics of %s: no go_memstats_heap_inuse_bytes", addr)
}
