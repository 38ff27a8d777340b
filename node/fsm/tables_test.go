package fsm

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"
)

// family returns the index of the key family k lies under, or -1.
func family(families [][]byte, k []byte) int {
	for i := len(families) - 1; i >= 0; i-- {
		if bytes.HasPrefix(k, families[i]) {
			return i
		}
	}
	return -1
}

func TestTablesHoldOneKeyFamilyEach(t *testing.T) {
	h := newHarness(t)
	populate(t, h, 3000)
	families := keyFamilies()
	check := func(stage string) {
		t.Helper()
		levels, err := h.f.db.SSTables()
		if err != nil {
			t.Fatal(err)
		}
		tables := 0
		for level, ts := range levels {
			for _, tb := range ts {
				tables++
				lo, hi := family(families, tb.Smallest.UserKey), family(families, tb.Largest.UserKey)
				if lo < 0 || lo != hi {
					t.Errorf("%s: L%d table %s spans %q .. %q", stage, level, tb.FileNum, tb.Smallest.UserKey, tb.Largest.UserKey)
				}
			}
		}
		// Creates write inc/, ver/, feed/, req/, m/ and four indexes at least.
		if tables < 9 {
			t.Errorf("%s: %d tables, want one per family written", stage, tables)
		}
	}
	if err := h.f.db.Flush(); err != nil {
		t.Fatal(err)
	}
	check("after a flush")
	if err := h.f.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	check("after a compaction")
	if n := len(dump(t, h.f)); n == 0 {
		t.Fatal("no keys")
	}
}

func TestSplitTablesAtFamiliesEndsAtTheNextFamily(t *testing.T) {
	families := keyFamilies()
	if !slices.IsSortedFunc(families, bytes.Compare) {
		t.Fatalf("families not sorted: %q", families)
	}
	split := splitTablesAtFamilies(families)
	rapid.Check(t, func(t *rapid.T) {
		var start []byte
		if rapid.Bool().Draw(t, "under a family") {
			f := rapid.SampledFrom(families).Draw(t, "family")
			start = append(bytes.Clone(f), rapid.SliceOfN(rapid.Byte(), 0, 12).Draw(t, "rest")...)
		} else {
			start = rapid.SliceOfN(rapid.Byte(), 0, 12).Draw(t, "key")
		}
		_, end, err := split(start)
		if err != nil {
			t.Fatal(err)
		}
		// end is the first family start after start; none lies between.
		var want []byte
		for _, f := range families {
			if bytes.Compare(f, start) > 0 {
				want = f
				break
			}
		}
		if !bytes.Equal(end, want) {
			t.Fatalf("split(%q) ends at %q, want %q", start, end, want)
		}
	})
}

// The writes of a batch nothing reads are added in key order; the batch
// must still leave what adding them in the order made would.
func TestSortedWritesLeaveWhatOrderedWritesWould(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		type op struct {
			del        bool
			key, value []byte
		}
		// Keys under the families and between them, so writes are dealt
		// into several buckets.
		families := keyFamilies()
		key := rapid.Custom(func(t *rapid.T) []byte {
			rest := rapid.SliceOfN(rapid.Byte(), 1, 4).Draw(t, "rest")
			if rapid.Bool().Draw(t, "under a family") {
				return append(bytes.Clone(rapid.SampledFrom(families).Draw(t, "family")), rest...)
			}
			return rest
		})
		keys := rapid.SliceOfNDistinct(key, 1, 12, func(k []byte) string { return string(k) }).Draw(t, "keys")
		ops := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) op {
			return op{
				del:   rapid.IntRange(0, 4).Draw(t, "kind") == 0,
				key:   rapid.SampledFrom(keys).Draw(t, "key"),
				value: rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "value"),
			}
		}), 1, 40).Draw(t, "ops")
		state := func(sorted bool) map[string]string {
			db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			b := db.NewBatch()
			a := applier{fsm: &FSM{families: keyFamilies()}, batch: b, sorted: sorted}
			for _, o := range ops {
				if o.del {
					a.del(o.key)
				} else {
					a.set(o.key, o.value)
				}
			}
			a.writePending()
			if a.err != nil {
				t.Fatal(a.err)
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			it, err := db.NewIter(nil)
			if err != nil {
				t.Fatal(err)
			}
			for ok := it.First(); ok; ok = it.Next() {
				out[string(it.Key())] = string(it.Value())
			}
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got, want := state(true), state(false); !maps.Equal(got, want) {
			t.Fatalf("sorted writes left %q, in order %q", got, want)
		}
	})
}

func TestInKeyOrderSortsByKeyThenByOrderMade(t *testing.T) {
	families := keyFamilies()
	rapid.Check(t, func(t *rapid.T) {
		key := rapid.Custom(func(t *rapid.T) []byte {
			rest := rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "rest")
			if rapid.Bool().Draw(t, "under a family") {
				return append(bytes.Clone(rapid.SampledFrom(families).Draw(t, "family")), rest...)
			}
			return rest
		})
		keys := rapid.SliceOfN(key, 1, 60).Draw(t, "keys")
		writes := make([]pendingSet, len(keys))
		for i, k := range keys {
			writes[i] = pendingSet{key: k, seq: i}
		}
		got := inKeyOrder(slices.Clone(writes), families)
		want := slices.Clone(writes)
		slices.SortStableFunc(want, func(x, y pendingSet) int { return bytes.Compare(x.key, y.key) })
		if len(got) != len(want) {
			t.Fatalf("%d writes out of %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i].key, want[i].key) || got[i].seq != want[i].seq {
				t.Fatalf("write %d is %q (made %d), want %q (made %d)", i, got[i].key, got[i].seq, want[i].key, want[i].seq)
			}
		}
	})
}
