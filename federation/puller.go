package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// maxCommandBytes bounds the items of one ApplyPeerFeedCommand, framing
// included, so that the command's entry stays within wire.MaxEntryBytes
// with room for its other fields: a response is applied as several Raft
// entries.
const maxCommandBytes = wire.MaxEntryBytes - 4<<10

// commandsInFlight is how many commands of a response the puller has in
// the log at once (4 MiB of items): each waits for its commit and apply,
// and while one is replicated the state machines apply the ones before.
const commandsInFlight = 16

// pullers runs one puller per enabled peer while this node leads, and
// keeps what only the leader knows about each: whether it is connected,
// and the last error.
type pullers struct {
	f       *Federation
	mu      sync.Mutex
	running map[string]*puller
	live    map[string]*live
}

type puller struct {
	config string // what the puller was started with; a change restarts it
	cancel context.CancelFunc
	done   chan struct{}
}

type live struct {
	connected   bool
	endpoint    string
	head        uint64
	headTime    *timestamppb.Timestamp
	lastErr     string
	lastErrTime time.Time
	// recv is the running pull's account of what it holds of the peer's
	// responses (nil between pulls).
	recv *recvBudget
}

func newPullers(f *Federation) *pullers {
	return &pullers{f: f, running: map[string]*puller{}, live: map[string]*live{}}
}

// run reconciles the running pullers with the peers and this node's role
// until stop is closed.
func (p *pullers) run(stop <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		p.reconcile()
		select {
		case <-stop:
			p.stopAll()
			return
		case <-tick.C:
		}
	}
}

func (p *pullers) reconcile() {
	want := map[string]*irxv1.Peer{}
	if p.f.node.IsLeader() {
		token := ""
		for {
			page, next, err := p.f.state.Peers(500, token)
			if err != nil {
				p.f.log.Error("list peers", "error", err)
				return
			}
			for _, peer := range page {
				if !peer.GetDisabled() && len(peer.GetEndpoints()) > 0 {
					want[peer.GetTeamId()] = peer
				}
			}
			if token = next; token == "" {
				break
			}
		}
	}
	// Stop outside the lock: a stopping puller may be waiting for it to
	// record its status.
	p.mu.Lock()
	var stopping []*puller
	for team, r := range p.running {
		if peer, ok := want[team]; !ok || configOf(peer) != r.config {
			stopping = append(stopping, r)
			delete(p.running, team)
			if l := p.live[team]; l != nil {
				l.connected = false
			}
		}
	}
	for team, peer := range want {
		if _, ok := p.running[team]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &puller{config: configOf(peer), cancel: cancel, done: make(chan struct{})}
		p.running[team] = r
		if p.live[team] == nil {
			p.live[team] = &live{}
		}
		go func() {
			defer close(r.done)
			p.follow(ctx, peer)
		}()
	}
	p.mu.Unlock()
	for _, r := range stopping {
		r.cancel()
		<-r.done
	}
}

// configOf identifies what a puller was started with: every change of a
// peer (UpdatePeer) sets its update time.
func configOf(p *irxv1.Peer) string {
	return p.GetUpdateTime().AsTime().String()
}

func (p *pullers) stopAll() {
	p.mu.Lock()
	running := p.running
	p.running = map[string]*puller{}
	p.mu.Unlock()
	for _, r := range running {
		r.cancel()
		<-r.done
	}
}

// status is the leader-only part of a peer's status; ok is false when this
// node runs no puller for it.
func (p *pullers) status(team string) (live, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.live[team]
	_, running := p.running[team]
	if !ok || !running {
		return live{}, false
	}
	return *l, true
}

func (p *pullers) update(team string, fn func(*live)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.live[team]; l != nil {
		fn(l)
	}
}

