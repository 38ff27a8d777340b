package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// raftTimes are the nodes' Raft timing histograms (sum and count of each,
// per node), read from their /metrics endpoints. Two readings, before and
// after the measured window, say where a write's time went in it: the log
// appends on each node (synced on followers, written on the leader), the
// leader's syncs of what it wrote, its commit wait, and each node's apply
// of committed entries (on the leader, part of the commit wait).
type raftTimes struct {
	addrs []string
	sums  []map[string]float64 // per node, by series name
}

var raftSeries = []string{
	"irx_raft_log_append_seconds_sum", "irx_raft_log_append_seconds_count",
	"irx_raft_log_sync_seconds_sum", "irx_raft_log_sync_seconds_count",
	"irx_raft_commit_seconds_sum", "irx_raft_commit_seconds_count",
	"irx_fsm_apply_batch_seconds_sum", "irx_fsm_apply_batch_seconds_count",
}

// storageSeries are the byte counters reported per create, summed over the
// nodes: what each database writes to disk, by name in the report. They are
// read with raftSeries.
var storageSeries = []struct{ name, series string }{
	{"raft log WAL", `irx_pebble_wal_written_bytes_total{db="raft"}`},
	{"raft log flushes", `irx_pebble_flushed_bytes_total{db="raft"}`},
	{"raft log compactions", `irx_pebble_compacted_bytes_total{db="raft"}`},
	{"state flushes", `irx_pebble_flushed_bytes_total{db="state"}`},
	{"state compactions", `irx_pebble_compacted_bytes_total{db="state"}`},
}

func readRaftTimes(ctx context.Context, addrs []string) (*raftTimes, error) {
	t := &raftTimes{addrs: addrs}
	for _, addr := range addrs {
		m, err := scrape(ctx, addr)
		if err != nil {
			return nil, err
		}
		t.sums = append(t.sums, m)
	}
	return t, nil
}

func scrape(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", addr, resp.Status)
	}
	m := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, value, ok := strings.Cut(lines.Text(), " ")
		if !ok {
			continue
		}
		wanted := slices.Contains(raftSeries, name) ||
			slices.ContainsFunc(storageSeries, func(s struct{ name, series string }) bool { return s.series == name })
		if !wanted {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics of %s: %s: %w", addr, name, err)
		}
		m[name] = v
	}
	return m, lines.Err()
}

// since reports the mean durations between an earlier reading and t.
func (t *raftTimes) since(before *raftTimes) string {
	mean := func(i int, histogram string) (time.Duration, bool) {
		n := t.sums[i][histogram+"_count"] - before.sums[i][histogram+"_count"]
		if n <= 0 {
			return 0, false
		}
		sum := t.sums[i][histogram+"_sum"] - before.sums[i][histogram+"_sum"]
		return time.Duration(sum / n * float64(time.Second)), true
	}
	means := func(histogram string) string {
		var nodes []string
		for i := range t.addrs {
			if d, ok := mean(i, histogram); ok {
				nodes = append(nodes, fmt.Sprintf("node%d %v", i+1, d.Round(time.Microsecond)))
			}
		}
		return strings.Join(nodes, ", ")
	}
	return fmt.Sprintf("raft means: log append %s; leader's log sync %s; leader commit wait %s; apply %s",
		means("irx_raft_log_append_seconds"), means("irx_raft_log_sync_seconds"),
		means("irx_raft_commit_seconds"), means("irx_fsm_apply_batch_seconds"))
}

// storage reports the bytes each database wrote per record between an
// earlier reading and t, summed over the nodes.
func (t *raftTimes) storage(before *raftTimes, records int) string {
	if records == 0 {
		return ""
	}
	var parts []string
	for _, s := range storageSeries {
		var total float64
		for i := range t.addrs {
			total += t.sums[i][s.series] - before.sums[i][s.series]
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", s.name, total/float64(records)))
	}
	return "bytes written per create, all nodes: " + strings.Join(parts, ", ")
}
