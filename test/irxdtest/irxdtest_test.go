package irxdtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// TestNodeEnvReachesTheProcess starts a one-node team whose setup gives the
// node an environment, and reads the running process's environment back:
// the additions are there, and the inherited environment is kept.
func TestNodeEnvReachesTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts irxd")
	}
	bin := Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("IRXDTEST_INHERITED", "yes")
	nodes, err := LaunchTeam(ctx, bin, t.TempDir(), "dev", 1, func(i int, n *Node) {
		n.Env = append(n.Env, "GOMAXPROCS=1", fmt.Sprintf("IRXDTEST_NODE=%d", i))
	})
	for _, n := range nodes {
		t.Cleanup(func() { _ = n.Kill() })
	}
	if err != nil {
		t.Fatal(err)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", nodes[0].PID()))
	if err != nil {
		t.Fatalf("irxd's environment: %v", err)
	}
	vars := bytes.Split(environ, []byte{0})
	for _, want := range []string{"GOMAXPROCS=1", "IRXDTEST_NODE=0", "IRXDTEST_INHERITED=yes"} {
		if !slices.ContainsFunc(vars, func(v []byte) bool { return string(v) == want }) {
			t.Errorf("irxd's environment lacks %s", want)
		}
	}
}