// follow pulls the peer's feed until ctx ends, reconnecting with backoff
// and moving to the peer's next endpoint after each failure.
func (p *pullers) follow(ctx context.Context, peer *irxv1.Peer) {
	log := p.f.log.With("peer", peer.GetTeamId())
	backoff := 100 * time.Millisecond
	for i := 0; ctx.Err() == nil; i++ {
		endpoint := peer.GetEndpoints()[i%len(peer.GetEndpoints())]
		progressed, err := p.pull(ctx, peer, endpoint)
		if ctx.Err() != nil {
			return
		}
		p.update(peer.GetTeamId(), func(l *live) {
			l.connected = false
			l.lastErr, l.lastErrTime = fmt.Sprintf("%s: %v", endpoint, err), time.Now()
		})
		if !errors.Is(err, errOversize) && !errors.Is(err, errMalformedResponse) {
			// A refused response was logged at a bounded rate (refused).
			log.Warn("following the peer's feed failed; retrying", "endpoint", endpoint, "error", err, "retry_in", backoff)
		}
		if progressed {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.f.cfg.RetryMax)
	}
}

// followed is how many peers this node's pullers follow: they share the
// node's receive budget.
func (p *pullers) followed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// dial connects to a peer endpoint, verifying the server's chain against
// the CA pinned for the peer and that it is a node of that team. seen, if
// not nil, is given the server's chain at every handshake that passed.
func (f *Federation) dial(peer *irxv1.Peer, endpoint string, seen func(chain []*x509.Certificate)) (*grpc.ClientConn, error) {
	pool, err := f.pinnedPool(peer)
	if err != nil {
		return nil, err
	}
	// Callers name the endpoint in the error they report.
	tlsConf, err := pki.ClientConfig(f.node.Certificate(), pool, pki.ExpectNode(peer.GetTeamId()))
	if err != nil {
		return nil, err
	}
	if seen != nil {
		verify := tlsConf.VerifyConnection
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := verify(cs); err != nil {
				return err
			}
			seen(cs.PeerCertificates)
			return nil
		}
	}
	return grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxFeedResponseBytes)))
}

// pull follows the feed from one endpoint until the stream fails. Each
// response is applied together with the new cursor in one Raft entry,
// then acknowledged.
func (p *pullers) pull(ctx context.Context, peer *irxv1.Peer, endpoint string) (progressed bool, err error) {
	f, team := p.f, peer.GetTeamId()
	var serverExpiry atomic.Int64 // unix nanoseconds; 0 before the handshake
	conn, err := f.dial(peer, endpoint, func(chain []*x509.Certificate) {
		if at, ok := chainExpiry(chain); ok {
			serverExpiry.Store(at.UnixNano())
		}
	})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	client := irxv1.NewFederationServiceClient(conn)
	st, err := f.state.PeerState(team)
	if err != nil {
		return false, err
	}
	cursor, version, gen := st.GetInboundCursor(), st.GetInboundPolicyVersion(), st.GetInboundGeneration()
	if st.GetInboundResyncPending() {
		// A resync another leader began (or this one, before an error):
		// finish it before reading the feed again.
		return true, p.finishResync(ctx, team, gen)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := client.Subscribe(ctx, &irxv1.SubscribeRequest{Cursor: cursor, CursorPolicyVersion: version, MaxItems: int32(f.cfg.BatchItems), Generation: gen},
		grpc.ForceCodecV2(newFeedCodec()))
	if err != nil {
		return false, err
	}
	// The stream runs on a connection whose handshake verified the
	// server's chain; that chain stops being valid when one of its
	// certificates expires, and a feed read on from then would come from
	// a server we no longer accept. The stream ends then; the next
	// handshake verifies the chain the server has by then.
	if at := serverExpiry.Load(); at != 0 {
		expiry := time.Unix(0, at)
		expire := time.AfterFunc(time.Until(expiry), func() {
			cancel(fmt.Errorf("%w at %s", errServerChainExpired, expiry.UTC().Format(time.RFC3339)))
		})
		defer expire.Stop()
	}
	acks := newAcker(client)
	defer acks.close()
	budget := newRecvBudget(recvLimit(f.limits.memoryLimit, p.followed()))
	p.update(team, func(l *live) { l.recv = budget })
	defer p.update(team, func(l *live) {
		if l.recv == budget {
			l.recv = nil
		}
	})
	responses := newReader(ctx, stream, budget)
	for {
		resp, err := responses.next()
		if err != nil {
			return progressed, expired(ctx, p.refused(team, err))
		}
		if resp.generation != gen {
			if cursor > resp.restoredSeq {
				budget.release(resp.held)
				return progressed, p.resync(ctx, team, cursor, gen, resp)
			}
			// Everything we applied is in the backup the peer was
			// restored from: the cursor holds in the new generation,
			// which the next batch stores.
			gen = resp.generation
		}
		var applied bool
		cursor, applied, err = p.apply(ctx, team, endpoint, cursor, resp, acks)
		budget.release(resp.held)
		progressed = progressed || applied
		if err != nil {
			return progressed, expired(ctx, err)
		}
	}
}

// expired is err, or the expiry of the server's chain if that is what
// ended the stream.
func expired(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errServerChainExpired) {
		return cause
	}
	return err
}

