package federation

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// servingPeer is team cert-b serving a FederationService of the test's
// making on a loopback listener with mutual TLS: a hostile or broken peer
// as our puller meets it.
type servingPeer struct {
	irxv1.UnimplementedFederationServiceServer
	serve func(stream irxv1.FederationService_SubscribeServer) error
	sent  atomic.Int64 // responses gRPC accepted
}

func (s *servingPeer) Subscribe(_ *irxv1.SubscribeRequest, stream irxv1.FederationService_SubscribeServer) error {
	return s.serve(stream)
}

func (s *servingPeer) Acknowledge(context.Context, *irxv1.AcknowledgeRequest) (*irxv1.AcknowledgeResponse, error) {
	return &irxv1.AcknowledgeResponse{}, nil
}

// pullerNode is the node our puller runs on: only its certificate is
// used.
type pullerNode struct {
	Node
	cert pki.CertSource
}

func (n pullerNode) Certificate() pki.CertSource { return n.cert }

// pullFixture is team cert-a, whose puller follows cert-b's servingPeer.
// Its commits wait for gate and are counted.
type pullFixture struct {
	f       *Federation
	peer    *irxv1.Peer
	logs    *syncBuffer
	gate    chan struct{}
	commits atomic.Int64
	applied atomic.Int64 // bytes committed
}

func newPullFixture(t *testing.T, memoryLimit int64, serve func(irxv1.FederationService_SubscribeServer) error) (*pullFixture, *servingPeer) {
	t.Helper()
	return newPullFixtureValid(t, memoryLimit, time.Hour, serve)
}

// newPullFixtureValid is newPullFixture with cert-b's server certificate
// valid for serverValidity.
func newPullFixtureValid(t *testing.T, memoryLimit int64, serverValidity time.Duration, serve func(irxv1.FederationService_SubscribeServer) error) (*pullFixture, *servingPeer) {
	t.Helper()
	caA, caB := mustCA(t, "cert-a"), mustCA(t, "cert-b")
	// cert-b's side: a state machine of its own that knows cert-a.
	theirs, err := fsm.Open(filepath.Join(t.TempDir(), "state"), "cert-b", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theirs.Close() })
	data, err := proto.Marshal(&irxv1.Command{ProposeTime: timestamppb.Now(), Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{
		Peer: &irxv1.Peer{TeamId: "cert-a", CaCertificatePem: string(caA.CertPEM())}, Create: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if res := theirs.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
		t.Fatal(res.Err)
	}
	svc := &servingPeer{serve: serve}
	server := New(Config{Addr: "127.0.0.1:0"})
	server.state, server.team, server.log = fsmState{theirs}, "cert-b", slog.New(slog.DiscardHandler)
	server.cert = pki.StaticCertificate(issueValid(t, caB, pki.NodeIdentity("cert-b", "n1"), serverValidity))
	if err := server.listen(func(s *grpc.Server) { irxv1.RegisterFederationServiceServer(s, svc) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })

	x := &pullFixture{logs: &syncBuffer{}, gate: make(chan struct{})}
	x.peer = &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM()), Endpoints: []string{server.Addr().String()}}
	ours := stateWithPeers(t, x.peer)
	x.f = New(Config{MemoryLimit: memoryLimit, RetryMax: 100 * time.Millisecond})
	x.f.state, x.f.team, x.f.log = fsmState{ours}, "cert-a", slog.New(slog.NewTextHandler(x.logs, nil))
	x.f.node = pullerNode{cert: pki.StaticCertificate(issue(t, caA, pki.NodeIdentity("cert-a", "n1")))}
	x.f.commit = func(ctx context.Context, cmd *irxv1.Command) (proto.Message, error) {
		select {
		case <-x.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		x.commits.Add(1)
		x.applied.Add(int64(proto.Size(cmd))) // the items are encoded, set as they came
		return nil, nil
	}
	x.f.pullers.live["cert-b"] = &live{}
	return x, svc
}

// follow runs the puller for cert-b until the test ends.
func (x *pullFixture) follow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		x.f.pullers.follow(ctx, x.peer)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (x *pullFixture) status() live {
	p := x.f.pullers
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.live["cert-b"]
}

