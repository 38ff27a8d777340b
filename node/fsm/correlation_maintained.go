//go:build !irx_bench_without_correlation

package fsm

// maintainCorrelation is false only in a build for the load tool's paired
// runs (go run ./test/bench paired -without correlation), which measure what
// correlating every record's values (and the sightings made from them)
// costs ingest. A node built so raises no alerts; it is never shipped.
const maintainCorrelation = true