// apply commits one (coalesced) response, up to commandsInFlight commands
// at a time (each copies its items), and acknowledges it. It returns the
// cursor reached and whether the whole response was applied.
func (p *pullers) apply(ctx context.Context, team, endpoint string, cursor uint64, resp *rawResponse, acks *acker) (uint64, bool, error) {
	p.update(team, func(l *live) {
		l.connected, l.endpoint, l.lastErr = true, endpoint, ""
		l.head, l.headTime = resp.head, resp.headTime
	})
	if resp.cursor < cursor || resp.cursor == cursor && len(resp.items) == 0 {
		return cursor, false, nil // a heartbeat, or nothing new
	}
	var window []*irxv1.ApplyPeerFeedCommand
	commitWindow := func() error {
		cmds := make([]*irxv1.Command, len(window))
		for i, c := range window {
			cmds[i] = &irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: c}}
		}
		for i, err := range p.f.commitInOrder(ctx, cmds) {
			cmd := window[i]
			if err != nil {
				if isStaleCursor(err) {
					return fmt.Errorf("our cursor moved under us (another leader applied the batch): resubscribing: %w", err)
				}
				return fmt.Errorf("apply batch %d..%d: %w", cmd.GetFromCursor(), cmd.GetCursor(), err)
			}
			cursor = cmd.GetCursor()
		}
		window = window[:0]
		return nil
	}
	for cmd := range feedCommands(team, cursor, resp) {
		if window = append(window, cmd); len(window) == commandsInFlight {
			if err := commitWindow(); err != nil {
				return cursor, false, err
			}
		}
	}
	if len(window) > 0 {
		if err := commitWindow(); err != nil {
			return cursor, false, err
		}
	}
	acks.set(cursor, resp.policyVersion)
	return cursor, true, nil
}

// resync commits that the peer was restored from a backup older than our
// cursor (ResyncPeerCommand) and ends the stream: the next one reads the
// peer's feed from 0 under its new generation.
func (p *pullers) resync(ctx context.Context, team string, cursor, gen uint64, resp *rawResponse) error {
	p.f.log.Warn("peer was restored from a backup older than our cursor: dropping our copies of its records and reading its feed again from the start",
		"peer", team, "cursor", cursor, "generation", gen, "peer_generation", resp.generation, "restored_feed_sequence", resp.restoredSeq)
	_, err := p.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_ResyncPeer{ResyncPeer: &irxv1.ResyncPeerCommand{
		PeerTeamId: team, FromCursor: cursor, FromGeneration: gen, Generation: resp.generation, RestoredFeedSequence: resp.restoredSeq,
	}}})
	if err != nil {
		return fmt.Errorf("resync with restored peer: %w", err)
	}
	return p.finishResync(ctx, team, resp.generation)
}