// feedResponse is an honest-looking response: items of itemBytes each at
// the sequences after from.
func feedResponse(t *testing.T, from uint64, items, itemBytes int) []byte {
	t.Helper()
	resp := &irxv1.SubscribeResponse{PolicyVersion: 1}
	for i := range items {
		resp.Items = append(resp.Items, &irxv1.FeedItem{Sequence: from + uint64(i) + 1, Kind: &irxv1.FeedItem_Incident{Incident: &irxv1.Incident{
			Id: "cert-b:1", WithdrawReason: strings.Repeat("x", itemBytes),
		}}})
	}
	resp.Cursor = from + uint64(items)
	data, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPullerHoldsBoundedBytes: a peer that sends responses without end
// while our commits are slow fills the puller's read-ahead to its bound
// and no further, by the puller's own account; once commits go on, the
// feed flows and the bound still holds.
func TestPullerHoldsBoundedBytes(t *testing.T) {
	const memoryLimit = 128 << 20 // an eighth of it for the one followed peer: 16 MiB
	const items, itemBytes = 16, 64 << 10
	limit := recvLimit(memoryLimit, 1)
	x, peer := newPullFixture(t, memoryLimit, nil)
	peer.serve = func(stream irxv1.FederationService_SubscribeServer) error {
		for seq := uint64(0); ; seq += items {
			if err := stream.SendMsg(&frame{data: feedResponse(t, seq, items, itemBytes)}); err != nil {
				return err
			}
			peer.sent.Add(1)
		}
	}
	x.follow(t)
	// The first response is in the apply loop, waiting for its commit;
	// the reader reads ahead behind it.
	waitFor(t, "the puller reads ahead to its bound", func() bool {
		st := x.status()
		if st.recv == nil {
			return false
		}
		now, _ := st.recv.held()
		return now > limit-MaxFeedResponseBytes-items*(itemBytes+64)
	})
	// Then the peer's sends stop: what it sends beyond the puller's
	// account waits in gRPC's flow control, not in the puller.
	sent := peer.sent.Load()
	stable := time.Now()
	waitFor(t, "the peer's sends stop", func() bool {
		if n := peer.sent.Load(); n != sent {
			sent, stable = n, time.Now()
		}
		return time.Since(stable) > time.Second
	})
	st := x.status()
	if now, most := st.recv.held(); most > limit || now > limit {
		t.Fatalf("the puller holds %d bytes, at most %d; its bound is %d", now, most, limit)
	}
	if x.commits.Load() != 0 {
		t.Fatal("a commit went through the closed gate")
	}
	close(x.gate)
	// The feed flows: more than the bound is applied (twice it: under
	// -race on a busy machine, applying many times 16 MiB outlasted the
	// wait).
	waitFor(t, "the feed flows once commits go on", func() bool {
		return x.applied.Load() > 2*limit && peer.sent.Load() > sent
	})
	if _, most := x.status().recv.held(); most > limit {
		t.Fatalf("the puller held at most %d bytes while the feed flowed; its bound is %d", most, limit)
	}
}

// TestPullerRefusesOversizeResponse: a response larger than any a peer
// sends is refused by gRPC from its length prefix, shown as the peer's
// last error, counted and logged; the puller keeps running and retries.
func TestPullerRefusesOversizeResponse(t *testing.T) {
	x, peer := newPullFixture(t, 128<<20, nil)
	big := feedResponse(t, 0, 1, MaxFeedResponseBytes+(1<<20))
	peer.serve = func(stream irxv1.FederationService_SubscribeServer) error {
		return stream.SendMsg(&frame{data: big})
	}
	close(x.gate)
	x.follow(t)
	waitFor(t, "the refusal shows as the peer's last error", func() bool {
		return strings.Contains(x.status().lastErr, "larger than this node accepts")
	})
	if err := x.status().lastErr; !strings.Contains(err, "ResourceExhausted") || !strings.Contains(err, x.peer.GetEndpoints()[0]) {
		t.Fatalf("the peer's last error: %s; want the endpoint and RESOURCE_EXHAUSTED", err)
	}
	waitFor(t, "the puller retries, and each refusal is counted", func() bool {
		return counterValue(t, x.f.metrics.pullsRefused, "cert-b", "oversize") >= 2
	})
	if !strings.Contains(x.logs.String(), "refused the peer's feed response") {
		t.Fatalf("the refusal was not logged:\n%s", x.logs.String())
	}
	if x.commits.Load() != 0 {
		t.Fatalf("%d commits of an oversize response", x.commits.Load())
	}
}

// TestPullerRefusesMalformedResponse: a response that is not a
// SubscribeResponse is refused and counted as malformed, and nothing of
// it is applied.
func TestPullerRefusesMalformedResponse(t *testing.T) {
	x, peer := newPullFixture(t, 128<<20, nil)
	peer.serve = func(stream irxv1.FederationService_SubscribeServer) error {
		return stream.SendMsg(&frame{data: []byte{0x0a, 0xff, 0xff, 0xff, 0x0f}}) // items, cut short
	}
	close(x.gate)
	x.follow(t)
	waitFor(t, "the malformed response is the peer's last error", func() bool {
		return strings.Contains(x.status().lastErr, "malformed SubscribeResponse")
	})
	if n := counterValue(t, x.f.metrics.pullsRefused, "cert-b", "malformed"); n < 1 {
		t.Fatalf("irx_federation_feed_responses_refused_total{reason=malformed} = %v, want at least 1", n)
	}
	if x.commits.Load() != 0 {
		t.Fatalf("%d commits of a malformed response", x.commits.Load())
	}
}

// TestPullerEndsStreamAtServerExpiry: a stream from a peer whose server
// certificate expires while it is open ends then, with nothing changed in
// the peer's configuration, and says why; the handshakes after it fail
// on the expired chain, so nothing more is read from that server.
// The certificate lives 10 s: long enough for the handshake on a busy
// machine under -race, which must finish before it expires.
func TestPullerEndsStreamAtServerExpiry(t *testing.T) {
	var streams atomic.Int64
	x, _ := newPullFixtureValid(t, 128<<20, 10*time.Second, func(stream irxv1.FederationService_SubscribeServer) error {
		streams.Add(1)
		<-stream.Context().Done() // an idle feed: nothing ends the stream but the puller
		return nil
	})
	close(x.gate)
	x.follow(t)
	waitFor(t, "the stream is open", func() bool { return streams.Load() == 1 })
	deadline := time.Now().Add(10*time.Second + bound)
	for st := x.status(); !strings.Contains(st.lastErr, errServerChainExpired.Error()); st = x.status() {
		if time.Now().After(deadline) {
			t.Fatalf("the stream outlived the server's certificate: last error %q", st.lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Reconnecting fails the handshake: no second stream is opened.
	waitFor(t, "a handshake is refused", func() bool {
		st := x.status()
		return strings.Contains(st.lastErr, "expired") && !strings.Contains(st.lastErr, errServerChainExpired.Error())
	})
	if n := streams.Load(); n != 1 {
		t.Fatalf("%d streams opened, want 1: the expired server was accepted again", n)
	}
}
