package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/node/raftstore"
)

// metrics is the node's Prometheus registry: its own, not the global one,
// so several nodes can live in one process (tests) and nothing registers
// itself behind our back.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	apply    prometheus.Histogram
	// logAppend, logSync and commit say where a write's time goes. A
	// follower's append is written and synced before it answers; the
	// leader's returns once written, and its sync (logSync) runs while the
	// followers write theirs.
	logAppend prometheus.Histogram
	logSync   prometheus.Histogram
	commit    prometheus.Histogram
	// statsCells and statsLatency are the statistics' own cost: the
	// stored cells a GetStatistics call read, and its time.
	statsCells   prometheus.Histogram
	statsLatency prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_grpc_requests_total", Help: "gRPC calls served, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "irx_grpc_request_duration_seconds", Help: "Time to serve a gRPC call, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "irx_fsm_apply_batch_seconds", Help: "Time to apply one group of committed Raft entries to the state machine.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		logAppend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "irx_raft_log_append_seconds", Help: "Time to append entries to this node's Raft log: written and synced on a follower, written on the leader (see irx_raft_log_sync_seconds).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		logSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "irx_raft_log_sync_seconds", Help: "On the leader, time to sync the entries it appended to its Raft log, which runs while the followers store them.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "irx_raft_commit_seconds", Help: "On the leader, time from handing a group of writes to Raft until a quorum has stored it and it is applied; writes that fail (timeout, lost leadership) are not counted.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		statsCells: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "irx_statistics_cells_read", Help: "Stored statistics cells one GetStatistics call read: its cost, which grows with the periods and the combinations of dimensions asked for, not with the incidents.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 12),
		}),
		statsLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "irx_statistics_query_seconds", Help: "Time to read the cells of one GetStatistics call from the state machine.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.apply, m.logAppend, m.logSync, m.commit, m.statsCells, m.statsLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// statisticsQuery records the cost of one statistics query.
func (m *metrics) statisticsQuery(cells int, took time.Duration) {
	m.statsCells.Observe(float64(cells))
	m.statsLatency.Observe(took.Seconds())
}

// watchNode exports the node's Raft and state machine positions, read at
// scrape time.
func (m *metrics) watchNode(n *Node) {
	gauge := func(name, help string, f func() float64) {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("irx_raft_leader", "1 when this node is the leader.", func() float64 { return b2f(n.raft.State() == raft.Leader) })
	gauge("irx_raft_has_leader", "1 when this node knows a leader.", func() float64 { addr, _ := n.raft.LeaderWithID(); return b2f(addr != "") })
	gauge("irx_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) })
	gauge("irx_raft_commit_index", "Last committed Raft index known to this node.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("irx_raft_last_index", "Last index in this node's Raft log.", func() float64 { return float64(n.raft.LastIndex()) })
	gauge("irx_fsm_applied_index", "Last Raft index applied to the state machine.", func() float64 { return float64(n.state.AppliedIndex()) })
	gauge("irx_fsm_last_ticket", "Last ticket the team assigned.", func() float64 { return float64(n.state.LastTicket()) })
	gauge("irx_feed_sequence", "Last sequence number of the team's feed.", func() float64 { return float64(n.state.FeedSequence()) })
	counter := func(name, help string, f func() float64) {
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	counter("irx_alerts_raised_total", "Alerts this node's state machine raised (a value two records the team holds share) since the node started.",
		func() float64 { r, _ := n.state.AlertCounts(); return float64(r) })
	counter("irx_alert_changes_total", "Alert changes (raised, grown, closed, acknowledged) this node's state machine applied since the node started.",
		func() float64 { _, c := n.state.AlertCounts(); return float64(c) })
	hooks := func(pick func(delivered, failures, dead uint64) uint64) func() float64 {
		return func() float64 {
			if n.webhooks == nil {
				return 0
			}
			return float64(pick(n.webhooks.Counts()))
		}
	}
	counter("irx_webhook_delivered_total", "Alerts and warnings posted to a webhook and answered 2xx, by this node while it led.",
		hooks(func(d, _, _ uint64) uint64 { return d }))
	counter("irx_webhook_failed_attempts_total", "Webhook posts that failed (and were retried, or gave up).",
		hooks(func(_, f, _ uint64) uint64 { return f }))
	counter("irx_webhook_dead_letters_total", "Alerts and warnings dropped: every attempt failed, or the endpoint's queue was full.",
		hooks(func(_, _, x uint64) uint64 { return x }))
	gauge("irx_storage_refusing_writes", "1 while this node refuses writes because of its disks (space below the reserve, a stalled write, a corrupt file).",
		func() float64 { return b2f(n.storageProblem() != nil) })
	for _, d := range []struct{ label, name string }{{"raft", "raft log"}, {"state", "state machine"}} {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "irx_disk_free_bytes", Help: "Bytes available to the node on the file system of its Raft log (disk=raft) or state machine (disk=state), as last polled.",
			ConstLabels: prometheus.Labels{"disk": d.label},
		}, func() float64 {
			for _, s := range n.disks.Status() {
				if s.Name == d.name {
					return float64(s.Free)
				}
			}
			return 0
		}))
	}
	m.registry.MustRegister(newStorageCollector(
		storageSource{name: "raft", metrics: n.logs.StorageMetrics},
		storageSource{name: "state", metrics: n.state.StorageMetrics}))
}

// RegisterMetrics adds collectors (federation's) to the node's Prometheus
// endpoint.
func (n *Node) RegisterMetrics(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := n.metrics.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unary records every call's method, code and duration.
func (m *metrics) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		method := strings.TrimPrefix(info.FullMethod, "/")
		m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
		m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// measuredFSM times each batch raft applies.
type measuredFSM struct {
	*fsm.FSM
	apply prometheus.Histogram
}

func (f measuredFSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	defer func() { f.apply.Observe(time.Since(start).Seconds()) }()
	return f.FSM.ApplyBatch(logs)
}

func (f measuredFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// measuredLogStore times each append to the Raft log.
type measuredLogStore struct {
	*raftstore.Store
	append prometheus.Histogram
}

func (s measuredLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	defer func() { s.append.Observe(time.Since(start).Seconds()) }()
	return s.Store.StoreLogs(logs)
}

func (s measuredLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// serveMetrics serves /metrics on addr until the node closes.
func (n *Node) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.registry, promhttp.HandlerOpts{}))
	n.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.metricsListener = ln
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.metricsServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Warn("metrics server stopped", slog.Any("error", err))
		}
	}()
	return nil
}
