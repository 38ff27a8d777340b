package fsm

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"strings"

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
	others map[heldDigest]heldCount
	// probe is the element that probeRef stands for in a comparison: the
	// key of a lookup, which is not in the arena; scratch is where lookups
	// make their keys.
	probe, scratch []byte
}

// A heldCount is how many index keys hold a value and where in the
// journal of single holders the key of its first holder is, while that
// record holds it (0: none; see correlate.go).
type heldCount struct {
	count   uint32
	journal uint64
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

// An element in the arena is its count (4 bytes), its journal position
// (8 bytes), its length (1 byte; an ordered key is at most 1 + 253 bytes)
// and its bytes. A chunk is never reallocated, so references stay valid
// until the arena is compacted.
const (
	heldChunkBits = 20
	heldChunkSize = 1 << heldChunkBits
	heldHeader    = 13
)

type heldArena struct {
	chunks [][]byte
	live   int // bytes of elements the tree refers to
	dead   int // bytes of removed elements, until a compaction
}

func newHeldValues() *heldValues {
	h := &heldValues{others: map[heldDigest]heldCount{}}
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
	n := int(chunk[off+heldHeader-1])
	return chunk[off+heldHeader : off+heldHeader+n]
}

// countAt is the count and journal position stored with the element at
// ref.
func (a *heldArena) countAt(ref heldRef) heldCount {
	off := int(ref & (heldChunkSize - 1))
	b := a.chunks[ref>>heldChunkBits][off : off+12]
	return heldCount{count: binary.BigEndian.Uint32(b), journal: binary.BigEndian.Uint64(b[4:])}
}

func (a *heldArena) setCountAt(ref heldRef, c heldCount) {
	off := int(ref & (heldChunkSize - 1))
	b := a.chunks[ref>>heldChunkBits][off : off+12]
	binary.BigEndian.PutUint32(b, c.count)
	binary.BigEndian.PutUint64(b[4:], c.journal)
}

// find returns the reference of the element k, if held, and notes in
// hint the path to it (or to where it belongs).
func (h *heldValues) find(k []byte, hint *btree.PathHint) (heldRef, bool) {
	h.probe = k
	ref, ok := h.tree.GetHint(probeRef, hint)
	h.probe = nil
	return ref, ok
}

// key is n's ordered key (orderKey) in the scratch buffer, valid until
// the next call; nil for a value without order.
func (h *heldValues) key(n record.Normalized) []byte {
	h.scratch = appendOrderKey(h.scratch[:0], n)
	if len(h.scratch) == 0 {
		return nil
	}
	return h.scratch
}

// put appends element k with count c to the arena.
func (a *heldArena) put(k []byte, c heldCount) heldRef {
	size := heldHeader + len(k)
	last := len(a.chunks) - 1
	if last < 0 || len(a.chunks[last])+size > heldChunkSize {
		a.chunks = append(a.chunks, make([]byte, 0, heldChunkSize))
		last++
	}
	chunk := a.chunks[last]
	ref := heldRef(last)<<heldChunkBits | heldRef(len(chunk))
	chunk = binary.BigEndian.AppendUint32(chunk, c.count)
	chunk = binary.BigEndian.AppendUint64(chunk, c.journal)
	chunk = append(append(chunk, byte(len(k))), k...)
	a.chunks[last] = chunk
	a.live += size
	return ref
}

// orderKey is the ordered form of an address or a name; nil for other
// kinds, and for a key longer than the arena's one-byte length holds.
func orderKey(n record.Normalized) []byte {
	k := appendOrderKey(nil, n)
	if len(k) == 0 {
		return nil
	}
	return k
}

// appendOrderKey appends orderKey(n) to dst, nothing where that is nil.
func appendOrderKey(dst []byte, n record.Normalized) []byte {
	start := len(dst)
	switch n.Kind {
	case record.ValueIP:
		a := n.Prefix.Addr()
		dst = append(dst, 'i', addrFamily(a))
		if a.Is4() {
			b := a.As4()
			dst = append(dst, b[:]...)
		} else {
			b := a.As16()
			dst = append(dst, b[:]...)
		}
	case record.ValueDomain:
		dst = appendReversedLabels(append(dst, 'd'), n.Domain)
	default:
		return dst
	}
	if len(dst)-start > math.MaxUint8 {
		return dst[:start]
	}
	return dst
}

// appendReversedLabels appends d with its labels in reverse order
// (reverseLabels) to dst.
func appendReversedLabels(dst []byte, d string) []byte {
	for end := len(d); ; {
		i := strings.LastIndexByte(d[:end], '.')
		dst = append(dst, d[i+1:end]...)
		if i < 0 {
			return dst
		}
		dst = append(dst, '.')
		end = i
	}
}

// add counts one more index key of n, whose value key is vk, and returns
// the count and the journal position as they were before. A value no key
// held before is at journal position journal.
func (h *heldValues) add(n record.Normalized, vk []byte, journal uint64) heldCount {
	k := h.key(n)
	if k == nil {
		d := heldDigestOf(vk)
		was := h.others[d]
		if was.count == 0 {
			h.others[d] = heldCount{count: 1, journal: journal}
		} else {
			h.others[d] = heldCount{count: was.count + 1, journal: was.journal}
		}
		return was
	}
	var hint btree.PathHint
	if ref, ok := h.find(k, &hint); ok {
		was := h.arena.countAt(ref)
		h.arena.setCountAt(ref, heldCount{count: was.count + 1, journal: was.journal})
		return was
	}
	h.tree.SetHint(h.arena.put(k, heldCount{count: 1, journal: journal}), &hint)
	return heldCount{}
}

// remove counts one index key of n fewer and returns the count and the
// journal position as they were before.
func (h *heldValues) remove(n record.Normalized, vk []byte) heldCount {
	k := h.key(n)
	if k == nil {
		d := heldDigestOf(vk)
		was := h.others[d]
		if was.count > 1 {
			h.others[d] = heldCount{count: was.count - 1, journal: was.journal}
		} else {
			delete(h.others, d)
		}
		return was
	}
	var hint btree.PathHint
	ref, ok := h.find(k, &hint)
	if !ok {
		return heldCount{}
	}
	was := h.arena.countAt(ref)
	if was.count > 1 {
		h.arena.setCountAt(ref, heldCount{count: was.count - 1, journal: was.journal})
		return was
	}
	h.probe = k
	h.tree.DeleteHint(probeRef, &hint)
	h.probe = nil
	size := heldHeader + len(k)
	h.arena.live -= size
	h.arena.dead += size
	if h.arena.dead > heldChunkSize && h.arena.dead > h.arena.live {
		h.compact()
	}
	return was
}

// setJournal records where the journal holds the index key of n, a value
// one record holds (0: in the index proper).
func (h *heldValues) setJournal(n record.Normalized, vk []byte, journal uint64) {
	k := h.key(n)
	if k == nil {
		d := heldDigestOf(vk)
		if c, ok := h.others[d]; ok {
			h.others[d] = heldCount{count: c.count, journal: journal}
		}
		return
	}
	if ref, ok := h.find(k, nil); ok {
		c := h.arena.countAt(ref)
		h.arena.setCountAt(ref, heldCount{count: c.count, journal: journal})
	}
}

// compact copies the live elements into a new arena, in order, and
// rebuilds the tree over it: removals leave their bytes behind until then.
func (h *heldValues) compact() {
	var fresh heldArena
	refs := make([]heldRef, 0, h.tree.Len())
	h.tree.Scan(func(ref heldRef) bool {
		refs = append(refs, fresh.put(h.arena.key(ref), h.arena.countAt(ref)))
		return true
	})
	h.arena = fresh
	h.tree = h.newTree()
	for _, r := range refs {
		h.tree.Load(r) // in order: appended at the right edge
	}
}

// count is how many index keys hold n, whose value key is vk, and where
// the journal holds the one key of a value one record holds.
func (h *heldValues) count(n record.Normalized, vk []byte) heldCount {
	if c, ordered := h.countOrdered(n); ordered {
		return c
	}
	return h.others[heldDigestOf(vk)]
}

// countOrdered is count for a value with an order (an address or a
// name), which needs no value key; ordered is false for other values.
func (h *heldValues) countOrdered(n record.Normalized) (c heldCount, ordered bool) {
	k := h.key(n)
	if k == nil {
		return heldCount{}, false
	}
	ref, ok := h.find(k, nil)
	if !ok {
		return heldCount{}, true
	}
	return h.arena.countAt(ref), true
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
func (h *heldValues) each(fn func(k []byte, c heldCount) bool) {
	h.tree.Scan(func(ref heldRef) bool {
		return fn(h.bytesOf(ref), h.arena.countAt(ref))
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
	lower := append(appendReversedLabels([]byte{'d'}, d), '.')
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
