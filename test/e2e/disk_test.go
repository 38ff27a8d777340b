package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// Disk-full tests run each irxd with its data directory on a small tmpfs
// of its own, mounted in a private mount namespace (unshare), so nothing
// is left mounted on the host whatever happens to the test: the mount
// goes with the process. The test reaches the tmpfs through
// /proc/<pid>/root. They need root (or CAP_SYS_ADMIN) and unshare(1), and
// skip without them.

const (
	smallDiskSize = 64 << 20
	diskReserve   = 16 << 20
	// fillLeaves is what filling a disk leaves free: below half the
	// reserve, where the node appends nothing to its log, as when the
	// node's own writes filled it. The SIGTERM checks fill it to the last
	// byte, as another program on the same file system may.
	fillLeaves = 4 << 20
)

// smallDiskScript runs irxd ("$IRX_TEST_IRXD") with its data directory on
// a tmpfs of $IRX_TEST_DISK_SIZE in a mount namespace of its own, keeping
// what the directory held (the development PKI).
const smallDiskScript = `#!/bin/sh
set -e
dir="$IRX_TEST_DISK_DIR"
keep=$(mktemp -d)
cp -a "$dir/." "$keep/"
exec unshare --mount --propagation private sh -c '
  mount -t tmpfs -o size="$1",mode=0700 irx-test-disk "$2"
  cp -a "$3/." "$2/"
  rm -rf "$3"
  shift 3
  exec "$@"' sh "$IRX_TEST_DISK_SIZE" "$dir" "$keep" "$IRX_TEST_IRXD" "$@"
`

