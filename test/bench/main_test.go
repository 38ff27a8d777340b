package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
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
	t.Setenv("GOMAXPROCS", "") // restored after the test: run sets it for the nodes
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
	if got := os.Getenv("GOMAXPROCS"); got != "1" {
		t.Errorf("the started nodes' environment had GOMAXPROCS %q, want 1", got)
	}
	if bytes.Contains(out.Bytes(), []byte("failed calls")) {
		t.Errorf("calls failed:\n%s", report)
	}
}
