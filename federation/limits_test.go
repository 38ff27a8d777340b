package federation

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// feedFixture is team cert-a serving its real feed (Subscribe) on a
// loopback listener with mutual TLS, over a real state machine holding
// records its policies for cert-b and cert-c disclose.
type feedFixture struct {
	f        *Federation
	st       *fsm.FSM
	logs     *syncBuffer
	caA, caB *pki.CA
	caC      *pki.CA
	certB    tls.Certificate
	certC    tls.Certificate
	maxItems int32 // of the streams subscribe opens; 0: the server's default
}

func newFeedFixture(t *testing.T, cfg Config, records, textBytes int) *feedFixture {
	t.Helper()
	x := &feedFixture{caA: mustCA(t, "cert-a"), caB: mustCA(t, "cert-b"), caC: mustCA(t, "cert-c"), logs: &syncBuffer{}}
	x.st = stateWithPeers(t,
		&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(x.caB.CertPEM())},
		&irxv1.Peer{TeamId: "cert-c", CaCertificatePem: string(x.caC.CertPEM())})
	apply := func(cmd *irxv1.Command) *fsm.Result {
		applyCommand(t, x.st, cmd)
		return &fsm.Result{}
	}
	for _, peer := range []string{"cert-b", "cert-c"} {
		applyCommand(t, x.st, &irxv1.Command{Kind: &irxv1.Command_SetPolicy{SetPolicy: &irxv1.SetPolicyCommand{
			TeamSecret: make([]byte, fsm.TeamSecretLength),
			Policy: &irxv1.DisclosurePolicy{
				PeerTeamId: peer, RecipientClass: irxv1.RecipientClass_RECIPIENT_CLASS_RESPONSE_TEAM, TlpCeiling: irxv1.Tlp_TLP_AMBER,
				Rules: []*irxv1.ClassRule{
					{InfoClass: irxv1.InfoClass_INFO_CLASS_INTRUDER, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD},
					{InfoClass: irxv1.InfoClass_INFO_CLASS_STATISTICAL, Action: irxv1.DisclosureAction_DISCLOSURE_ACTION_FORWARD},
				},
			},
		}}})
	}
	rediscloseAll(t, x.st, apply, stretch{stretchIncidents, stretchVersions, stretchBytes})
	// The attacking hosts (intruder information, forwarded) make up the
	// size of each view.
	var hosts []*irxv1.Host
	for i := range max(1, textBytes/64) {
		hosts = append(hosts, &irxv1.Host{Addresses: []string{"198.51.100.7"}, Hostname: fmt.Sprintf("c2-%d-%s.example", i, strings.Repeat("x", 40))})
	}
	for range records {
		applyCommand(t, x.st, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{Incident: &irxv1.Incident{
			Tlp:            irxv1.Tlp_TLP_GREEN,
			Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
			Taxonomy:       &irxv1.Taxonomy{Class: "malicious-code", Type: "c2-server"},
			AttackingHosts: hosts,
		}}}})
	}
	cfg.Addr = "127.0.0.1:0"
	x.f = New(cfg)
	x.f.state, x.f.team, x.f.log = fsmState{x.st}, "cert-a", slog.New(slog.NewTextHandler(x.logs, nil))
	x.f.cert = pki.StaticCertificate(issue(t, x.caA, pki.NodeIdentity("cert-a", "n1")))
	// A commit applies to the state machine at once, as a one-node
	// team's would.
	var mu sync.Mutex
	x.f.commit = func(_ context.Context, cmd *irxv1.Command) (proto.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		cmd.ProposeTime = timestamppb.Now()
		data, err := proto.Marshal(cmd)
		if err != nil {
			return nil, err
		}
		return committedResult(x.st.Apply(&raft.Log{Index: x.st.AppliedIndex() + 1, Type: raft.LogCommand, Data: data}).(*fsm.Result), nil)
	}
	if err := x.f.listen(func(s *grpc.Server) { irxv1.RegisterFederationServiceServer(s, &federationService{f: x.f}) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.f.Close() })
	x.certB = issue(t, x.caB, pki.NodeIdentity("cert-b", "n1"))
	x.certC = issue(t, x.caC, pki.NodeIdentity("cert-c", "n1"))
	return x
}

