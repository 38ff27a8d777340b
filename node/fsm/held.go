package fsm

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"

	"github.com/tidwall/btree"

	"github.com/irxfed/irx/record"
)

// heldValues is the memory of the addresses and names the index holds:
// how many index keys hold each, in an order where the addresses in a
// prefix, and the names under a name, are neighbours. An element is "i",
// the address's family and bytes, or "d" and the name's labels in reverse
// ("example.evil.c2"). It is derived from the index alone (opened,
// restored, or as entries apply), so it is the same on every node, and
// costs memory per distinct value, not per record that holds one. Only
// raft's FSM goroutine uses it.
//
// A store can hold millions of distinct values, so the memory holds no Go
// pointer per value: the elements live in an arena of large byte chunks,
// and the tree orders references into it. The garbage collector then
// scans neither (a tree of a million strings was a million objects to
// mark in every cycle, and about twice the bytes).
type heldValues struct {
	tree  *btree.BTreeG[heldRef]
	arena heldArena
	// others counts the values that need no order (digests, URLs, e-mail
	// addresses, prefixes, pseudonyms, and a name too long for the
	// arena) by their value key: every kind has a count, so a value no
	// record holds yet never costs a read of the index.
	others map[heldDigest]uint32
	// probe is the element that probeRef stands for in a comparison: the
	// key of a lookup, which is not in the arena.
	probe []byte
}

// A heldDigest is a value key (valueKey) without its kind byte.
type heldDigest [16]byte

func heldDigestOf(vk []byte) (d heldDigest) {
	copy(d[:], vk[1:])
	return d
}

// A heldRef locates an element in the arena: chunk<<heldChunkBits | offset.
type heldRef uint64

const probeRef heldRef = math.MaxUint64

// An element in the arena is its count (4 bytes), its length (1 byte; an
// ordered key is at most 1 + 253 bytes) and its bytes. A chunk is never
// reallocated, so references stay valid until the arena is compacted.
const (
	heldChunkBits = 20
	heldChunkSize = 1 << heldChunkBits
	heldHeader    = 5
)

type heldArena struct {
	chunks [][]byte
	live   int // bytes of elements the tree refers to
	dead   int // bytes of removed elements, until a compaction
}

func newHeldValues() *heldValues {
	h := &heldValues{others: map[heldDigest]uint32{}}
	h.tree = h.newTree()
	return h
}

func (h *heldValues) newTree() *btree.BTreeG[heldRef] {
	return btree.NewBTreeGOptions(func(a, b heldRef) bool {
		return bytes.Compare(h.bytesOf(a), h.bytesOf(b)) < 0
	}, btree.Options{NoLocks: true})
}

// bytesOf is the ordered key of ref.
func (h *heldValues) bytesOf(ref heldRef) []byte {
	if ref == probeRef {
		return h.probe
	}
	return h.arena.key(ref)
}

// key is the ordered key of the element at ref.
func (a *heldArena) key(ref heldRef) []byte {
	chunk, off := a.chunks[ref>>heldChunkBits], int(ref&(heldChunkSize-1))
	n := int(chunk[off+4])
	return chunk[off+heldHeader : off+heldHeader+n]
}

// countAt is the count stored with the element at ref, to read or write.
func (a *heldArena) countAt(ref heldRef) []byte {
	off := int(ref & (heldChunkSize - 1))
	return a.chunks[ref>>heldChunkBits][off : off+4]
}

// find returns the reference of the element k, if held.
func (h *heldValues) find(k []byte) (heldRef, bool) {
	h.probe = k
	ref, ok := h.tree.Get(probeRef)
	h.probe = nil
	return ref, ok
}

// put appends element k with count 1 to the arena.
func (a *heldArena) put(k []byte) heldRef {
	size := heldHeader + len(k)
	last := len(a.chunks) - 1
	if last < 0 || len(a.chunks[last])+size > heldChunkSize {
		a.chunks = append(a.chunks, make([]byte, 0, heldChunkSize))
		last++
	}
	chunk := a.chunks[last]
	ref := heldRef(last)<<heldChunkBits | heldRef(len(chunk))
	chunk = binary.BigEndian.AppendUint32(chunk, 1)
	chunk = append(append(chunk, byte(len(k))), k...)
	a.chunks[last] = chunk
	a.live += size
	return ref
}

