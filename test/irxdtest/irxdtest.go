// Package irxdtest runs real irxd processes for end-to-end tests and the
// load tool: it builds the binary once, starts nodes on free loopback ports,
// stops them gently or with SIGKILL, and dials their operator API.
package irxdtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Binary returns irxd built for the tests of this process, building it on
// the first call; later calls, from any test, share the binary (or the
// error). A failed build fails t. Building on first use rather than in
// TestMain spares a go build in processes that start no node, such as the
// workers of go test -fuzz, which each run TestMain again.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := SharedBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var (
	sharedMu  sync.Mutex
	sharedDir string // what sharedBuild made, for RemoveSharedBinary
)

var sharedBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "irxdtest-bin")
	if err != nil {
		return "", err
	}
	sharedMu.Lock()
	sharedDir = dir
	sharedMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return Build(ctx, dir)
})

// SharedBinary is Binary for callers without a test, such as a TestMain
// that wants every test to find the binary ready.
func SharedBinary() (string, error) { return sharedBuild() }

// Main runs m's tests, removes the binary Binary built for them, if any, and
// exits: the TestMain of a package whose tests start irxd.
func Main(m *testing.M) {
	code := m.Run()
	RemoveSharedBinary()
	os.Exit(code)
}

// RemoveSharedBinary removes the binary Binary or SharedBinary built, if
// either did; call it once no test runs any more: the binary is built once
// per process, so later calls of Binary return the removed path.
func RemoveSharedBinary() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedDir != "" {
		_ = os.RemoveAll(sharedDir)
	}
}

// Build compiles ./cmd/irxd into dir and returns the binary's path: dir/irxd,
// or with build tags (the load tool's builds that leave a feature out)
// dir/irxd-tag1+tag2. The binary is static, as deploy/Dockerfile builds
// it: with cgo, pebble keeps its caches and memtables outside the Go heap,
// so tests and measurements of a cgo build would not be of what ships.
func Build(ctx context.Context, dir string, tags ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "irxd")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		bin += "-" + strings.Join(tags, "+")
		args = []string{"build", "-tags", strings.Join(tags, ","), "-o", bin}
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/irxd")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build irxd: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the irx module")
	}
	return filepath.Dir(gomod), nil
}