// subscribe opens a Subscribe stream on its own connection. The client's
// flow-control window is fixed at 64 KiB, so that a stream it does not
// read stops the server's sends at a known point (a growing window would
// move them into the client's memory instead).
func (x *feedFixture) subscribe(t *testing.T, cert tls.Certificate) (irxv1.FederationService_SubscribeClient, context.CancelFunc) {
	t.Helper()
	client, _ := x.client(t, cert)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := client.Subscribe(ctx, &irxv1.SubscribeRequest{MaxItems: x.maxItems})
	if err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

func (x *feedFixture) client(t *testing.T, cert tls.Certificate) (irxv1.FederationServiceClient, *grpc.ClientConn) {
	t.Helper()
	conf, err := pki.ClientConfig(pki.StaticCertificate(cert), x.caA.Pool(), pki.ExpectNode("cert-a"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(x.f.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(conf)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxFeedResponseBytes)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return irxv1.NewFederationServiceClient(conn), conn
}

// TestStreamsPerPeerLimit: a peer's streams beyond its limit are refused
// with RESOURCE_EXHAUSTED naming the peer and the limit, counted and
// logged; a closed stream frees its slot.
func TestStreamsPerPeerLimit(t *testing.T) {
	x := newFeedFixture(t, Config{StreamsPerPeer: 2}, 3, 10)
	cancels := make([]context.CancelFunc, 0, 2)
	for range 2 {
		stream, cancel := x.subscribe(t, x.certB)
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("a stream within the limit: %v", err)
		}
		cancels = append(cancels, cancel)
	}
	over, _ := x.subscribe(t, x.certB)
	_, err := over.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `"cert-b"`) || !strings.Contains(err.Error(), "streams_per_peer 2") {
		t.Fatalf("the third stream of cert-b: %v; want RESOURCE_EXHAUSTED naming cert-b and its limit 2", err)
	}
	if n := counterValue(t, x.f.metrics.streamsRefused, "cert-b", "peer_limit"); n != 1 {
		t.Fatalf("irx_federation_streams_refused_total{peer=cert-b,reason=peer_limit} = %v, want 1", n)
	}
	if !strings.Contains(x.logs.String(), "refused a Subscribe stream") {
		t.Fatalf("the refusal was not logged:\n%s", x.logs.String())
	}
	cancels[0]()
	waitFor(t, "the closed stream's slot is free", func() bool {
		open, _, _ := x.f.followers.usage("cert-b")
		return open == 1
	})
	again, _ := x.subscribe(t, x.certB)
	if _, err := again.Recv(); err != nil {
		t.Fatalf("a stream after one closed: %v", err)
	}
	if open, refused, _ := x.f.followers.usage("cert-b"); open != 2 || refused != 1 {
		t.Fatalf("usage of cert-b: %d open, %d refused; want 2 and 1", open, refused)
	}
}

// TestStreamHoldsBoundedBytes: a stream that does not read holds no more
// than its bound of computed responses, by the stream's own account, and
// the bytes go back to the node's budget when it ends; once read, it
// delivers the whole feed.
func TestStreamHoldsBoundedBytes(t *testing.T) {
	const records, text = 400, 2000 // about 800 KB of views: several times the bound
	x := newFeedFixture(t, Config{StreamBytes: minStreamBytes}, records, text)
	stream, cancel := x.subscribe(t, x.certB)
	waitFor(t, "the stream holds computed views", func() bool {
		_, _, queued := x.f.followers.usage("cert-b")
		return queued > 0
	})
	// One feed entry may carry the stream past its bound; these entries
	// give one view each, of a few KB.
	bound := int64(minStreamBytes) + 4*text
	received := 0
	for received < records {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d views: %v", received, err)
		}
		received += len(resp.GetItems())
	}
	if peak := x.f.followers.peak("cert-b"); peak > bound || peak == 0 {
		t.Fatalf("the stream held at most %d bytes; want between 1 and %d", peak, bound)
	}
	if used := x.f.limits.budget.inUse(); used > bound {
		t.Fatalf("the node's budget has %d bytes in use for one stream; want at most %d", used, bound)
	}
	cancel()
	waitFor(t, "the ended stream's bytes are back in the budget", func() bool {
		_, _, queued := x.f.followers.usage("cert-b")
		return x.f.limits.budget.inUse() == 0 && queued == 0
	})
}