// orderKey is the ordered form of an address or a name; nil for other
// kinds, and for a key longer than the arena's one-byte length holds.
func orderKey(n record.Normalized) []byte {
	var k []byte
	switch n.Kind {
	case record.ValueIP:
		k = append([]byte{'i', addrFamily(n.Prefix.Addr())}, n.Prefix.Addr().AsSlice()...)
	case record.ValueDomain:
		k = append([]byte{'d'}, reverseLabels(n.Domain)...)
	}
	if len(k) > math.MaxUint8 {
		return nil
	}
	return k
}

// add counts one more index key of n, whose value key is vk, and returns
// the count; remove counts one fewer.
func (h *heldValues) add(n record.Normalized, vk []byte) int {
	k := orderKey(n)
	if k == nil {
		d := heldDigestOf(vk)
		h.others[d]++
		return int(h.others[d])
	}
	if ref, ok := h.find(k); ok {
		c := h.arena.countAt(ref)
		count := binary.BigEndian.Uint32(c) + 1
		binary.BigEndian.PutUint32(c, count)
		return int(count)
	}
	h.tree.Set(h.arena.put(k))
	return 1
}

func (h *heldValues) remove(n record.Normalized, vk []byte) {
	k := orderKey(n)
	if k == nil {
		d := heldDigestOf(vk)
		if h.others[d] > 1 {
			h.others[d]--
		} else {
			delete(h.others, d)
		}
		return
	}
	ref, ok := h.find(k)
	if !ok {
		return
	}
	c := h.arena.countAt(ref)
	if count := binary.BigEndian.Uint32(c); count > 1 {
		binary.BigEndian.PutUint32(c, count-1)
		return
	}
	h.probe = k
	h.tree.Delete(probeRef)
	h.probe = nil
	size := heldHeader + len(k)
	h.arena.live -= size
	h.arena.dead += size
	if h.arena.dead > heldChunkSize && h.arena.dead > h.arena.live {
		h.compact()
	}
}

// compact copies the live elements into a new arena, in order, and
// rebuilds the tree over it: removals leave their bytes behind until then.
func (h *heldValues) compact() {
	var fresh heldArena
	refs := make([]heldRef, 0, h.tree.Len())
	h.tree.Scan(func(ref heldRef) bool {
		r := fresh.put(h.arena.key(ref))
		copy(fresh.countAt(r), h.arena.countAt(ref))
		refs = append(refs, r)
		return true
	})
	h.arena = fresh
	h.tree = h.newTree()
	for _, r := range refs {
		h.tree.Load(r) // in order: appended at the right edge
	}
}

// count is how many index keys hold n, whose value key is vk.
func (h *heldValues) count(n record.Normalized, vk []byte) int {
	k := orderKey(n)
	if k == nil {
		return int(h.others[heldDigestOf(vk)])
	}
	ref, ok := h.find(k)
	if !ok {
		return 0
	}
	return int(binary.BigEndian.Uint32(h.arena.countAt(ref)))
}

// ascend calls fn with the elements from lower on, in order, until fn
// returns false. fn must not change the memory.
func (h *heldValues) ascend(lower []byte, fn func(k []byte) bool) {
	h.probe = lower
	h.tree.Ascend(probeRef, func(ref heldRef) bool {
		return fn(h.bytesOf(ref))
	})
	h.probe = nil
}

// each calls fn with every element kept in order and its count, in order.
func (h *heldValues) each(fn func(k []byte, count int) bool) {
	h.tree.Scan(func(ref heldRef) bool {
		return fn(h.bytesOf(ref), int(binary.BigEndian.Uint32(h.arena.countAt(ref))))
	})
}

// addrsIn returns up to limit of the addresses held in p, in order.
func (h *heldValues) addrsIn(p netip.Prefix, limit int) []netip.Addr {
	first, last := p.Masked().Addr(), lastAddr(p)
	fam := addrFamily(first)
	lower := append([]byte{'i', fam}, first.AsSlice()...)
	upper := append([]byte{'i', fam}, last.AsSlice()...)
	size := first.BitLen() / 8
	var out []netip.Addr
	h.ascend(lower, func(k []byte) bool {
		if len(k) != 2+size || bytes.Compare(k, upper) > 0 || len(out) == limit {
			return false
		}
		if addr, ok := netip.AddrFromSlice(k[2:]); ok {
			out = append(out, addr)
		}
		return true
	})
	return out
}

// namesUnder returns up to limit of the names held under d, in the order
// of their reversed labels.
func (h *heldValues) namesUnder(d string, limit int) []string {
	lower := []byte("d" + reverseLabels(d) + ".")
	var out []string
	h.ascend(lower, func(k []byte) bool {
		if !bytes.HasPrefix(k, lower) || len(out) == limit {
			return false
		}
		out = append(out, reverseLabels(string(k[1:])))
		return true
	})
	return out
}
