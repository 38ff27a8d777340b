package fsm

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/irxfed/irx/record"
)

func TestOrderKeyOfANameReversesItsLabels(t *testing.T) {
	for _, d := range []string{"localhost", "evil.example", "a.b.c.d.example", "xn--bcher-kva.example"} {
		n := record.Normalized{Kind: record.ValueDomain, Domain: d}
		if got, want := string(orderKey(n)), "d"+reverseLabels(d); got != want {
			t.Errorf("orderKey(%q) = %q, want %q", d, got, want)
		}
	}
	addr := netip.MustParseAddr("2001:db8::1")
	n := record.Normalized{Kind: record.ValueIP, Prefix: netip.PrefixFrom(addr, 128)}
	if got, want := orderKey(n), append([]byte("i6"), addr.AsSlice()...); !slices.Equal(got, want) {
		t.Errorf("orderKey(%v) = %x, want %x", addr, got, want)
	}
	long := record.Normalized{Kind: record.ValueDomain, Domain: strings.Repeat("a.", 127) + "example"}
	if got := orderKey(long); got != nil {
		t.Errorf("a name of %d bytes has the ordered key %q; want none (longer than the arena holds)", len(long.Domain), got)
	}
}

// The memory of held values against a plain map: random adds and removes
// of addresses and names, through enough removals that the arena is
// compacted several times; after each phase the elements, their order,
// counts and journal positions, and the range queries agree with the map.
func TestHeldValuesMatchAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	values := make([]record.Normalized, 0, 60000)
	for i := range 30000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(r.IntN(4))})
		values = append(values, record.Normalized{Kind: record.ValueIP, Prefix: netip.PrefixFrom(addr, 32)})
		d := fmt.Sprintf("host%d.zone%d.example", i, i%50)
		values = append(values, record.Normalized{Kind: record.ValueDomain, Domain: d})
	}
	h := newHeldValues()
	model := map[string]heldCount{}
	check := func(phase string) {
		t.Helper()
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var got []string
		h.each(func(k []byte, c heldCount) bool {
			if model[string(k)] != c {
				t.Fatalf("%s: %q counted %+v, want %+v", phase, k, c, model[string(k)])
			}
			got = append(got, string(k))
			return true
		})
		if !slices.Equal(got, keys) {
			t.Fatalf("%s: %d elements in the memory, %d in the map (or out of order)", phase, len(got), len(keys))
		}
		for range 50 {
			v := values[r.IntN(len(values))]
			if got, want := h.count(v, valueKey(v)), model[string(orderKey(v))]; got != want {
				t.Fatalf("%s: count(%v) = %+v, want %+v", phase, v, got, want)
			}
		}
		p := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", r.IntN(120)))
		var wantAddrs []netip.Addr
		for _, k := range keys {
			if a, ok := netip.AddrFromSlice([]byte(k[2:])); k[0] == 'i' && ok && p.Contains(a) {
				wantAddrs = append(wantAddrs, a)
			}
		}
		if got := h.addrsIn(p, 1<<20); !slices.Equal(got, wantAddrs) {
			t.Fatalf("%s: addrsIn(%v) = %d addresses, want %d", phase, p, len(got), len(wantAddrs))
		}
		zone := fmt.Sprintf("zone%d.example", r.IntN(50))
		var wantNames []string
		for _, k := range keys {
			if k[0] == 'd' && strings.HasSuffix(reverseLabels(k[1:]), "."+zone) {
				wantNames = append(wantNames, reverseLabels(k[1:]))
			}
		}
		if got := h.namesUnder(zone, 1<<20); !slices.Equal(got, wantNames) {
			t.Fatalf("%s: namesUnder(%s) = %d names, want %d", phase, zone, len(got), len(wantNames))
		}
		if got := h.namesUnder(zone, 3); len(got) != min(3, len(wantNames)) {
			t.Fatalf("%s: namesUnder with limit 3 gave %d", phase, len(got))
		}
	}
	// As correlation does: a value's first holder has a journal position,
	// which a removal clears when it is that holder's (here: at random).
	apply := func(v record.Normalized, add bool) {
		k := string(orderKey(v))
		was := model[k]
		if add {
			pos := r.Uint64N(1<<40) + 1
			if got := h.add(v, valueKey(v), pos); got != was {
				t.Fatalf("add(%v) = %+v, want %+v", v, got, was)
			}
			now := heldCount{count: was.count + 1, journal: was.journal}
			if now.count == 1 {
				now.journal = pos
			}
			model[k] = now
			return
		}
		if was.count == 0 {
			return
		}
		if got := h.remove(v, valueKey(v)); got != was {
			t.Fatalf("remove(%v) = %+v, want %+v", v, got, was)
		}
		switch {
		case was.count == 1:
			delete(model, k)
		case was.journal != 0 && r.IntN(2) == 0:
			h.setJournal(v, valueKey(v), 0)
			model[k] = heldCount{count: was.count - 1}
		default:
			model[k] = heldCount{count: was.count - 1, journal: was.journal}
		}
	}
	for _, v := range values {
		apply(v, true)
		if r.IntN(3) == 0 {
			apply(v, true)
		}
	}
	check("filled")
	compactions := 0
	for round := range 6 {
		// Only a compaction lowers the dead bytes; the count can miss
		// one that more removals made up for by the round's end.
		dead := h.arena.dead
		for range 80000 {
			apply(values[r.IntN(len(values))], r.IntN(3) == 0)
		}
		if h.arena.dead < dead {
			compactions++
		}
		check(fmt.Sprintf("round %d", round))
	}
	for _, v := range values {
		for model[string(orderKey(v))].count > 0 {
			apply(v, false)
		}
	}
	check("emptied")
	if h.tree.Len() != 0 || h.arena.live != 0 {
		t.Fatalf("emptied memory holds %d elements, %d live bytes", h.tree.Len(), h.arena.live)
	}
	if compactions == 0 {
		t.Fatal("the arena was never compacted: the test does not reach compact")
	}
	// Kinds without an order are counted by their value key alone.
	url := record.Normalized{Kind: record.ValueURL, Text: "url:https://c2.example/x"}
	digest := record.Normalized{Kind: record.ValueHash, Text: "hash:" + strings.Repeat("ab", 32)}
	for range 3 {
		h.add(url, valueKey(url), 0)
	}
	h.add(digest, valueKey(digest), 0)
	h.remove(url, valueKey(url))
	h.setJournal(digest, valueKey(digest), 42)
	if got := h.count(url, valueKey(url)); got.count != 2 {
		t.Fatalf("url counted %+v, want 2", got)
	}
	if got := h.count(digest, valueKey(digest)); got != (heldCount{count: 1, journal: 42}) {
		t.Fatalf("digest counted %+v, want 1 at journal position 42", got)
	}
	h.remove(digest, valueKey(digest))
	if got := h.count(digest, valueKey(digest)); got.count != 0 || len(h.others) != 1 {
		t.Fatalf("removed digest counted %+v; %d unordered values left, want 1", got, len(h.others))
	}
	if h.tree.Len() != 0 {
		t.Fatal("an unordered kind entered the ordered memory")
	}
}