// finishResync deletes our copies of a restored peer's records a stretch
// per command until none is left, then ends the stream: the next one reads
// the peer's feed from 0 under its new generation.
func (p *pullers) finishResync(ctx context.Context, team string, gen uint64) error {
	for {
		st, err := p.f.state.PeerState(team)
		if err != nil {
			return err
		}
		if !st.GetInboundResyncPending() {
			return errPeerRestored
		}
		if _, err := p.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_ResyncPeer{ResyncPeer: &irxv1.ResyncPeerCommand{
			PeerTeamId: team, Generation: gen, Continuation: true,
		}}}); err != nil {
			return fmt.Errorf("resync with restored peer: deleting our copies of its records: %w", err)
		}
	}
}

// errPeerRestored ends a stream after a resync with a restored peer.
var errPeerRestored = errors.New("the peer was restored from a backup: resubscribing from the start of its feed")

// errServerChainExpired ends a stream whose server's chain expired.
var errServerChainExpired = errors.New("the peer server's certificate chain expired")

// errOversize is a feed response larger than MaxFeedResponseBytes: the
// peer's protocol error, not a reason to hold more.
var errOversize = errors.New("the peer sent a feed response larger than this node accepts")

// refused names, counts and logs (at a bounded rate) the peer's responses
// the puller refuses; other errors pass unchanged.
func (p *pullers) refused(team string, err error) error {
	reason := ""
	switch {
	case status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "larger than max"):
		// gRPC's own refusal, from the message's length prefix.
		err = fmt.Errorf("%w (at most %d bytes; a peer cuts its responses at %d): %w", errOversize, MaxFeedResponseBytes, maxResponseBytes, err)
		reason = "oversize"
	case errors.Is(err, errMalformedResponse):
		reason = "malformed"
	default:
		return err
	}
	p.f.metrics.pullRefused(team, reason)
	p.f.refusals.log(p.f.log, slog.LevelWarn, "refused the peer's feed response", "peer", team, "reason", reason, "error", err)
	return err
}

type received struct {
	resp *rawResponse
	err  error
}

// reader reads the stream ahead of the apply loop, so responses that
// arrive while a batch commits are applied together with the next one.
type reader struct {
	in      chan received
	pending *received // read but not yet handed out
}