// TestSendBudgetWaits: a walk waits while its peer's share of the node's
// budget is spent, and goes on when bytes are released; a peer that comes
// after another spent the budget gets its own share.
func TestSendBudgetWaits(t *testing.T) {
	b := newSendBudget(100, 10)
	ctx := context.Background()
	if err := b.acquire(ctx, "b", 80); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, "b", 40) }()
	select {
	case err := <-got:
		t.Fatalf("acquired 40 bytes with 80 of 100 in use: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.release("b", 80)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(bound):
		t.Fatal("the waiting walk did not get its bytes after a release")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(cancelled, "b", 100); status.Code(err) != codes.Canceled {
		t.Fatalf("acquire on a cancelled stream: %v, want CANCELED", err)
	}
	// A peer that holds nothing gets its first share even if it is
	// larger than what is free, so one large share cannot stop every
	// stream; it then waits like the others.
	b.release("b", 40)
	if err := b.acquire(ctx, "b", 500); err != nil || b.inUse() != 500 {
		t.Fatalf("a first share of 500 bytes of an empty budget of 100: %v, in use %d", err, b.inUse())
	}
	// Another peer comes: it gets its walk, then up to its share (half the
	// budget, two peers hold bytes), while b, over its share, takes none.
	if err := b.acquire(ctx, "c", 30); err != nil {
		t.Fatal(err)
	}
	if err := b.acquire(ctx, "c", 20); err != nil || b.holds("c") != 50 {
		t.Fatalf("c within its share of 50: %v, holds %d", err, b.holds("c"))
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.acquire(short, "c", 1); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("c beyond its share of 50: %v, want to wait", err)
	}
	if err := b.acquire(short, "b", 1); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("b, holding 500 of a share of 50: %v, want to wait", err)
	}
}

// TestStreamRefusedNearMemoryLimit: while the live heap is near the
// memory limit, new streams are refused with RESOURCE_EXHAUSTED.
func TestStreamRefusedNearMemoryLimit(t *testing.T) {
	x := newFeedFixture(t, Config{MemoryLimit: 100 << 20}, 1, 10)
	x.f.limits.heapLive = func() uint64 { return 95 << 20 }
	stream, _ := x.subscribe(t, x.certB)
	_, err := stream.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "memory limit") {
		t.Fatalf("a stream with the heap at 95 of 100 MiB: %v; want RESOURCE_EXHAUSTED naming the memory limit", err)
	}
	if n := counterValue(t, x.f.metrics.streamsRefused, "cert-b", "memory"); n != 1 {
		t.Fatalf("irx_federation_streams_refused_total{reason=memory} = %v, want 1", n)
	}
	x.f.limits.heapLive = func() uint64 { return 50 << 20 }
	stream, _ = x.subscribe(t, x.certB)
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("a stream with the heap at 50 of 100 MiB: %v", err)
	}
}

