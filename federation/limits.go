package federation

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	rtmetrics "runtime/metrics"
	"sync"
	"time"
	"unsafe"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// What one peer may cost this node. An authorised peer is still a
// stranger's program: it may open many Subscribe streams and never read
// them. Every stream is bounded, the streams of one peer are counted, and
// the bytes all streams hold together are bounded by a share of the
// node's memory limit.
const (
	// DefaultStreamsPerPeer leaves room for a puller's stream, the one
	// that replaces it after a leader change on either side, and an
	// operator's diagnostic subscription, with margin.
	DefaultStreamsPerPeer = 8
	// DefaultStreamBytes bounds what one stream holds: the responses the
	// walk computed and not yet handed to gRPC, and the one message gRPC
	// holds beyond its own per-stream write quota.
	DefaultStreamBytes = 4 << 20
	// minStreamBytes keeps a response large enough to carry one big view.
	minStreamBytes = 256 << 10
	// sendBudgetShare is the part of the memory limit that all Subscribe
	// streams together may hold (1/sendBudgetShare).
	sendBudgetShare = 8
	// refuseHeapPercent of the memory limit, live heap after the last
	// collection, and new streams are refused.
	refuseHeapPercent = 90
	// maxUnacknowledged bounds the holdings a stream remembers beyond what
	// the peer acknowledged; a stream that reaches it waits for an
	// acknowledgement. The puller acknowledges every applied batch, far
	// below it.
	maxUnacknowledged = 1 << 15
	// maxStreamsPerConn bounds the HTTP/2 streams of one peer connection:
	// above streams_per_peer, so that the stream over the limit is told
	// why, and the peer's unary calls still pass.
	maxStreamsPerConn = 64
	// A refused handshake or stream is logged at most refusalLogBurst
	// times per refusalLogInterval; the next line logged says how many
	// were not.
	refusalLogBurst    = 10
	refusalLogInterval = time.Minute
)

// What a peer's feed may cost this node, the receiving side: the puller
// that follows a peer reads its responses ahead of applying them, and a
// peer that serves us is as much a stranger's program as one we serve.
const (
	// MaxFeedResponseBytes is the largest feed response a puller reads. A
	// peer cuts its responses at maxResponseBytes (less with a small
	// stream_bytes), and one item is an incident of at most
	// record.MaxIncidentBytes, so twice the cut leaves room for any
	// honest response; gRPC refuses a larger one from its length prefix,
	// before reading it.
	MaxFeedResponseBytes = 2 * maxResponseBytes
	// recvBudgetShare is the part of the memory limit (1/recvBudgetShare)
	// the pullers of the node may hold together, shared across the
	// followed peers.
	recvBudgetShare = 8
	// minRecvBytes lets a puller apply one response while the next
	// arrives.
	minRecvBytes = 2 * MaxFeedResponseBytes
	// noLimitRecvBytes is a puller's bound when the node has no memory
	// limit.
	noLimitRecvBytes = 64 << 20
	// rawItemBytes is what parsing an item adds to the bytes it came in
	// (its rawItem): a response of many tiny items costs more than its
	// encoding, and the account must say so.
	rawItemBytes = int64(unsafe.Sizeof(rawItem{}))
)

// recvLimit is the bytes a puller may hold of its peer's responses when
// followed peers share the node's receive budget.
func recvLimit(memoryLimit int64, followed int) int64 {
	if memoryLimit <= 0 || memoryLimit == math.MaxInt64 {
		return noLimitRecvBytes
	}
	return max(memoryLimit/recvBudgetShare/int64(max(1, followed)), minRecvBytes)
}

// recvBudget is one puller's account of the bytes it holds of its peer's
// responses: read ahead of the apply loop, or being applied. The reader
// takes the largest response it accepts before each read and gives back
// what the response did not use, so what it holds never exceeds the
// limit, whatever the peer sends.
type recvBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	most  int64         // the most held at once
	freed chan struct{} // closed, and replaced, whenever bytes are released
}

func newRecvBudget(limit int64) *recvBudget {
	return &recvBudget{limit: max(limit, MaxFeedResponseBytes), freed: make(chan struct{})}
}

