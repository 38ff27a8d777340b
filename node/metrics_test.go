package node_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/irxfed/irx/node"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func TestMetricsEndpoint(t *testing.T) {
	n, err := node.Start(node.Config{
		DataDir: filepath.Join(t.TempDir(), "data"), APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	conn, err := grpc.NewClient(n.APIAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	incidents := irxv1.NewIncidentServiceClient(conn)
	if _, err := incidents.CreateIncident(ctx, &irxv1.CreateIncidentRequest{Incident: &irxv1.Incident{
		Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"},
	}}); err != nil {
		t.Fatal(err)
	}
	_, _ = incidents.GetIncident(ctx, &irxv1.GetIncidentRequest{Id: "dev:9"}) // NotFound

	resp, err := http.Get("http://" + n.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		"irx_raft_leader 1",
		"irx_raft_has_leader 1",
		"irx_fsm_last_ticket 1",
		"irx_feed_sequence 1",
		"irx_alerts_raised_total 0",
		"irx_alert_changes_total 0",
		`irx_grpc_requests_total{code="OK",method="irx.v1.IncidentService/CreateIncident"} 1`,
		`irx_grpc_requests_total{code="NotFound",method="irx.v1.IncidentService/GetIncident"} 1`,
		"irx_fsm_apply_batch_seconds_count",
		"irx_raft_commit_seconds_count",
		"irx_raft_log_append_seconds_bucket",
		"irx_raft_log_sync_seconds_bucket",
		`irx_pebble_wal_written_bytes_total{db="raft"}`,
		`irx_pebble_compaction_debt_bytes{db="state"}`,
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A leader writes its appends ahead of the disk and syncs them apart.
	if strings.Contains(text, "irx_raft_log_append_seconds_count 0\n") || strings.Contains(text, "irx_raft_commit_seconds_count 0\n") ||
		strings.Contains(text, "irx_raft_log_sync_seconds_count 0\n") {
		t.Errorf("log appends, syncs or commits not timed:\n%s", text)
	}
	// The state machine has no WAL of its own (the Raft log is its durable
	// copy); the log's WAL holds at least the create.
	if !strings.Contains(text, `irx_pebble_wal_written_bytes_total{db="state"} 0`+"\n") ||
		strings.Contains(text, `irx_pebble_wal_written_bytes_total{db="raft"} 0`+"\n") {
		t.Errorf("WAL bytes wrong:\n%s", text)
	}
	if strings.Contains(text, "irx_fsm_applied_index 0\n") || strings.Contains(text, "irx_raft_term 0\n") {
		t.Errorf("positions not exported:\n%s", text)
	}
}
