//go:build !irx_bench_without_statistics

package fsm

// maintainStatistics is false only in a build for the load tool's paired
// runs (go run ./test/bench paired -without statistics), which measure what
// keeping the statistics costs ingest by running irxd with and without it.
// A node built so answers GetStatistics with zeros; it is never shipped.
const maintainStatistics = true
