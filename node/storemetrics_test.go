package node

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// TestStorageCollector: a real pebble database's flushes and WAL show
// under its name, and a closed one is left out rather than reported as
// zeros.
func TestStorageCollector(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 100 {
		if err := db.Set(fmt.Appendf(nil, "k%03d", i), make([]byte, 1024), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStorageCollector(
		storageSource{name: "log", metrics: db.Metrics},
		storageSource{name: "closed", metrics: func() *pebble.Metrics { return nil }}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "db" && l.GetValue() != "log" {
					t.Errorf("%s reported for %s", f.GetName(), l.GetValue())
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[f.GetName()] = v
		}
	}
	if len(got) != len(storageMetrics()) {
		t.Errorf("%d series, want %d: %v", len(got), len(storageMetrics()), got)
	}
	for _, name := range []string{"irx_pebble_flushes_total", "irx_pebble_flushed_bytes_total", "irx_pebble_wal_written_bytes_total", "irx_pebble_disk_usage_bytes"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v after 100 KiB written and flushed", name, got[name])
		}
	}
	if got["irx_pebble_wal_written_bytes_total"] < 100*1024 {
		t.Errorf("WAL written %v bytes, want at least the 100 KiB set", got["irx_pebble_wal_written_bytes_total"])
	}
	// Zeros compress to almost nothing: the flushed bytes are the tables',
	// not the WAL's counted again.
	if got["irx_pebble_flushed_bytes_total"] >= got["irx_pebble_wal_written_bytes_total"] {
		t.Errorf("flushed %v bytes of 100 KiB of zeros", got["irx_pebble_flushed_bytes_total"])
	}
}
