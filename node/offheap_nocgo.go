//go:build !cgo

package node

// pebbleOffHeap: without cgo (the static binary of the container image),
// pebble's block caches and memtables are Go slices, inside the heap that
// Go's memory limit bounds.
const pebbleOffHeap = false