// FreePort returns a loopback address with a port that was free a moment
// ago. Raft addresses must stay the same across restarts, so they cannot be
// ":0". The port is drawn below Linux's ephemeral range (32768 and up):
// ports the kernel hands out for ":0" are also the source ports of every
// outgoing connection, so one could be taken again before irxd binds it.
func FreePort() (string, error) {
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = ln.Close()
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Node is one irxd process and the settings to restart it.
type Node struct {
	Bin     string
	DataDir string
	Args    []string // extra flags
	Env     []string // extra environment ("KEY=value"), on top of this process's

	APIAddr  string // operator API, known once started
	RaftAddr string
	FedAddr  string // peer-facing federation API

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *lockedBuffer
}

// NewNode prepares a node with its own data directory and fixed ports.
func NewNode(bin, dataDir string, args ...string) (*Node, error) {
	api, err := FreePort()
	if err != nil {
		return nil, err
	}
	raftAddr, err := FreePort()
	if err != nil {
		return nil, err
	}
	fedAddr, err := FreePort()
	if err != nil {
		return nil, err
	}
	return &Node{Bin: bin, DataDir: dataDir, Args: args, APIAddr: api, RaftAddr: raftAddr, FedAddr: fedAddr, logs: &lockedBuffer{}}, nil
}

var apiLine = regexp.MustCompile(`operator API on (\S+)`)

// Start launches the process and waits until it reports its API address
// and the health service answers SERVING (it has a leader).
func (n *Node) Start(ctx context.Context) error {
	if err := n.Launch(ctx); err != nil {
		return err
	}
	return n.WaitServing(ctx)
}

// Launch starts the process and waits until its listeners are up, not for
// a leader: members of a new cluster must all be launched before any of
// them can elect one.
func (n *Node) Launch(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := n.launchOnce(ctx)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		// Another process took a port between FreePort and the bind. The
		// operator and federation ports can move; the Raft port cannot (the
		// other members know it), so that failure stands.
		switch logs := n.Logs(); {
		case strings.Contains(logs, "api listener"):
			if n.APIAddr, err = FreePort(); err != nil {
				return err
			}
		case strings.Contains(logs, "federation listener"):
			if n.FedAddr, err = FreePort(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("irxd could not bind: %s", logs)
		}
		n.logs.Reset()
	}
}

func (n *Node) launchOnce(ctx context.Context) error {
	args := append([]string{"--data-dir", n.DataDir, "--api-addr", n.APIAddr, "--raft-addr", n.RaftAddr, "--federation-addr", n.FedAddr, "--log-level", "warn"}, n.Args...)
	cmd := exec.Command(n.Bin, args...)
	if len(n.Env) > 0 {
		cmd.Env = append(os.Environ(), n.Env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = n.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start irxd: %w", err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-ctx.Done():
		_ = n.Kill()
		return fmt.Errorf("irxd did not start: %w\n%s", ctx.Err(), n.Logs())
	case <-exited:
		return fmt.Errorf("irxd exited at start (%v)\n%s", cmd.ProcessState, n.Logs())
	case <-ready:
	}
	return nil
}

// WaitServing polls grpc.health.v1 until the node reports SERVING.
func (n *Node) WaitServing(ctx context.Context) error {
	conn, err := n.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	for {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node at %s never served: %w (last: %v)\n%s", n.APIAddr, ctx.Err(), err, n.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Dial connects to the operator API (development mode: plaintext on
// loopback).
func (n *Node) Dial() (*grpc.ClientConn, error) {
	return grpc.NewClient(n.APIAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Stop sends SIGINT and waits for a clean exit.
func (n *Node) Stop(timeout time.Duration) error {
	return n.signal(syscall.SIGINT, timeout)
}

// Terminate sends SIGTERM, as a service manager does, and waits up to
// timeout for the process to exit, whatever its exit status.
func (n *Node) Terminate(timeout time.Duration) error {
	return n.signal(syscall.SIGTERM, timeout)
}

// Kill sends SIGKILL: a crash, no shutdown code runs.
func (n *Node) Kill() error { return n.signal(syscall.SIGKILL, 10*time.Second) }

func (n *Node) signal(sig syscall.Signal, timeout time.Duration) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("irxd did not exit within %v after %v", timeout, sig)
	}
	if sig == syscall.SIGINT && !cmd.ProcessState.Success() {
		return fmt.Errorf("irxd exited with %v after SIGINT\n%s", cmd.ProcessState, n.Logs())
	}
	return nil
}

// Logs returns what the process wrote to stderr.
func (n *Node) Logs() string { return n.logs.String() }

// PID is the running process's id, or 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	select {
	case <-n.exited:
		return 0
	default:
		return n.cmd.Process.Pid
	}
}

// StartNode builds nothing: it starts a node from bin in a fresh temporary
// directory and stops it when the test ends.
func StartNode(t testing.TB, bin string, args ...string) *Node {
	t.Helper()
	n, err := NewNode(bin, filepath.Join(t.TempDir(), "data"), args...)
	if err != nil {
		t.Fatal(err)
	}
	// Bounds, not expectations: a node starts in a second or two, but a
	// loaded two-core machine running -race tests in parallel is slower.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(10 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return n
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartCluster starts size nodes of team "dev" (node1..nodeN) that bootstrap
// together, waits until every one serves, and kills them when the test ends.
// extra flags go to every node.
func StartCluster(t testing.TB, bin string, size int, extra ...string) []*Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, err := LaunchCluster(ctx, bin, t.TempDir(), size, extra...)
	for _, n := range nodes {
		t.Cleanup(func() { _ = n.Kill() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

// LaunchCluster starts size nodes of team "dev" with data under baseDir,
// sharing one development CA, and waits until every one serves. The caller
// stops the nodes, also when an error is returned with some of them.
func LaunchCluster(ctx context.Context, bin, baseDir string, size int, extra ...string) ([]*Node, error) {
	return LaunchClusterEach(ctx, bin, baseDir, size, nil, extra...)
}

// LaunchClusterEach is LaunchCluster with setup for node i (0-based), for
// settings that must differ between nodes (see LaunchTeam).
func LaunchClusterEach(ctx context.Context, bin, baseDir string, size int, setup func(i int, n *Node), extra ...string) ([]*Node, error) {
	return LaunchTeam(ctx, bin, baseDir, "dev", size, setup, extra...)
}

// LaunchTeam starts size nodes of team (node1..nodeN) with data under
// baseDir, sharing one development CA, and waits until every one serves.
// setup, if not nil, adjusts node i (0-based) before it launches: flags
// appended to n.Args, environment to n.Env.
func LaunchTeam(ctx context.Context, bin, baseDir, team string, size int, setup func(i int, n *Node), extra ...string) ([]*Node, error) {
	for attempt := 0; ; attempt++ {
		nodes, err := launchTeamOnce(ctx, bin, baseDir, team, size, setup, extra...)
		if err == nil || attempt == 2 || !strings.Contains(err.Error(), "raft listener") || !strings.Contains(err.Error(), "address already in use") {
			return nodes, err
		}
		// Another process took a Raft port between FreePort and the
		// bind. Every member knows every Raft address, so the whole new
		// team starts over on other ports.
		for _, n := range nodes {
			_ = n.Kill()
		}
		if err := os.RemoveAll(baseDir); err != nil {
			return nil, err
		}
	}
}

func launchTeamOnce(ctx context.Context, bin, baseDir, team string, size int, setup func(i int, n *Node), extra ...string) ([]*Node, error) {
	nodes := make([]*Node, size)
	var members []string
	for i := range nodes {
		n, err := NewNode(bin, filepath.Join(baseDir, fmt.Sprintf("node%d", i+1)))
		if err != nil {
			return nil, err
		}
		nodes[i] = n
		members = append(members, fmt.Sprintf("node%d=%s", i+1, n.RaftAddr))
	}
	if err := ShareDevCA(team, nodes...); err != nil {
		return nil, err
	}
	for i, n := range nodes {
		n.Args = append([]string{"--team", team, "--node", fmt.Sprintf("node%d", i+1), "--members", strings.Join(members, ",")}, extra...)
		if setup != nil {
			setup(i, n)
		}
		if err := n.Launch(ctx); err != nil {
			return nodes[:i+1], err
		}
	}
	for _, n := range nodes {
		if err := n.WaitServing(ctx); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// ShareDevCA gives nodes one development CA for team: each node's
// development PKI (DataDir/pki) then issues its node certificate from it,
// which is what lets dev nodes form a cluster.
func ShareDevCA(team string, nodes ...*Node) error {
	ca, err := pki.NewCA(team, 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	return installDevCA(ca.CertPEM(), keyPEM, nodes)
}

// CACertPEM is the team CA certificate of a node's development PKI: what a
// peer team pins.
func (n *Node) CACertPEM() (string, error) {
	data, err := os.ReadFile(filepath.Join(n.DataDir, "pki", pki.DevCACertFile))
	return string(data), err
}

// PeerRecord is the peer record with which another team admits team id,
// running as nodes: the CA of nodes[0]'s development PKI pinned and, with
// follow, every node's federation address to pull id's feed from.
func PeerRecord(id string, nodes []*Node, follow bool) (*irxv1.Peer, error) {
	ca, err := nodes[0].CACertPEM()
	if err != nil {
		return nil, err
	}
	p := &irxv1.Peer{TeamId: id, CaCertificatePem: ca}
	if follow {
		for _, n := range nodes {
			p.Endpoints = append(p.Endpoints, n.FedAddr)
		}
	}
	return p, nil
}

// LaunchNode starts one more node with the given flags (for example --join)
// without waiting for a leader, and kills it when the test ends.
func LaunchNode(t testing.TB, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Launch(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Kill() })
}

// ShareDevCAFrom copies from's development CA to nodes, so they can join
// from's team.
func ShareDevCAFrom(from *Node, nodes ...*Node) error {
	dir := filepath.Join(from.DataDir, "pki")
	certPEM, err := os.ReadFile(filepath.Join(dir, pki.DevCACertFile))
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, pki.DevCAKeyFile))
	if err != nil {
		return err
	}
	return installDevCA(certPEM, keyPEM, nodes)
}

// installDevCA writes a CA where each node's development PKI looks for it.
func installDevCA(certPEM, keyPEM []byte, nodes []*Node) error {
	for _, n := range nodes {
		dir := filepath.Join(n.DataDir, "pki")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := pki.WriteFiles(filepath.Join(dir, pki.DevCACertFile), filepath.Join(dir, pki.DevCAKeyFile), certPEM, keyPEM); err != nil {
			return err
		}
	}
	return nil
}
