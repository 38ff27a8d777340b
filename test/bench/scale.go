package main

import (
	"context"
	"errors"
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
	"google.golang.org/grpc/credentials/insecure"

	"github.com/irxfed/irx/node/backup"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// runScale starts a team, measures ingest on the empty store, preloads it
// to -records through the operator API (CreateIncident from -clients
// concurrent clients: the real write path, nothing written behind the
// nodes' backs), then measures on the full store: ingest, each node's
// RSS, ListIncidents page latency at several depths, a backup and a
// restore from it, and how long a new member takes to install the team's
// snapshot and catch up.
//
//	go run ./test/bench scale -records 1000000
func runScale(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var (
		nodes    = fs.Int("nodes", 3, "nodes of the team")
		records  = fs.Int("records", 1000000, "records to preload")
		clients  = fs.Int("clients", 1000, "concurrent clients for the ingest measurements and the preload")
		duration = fs.Duration("duration", 15*time.Second, "each ingest measurement")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		depths   = fs.String("depths", "0,1000,100000,500000,990000", "ListIncidents depths (records skipped) to time pages at")
		calls    = fs.Int("calls", 200, "page reads per depth")
		keep     = fs.Bool("keep", false, "keep the data directory")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd")
		irxdArgs = fs.String("irxd-args", "", "extra flags for every started irxd, space-separated (such as --snapshot-threshold 1024 --trailing-logs 256, so a new member installs a snapshot rather than replaying the whole log)")
		unique   = fs.Bool("unique-values", false, "every record names a C2 domain of its own (a million records: a million distinct indicators in the correlation index), rather than every record sharing its values")
		profiles = fs.String("profile-dir", "", "write each node's CPU profile over the full-store ingest window to this directory (node1.prof, ...)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var at []int
	for _, d := range strings.Split(*depths, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(d))
		if err != nil || n < 0 {
			return fmt.Errorf("-depths: %q is not a number of records", d)
		}
		if n < *records {
			at = append(at, n)
		}
	}
	slices.Sort(at)
	dir, bin, cleanup, err := workDir(ctx, "irx-scale", *keep, *prebuilt)
	if err != nil {
		return err
	}
	defer cleanup()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	debugAddrs := make([]string, *nodes)
	team, err := irxdtest.LaunchClusterEach(startCtx, bin, dir, *nodes, debugAddrSetup(debugAddrs, *profiles != ""), strings.Fields(*irxdArgs)...)
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
	request, values, err := createRequest(paddedIncident(*size), *unique)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scale: %d-node team in %s, %d-byte incidents, %s, %d clients\n", *nodes, dir, *size, values, *clients)

	empty := drive(ctx, pool, *clients, []*encoded{request}, *duration, 0, nil)
	fmt.Fprintf(out, "ingest on the empty store: %s\n", empty)
	fmt.Fprintf(out, "RSS after it: %s\n", rss(team))

	began := time.Now()
	var done atomic.Int64
	stopProgress := make(chan struct{})
	go func() {
		// Progress every 30 s: the rate and the nodes' memory and disk as
		// the store grows, for the projection to larger stores.
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		last, lastAt := int64(0), began
		for {
			select {
			case <-stopProgress:
				return
			case now := <-tick.C:
				n := done.Load()
				fmt.Fprintf(out, "  preload %d+%d records, %.0f creates/s over the last %v; RSS %s; disk %s\n", empty.total, n,
					float64(n-last)/now.Sub(lastAt).Seconds(), now.Sub(lastAt).Round(time.Second), rss(team), diskUse(team))
				last, lastAt = n, now
			}
		}
	}()
	var pre driven
	if remaining := *records - empty.total; remaining > 0 {
		pre = drive(ctx, pool, *clients, []*encoded{request}, 0, remaining, &done)
	}
	close(stopProgress)
	fmt.Fprintf(out, "preload: %d records in %v (%.0f creates/s; %d failed calls)\n", pre.total, time.Since(began).Round(time.Second),
		float64(pre.total)/time.Since(began).Seconds(), pre.failed)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	leader, err := findLeader(ctx, apiAddrs(team))
	if err != nil {
		return err
	}
	lconn, err := grpc.NewClient(leader, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer lconn.Close()
	st, err := irxv1.NewClusterServiceClient(lconn).GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "store: %d records (last ticket), Raft index %d; data directories: %s\n", st.GetLastTicket(), st.GetCommitIndex(), diskUse(team))

	profiled := profileNodes(ctx, debugAddrs, *profiles, *duration-time.Second, out, "")
	full := drive(ctx, pool, *clients, []*encoded{request}, *duration, 0, nil)
	profiled()
	fmt.Fprintf(out, "ingest on the full store: %s (%.0f%% of the empty store's rate)\n", full, 100*full.rate()/empty.rate())
	fmt.Fprintf(out, "RSS after it: %s\n", rss(team))

	if err := listLatency(ctx, lconn, at, *calls, out); err != nil {
		return err
	}
	if err := backupAndRestore(ctx, bin, dir, team, leader, out); err != nil {
		return err
	}
	return installMember(ctx, bin, dir, team, lconn, strings.Fields(*irxdArgs), out)
}

func apiAddrs(team []*irxdtest.Node) []string {
	var a []string
	for _, n := range team {
		a = append(a, n.APIAddr)
	}
	return a
}

// driven is what one drive call measured.
type driven struct {
	total, failed int
	elapsed       time.Duration
	lat           []time.Duration
	lastErr       string
}

func (d driven) rate() float64 { return float64(d.total) / d.elapsed.Seconds() }

func (d driven) String() string {
	slices.Sort(d.lat)
	pct := func(p float64) time.Duration {
		if len(d.lat) == 0 {
			return 0
		}
		return d.lat[min(len(d.lat)-1, int(p*float64(len(d.lat))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("%d creates in %v = %.0f creates/s, p50 %v p99 %v, %d failed calls%s", d.total, d.elapsed.Round(time.Millisecond), d.rate(), pct(0.5), pct(0.99), d.failed, d.lastErr)
}

// drive runs clients creating incidents for duration, or (duration 0)
// until count creates were acknowledged; progress, if not nil, counts them.
// Client c sends requests c, c+clients, c+2*clients, ... (modulo their
// number), so together they go through all of them in turn.
func drive(ctx context.Context, pool []*grpc.ClientConn, clients int, requests []*encoded, duration time.Duration, count int, progress *atomic.Int64) driven {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	var (
		done, failed atomic.Int64
		firstFail    atomic.Int64 // since start
		lastErr      atomic.Value
		mu           sync.Mutex
		lat          []time.Duration
		wg           sync.WaitGroup
	)
	start := time.Now()
	// over reads the clock as well as ctx: on a loaded machine the window's
	// timer fires late, and the nodes, whose deadline for a call is the
	// window's end too, already answer DeadlineExceeded at once. Those
	// answers are the window closing, not failures, and no call is made
	// after it.
	end, timed := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || (timed && !time.Now().Before(end)) }
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := pool[c%len(pool)]
			var local []time.Duration
			for next := c; !over(); next += clients {
				callCtx, cancelCall := context.WithTimeout(ctx, 10*time.Second)
				t0 := time.Now()
				_, err := createEncoded(callCtx, conn, requests[next%len(requests)])
				cancelCall()
				if err != nil {
					if !over() {
						if failed.Add(1) == 1 {
							firstFail.Store(int64(time.Since(start)))
						}
						lastErr.Store(err.Error())
					}
					continue
				}
				if duration > 0 {
					local = append(local, time.Since(t0))
				}
				if progress != nil {
					progress.Add(1)
				}
				if n := done.Add(1); count > 0 && n >= int64(count) {
					cancel()
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	d := driven{total: int(done.Load()), failed: int(failed.Load()), elapsed: time.Since(start), lat: lat}
	if e, ok := lastErr.Load().(string); ok {
		d.lastErr = fmt.Sprintf(" (the first %v into the run; last: %s)", time.Duration(firstFail.Load()).Round(time.Millisecond), e)
	}
	return d
}

// rss reads each node's resident set from /proc.
func rss(team []*irxdtest.Node) string {
	var parts []string
	for i, n := range team {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.PID()))
		v := "?"
		if err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					kb, _ := strconv.Atoi(strings.Fields(rest)[0])
					v = fmt.Sprintf("%d MiB", kb>>10)
				}
			}
		}
		parts = append(parts, fmt.Sprintf("node%d %s", i+1, v))
	}
	return strings.Join(parts, ", ")
}

// diskUse is the size of each node's data directory.
func diskUse(team []*irxdtest.Node) string {
	var parts []string
	for i, n := range team {
		var total int64
		_ = filepath.Walk(n.DataDir, func(_ string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				total += info.Size()
			}
			return nil
		})
		parts = append(parts, fmt.Sprintf("node%d %d MiB", i+1, total>>20))
	}
	return strings.Join(parts, ", ")
}

// listLatency walks ListIncidents with pages of 1,000 to find the page
// token at each depth, then times calls pages of 50 from there.
func listLatency(ctx context.Context, conn *grpc.ClientConn, depths []int, calls int, out io.Writer) error {
	c := irxv1.NewIncidentServiceClient(conn)
	tokens := map[int]string{}
	token, seen := "", 0
	for _, d := range depths {
		for seen+1000 <= d {
			resp, err := c.ListIncidents(ctx, &irxv1.ListIncidentsRequest{PageSize: 1000, PageToken: token, Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
			if err != nil {
				return fmt.Errorf("walk to depth %d: %w", d, err)
			}
			seen += len(resp.GetIncidents())
			if token = resp.GetNextPageToken(); token == "" {
				return fmt.Errorf("the list ended at %d records, before depth %d", seen, d)
			}
		}
		tokens[d] = token
	}
	for _, d := range depths {
		var lat []time.Duration
		for range calls {
			t0 := time.Now()
			resp, err := c.ListIncidents(ctx, &irxv1.ListIncidentsRequest{PageSize: 50, PageToken: tokens[d], Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
			if err != nil {
				return err
			}
			if len(resp.GetIncidents()) == 0 {
				return errors.New("an empty page")
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		fmt.Fprintf(out, "ListIncidents, 50 per page, at depth %d (≈%d): p50 %v p99 %v max %v\n", d, d/1000*1000, lat[len(lat)/2].Round(10*time.Microsecond),
			lat[len(lat)*99/100].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
	return nil
}

// backupAndRestore times a backup taken from a follower into a file,
// checked as irxctl checks it, and a restore from it: irxd --restore until
// the new team's node serves.
func backupAndRestore(ctx context.Context, bin, dir string, team []*irxdtest.Node, leader string, out io.Writer) error {
	from := team[0]
	if from.APIAddr == leader {
		from = team[1%len(team)]
	}
	conn, err := from.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	path := filepath.Join(dir, "scale.irxbackup")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	began := time.Now()
	stream, err := irxv1.NewBackupServiceClient(conn).Backup(ctx, &irxv1.BackupRequest{})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := backup.WriteMessage(f, m); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	took := time.Since(began)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	hdr, err := backup.Verify(f, "")
	if err != nil {
		return err
	}
	verified := time.Since(began)
	fmt.Fprintf(out, "backup from a follower: %d MiB of state at Raft index %d in %v (%.0f MiB/s), checksum read back and verified by %v\n",
		hdr.GetSizeBytes()>>20, hdr.GetRaftIndex(), took.Round(100*time.Millisecond), float64(hdr.GetSizeBytes())/(1<<20)/took.Seconds(), verified.Round(100*time.Millisecond))

	n, err := irxdtest.NewNode(bin, filepath.Join(dir, "restored"), "--node", "node1", "--restore", path)
	if err != nil {
		return err
	}
	if err := irxdtest.ShareDevCAFrom(team[0], n); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	began = time.Now()
	if err := n.Start(startCtx); err != nil {
		return err
	}
	defer func() { _ = n.Stop(30 * time.Second) }()
	fmt.Fprintf(out, "restore: irxd --restore serving in %v (verify the file, write it as the first snapshot, restore it); RSS %s\n",
		time.Since(began).Round(100*time.Millisecond), rss([]*irxdtest.Node{n}))
	return nil
}

// installMember adds a new node and times it from AddMember to having
// applied the leader's commit index of that moment: a snapshot install of
// the whole store, then the log after it.
func installMember(ctx context.Context, bin, dir string, team []*irxdtest.Node, leader *grpc.ClientConn, extra []string, out io.Writer) error {
	n, err := irxdtest.NewNode(bin, filepath.Join(dir, fmt.Sprintf("node%d", len(team)+1)), append([]string{"--node", fmt.Sprintf("node%d", len(team)+1), "--join"}, extra...)...)
	if err != nil {
		return err
	}
	if err := irxdtest.ShareDevCAFrom(team[0], n); err != nil {
		return err
	}
	launchCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = n.Launch(launchCtx)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = n.Stop(30 * time.Second) }()
	cluster := irxv1.NewClusterServiceClient(leader)
	st, err := cluster.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{})
	if err != nil {
		return err
	}
	target := st.GetCommitIndex()
	began := time.Now()
	if _, err := cluster.AddMember(ctx, &irxv1.AddMemberRequest{NodeId: fmt.Sprintf("node%d", len(team)+1), Address: n.RaftAddr, NonVoter: true}); err != nil {
		return err
	}
	conn, err := n.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	mine := irxv1.NewClusterServiceClient(conn)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s, err := mine.GetClusterStatus(ctx, &irxv1.GetClusterStatusRequest{}); err == nil && s.GetAppliedIndex() >= target {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(began)
	// A member that installed a snapshot keeps it in its own store; one
	// that replayed the whole log (the leader still had its first entry)
	// has none.
	how := "replayed the log from its first entry (no snapshot installed)"
	if snaps, _ := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "snapshots", "*", "state.bin")); len(snaps) > 0 {
		var size int64
		if fi, err := os.Stat(snaps[0]); err == nil {
			size = fi.Size()
		}
		how = fmt.Sprintf("installed a snapshot of %d MiB, then applied the log after it", size>>20)
	}
	fmt.Fprintf(out, "new member: reached index %d in %v: %s; RSS %s\n", target, took.Round(100*time.Millisecond), how, rss([]*irxdtest.Node{n}))
	return nil
}

// debugAddrSetup gives started node i a free debug (pprof) address,
// noted in addrs[i], when on; a node without one is not profiled.
func debugAddrSetup(addrs []string, on bool) func(int, *irxdtest.Node) {
	return func(i int, n *irxdtest.Node) {
		if !on {
			return
		}
		if addr, err := irxdtest.FreePort(); err == nil {
			addrs[i] = addr
			n.Args = append(n.Args, "--debug-addr", addr)
		}
	}
}

// profileNodes starts fetching each node's CPU profile over the next
// seconds (pprof on its debug address) into dir; the returned func waits
// for them. Without dir it does nothing.
func profileNodes(ctx context.Context, debugAddrs []string, dir string, over time.Duration, out io.Writer, namePrefix string) func() {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(out, "profiles: %v\n", err)
		return func() {}
	}
	var wg sync.WaitGroup
	for i, addr := range debugAddrs {
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(dir, fmt.Sprintf("%snode%d.prof", namePrefix, i+1))
			if err := fetchProfile(ctx, addr, over, file); err != nil {
				fmt.Fprintf(out, "profile of node%d: %v\n", i+1, err)
			}
		}()
	}
	return wg.Wait
}

func fetchProfile(ctx context.Context, addr string, over time.Duration, file string) error {
	ctx, cancel := context.WithTimeout(ctx, over+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(over.Seconds())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}
