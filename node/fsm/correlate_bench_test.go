package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// BenchmarkCorrelationApply applies entries of 64 evaluated creates of
// the ~1 KiB benchmark incident to a state machine whose correlation index
// already holds -corr.preload distinct values (1,000,000 by default, 100
// to a record), so that what correlation costs per create is measured
// against a large index:
//
//   - unique: every create's five values (two attacking addresses, an
//     address, a digest and a domain indicator) are held by no other record;
//   - shared: every create holds the same values (the campaign case: the
//     alerts saturate after 100 records);
//   - none: the same incident without attacking hosts or indicators, so
//     correlation finds nothing to index: the apply path without its work.
//
// One op is one entry. With -corr.profile DIR each case writes its CPU
// profile (without the preload) to DIR/<case>.pprof; correlation's share
// of the apply is then (*applier).correlate's cumulative time over
// (*FSM).ApplyBatch's.
func BenchmarkCorrelationApply(b *testing.B) {
	f := openFSM(b, b.TempDir())
	var index uint64
	preloadValues(b, f, &index, *preloadFlag)
	for _, c := range []struct {
		name   string
		values func(n uint64) *irxv1.Incident
	}{
		{"none", func(uint64) *irxv1.Incident { return valuelessBenchIncident() }},
		{"unique", uniqueBenchIncident},
		{"shared", func(uint64) *irxv1.Incident { return benchIncident() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			const batch = 64
			var made uint64
			b.ReportAllocs()
			defer profileTo(b, *profileDir, c.name)()
			for b.Loop() {
				b.StopTimer()
				l := createEntry(b, &index, batch, func() *irxv1.Incident { made++; return c.values(made) })
				b.StartTimer()
				for _, r := range asResult(b, f.ApplyBatch([]*raft.Log{l})[0]).Batch {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(made)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

var profileDir = flag.String("corr.profile", "", "directory BenchmarkCorrelationApply writes a CPU profile of each case to")

// profileTo profiles the CPU into dir/name.pprof until the returned
// function is called; with no dir it does nothing.
func profileTo(b *testing.B, dir, name string) func() {
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

var preloadFlag = flag.Uint64("corr.preload", 1_000_000, "distinct values BenchmarkCorrelationApply indexes before it measures")

// preloadValues applies records of 100 distinct values each until the
// index holds n values: addresses, names and digests in turn.
func preloadValues(b *testing.B, f *FSM, index *uint64, n uint64) {
	b.Helper()
	const perRecord, batch = 100, 64
	var g uint64
	next := func() *irxv1.Incident {
		inc := newIncident()
		for range perRecord {
			if g >= n {
				break
			}
			inc.Indicators = append(inc.Indicators, preloadIndicator(g))
			g++
		}
		return inc
	}
	for g < n {
		l := createEntry(b, index, batch, next)
		for _, r := range asResult(b, f.ApplyBatch([]*raft.Log{l})[0]).Batch {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.Logf("preloaded %d distinct values in %d records", n, f.LastTicket())
}

func preloadIndicator(g uint64) *irxv1.Indicator {
	switch g % 3 {
	case 0:
		return &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: nthAddr(netip.MustParseAddr("10.0.0.0"), g).String()}
	case 1:
		return &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: fmt.Sprintf("h%d.preload.example", g)}
	}
	sum := sha256.Sum256([]byte(fmt.Sprint(g)))
	return &irxv1.Indicator{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: hex.EncodeToString(sum[:])}
}

// nthAddr is base plus n, within base's family.
func nthAddr(base netip.Addr, n uint64) netip.Addr {
	a := base.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// uniqueBenchIncident is benchIncident with values no other record holds.
func uniqueBenchIncident(n uint64) *irxv1.Incident {
	inc := benchIncident()
	a1, a2 := nthAddr(netip.MustParseAddr("172.16.0.0"), 2*n), nthAddr(netip.MustParseAddr("172.16.0.0"), 2*n+1)
	inc.AttackingHosts[0].Addresses = []string{a1.String(), a2.String()}
	inc.Indicators[0].Value = a1.String()
	sum := sha256.Sum256([]byte(fmt.Sprint("unique", n)))
	inc.Indicators[1].Value = hex.EncodeToString(sum[:])
	inc.Indicators[2].Value = fmt.Sprintf("u%d.unique.example", n)
	return inc
}

// valuelessBenchIncident is benchIncident without the values correlation
// indexes, its text padded to keep the size.
func valuelessBenchIncident() *irxv1.Incident {
	inc := benchIncident()
	size := proto.Size(inc)
	inc.AttackingHosts, inc.Indicators = nil, nil
	inc.Descriptions[0].Text += strings.Repeat("x", max(0, size-proto.Size(inc)))
	return inc
}

// createEntry is one log entry of batch evaluated creates of next().
func createEntry(b *testing.B, index *uint64, batch int, next func() *irxv1.Incident) *raft.Log {
	b.Helper()
	now := timestamppb.New(t0)
	cmds := make([]*irxv1.Command, batch)
	*index++
	for i := range cmds {
		c := &irxv1.CreateIncidentCommand{Incident: next(), RequestId: fmt.Sprintf("irx-%016x%016x", *index, i), FreshRequestId: true}
		_, data, err := CompleteCreate(team, c.GetIncident(), now)
		if err != nil {
			b.Fatal(err)
		}
		cmds[i] = EvaluatedCreate(c, data)
	}
	data, err := proto.Marshal(&irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: cmds}}})
	if err != nil {
		b.Fatal(err)
	}
	return &raft.Log{Type: raft.LogCommand, Index: *index, Data: data}
}