// TestRefusedHandshakesRateLimited: a stranger retrying its handshake
// gets a bounded number of log lines; every refusal is counted, and the
// next line logged says how many were not.
func TestRefusedHandshakesRateLimited(t *testing.T) {
	fx := newFixture(t, false)
	now := time.Now()
	var clock sync.Mutex
	fx.f.handshakes.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	stranger := issue(t, mustCA(t, "cert-x"), pki.NodeIdentity("cert-x", "n1"))
	const tries = 3 * refusalLogBurst
	for range tries {
		stream, err := fx.dial(t, stranger).Subscribe(context.Background(), &irxv1.SubscribeRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		if err == nil {
			t.Fatal("a stranger's handshake was accepted")
		}
	}
	waitFor(t, "every refusal counted", func() bool {
		return counterValue(t, fx.f.metrics.handshakesRefused, "", "deleted") >= tries
	})
	if n := strings.Count(fx.logs.String(), "refused a peer connection"); n != refusalLogBurst {
		t.Fatalf("%d log lines for %d refused handshakes in one interval; want %d", n, tries, refusalLogBurst)
	}
	clock.Lock()
	now = now.Add(refusalLogInterval)
	clock.Unlock()
	before := fx.logs.String()
	if stream, err := fx.dial(t, stranger).Subscribe(context.Background(), &irxv1.SubscribeRequest{}); err == nil {
		_, _ = stream.Recv()
	}
	waitFor(t, "a line in the next interval", func() bool { return len(fx.logs.String()) > len(before) })
	if line := fx.logs.String()[len(before):]; !strings.Contains(line, "suppressed_since_last=") {
		t.Fatalf("the first line of the next interval does not say how many were suppressed: %s", line)
	}
}

// TestStreamWaitsForAcknowledgement: a peer that reads without
// acknowledging gets no more than the stream may remember unacknowledged
// (plus the walk that reached it), then heartbeats; each acknowledgement
// lets it go on, until it has the whole feed.
func TestStreamWaitsForAcknowledgement(t *testing.T) {
	const records, unacked, batch = 90, 30, 10
	x := newFeedFixture(t, Config{}, records, 64)
	x.f.limits.unacknowledged = unacked
	x.maxItems = batch
	client, _ := x.client(t, x.certB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.Subscribe(ctx, &irxv1.SubscribeRequest{MaxItems: batch})
	if err != nil {
		t.Fatal(err)
	}
	received, sinceAck, acks := 0, 0, 0
	for received < records {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d views: %v", received, err)
		}
		if n := len(resp.GetItems()); n > 0 {
			received += n
			sinceAck += n
			if sinceAck > unacked+batch {
				t.Fatalf("%d views sent since the last acknowledgement; want at most %d", sinceAck, unacked+batch)
			}
			continue
		}
		// A heartbeat: the stream waits for us.
		if _, err := client.Acknowledge(ctx, &irxv1.AcknowledgeRequest{Cursor: resp.GetCursor(), PolicyVersion: resp.GetPolicyVersion()}); err != nil {
			t.Fatal(err)
		}
		sinceAck = 0
		acks++
	}
	if acks < records/(unacked+batch) {
		t.Fatalf("the whole feed of %d came with %d acknowledgements; the stream never waited for one", records, acks)
	}
}

// TestGreedyPeerLeavesOthersTheirShare: a peer whose streams do not read
// spends what the node's send budget lets it; another peer that
// subscribes then still gets its whole feed, from its own share, while
// the greedy streams stay open.
func TestGreedyPeerLeavesOthersTheirShare(t *testing.T) {
	const records, text = 400, 2000 // about 800 KB of views per stream
	x := newFeedFixture(t, Config{StreamBytes: minStreamBytes}, records, text)
	// A budget of four streams' bounds: the greedy peer's eight streams
	// can spend it alone.
	limit := int64(4 * minStreamBytes)
	x.f.limits.budget = newSendBudget(limit, 2*minStreamBytes)
	for range DefaultStreamsPerPeer {
		x.subscribe(t, x.certB) // never read
	}
	waitFor(t, "the greedy peer spends the budget", func() bool {
		return x.f.limits.budget.holds("cert-b") > limit-minStreamBytes
	})
	client, _ := x.client(t, x.certC)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	stream, err := client.Subscribe(ctx, &irxv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	received := 0
	for received < records {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("cert-c's stream, beside cert-b's %d that do not read, after %d of %d views: %v", DefaultStreamsPerPeer, received, records, err)
		}
		received += len(resp.GetItems())
	}
	if open, _, _ := x.f.followers.usage("cert-b"); open != DefaultStreamsPerPeer {
		t.Fatalf("cert-b has %d streams open, want its %d", open, DefaultStreamsPerPeer)
	}
}

// TestOversizeRequestRefused: a peer's request over MaxRequestBytes is
// refused by gRPC from its length prefix, with RESOURCE_EXHAUSTED, and the
// connection serves the next request.
func TestOversizeRequestRefused(t *testing.T) {
	x := newFeedFixture(t, Config{}, 1, 10)
	c, _ := x.client(t, x.certB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.HandOffIncident(ctx, &irxv1.HandOffIncidentRequest{Reason: strings.Repeat("x", MaxRequestBytes)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a %d-byte hand-off: %v, want ResourceExhausted", MaxRequestBytes, err)
	}
	if _, err := c.GetSignedTeamDescription(ctx, &irxv1.GetSignedTeamDescriptionRequest{}); status.Code(err) == codes.ResourceExhausted || status.Code(err) == codes.Unavailable {
		t.Fatalf("the next request on the connection: %v", err)
	}
}
