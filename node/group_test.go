package node

import (
	"context"
	"slices"
	"testing"
	"time"
)

// testGrouper groups ints; send reports each group and then waits for
// release, so a test decides how long a group holds its slot.
func testGrouper(inFlight int) (g *grouper[int], groups chan []int, release chan struct{}, stop chan struct{}) {
	stop = make(chan struct{})
	g = newGrouper[int](stop, 8, 1<<20, inFlight)
	groups, release = make(chan []int, 16), make(chan struct{})
	g.size = func(int) int { return 1 }
	g.send = func(items []int) {
		groups <- slices.Clone(items)
		<-release
	}
	g.fail = func(int) {}
	return g, groups, release, stop
}

// TestSendAloneWhenIdle: with nothing queued and a slot free, the caller's
// items go at once, as one group of their own, without the grouping
// goroutine (not even started here).
func TestSendAloneWhenIdle(t *testing.T) {
	g, groups, release, stop := testGrouper(2)
	defer close(stop)
	close(release)
	if !g.sendAlone([]int{1, 2}) {
		t.Fatal("idle grouper did not send")
	}
	if got := <-groups; !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("sent %v, want [1 2]", got)
	}
	// The slot came back: the grouper is idle again.
	if !g.sendAlone([]int{3}) {
		t.Fatal("slot not released after the send")
	}
	if got := <-groups; !slices.Equal(got, []int{3}) {
		t.Fatalf("sent %v, want [3]", got)
	}
}

// TestSendAloneDefersToGrouping: while every slot is busy, or items are
// queued, a caller does not go alone; what queued meanwhile leaves as one
// group once a slot frees, which is the group commit the grouper is for.
func TestSendAloneDefersToGrouping(t *testing.T) {
	g, groups, release, stop := testGrouper(1)
	defer close(stop)
	done := make(chan bool)
	go func() { done <- g.sendAlone([]int{0}) }()
	if got := <-groups; !slices.Equal(got, []int{0}) {
		t.Fatalf("first send %v", got)
	}
	// The only slot is held by the send above.
	if g.sendAlone([]int{9}) {
		t.Fatal("sent alone while every slot was busy")
	}
	go g.run()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if err := g.put(ctx, i, "proposed"); err != nil {
			t.Fatal(err)
		}
	}
	release <- struct{}{} // the first send returns, its slot is free
	if !<-done {
		t.Fatal("the first sendAlone reported it did not send")
	}
	select {
	case got := <-groups:
		if !slices.Equal(got, []int{1, 2, 3}) {
			t.Fatalf("queued items left as %v, want one group [1 2 3]", got)
		}
	case <-ctx.Done():
		t.Fatal("queued items never sent")
	}
	release <- struct{}{}
}

// TestSendAloneKeepsQueueOrder: a free slot is not enough while items
// wait in the queue; they go first, grouped.
func TestSendAloneKeepsQueueOrder(t *testing.T) {
	g, _, release, stop := testGrouper(4)
	defer close(stop)
	close(release)
	// No grouping goroutine runs: the item stays queued.
	if err := g.put(context.Background(), 1, "proposed"); err != nil {
		t.Fatal(err)
	}
	if g.sendAlone([]int{9}) {
		t.Fatal("sent alone past a queued item")
	}
}

// TestSendAloneRefusesOversizeGroups: more items than a group may hold go
// through the queue, which splits them.
func TestSendAloneRefusesOversizeGroups(t *testing.T) {
	g, _, release, stop := testGrouper(4)
	defer close(stop)
	close(release)
	if g.sendAlone(make([]int, g.maxItems+1)) {
		t.Fatal("sent a group larger than maxItems")
	}
	g.size = func(int) int { return g.maxBytes / 2 }
	if g.sendAlone([]int{1, 2, 3}) {
		t.Fatal("sent a group larger than maxBytes")
	}
	// A lone item goes whatever its size, as the grouping goroutine sends it.
	if !g.sendAlone([]int{1}) {
		t.Fatal("a lone oversize item was refused")
	}
}

// TestGroupsStayWithinMaxBytes: the grouping goroutine closes a group
// before the item that would take it past maxBytes (the batcher's entries
// must stay within wire.MaxEntryBytes), keeps that item for the next
// group, and still sends an item larger than maxBytes, alone; the queue's
// order holds throughout.
func TestGroupsStayWithinMaxBytes(t *testing.T) {
	g, groups, release, stop := testGrouper(1)
	defer close(stop)
	g.maxBytes = 6
	g.size = func(item int) int { return item }
	done := make(chan bool)
	go func() { done <- g.sendAlone([]int{1}) }() // holds the only slot
	if got := <-groups; !slices.Equal(got, []int{1}) {
		t.Fatalf("first send %v", got)
	}
	go g.run()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, item := range []int{3, 3, 3, 5, 1, 10, 2, 2} {
		if err := g.put(ctx, item, "proposed"); err != nil {
			t.Fatal(err)
		}
	}
	release <- struct{}{}
	<-done
	var got [][]int
	for range 5 {
		select {
		case group := <-groups:
			got = append(got, group)
			release <- struct{}{}
		case <-ctx.Done():
			t.Fatalf("groups so far %v, then nothing", got)
		}
	}
	want := [][]int{{3, 3}, {3}, {5, 1}, {10}, {2, 2}}
	if !slices.EqualFunc(got, want, slices.Equal[[]int]) {
		t.Fatalf("groups %v, want %v", got, want)
	}
}
