package main

import (
	"bytes"
	"context"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// TestIngestReportsAcknowledgedCreates runs the load tool against a team it
// starts, as the README's commands do, and checks the report: creates were
// acknowledged, none failed, and every process ran with its share of CPUs.
func TestIngestReportsAcknowledgedCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three irxd processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0)) // run sets the tool's
	var out bytes.Buffer
	err := run(ctx, []string{"ingest", "-clients", "8", "-warmup", "500ms", "-duration", "2s", "-gomaxprocs", "1"}, &out)
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, out.String())
	}
	report := out.String()
	m := regexp.MustCompile(`acknowledged creates: (\d+) in`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no count of acknowledged creates in the report:\n%s", report)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("no create acknowledged:\n%s", report)
	}
	for _, want := range []string{"GOMAXPROCS 1 for each node and the tool", "cpu per create:", "leader 127.0.0.1:"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if bytes.Contains(out.Bytes(), []byte("failed calls")) {
		t.Errorf("calls failed:\n%s", report)
	}
}

// TestNodeSetupGivesEachNodeItsShare checks what run hands every node it
// starts (irxdtest's TestNodeEnvReachesTheProcess checks that it arrives).
func TestNodeSetupGivesEachNodeItsShare(t *testing.T) {
	n := &irxdtest.Node{}
	nodeSetup(6070, 7480, procs(1))(2, n)
	if !slices.Equal(n.Env, []string{"GOMAXPROCS=1"}) {
		t.Errorf("node environment %q, want GOMAXPROCS=1", n.Env)
	}
	if want := []string{"--debug-addr", "127.0.0.1:6072", "--metrics-addr", "127.0.0.1:7482"}; !slices.Equal(n.Args, want) {
		t.Errorf("node flags %q, want %q", n.Args, want)
	}
	n = &irxdtest.Node{}
	nodeSetup(0, 0, procs(0))(0, n)
	if len(n.Env) != 0 || len(n.Args) != 0 {
		t.Errorf("with Go's default and no ports the node got env %q, flags %q", n.Env, n.Args)
	}
}