// acquire takes n bytes, waiting until they are free.
func (b *recvBudget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.most = max(b.most, b.used)
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *recvBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// held is what the puller holds now, and the most it held at once.
func (b *recvBudget) held() (now, most int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.most
}

// streamLimits admits Subscribe streams and accounts for the bytes they
// hold.
type streamLimits struct {
	perPeer     int
	streamBytes int64
	memoryLimit int64 // 0 or math.MaxInt64: no memory-based refusal
	budget      *sendBudget
	heapLive    func() uint64 // the live heap; a field so a test can raise it
	// unacknowledged is maxUnacknowledged (a field so a test can lower it).
	unacknowledged int
	// walks admits the walks of the feed that run at once: computing views
	// is CPU, and a peer with many streams must leave cores to the
	// operators' calls and to Raft.
	walks chan struct{}
}

func newStreamLimits(cfg Config) *streamLimits {
	l := &streamLimits{perPeer: cfg.StreamsPerPeer, streamBytes: cfg.StreamBytes, memoryLimit: cfg.MemoryLimit, heapLive: heapLive, unacknowledged: maxUnacknowledged}
	budget := int64(math.MaxInt64)
	if l.memoryLimit > 0 && l.memoryLimit < math.MaxInt64 {
		budget = max(l.memoryLimit/sendBudgetShare, 2*l.streamBytes)
	}
	l.budget = newSendBudget(budget, 2*l.streamBytes)
	l.walks = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	return l
}

// walking waits for a walk's turn; done ends it.
func (l *streamLimits) walking(ctx context.Context) (done func(), err error) {
	select {
	case l.walks <- struct{}{}:
		return func() { <-l.walks }, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// messageBytes is where a response is cut: a quarter of a stream's bound,
// so that a walk always has room for whole responses beside the one gRPC
// holds.
func (l *streamLimits) messageBytes() int {
	return int(min(int64(maxResponseBytes), l.streamBytes/4))
}

// admitStream counts a new Subscribe stream of peer, or refuses it with
// RESOURCE_EXHAUSTED when the peer has its limit of streams open here or
// the node's live heap is near its memory limit.
func (f *Federation) admitStream(peer string) (end func(), err error) {
	l := f.limits
	if l.memoryLimit > 0 && l.memoryLimit < math.MaxInt64 {
		if live := l.heapLive(); live >= uint64(l.memoryLimit)/100*refuseHeapPercent {
			f.metrics.refused(peer, "memory")
			f.refusals.log(f.log, slog.LevelWarn, "refused a Subscribe stream: the node's heap is near its memory limit",
				"peer", peer, "heap_live_bytes", live, "memory_limit_bytes", l.memoryLimit)
			return nil, status.Errorf(codes.ResourceExhausted,
				"this node's live heap is %d MiB of its %d MiB memory limit: new Subscribe streams are refused until it falls; retry later or on another node of the team",
				live>>20, l.memoryLimit>>20)
		}
	}
	end, open, ok := f.followers.admit(peer, l.perPeer)
	if !ok {
		f.metrics.refused(peer, "peer_limit")
		f.refusals.log(f.log, slog.LevelWarn, "refused a Subscribe stream: the peer has its limit of streams open on this node",
			"peer", peer, "open", open, "limit", l.perPeer)
		return nil, status.Errorf(codes.ResourceExhausted,
			"peer %q already has %d Subscribe streams open on this node, its limit (streams_per_peer %d): close one first",
			peer, open, l.perPeer)
	}
	return end, nil
}

// heapLive is the heap the last garbage collection found live: the part
// of the heap the node cannot give back, unlike the garbage between
// collections.
func heapLive() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// sendBudget is the bytes all Subscribe streams of the node may hold
// together. A walk takes its share before it computes and waits when its
// peer's share is spent, so that many slow streams slow the walks down
// instead of growing the heap.
//
// The budget is shared fairly between peers: a peer may hold at most the
// budget divided by the peers holding bytes (itself included), and never
// less than twice one stream's bound (a stream's next walk beside the
// message it last handed to gRPC, which may be one large view). A greedy
// peer's streams that do not read hold their bytes until they end;
// without shares, a few such peers would spend the whole budget and every
// honest stream would wait for them. A peer that holds nothing always
// gets its walk, so a peer that comes after the budget was spent still
// progresses; what the others hold above their new, smaller shares goes
// back as their streams send or end, and they take no more meanwhile.
type sendBudget struct {
	mu     sync.Mutex
	limit  int64
	floor  int64 // the smallest share: twice one stream's bound
	used   int64
	byPeer map[string]int64
	freed  chan struct{} // closed, and replaced, whenever bytes are released
}

func newSendBudget(limit, floor int64) *sendBudget {
	return &sendBudget{limit: limit, floor: floor, byPeer: map[string]int64{}, freed: make(chan struct{})}
}

// share is what peer may hold now. The caller holds b.mu.
func (b *sendBudget) share(peer string) int64 {
	holders := len(b.byPeer)
	if b.byPeer[peer] == 0 {
		holders++
	}
	return max(b.limit/int64(holders), b.floor)
}

// acquire takes n bytes for peer, waiting until its share has room. A
// peer that holds nothing always gets its first walk, so that a share
// smaller than one walk does not stop it.
func (b *sendBudget) acquire(ctx context.Context, peer string, n int64) error {
	for {
		b.mu.Lock()
		if held := b.byPeer[peer]; held == 0 || held+n <= b.share(peer) {
			b.used += n
			b.byPeer[peer] = held + n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// take adds n bytes for peer without waiting: what a walk computed beyond
// its share (one feed entry may give many items).
func (b *sendBudget) take(peer string, n int64) {
	b.mu.Lock()
	b.used += n
	b.byPeer[peer] += n
	b.mu.Unlock()
}

func (b *sendBudget) release(peer string, n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.byPeer[peer] -= n; b.byPeer[peer] <= 0 {
		delete(b.byPeer, peer)
	}
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

func (b *sendBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// holds is what peer holds of the budget.
func (b *sendBudget) holds(peer string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byPeer[peer]
}

// streamQueue is one stream's account: the bytes it holds of the node's
// budget, counted in encoded bytes (proto.Size) of the responses. It holds
// what the walk computed and has not handed to gRPC, and the last
// message handed to gRPC: grpc-go keeps at most one message per stream
// beyond its write quota, blocking Send until the quota is positive, so
// once a Send returns the message before it has left the process.
type streamQueue struct {
	l        *streamLimits
	fl       *followers
	peer     string
	reserved int64 // taken from the budget
	pending  int64 // computed, not yet handed to gRPC
	inFlight int64 // the last message handed to gRPC
	reported int64 // what followers last heard
}

func (f *Federation) newStreamQueue(peer string) *streamQueue {
	return &streamQueue{l: f.limits, fl: f.followers, peer: peer}
}

// room is how many bytes the next walk may compute.
func (q *streamQueue) room() int64 {
	return max(q.l.streamBytes-q.inFlight, int64(q.l.messageBytes()))
}

// reserve takes the next walk's share of the budget, waiting for it.
func (q *streamQueue) reserve(ctx context.Context) error {
	n := q.room()
	if err := q.l.budget.acquire(ctx, q.peer, n); err != nil {
		return err
	}
	q.reserved += n
	return nil
}

// computed settles the reservation to what the walk computed.
func (q *streamQueue) computed(n int64) {
	q.pending = n
	if held := q.pending + q.inFlight; held > q.reserved {
		q.l.budget.take(q.peer, held-q.reserved)
		q.reserved = held
	} else {
		q.l.budget.release(q.peer, q.reserved-held)
		q.reserved = held
	}
	q.report()
}

// report tells the peer's account what this stream holds now.
func (q *streamQueue) report() {
	if held := q.held(); held != q.reported {
		q.fl.queued(q.peer, held-q.reported)
		q.reported = held
	}
}

// sent moves a message of n bytes from computed to handed to gRPC; the
// message handed over before it is gone.
func (q *streamQueue) sent(n int64) {
	q.l.budget.release(q.peer, q.inFlight)
	q.reserved -= q.inFlight
	q.pending -= n
	q.inFlight = n
	q.report()
}

func (q *streamQueue) held() int64 { return q.pending + q.inFlight }

func (q *streamQueue) close() {
	q.l.budget.release(q.peer, q.reserved)
	q.reserved, q.pending, q.inFlight = 0, 0, 0
	q.report()
}

// rateLog logs at most burst lines per interval and counts the rest,
// which the next line it logs reports as suppressed: a caller that can
// make the node log (a refused handshake) must not be able to fill its
// disk.
type rateLog struct {
	mu         sync.Mutex
	interval   time.Duration
	burst      int
	window     time.Time
	logged     int
	suppressed int
	now        func() time.Time
}

func newRateLog(burst int, interval time.Duration) *rateLog {
	return &rateLog{burst: burst, interval: interval, now: time.Now}
}

// log writes msg unless this interval's lines are spent; it reports
// whether it wrote.
func (r *rateLog) log(logger *slog.Logger, level slog.Level, msg string, args ...any) bool {
	r.mu.Lock()
	now := r.now()
	if now.Sub(r.window) >= r.interval {
		r.window, r.logged = now, 0
	}
	if r.logged >= r.burst {
		r.suppressed++
		r.mu.Unlock()
		return false
	}
	r.logged++
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed_since_last", suppressed)
	}
	if logger != nil {
		logger.Log(context.Background(), level, msg, args...)
	}
	return true
}

// String describes the limits for the start-up log.
func (l *streamLimits) String() string {
	mem := "none"
	if l.memoryLimit > 0 && l.memoryLimit < math.MaxInt64 {
		mem = fmt.Sprintf("%d MiB", l.memoryLimit>>20)
	}
	return fmt.Sprintf("streams_per_peer=%d stream_bytes=%d memory_limit=%s", l.perPeer, l.streamBytes, mem)
}
