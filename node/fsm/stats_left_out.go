//go:build irx_bench_without_statistics

package fsm

// A build for the load tool's paired runs only: see stats_maintained.go.
const maintainStatistics = false
