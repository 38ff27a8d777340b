//go:build irx_bench_without_correlation

package fsm

// A build for the load tool's paired runs only: see correlation_maintained.go.
const maintainCorrelation = false
