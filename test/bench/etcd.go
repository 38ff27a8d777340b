package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// The etcd release the comparison runs, and the release whose tools/benchmark
// drives it: the tools module of etcd's 3.7 line is not on the module proxy,
// and the root module (which holds tools/benchmark) is served up to 3.6.8.
// The benchmark is a gRPC client of the KV API, which 3.7 keeps.
const (
	etcdVersion          = "v3.7.1"
	etcdBenchmarkVersion = "v3.6.8"
)

// etcdTools returns the etcd server and benchmark binaries: the given
// paths, or builds from the module proxy kept in the user's cache
// directory, so that only the first run pays for the build.
func etcdTools(ctx context.Context, etcdBin, benchBin string, log io.Writer) (string, string, error) {
	if etcdBin != "" && benchBin != "" {
		return etcdBin, benchBin, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", fmt.Errorf("no cache directory for the etcd build (give -etcd and -etcd-benchmark): %w", err)
	}
	dir := filepath.Join(cache, "irx-bench", "etcd-"+etcdVersion+"-bench-"+etcdBenchmarkVersion)
	if etcdBin == "" {
		etcdBin = filepath.Join(dir, "etcd")
		if err := goBuildOnce(ctx, etcdBin, "go.etcd.io/etcd/server/v3", etcdVersion, "go.etcd.io/etcd/server/v3", log); err != nil {
			return "", "", err
		}
	}
	if benchBin == "" {
		benchBin = filepath.Join(dir, "benchmark")
		if err := goBuildOnce(ctx, benchBin, "go.etcd.io/etcd/v3", etcdBenchmarkVersion, "go.etcd.io/etcd/v3/tools/benchmark", log); err != nil {
			return "", "", err
		}
	}
	return etcdBin, benchBin, nil
}

// goBuildOnce builds the main package pkg of module@version into out,
// unless out exists. The build runs in a throwaway module that requires
// the release, so etcd never enters irx's own go.mod, and the replace
// directives of etcd's modules (which make "go install pkg@version" refuse
// them) do not apply. out appears whole or not at all (a rename), so two
// runs that build at once both end with a working binary.
func goBuildOnce(ctx context.Context, out, module, version, pkg string, log io.Writer) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(out), "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintf(log, "building %s from %s@%s (once; kept in %s)\n", filepath.Base(out), module, version, filepath.Dir(out))
	files := map[string]string{
		"go.mod":   "module irxbench/etcdbuild\n\ngo 1.26\n",
		"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"" + pkg + "\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	tmp := filepath.Join(work, filepath.Base(out))
	for _, args := range [][]string{
		{"get", module + "@" + version},
		{"build", "-o", tmp, pkg},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, msg)
		}
	}
	return os.Rename(tmp, out)
}

// etcdCluster is three (or n) etcd members on loopback.
type etcdCluster struct {
	members   []*exec.Cmd
	endpoints []string // client URLs' host:port
	logs      []*os.File
}

// startEtcd starts an n-member etcd cluster with its data under dir; each
// member runs with env added to this process's environment.
func startEtcd(ctx context.Context, bin, dir string, n int, env []string) (*etcdCluster, error) {
	type ports struct{ client, peer string }
	var ps []ports
	var initial []string
	for i := range n {
		client, err := irxdtest.FreePort()
		if err != nil {
			return nil, err
		}
		peer, err := irxdtest.FreePort()
		if err != nil {
			return nil, err
		}
		ps = append(ps, ports{client, peer})
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, peer))
	}
	c := &etcdCluster{}
	for i, p := range ps {
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("etcd-m%d.log", i)))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.logs = append(c.logs, log)
		cmd := exec.Command(bin,
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("etcd-m%d", i)),
			"--listen-client-urls", "http://"+p.client, "--advertise-client-urls", "http://"+p.client,
			"--listen-peer-urls", "http://"+p.peer, "--initial-advertise-peer-urls", "http://"+p.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "irx-bench",
			// The benchmark writes ~1 KiB values for tens of seconds; etcd's
			// default 2 GiB quota holds them, but compaction would add work
			// irx does not do, so neither is touched.
			"--log-level", "error")
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			c.stop()
			return nil, fmt.Errorf("start etcd: %w", err)
		}
		c.members = append(c.members, cmd)
		c.endpoints = append(c.endpoints, p.client)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, ep := range c.endpoints {
		if err := waitEtcdHealthy(waitCtx, ep); err != nil {
			c.stop()
			return nil, fmt.Errorf("etcd member %s: %w (logs in %s)", ep, err, dir)
		}
	}
	return c, nil
}

