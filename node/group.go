package node

import (
	"context"
	"fmt"

	"github.com/irxfed/irx/errdefs"
)

// grouper turns concurrent calls into groups: items that arrive while
// every slot is busy wait in the queue, and the next group takes all that
// fit (a group stays within maxBytes unless its first item alone is
// larger). With a single caller every group holds one item and nothing waits.
// The leader's group commit (batcher) and a follower's group forwarding
// (forwarder) are both one.
type grouper[T any] struct {
	queue    chan T
	inFlight chan struct{}
	stop     <-chan struct{}

	maxItems int
	maxBytes int
	size     func(T) int
	// together reports whether next may join first's group; nil: always.
	together func(first, next T) bool
	// send handles one group, in its own goroutine; the slot is free again
	// when it returns.
	send func([]T)
	// fail answers an item that will never be sent: the node is stopping.
	fail func(T)

	held    T // taken from the queue but not fit for the last group, or past its bytes
	hasHeld bool
}

func newGrouper[T any](stop <-chan struct{}, maxItems, maxBytes, inFlight int) *grouper[T] {
	return &grouper[T]{
		queue: make(chan T, 4*maxItems), inFlight: make(chan struct{}, inFlight), stop: stop,
		maxItems: maxItems, maxBytes: maxBytes,
	}
}

// run forms groups until stop is closed, then fails what is queued.
func (g *grouper[T]) run() {
	for {
		var first T
		if g.hasHeld {
			first, g.hasHeld = g.held, false
		} else {
			select {
			case first = <-g.queue:
			case <-g.stop:
				g.failQueued()
				return
			}
		}
		// Wait for a slot first: while every slot is busy, items pile up in
		// the queue and the next group takes them all.
		select {
		case g.inFlight <- struct{}{}:
		case <-g.stop:
			g.fail(first)
			g.failQueued()
			return
		}
		group, size := []T{first}, g.size(first)
	fill:
		for len(group) < g.maxItems && size < g.maxBytes {
			select {
			case next := <-g.queue:
				n := g.size(next)
				if g.together != nil && !g.together(first, next) || size+n > g.maxBytes {
					g.held, g.hasHeld = next, true
					break fill
				}
				group = append(group, next)
				size += n
			default:
				break fill
			}
		}
		go func() {
			defer func() { <-g.inFlight }()
			g.send(group)
		}()
	}
}

func (g *grouper[T]) failQueued() {
	if g.hasHeld {
		g.fail(g.held)
		g.hasHeld = false
	}
	for {
		select {
		case item := <-g.queue:
			g.fail(item)
		default:
			return
		}
	}
}

// sendAlone sends items as a group of their own, in the caller's goroutine,
// when the grouper is idle: nothing queued and a slot free. A lone caller
// then reaches raft without waking the grouping goroutine and a sender
// goroutine, and gets its answer without a third wake-up; where nodes share
// a machine, each wake-up costs CPU the others need.
// It reports whether it sent them; under load it does not, and items queue,
// as do more items than one group may hold.
// A grouping goroutine blocked on a slot gets the next free one first (a
// full channel hands a released slot to a blocked sender), so items
// already queued are not overtaken for long.
func (g *grouper[T]) sendAlone(items []T) bool {
	if len(g.queue) > 0 || len(items) > g.maxItems || !g.fits(items) {
		return false
	}
	select {
	case g.inFlight <- struct{}{}:
	default:
		return false
	}
	defer func() { <-g.inFlight }()
	g.send(items)
	return true
}

// fits reports whether items make a group within maxBytes. One item always
// does: the grouping goroutine sends an oversize item alone too.
func (g *grouper[T]) fits(items []T) bool {
	if len(items) <= 1 {
		return true
	}
	size := 0
	for _, item := range items {
		if size += g.size(item); size > g.maxBytes {
			return false
		}
	}
	return true
}

// put queues item for the next group. what says what happens to it, for
// the error when ctx ends first ("proposed", "forwarded").
func (g *grouper[T]) put(ctx context.Context, item T, what string) error {
	select {
	case g.queue <- item:
		return nil
	case <-ctx.Done():
		return errdefs.New(errdefs.ErrDeadlineExceeded, fmt.Sprintf("the node is overloaded: the write was not %s before the deadline; retry", what))
	case <-g.stop:
		return errStopping
	}
}

// await waits for a queued item's answer; late is the error when ctx ends
// first (the write may still be applied). An item queued just as the node
// stopped may never be answered, so stopping ends the wait too.
func await[R any](ctx context.Context, stop <-chan struct{}, done <-chan R, late string) (R, error) {
	var none R
	select {
	case r := <-done:
		return r, nil
	case <-ctx.Done():
		return none, errdefs.New(errdefs.ErrDeadlineExceeded, late)
	case <-stop:
		return none, errdefs.New(errdefs.ErrUnavailable, "node is shutting down; the write may still be applied: retry with the same request_id")
	}
}
