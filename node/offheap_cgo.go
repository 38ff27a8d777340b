//go:build cgo

package node

// pebbleOffHeap: in a build with cgo, pebble allocates its block caches and
// memtables with C's calloc, outside the Go heap, where Go's memory limit
// does not see them (pebble's internal/manual).
const pebbleOffHeap = true
