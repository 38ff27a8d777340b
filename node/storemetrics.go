package node

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// storageCollector exports what pebble knows about each of the node's two
// databases, the Raft log ("raft") and the state machine ("state"), read at
// scrape time: how much each flushes and compacts (where ingest's disk
// and CPU go), and the signs of a store falling behind (compaction debt,
// L0 sublevels, read amplification) before writes stall. A state machine
// database replaced by a snapshot restore starts its counters again, which
// Prometheus's rate() treats as a reset.
type storageCollector struct {
	dbs     []storageSource
	metrics []storageMetric
}

// storageSource is one database; metrics returns nil while it is closed.
type storageSource struct {
	name    string
	metrics func() *pebble.Metrics
}

type storageMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(m *pebble.Metrics) float64
}

func storageMetrics() []storageMetric {
	metric := func(kind prometheus.ValueType) func(name, help string, f func(m *pebble.Metrics) float64) storageMetric {
		return func(name, help string, f func(m *pebble.Metrics) float64) storageMetric {
			return storageMetric{prometheus.NewDesc(name, help, []string{"db"}, nil), kind, f}
		}
	}
	counter, gauge := metric(prometheus.CounterValue), metric(prometheus.GaugeValue)
	return []storageMetric{
		counter("irx_pebble_flushes_total", "Memtable flushes.",
			func(m *pebble.Metrics) float64 { return float64(m.Flush.Count) }),
		counter("irx_pebble_flushed_bytes_total", "Bytes written to tables by memtable flushes.",
			func(m *pebble.Metrics) float64 {
				return levelSum(m, func(l *pebble.LevelMetrics) uint64 { return l.TableBytesFlushed + l.BlobBytesFlushed })
			}),
		counter("irx_pebble_compactions_total", "Compactions finished.",
			func(m *pebble.Metrics) float64 { return float64(m.Compact.Count) }),
		counter("irx_pebble_compacted_bytes_total", "Bytes written to tables by compactions.",
			func(m *pebble.Metrics) float64 {
				return levelSum(m, func(l *pebble.LevelMetrics) uint64 { return l.TableBytesCompacted + l.BlobBytesCompacted })
			}),
		counter("irx_pebble_wal_written_bytes_total", "Bytes written to the write-ahead log (the state machine has none: the Raft log is its durable copy).",
			func(m *pebble.Metrics) float64 { return float64(m.WAL.BytesWritten) }),
		counter("irx_pebble_block_cache_hits_total", "Block cache hits.",
			func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Hits) }),
		counter("irx_pebble_block_cache_misses_total", "Block cache misses (reads from the file system).",
			func(m *pebble.Metrics) float64 { return float64(m.BlockCache.Misses) }),
		gauge("irx_pebble_compaction_debt_bytes", "Estimated bytes compactions must rewrite to bring the levels into shape; a debt that keeps growing ends in write stalls.",
			func(m *pebble.Metrics) float64 { return float64(m.Compact.EstimatedDebt) }),
		gauge("irx_pebble_compactions_in_progress", "Compactions running now.",
			func(m *pebble.Metrics) float64 { return float64(m.Compact.NumInProgress) }),
		gauge("irx_pebble_l0_sublevels", "Sublevels in L0; pebble stalls writes when they pile up.",
			func(m *pebble.Metrics) float64 { return float64(m.Levels[0].Sublevels) }),
		gauge("irx_pebble_read_amplification", "Tables a point read may have to consult (L0 sublevels plus non-empty levels).",
			func(m *pebble.Metrics) float64 { return float64(m.ReadAmp()) }),
		gauge("irx_pebble_memtable_bytes", "Bytes allocated to memtables, flushing ones included.",
			func(m *pebble.Metrics) float64 { return float64(m.MemTable.Size) }),
		gauge("irx_pebble_disk_usage_bytes", "Bytes the database uses on disk (tables, WAL, manifest, obsolete files not yet deleted).",
			func(m *pebble.Metrics) float64 { return float64(m.DiskSpaceUsage()) }),
	}
}

// levelSum adds f over the levels. Not Metrics.Total: its flushed bytes
// include what went to the WAL.
func levelSum(m *pebble.Metrics, f func(*pebble.LevelMetrics) uint64) float64 {
	var sum uint64
	for i := range m.Levels {
		sum += f(&m.Levels[i])
	}
	return float64(sum)
}

func newStorageCollector(dbs ...storageSource) *storageCollector {
	return &storageCollector{dbs: dbs, metrics: storageMetrics()}
}

// Describe implements prometheus.Collector.
func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector. A closed database is left out.
func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, db := range c.dbs {
		pm := db.metrics()
		if pm == nil {
			continue
		}
		for _, m := range c.metrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(pm), db.name)
		}
	}
}