// It holds no more than budget allows: before each read it takes the
// largest response gRPC accepts, then gives back what the response did not
// use; the apply loop releases a response's bytes once it is applied.
func newReader(ctx context.Context, stream grpc.ClientStream, budget *recvBudget) *reader {
	r := &reader{in: make(chan received, 64)}
	go func() {
		defer close(r.in)
		for {
			if err := budget.acquire(ctx, MaxFeedResponseBytes); err != nil {
				return
			}
			var f frame
			err := stream.RecvMsg(&f)
			var resp *rawResponse
			if err == nil {
				resp, err = parseResponse(f.data)
			}
			held := int64(0)
			if err == nil {
				held = int64(len(f.data)) + int64(cap(resp.items))*rawItemBytes
				resp.held = held
			}
			budget.release(MaxFeedResponseBytes - held)
			select {
			case r.in <- received{resp, err}:
			case <-ctx.Done():
				budget.release(held)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// coalesceItems bounds how many items one coalesced batch carries, and so
// the one allocation of merging that the receive budget does not count:
// the merged items' slice, of at most this many rawItems.
const coalesceItems = 4096

// next waits for one response and merges those already waiting behind it
// that were computed under the same policy version: the puller then
// commits one Raft entry for all of them.
func (r *reader) next() (*rawResponse, error) {
	var first received
	if r.pending != nil {
		first, r.pending = *r.pending, nil
	} else {
		var ok bool
		if first, ok = <-r.in; !ok {
			return nil, errors.New("stream closed")
		}
	}
	if first.err != nil {
		return nil, first.err
	}
	merged := first.resp
	for len(merged.items) < coalesceItems {
		select {
		case n, ok := <-r.in:
			if !ok {
				return merged, nil
			}
			if n.err != nil || n.resp.policyVersion != merged.policyVersion || n.resp.generation != merged.generation || len(merged.items)+len(n.resp.items) > coalesceItems {
				r.pending = &n
				return merged, nil
			}
			merged.items = append(merged.items, n.resp.items...)
			merged.held += n.resp.held
			merged.cursor, merged.head, merged.headTime = n.resp.cursor, n.resp.head, n.resp.headTime
		default:
			return merged, nil
		}
	}
	return merged, nil
}

// feedCommands turns a response into commands of bounded size, each starting
// at the previous one's cursor. A command that ends between two items of
// one feed entry leaves the cursor before that entry: applying the entry's
// first items again, after a reconnection that resumes there, changes
// nothing (versions never go backwards, replacements and withdrawals of
// what was already replaced or withdrawn are no-ops).
// The puller takes them commandsInFlight at a time, holding those
// commands' copies of the items.
func feedCommands(team string, from uint64, resp *rawResponse) iter.Seq[*irxv1.ApplyPeerFeedCommand] {
	return func(yield func(*irxv1.ApplyPeerFeedCommand) bool) {
		newCmd := func(start uint64) *irxv1.ApplyPeerFeedCommand {
			return &irxv1.ApplyPeerFeedCommand{
				PeerTeamId: team, FromCursor: start, PolicyVersion: resp.policyVersion,
				Head: resp.head, HeadTime: resp.headTime, CheckText: true, Generation: resp.generation,
			}
		}
		cur, first, size := newCmd(from), 0, 0
		items := resp.items
		for i, item := range items {
			size += itemBytes(item)
			if i+1 == len(items) || size+itemBytes(items[i+1]) <= maxCommandBytes {
				continue
			}
			cur.Cursor = item.sequence
			if items[i+1].sequence == item.sequence {
				cur.Cursor = item.sequence - 1
			}
			cur.Cursor = max(cur.Cursor, cur.GetFromCursor())
			setItems(cur, items[first:i+1])
			if !yield(cur) {
				return
			}
			cur, first, size = newCmd(cur.Cursor), i+1, 0
		}
		cur.Cursor = max(resp.cursor, cur.GetFromCursor())
		setItems(cur, items[first:])
		yield(cur)
	}
}

// itemBytes is what item adds to a command's encoding.
func itemBytes(item rawItem) int {
	return protowire.SizeTag(wire.ApplyPeerFeedItems) + protowire.SizeBytes(len(item.data))
}

// acker acknowledges the latest applied cursor in the background, so the
// pull loop never waits on the peer's ledger commit. Acknowledgements are
// cumulative: a skipped one is covered by the next.
type acker struct {
	client  irxv1.FederationServiceClient
	mu      sync.Mutex
	cursor  uint64
	version int64
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newAcker(client irxv1.FederationServiceClient) *acker {
	a := &acker{client: client, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) set(cursor uint64, version int64) {
	a.mu.Lock()
	a.cursor, a.version = cursor, version
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *acker) run() {
	defer close(a.done)
	var sent uint64
	for {
		select {
		case <-a.stop:
			return
		case <-a.wake:
		}
		a.mu.Lock()
		cursor, version := a.cursor, a.version
		a.mu.Unlock()
		if cursor <= sent {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := a.client.Acknowledge(ctx, &irxv1.AcknowledgeRequest{Cursor: cursor, PolicyVersion: version})
		cancel()
		if err == nil {
			sent = cursor
		}
		// On failure the next subscription acknowledges the cursor.
	}
}

func (a *acker) close() {
	close(a.stop)
	<-a.done
}