// smallDisks returns the wrapper script, or skips the test when mount
// namespaces are not available to it.
func smallDisks(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full tests mount a tmpfs in a private mount namespace: they need root")
	}
	probe := t.TempDir()
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=1m irx-probe "$0"`, probe).CombinedOutput()
	if err != nil {
		t.Skipf("no private mount namespace with a tmpfs here (unshare: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	script := filepath.Join(t.TempDir(), "irxd-small-disk")
	if err := os.WriteFile(script, []byte(smallDiskScript), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

func onSmallDisk(script string) func(int, *irxdtest.Node) {
	return func(_ int, n *irxdtest.Node) {
		n.Bin = script
		n.Env = append(n.Env, "IRX_TEST_IRXD="+irxdBin, "IRX_TEST_DISK_DIR="+n.DataDir, fmt.Sprintf("IRX_TEST_DISK_SIZE=%d", smallDiskSize))
	}
}

func startSmallDiskTeam(t *testing.T, size int) []*irxdtest.Node {
	t.Helper()
	script := smallDisks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, err := irxdtest.LaunchTeam(ctx, script, t.TempDir(), "dev", size, onSmallDisk(script),
		"--min-free-bytes", fmt.Sprint(diskReserve))
	for _, n := range nodes {
		t.Cleanup(func() { _ = n.Kill() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

// diskOf is the node's data directory as the node sees it, on its tmpfs.
func diskOf(t *testing.T, n *irxdtest.Node) string {
	t.Helper()
	pid := n.PID()
	if pid == 0 {
		t.Fatal("node is not running")
	}
	return fmt.Sprintf("/proc/%d/root%s", pid, n.DataDir)
}

func freeBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// fillDisk writes a ballast file on the node's tmpfs until leave bytes
// are free, and returns it.
func fillDisk(t *testing.T, n *irxdtest.Node, leave uint64) string {
	t.Helper()
	dir := diskOf(t, n)
	if total := freeBytes(t, dir); total > smallDiskSize {
		t.Fatalf("%s has %d bytes free: not the node's small disk", dir, total)
	}
	ballast := filepath.Join(dir, fmt.Sprintf("ballast-%d", time.Now().UnixNano()))
	f, err := os.OpenFile(ballast, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for {
		free := freeBytes(t, dir)
		if free <= leave {
			return ballast
		}
		chunk := min(uint64(len(buf)), free-leave)
		if _, err := f.Write(buf[:chunk]); err != nil {
			if leave == 0 && errors.Is(err, syscall.ENOSPC) {
				return ballast
			}
			t.Fatalf("ballast: %v", err)
		}
	}
}

// refusesNamingDisk checks a create's error: RESOURCE_EXHAUSTED, naming
// the node's disk and its path.
func refusesNamingDisk(err error, n *irxdtest.Node) error {
	st, _ := status.FromError(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), " disk ") || !strings.Contains(st.Message(), n.DataDir) {
		return fmt.Errorf("create answered %v, want RESOURCE_EXHAUSTED naming the disk under %s", err, n.DataDir)
	}
	return nil
}

func servingStatus(c client) healthpb.HealthCheckResponse_ServingStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.GetStatus()
}

func createWithin(c client, d time.Duration, inc *irxv1.Incident, requestID string) (*irxv1.Incident, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := c.incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: inc, RequestId: requestID})
	return resp.GetIncident(), err
}

// The leader's disk fills: it hands its leadership away, and writes
// through the other nodes go on; it refuses writes naming its disk,
// reports NOT_SERVING, still answers stale reads, and takes writes again
// once space is freed. Nothing acknowledged is lost, and SIGTERM stops it
// while its disk is full.
func TestDiskFullLeaderHandsOver(t *testing.T) {
	nodes := startSmallDiskTeam(t, 3)
	leader, clients := roles(t, nodes)
	full, fullNode := clients[leader], nodes[leader]
	healthy := clients[(leader+1)%3]
	var acked []string
	for i := range 5 {
		acked = append(acked, create(t, healthy, sample(i)).GetId())
	}

	filled := time.Now()
	ballast := fillDisk(t, fullNode, fillLeaves)
	// Writes through a healthy node succeed again within 5 s of the fill:
	// once the full node no longer leads, a write commits without it.
	// Each write is retried with its request id, as a client does.
	handedOver := time.Duration(0)
	for attempt, written := 0, 0; ; attempt++ {
		if handedOver == 0 && clusterStatus(t, full).GetRole() != irxv1.NodeRole_NODE_ROLE_LEADER {
			handedOver = time.Since(filled)
		}
		inc, err := createWithin(healthy, 2*time.Second, sample(100+written), fmt.Sprintf("disk-full-%d", written))
		if err == nil {
			acked = append(acked, inc.GetId())
			written++
			if handedOver != 0 {
				t.Logf("the full node handed leadership away %v after the fill; a write through a healthy node then succeeded at %v (%d attempts)",
					handedOver.Round(time.Millisecond), time.Since(filled).Round(time.Millisecond), attempt+1)
				break
			}
		}
		if time.Since(filled) > 5*time.Second {
			t.Fatalf("within 5 s of the leader's disk filling, no write through a healthy node succeeded after it stopped leading (handed over: %v); last: %v\n%s",
				handedOver, err, tail(fullNode.Logs(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}

	eventually(t, 20*time.Second, "the full node is neither leader nor serving", func() error {
		if s := servingStatus(full); s != healthpb.HealthCheckResponse_NOT_SERVING {
			return fmt.Errorf("health %v", s)
		}
		if role := clusterStatus(t, full).GetRole(); role == irxv1.NodeRole_NODE_ROLE_LEADER {
			return errors.New("still leader")
		}
		return nil
	})
	start := time.Now()
	_, err := createWithin(full, 10*time.Second, sample(200), "")
	if err := refusesNamingDisk(err, fullNode); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the refusal took %v; it should come at once", took)
	}
	var problems []string
	for _, d := range clusterStatus(t, full).GetDisks() {
		if d.GetProblem() != "" {
			problems = append(problems, d.GetProblem())
		}
	}
	if len(problems) == 0 || !strings.Contains(strings.Join(problems, "; "), fullNode.DataDir) {
		t.Errorf("GetClusterStatus of the full node reports no disk problem naming %s: %v", fullNode.DataDir, clusterStatus(t, full).GetDisks())
	}
	stale, err := full.incidents.GetIncident(ctxT(t), &irxv1.GetIncidentRequest{Id: acked[0], Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE})
	if err != nil || stale.GetIncident().GetId() != acked[0] {
		t.Fatalf("stale read on the full node: %v, %v", stale, err)
	}
	for i := range 5 {
		acked = append(acked, create(t, clients[(leader+2)%3], sample(300+i)).GetId())
	}

	// Space returns: the node serves and takes writes again by itself.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the node serves again after space was freed", func() error {
		if s := servingStatus(full); s != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", s)
		}
		return nil
	})
	eventually(t, 30*time.Second, "a write through the recovered node", func() error {
		inc, err := createWithin(full, 5*time.Second, sample(400), "disk-full-recovered")
		if err == nil {
			acked = append(acked, inc.GetId())
		}
		return err
	})
	for i, c := range clients {
		for _, id := range acked {
			eventually(t, 30*time.Second, fmt.Sprintf("node%d has %s", i+1, id), func() error {
				_, err := get(c, id)
				return err
			})
		}
	}

	// SIGTERM stops the node while its disk is full to the last byte.
	fillDisk(t, fullNode, 0)
	eventually(t, 20*time.Second, "the node refuses writes again", func() error {
		_, err := createWithin(full, 5*time.Second, sample(500), "")
		return refusesNamingDisk(err, fullNode)
	})
	terminateWithin10s(t, fullNode)
}

// terminateWithin10s sends SIGTERM and requires the process gone within
// 10 s, logging what the shutdown said if it had to give up.
func terminateWithin10s(t *testing.T, n *irxdtest.Node) {
	t.Helper()
	stopped := time.Now()
	if err := n.Terminate(10 * time.Second); err != nil {
		t.Fatalf("SIGTERM on a node with a full disk: %v\n%s", err, tail(n.Logs(), 20))
	}
	took := time.Since(stopped).Round(time.Millisecond)
	logs := n.Logs()
	if at := strings.Index(logs, "shutdown did not finish in time"); at >= 0 {
		t.Logf("SIGTERM ended the node in %v; the shutdown gave up: %s", took, strings.SplitN(logs[at:], "\n", 2)[0])
		return
	}
	t.Logf("SIGTERM ended the node in %v", took)
}

// A one-node team on a full disk answers writes at once with
// RESOURCE_EXHAUSTED naming the disk, serves stale reads, takes writes
// again once space is freed, and stops on SIGTERM with no byte free.
func TestDiskFullOneNodeTeam(t *testing.T) {
	nodes := startSmallDiskTeam(t, 1)
	n := nodes[0]
	c := dial(t, n)
	first := create(t, c, sample(1)).GetId()

	filled := time.Now()
	ballast := fillDisk(t, n, fillLeaves)
	// The guard looks at free space four times a second; the first
	// refusal comes within 3 s of the fill (a generous bound for -race on
	// a busy machine), and each refusal at once: within 1 s.
	for {
		start := time.Now()
		_, err := createWithin(c, 10*time.Second, sample(2), "")
		took := time.Since(start)
		if refusesNamingDisk(err, n) == nil {
			if took > time.Second {
				t.Errorf("the refusal took %v, want at once (1 s)", took)
			}
			t.Logf("refused %v after the fill, the call taking %v: %v", time.Since(filled).Round(time.Millisecond), took.Round(time.Millisecond), err)
			break
		}
		if time.Since(filled) > 3*time.Second {
			t.Fatalf("3 s after the disk filled: %v (the call took %v)\n%s", err, took, tail(n.Logs(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "NOT_SERVING on a full disk", func() error {
		if s := servingStatus(c); s != healthpb.HealthCheckResponse_NOT_SERVING {
			return fmt.Errorf("health %v", s)
		}
		return nil
	})
	if _, err := c.incidents.GetIncident(ctxT(t), &irxv1.GetIncidentRequest{Id: first, Consistency: irxv1.ReadConsistency_READ_CONSISTENCY_STALE}); err != nil {
		t.Fatalf("stale read on a full disk: %v", err)
	}
	if !strings.Contains(n.Logs(), "refuses writes") {
		t.Errorf("the log does not say the node refuses writes:\n%s", tail(n.Logs(), 20))
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "writes after space was freed", func() error {
		_, err := createWithin(c, 5*time.Second, sample(3), "one-node-recovered")
		return err
	})
	if _, err := get(c, first); err != nil {
		t.Fatalf("the first record after recovery: %v", err)
	}

	fillDisk(t, n, 0)
	eventually(t, 10*time.Second, "refusing again", func() error {
		_, err := createWithin(c, 5*time.Second, sample(4), "")
		return refusesNamingDisk(err, n)
	})
	terminateWithin10s(t, n)
}
