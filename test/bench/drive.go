package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/irxfed/irx/test/irxdtest"
)

// dialPool opens conns plaintext connections to each address; client c of
// a run uses connection c mod the pool's size.
func dialPool(addrs []string, conns int) ([]*grpc.ClientConn, func(), error) {
	var pool []*grpc.ClientConn
	closeAll := func() {
		for _, c := range pool {
			_ = c.Close()
		}
	}
	for _, addr := range addrs {
		for range conns {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			pool = append(pool, conn)
		}
	}
	return pool, closeAll, nil
}

// windowHooks run at the edges of the measured window: begin as it opens
// (after the warm-up), end as it closes (before the clients stop).
type windowHooks struct{ begin, end func() error }

// ingestResult is what one measured window of creates gave.
type ingestResult struct {
	measured  time.Duration
	latencies []time.Duration // of the acknowledged creates, sorted
	failures  int64
	lastErr   string
	cpu       *cpuMeter
}

func (r *ingestResult) acked() int { return len(r.latencies) }

func (r *ingestResult) rate() float64 {
	if r.measured <= 0 {
		return 0
	}
	return float64(len(r.latencies)) / r.measured.Seconds()
}

// pct is the latency below which a fraction p of the creates completed.
func (r *ingestResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

// driveCreates runs clients concurrent clients, each creating one incident
// after another over the pool, for warmup and then the measured window, and
// returns the window's figures; the CPU of the started nodes is read over
// the window.
func driveCreates(ctx context.Context, pool []*grpc.ClientConn, request *encoded, started []*irxdtest.Node,
	clients int, warmup, window time.Duration, hooks windowHooks) (*ingestResult, error) {
	var (
		measuring atomic.Bool
		stopping  atomic.Bool
		failures  atomic.Int64
		lastErr   atomic.Value
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, 1<<16)
		wg        sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := pool[c%len(pool)]
			local := make([]time.Duration, 0, 4096)
			for !stopping.Load() {
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				_, err := createEncoded(callCtx, conn, request)
				elapsed := time.Since(start)
				cancel()
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					failures.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				if measuring.Load() {
					local = append(local, elapsed)
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	// The clients stop whatever happens below; an early return must not
	// leave them running against a team the caller is about to stop.
	defer func() { stopping.Store(true); wg.Wait() }()
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
	}
	if hooks.begin != nil {
		if err := hooks.begin(); err != nil {
			return nil, err
		}
	}
	measuring.Store(true)
	began, cpu := time.Now(), startCPU(started)
	select {
	case <-time.After(window):
	case <-ctx.Done():
	}
	measuring.Store(false)
	res := &ingestResult{measured: time.Since(began), cpu: cpu}
	cpu.stop()
	if hooks.end != nil {
		if err := hooks.end(); err != nil {
			return nil, err
		}
	}
	stopping.Store(true)
	wg.Wait()
	slices.Sort(latencies)
	res.latencies, res.failures = latencies, failures.Load()
	if s, ok := lastErr.Load().(string); ok {
		res.lastErr = s
	}
	return res, nil
}