func waitEtcdHealthy(ctx context.Context, endpoint string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/health", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var h struct{ Health string }
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil && h.Health == "true" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leader returns the client endpoint of the member that leads, from the
// maintenance status of etcd's JSON gateway.
func (c *etcdCluster) leader(ctx context.Context) (string, error) {
	for _, ep := range c.endpoints {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ep+"/v3/maintenance/status", strings.NewReader("{}"))
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			}
			Leader string
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.Leader != "" && st.Leader == st.Header.MemberID {
			return ep, nil
		}
	}
	return "", errors.New("no etcd member says it leads")
}

// cpu is the CPU time the members used so far.
func (c *etcdCluster) cpu() (time.Duration, error) {
	var total time.Duration
	for _, m := range c.members {
		d, err := processCPU(m.Process.Pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

func (c *etcdCluster) stop() {
	for _, m := range c.members {
		_ = m.Process.Signal(syscall.SIGTERM)
	}
	for _, m := range c.members {
		done := make(chan struct{})
		go func() { _ = m.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = m.Process.Kill()
			<-done
		}
	}
	for _, l := range c.logs {
		_ = l.Close()
	}
}

// etcdRun is what one run of etcd's benchmark tool reported.
type etcdRun struct {
	requests   int
	total      time.Duration // the tool's own "Total", first request to last
	rate       float64       // its Requests/sec
	p50, p99   time.Duration
	serverCPU  time.Duration // of the members, over the run
	loadCPU    time.Duration // of the benchmark process
	failures   int
	lastOutput string
}

// benchmarkPut runs etcd's benchmark "put" of total requests of size-byte
// values from clients clients over conns connections.
func benchmarkPut(ctx context.Context, bin string, c *etcdCluster, endpoints []string, clients, conns, total, size int, env []string) (*etcdRun, error) {
	cpuBefore, err := c.cpu()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin,
		"--endpoints", strings.Join(endpoints, ","),
		"--clients", strconv.Itoa(clients), "--conns", strconv.Itoa(conns), "--precise",
		// Keys spread over ten million so nearly every put is a new key, as
		// every irx create is a new record.
		"put", "--key-size", "8", "--key-space-size", "10000000", "--val-size", strconv.Itoa(size),
		"--total", strconv.Itoa(total))
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	cpuAfter, err := c.cpu()
	if err != nil {
		return nil, err
	}
	if runErr != nil {
		return nil, fmt.Errorf("etcd benchmark: %w\n%s", runErr, tail(out.String(), 2000))
	}
	run, err := parseBenchmark(out.String())
	if err != nil {
		return nil, err
	}
	run.requests = total
	run.serverCPU = cpuAfter - cpuBefore
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.loadCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return run, nil
}

var (
	benchTotal   = regexp.MustCompile(`(?m)^\s*Total:\s+([0-9.]+) secs`)
	benchRate    = regexp.MustCompile(`(?m)^\s*Requests/sec:\s+([0-9.]+)`)
	benchPercent = regexp.MustCompile(`(?m)^\s*([0-9.]+)% in ([0-9.]+) secs`)
	benchErrors  = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\s+(.*)$`)
)

// parseBenchmark reads the summary etcd's benchmark prints (its report
// package's format: "Total: x secs.", "Requests/sec: y", "50% in z secs.").
func parseBenchmark(out string) (*etcdRun, error) {
	r := &etcdRun{lastOutput: tail(out, 2000)}
	secs := func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Second))
	}
	m := benchTotal.FindStringSubmatch(out)
	rm := benchRate.FindStringSubmatch(out)
	if m == nil || rm == nil {
		return nil, fmt.Errorf("etcd benchmark printed no summary:\n%s", r.lastOutput)
	}
	r.total = secs(m[1])
	r.rate, _ = strconv.ParseFloat(rm[1], 64)
	for _, p := range benchPercent.FindAllStringSubmatch(out, -1) {
		switch p[1] {
		case "50":
			r.p50 = secs(p[2])
		case "99":
			r.p99 = secs(p[2])
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	inErrors := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "Error distribution") {
			inErrors = true
			continue
		}
		if inErrors {
			if e := benchErrors.FindStringSubmatch(line); e != nil {
				n, _ := strconv.Atoi(e[1])
				r.failures += n
			}
		}
	}
	return r, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
