package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs/errgrpc"
	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// bound is how long a test waits for what should take well under a second:
// generous, so that a busy two-core machine under -race passes.
const bound = 20 * time.Second

// applyCommand applies one command to a state machine as raft would, at
// the next index.
func applyCommand(t *testing.T, st *fsm.FSM, cmd *irxv1.Command) {
	t.Helper()
	cmd.ProposeTime = timestamppb.Now()
	data, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if res := st.Apply(&raft.Log{Index: st.AppliedIndex() + 1, Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
		t.Fatal(res.Err)
	}
}

// changePeer stores a changed configuration of a peer.
func changePeer(t *testing.T, st *fsm.FSM, team string, change func(*irxv1.Peer)) {
	t.Helper()
	p, err := st.Peer(team)
	if err != nil {
		t.Fatal(err)
	}
	change(p)
	applyCommand(t, st, &irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{Peer: p}}})
}

func deletePeer(t *testing.T, st *fsm.FSM, team string) {
	t.Helper()
	applyCommand(t, st, &irxv1.Command{Kind: &irxv1.Command_DeletePeer{DeletePeer: &irxv1.DeletePeerCommand{TeamId: team}}})
}

// syncBuffer is a log destination the test reads while servers write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testFeed is a FederationService whose Subscribe sends one response and
// then, idle, waits for its context to end, like a feed with nothing new;
// or, with flood, sends large responses until Send fails, so that a client
// that does not read leaves it blocked on flow control.
type testFeed struct {
	irxv1.UnimplementedFederationServiceServer
	flood bool
	sent  atomic.Int64
	ended chan error // what each Subscribe returned
	// causes are why each idle stream's context ended.
	causes chan error
}

func (s *testFeed) Subscribe(_ *irxv1.SubscribeRequest, stream irxv1.FederationService_SubscribeServer) error {
	err := s.serve(stream)
	s.ended <- err
	return err
}

func (s *testFeed) serve(stream irxv1.FederationService_SubscribeServer) error {
	if err := stream.Send(&irxv1.SubscribeResponse{Cursor: 1}); err != nil {
		return err
	}
	s.sent.Add(1)
	if !s.flood {
		<-stream.Context().Done()
		s.causes <- context.Cause(stream.Context())
		return status.FromContextError(stream.Context().Err()).Err()
	}
	big := &irxv1.SubscribeResponse{Items: []*irxv1.FeedItem{{Kind: &irxv1.FeedItem_Incident{Incident: &irxv1.Incident{
		WithdrawReason: strings.Repeat("x", 256<<10),
	}}}}}
	for {
		if err := stream.Send(big); err != nil {
			return err
		}
		s.sent.Add(1)
	}
}

// fixture is team cert-a's peer-facing listener on a loopback port, over a
// real state machine, with peers cert-b and cert-c.
type fixture struct {
	f        *Federation
	st       *fsm.FSM
	feed     *testFeed
	logs     *syncBuffer
	caA      *pki.CA
	caB, caC *pki.CA
}

func newFixture(t *testing.T, flood bool) *fixture {
	t.Helper()
	fx := &fixture{caA: mustCA(t, "cert-a"), caB: mustCA(t, "cert-b"), caC: mustCA(t, "cert-c"), logs: &syncBuffer{}}
	fx.st = stateWithPeers(t,
		&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(fx.caB.CertPEM())},
		&irxv1.Peer{TeamId: "cert-c", CaCertificatePem: string(fx.caC.CertPEM())},
	)
	fx.feed = &testFeed{flood: flood, ended: make(chan error, 16), causes: make(chan error, 16)}
	f := New(Config{Addr: "127.0.0.1:0"})
	f.state, f.team, f.log = fsmState{fx.st}, "cert-a", slog.New(slog.NewTextHandler(fx.logs, nil))
	f.cert = pki.StaticCertificate(issue(t, fx.caA, pki.NodeIdentity("cert-a", "n1")))
	if err := f.listen(func(s *grpc.Server) { irxv1.RegisterFederationServiceServer(s, fx.feed) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	fx.f = f
	return fx
}

func issue(t *testing.T, ca *pki.CA, id pki.Identity) tls.Certificate {
	t.Helper()
	return issueValid(t, ca, id, time.Hour)
}

func issueValid(t *testing.T, ca *pki.CA, id pki.Identity, validity time.Duration) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.IssueRequest{Identity: id, Usage: pki.UsageNode, Validity: validity})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func fingerprintOf(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return pki.Fingerprint(leaf)
}

// dial connects to the listener with a client certificate.
func (fx *fixture) dial(t *testing.T, cert tls.Certificate) irxv1.FederationServiceClient {
	t.Helper()
	conf, err := pki.ClientConfig(pki.StaticCertificate(cert), fx.caA.Pool(), pki.ExpectNode("cert-a"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(fx.f.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return irxv1.NewFederationServiceClient(conn)
}

// openStream is a Subscribe stream whose first response arrived; its end
// (the error Recv returned) is delivered on the channel.
type openStream struct {
	end   chan error
	ended time.Time // set before end is sent
}

func (fx *fixture) subscribe(t *testing.T, cert tls.Certificate, read bool) *openStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := fx.dial(t, cert).Subscribe(ctx, &irxv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("the first response: %v", err)
	}
	s := &openStream{end: make(chan error, 1)}
	if read {
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					s.ended = time.Now()
					s.end <- err
					return
				}
			}
		}()
	}
	return s
}

// wait returns how the stream ended, failing the test if it did not.
func (s *openStream) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-s.end:
		return err
	case <-time.After(bound):
		t.Fatalf("%s: the open stream was not cut within %v", what, bound)
		return nil
	}
}

func (s *openStream) open() bool { return len(s.end) == 0 }

// waitChecked waits until the watcher looked at the state as of now.
func (fx *fixture) waitChecked(t *testing.T) {
	t.Helper()
	want := fx.st.AppliedIndex()
	deadline := time.Now().Add(bound)
	for fx.f.conns.checked.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not check index %d within %v", want, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counterValue reads one series of a counter as a scrape would.
func counterValue(t *testing.T, vec *prometheus.CounterVec, peer, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(vec)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["peer"] == peer && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func refusedOrClosed(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unavailable
}

// TestLiveCut: each change that refuses a peer's certificate ends the open
// stream of a connection that presented it, closes the connection, counts
// the cut by reason and logs it; a new connection is refused in the
// handshake.
func TestLiveCut(t *testing.T) {
	for _, tc := range []struct {
		reason string
		change func(t *testing.T, fx *fixture, cert tls.Certificate)
	}{
		{reasonDeleted, func(t *testing.T, fx *fixture, _ tls.Certificate) { deletePeer(t, fx.st, "cert-b") }},
		{reasonDisabled, func(t *testing.T, fx *fixture, _ tls.Certificate) {
			changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) { p.Disabled = true })
		}},
		{reasonUntrusted, func(t *testing.T, fx *fixture, _ tls.Certificate) {
			rotated := mustCA(t, "cert-b")
			changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) { p.CaCertificatePem = string(rotated.CertPEM()) })
		}},
		{reasonRevoked, func(t *testing.T, fx *fixture, cert tls.Certificate) {
			changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) { p.RevokedCertificateFingerprints = []string{fingerprintOf(t, cert)} })
		}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			fx := newFixture(t, false)
			cert := issue(t, fx.caB, pki.NodeIdentity("cert-b", "n1"))
			s := fx.subscribe(t, cert, true)
			if n := fx.f.conns.count(); n != 1 {
				t.Fatalf("%d connections tracked, want 1", n)
			}
			changed := time.Now()
			tc.change(t, fx, cert)
			err := s.wait(t, tc.reason)
			t.Logf("%s: the peer's stream ended %v after the change was applied: %v", tc.reason, s.ended.Sub(changed).Round(time.Microsecond), err)
			if !refusedOrClosed(err) {
				t.Errorf("the stream ended with %v, want PermissionDenied or Unavailable", err)
			}
			<-fx.feed.ended // the handler returned
			// Its context ended with the cut, before the socket closed: the
			// status the peer reads says why.
			if cause := <-fx.feed.causes; !errors.As(cause, new(*cut)) || reasonOf(cause) != tc.reason {
				t.Errorf("the handler's context ended with %v, want the cut (%s)", cause, tc.reason)
			}
			waitFor(t, "the connection is closed", func() bool { return fx.f.conns.count() == 0 })
			if got := counterValue(t, fx.f.cuts.connections, "cert-b", tc.reason); got != 1 {
				t.Errorf("irx_peer_connections_cut_total{peer=cert-b,reason=%s} = %v, want 1", tc.reason, got)
			}
			if got := counterValue(t, fx.f.cuts.streams, "cert-b", tc.reason); got != 1 {
				t.Errorf("irx_peer_streams_cut_total{peer=cert-b,reason=%s} = %v, want 1", tc.reason, got)
			}
			logs := fx.logs.String()
			if !strings.Contains(logs, `msg="cut a peer connection" peer=cert-b`) || !strings.Contains(logs, "reason="+tc.reason) ||
				!strings.Contains(logs, fingerprintOf(t, cert)) || strings.Contains(logs, "PRIVATE KEY") {
				t.Errorf("the log does not say what was cut, or says too much:\n%s", logs)
			}
			// A new connection with the same certificate gets nothing.
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			stream, err := fx.dial(t, cert).Subscribe(ctx, &irxv1.SubscribeRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if !refusedOrClosed(err) {
				t.Errorf("a new stream after the change: %v, want it refused", err)
			}
		})
	}
}

// TestLiveCutAtExpiry: a connection whose certificate expires while it is
// open is cut, with nothing changed in the peer's configuration, and says
// why.
// The certificate lives 10 s: long enough for the handshake on a busy
// machine under -race, which must finish before it expires.
func TestLiveCutAtExpiry(t *testing.T) {
	fx := newFixture(t, false)
	certPEM, keyPEM, err := fx.caB.Issue(pki.IssueRequest{Identity: pki.NodeIdentity("cert-b", "n1"), Usage: pki.UsageNode, Validity: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := fx.subscribe(t, cert, true)
	if err := s.wait(t, reasonExpired); !refusedOrClosed(err) {
		t.Errorf("the stream ended with %v, want PermissionDenied or Unavailable", err)
	}
	<-fx.feed.ended
	if cause := <-fx.feed.causes; !errors.As(cause, new(*cut)) || reasonOf(cause) != reasonExpired {
		t.Errorf("the handler's context ended with %v, want the cut (%s)", cause, reasonExpired)
	}
	waitFor(t, "the connection is closed", func() bool { return fx.f.conns.count() == 0 })
	if got := counterValue(t, fx.f.cuts.connections, "cert-b", reasonExpired); got != 1 {
		t.Errorf("irx_peer_connections_cut_total{peer=cert-b,reason=%s} = %v, want 1", reasonExpired, got)
	}
}

// TestLiveCutSparesOthers: a change cuts only the connections whose
// certificates it refuses; changes that refuse nothing cut nothing.
func TestLiveCutSparesOthers(t *testing.T) {
	fx := newFixture(t, false)
	b1, b2 := issue(t, fx.caB, pki.NodeIdentity("cert-b", "n1")), issue(t, fx.caB, pki.NodeIdentity("cert-b", "n2"))
	c1 := issue(t, fx.caC, pki.NodeIdentity("cert-c", "n1"))
	sb1, sb2, sc1 := fx.subscribe(t, b1, true), fx.subscribe(t, b2, true), fx.subscribe(t, c1, true)

	// Renamed, a certificate nobody presents revoked: nothing is cut.
	changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) { p.DisplayName = "CERT-B" })
	other := issue(t, fx.caB, pki.NodeIdentity("cert-b", "n3"))
	changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) { p.RevokedCertificateFingerprints = []string{fingerprintOf(t, other)} })
	fx.waitChecked(t)
	if !sb1.open() || !sb2.open() || !sc1.open() || fx.f.conns.count() != 3 {
		t.Fatalf("a change that refuses nobody cut a stream: b1 %v, b2 %v, c1 %v, %d connections", sb1.open(), sb2.open(), sc1.open(), fx.f.conns.count())
	}

	// b2 revoked: only b2.
	changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) {
		p.RevokedCertificateFingerprints = append(p.RevokedCertificateFingerprints, fingerprintOf(t, b2))
	})
	if err := sb2.wait(t, "b2 revoked"); !refusedOrClosed(err) {
		t.Errorf("b2's stream ended with %v", err)
	}
	fx.waitChecked(t)
	waitFor(t, "b2's connection closed", func() bool { return fx.f.conns.count() == 2 })
	if !sb1.open() || !sc1.open() {
		t.Fatalf("revoking b2 cut b1 (%v) or c1 (%v)", !sb1.open(), !sc1.open())
	}

	// cert-b deleted: b1, not cert-c.
	deletePeer(t, fx.st, "cert-b")
	if err := sb1.wait(t, "cert-b deleted"); !refusedOrClosed(err) {
		t.Errorf("b1's stream ended with %v", err)
	}
	fx.waitChecked(t)
	waitFor(t, "b1's connection closed", func() bool { return fx.f.conns.count() == 1 })
	if !sc1.open() {
		t.Fatal("deleting cert-b cut cert-c")
	}
}

// TestLiveCutBlockedStream: a peer that stopped reading leaves the
// handler blocked in Send on flow control, where no context reaches it;
// the cut closes the connection, which ends the Send.
func TestLiveCutBlockedStream(t *testing.T) {
	fx := newFixture(t, true)
	cert := issue(t, fx.caB, pki.NodeIdentity("cert-b", "n1"))
	fx.subscribe(t, cert, false) // and never read again
	// Wait until the flow-control windows and socket buffers are full:
	// the count stops growing.
	last := int64(-1)
	waitFor(t, "Send blocks", func() bool {
		n := fx.feed.sent.Load()
		if n == last {
			return true
		}
		last = n
		time.Sleep(300 * time.Millisecond)
		return false
	})
	t.Logf("the handler sent %d responses (the second and later of 256 KiB) before Send blocked", last)
	select {
	case err := <-fx.feed.ended:
		t.Fatalf("the handler ended before the change: %v", err)
	default:
	}
	changed := time.Now()
	changePeer(t, fx.st, "cert-b", func(p *irxv1.Peer) { p.RevokedCertificateFingerprints = []string{fingerprintOf(t, cert)} })
	select {
	case err := <-fx.feed.ended:
		t.Logf("the blocked handler returned %v after the change: %v", time.Since(changed).Round(time.Millisecond), err)
	case <-time.After(bound):
		t.Fatalf("the handler is still blocked in Send %v after its certificate was revoked", bound)
	}
	waitFor(t, "the connection is closed", func() bool { return fx.f.conns.count() == 0 })
}

// fakeStream records what a handler sends.
type fakeStream struct {
	ctx  context.Context
	sent int
}

func (s *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeStream) SetTrailer(metadata.MD)       {}
func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SendMsg(any) error            { s.sent++; return nil }
func (s *fakeStream) RecvMsg(any) error            { return errors.New("not receiving") }

// peerContext is the context of a call from a connection that presented
// chain.
func peerContext(chain []*x509.Certificate) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: chain}}})
}

// TestStreamSendRechecks: each message a stream sends is checked against
// the peer's configuration read then, without waiting for the watcher: a
// feed entry committed after the change that refused the peer is never
// sent. A change that refuses nothing lets messages through.
func TestStreamSendRechecks(t *testing.T) {
	caB := mustCA(t, "cert-b")
	st := stateWithPeers(t, &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM())})
	f := &Federation{state: fsmState{st}, cuts: newCutMetrics(), log: slog.New(slog.DiscardHandler)}
	chain := chainOf(t, caB, pki.NodeIdentity("cert-b", "n1"), pki.UsageNode)
	fake := &fakeStream{ctx: peerContext(chain)}
	var sendErr error
	err := f.authenticateStream(nil, fake, nil, func(_ any, ss grpc.ServerStream) error {
		if err := ss.SendMsg(&irxv1.SubscribeResponse{}); err != nil {
			return fmt.Errorf("before any change: %w", err)
		}
		changePeer(t, st, "cert-b", func(p *irxv1.Peer) { p.DisplayName = "renamed" })
		if err := ss.SendMsg(&irxv1.SubscribeResponse{}); err != nil {
			return fmt.Errorf("after a rename: %w", err)
		}
		changePeer(t, st, "cert-b", func(p *irxv1.Peer) { p.RevokedCertificateFingerprints = []string{pki.Fingerprint(chain[0])} })
		sendErr = ss.SendMsg(&irxv1.SubscribeResponse{})
		return sendErr
	})
	if status.Code(sendErr) != codes.PermissionDenied || !strings.Contains(sendErr.Error(), "revoked") {
		t.Errorf("a send after the revocation: %v, want PermissionDenied naming the revocation", sendErr)
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("the stream ended with %v, want PermissionDenied", err)
	}
	if fake.sent != 2 {
		t.Errorf("%d messages reached the transport, want the 2 sent before the revocation", fake.sent)
	}
}

// TestEveryCallRechecks: unary calls are authenticated against the current
// configuration each time, on a connection admitted before the change.
func TestEveryCallRechecks(t *testing.T) {
	caB := mustCA(t, "cert-b")
	st := stateWithPeers(t, &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM())})
	f := &Federation{state: fsmState{st}}
	chain := chainOf(t, caB, pki.NodeIdentity("cert-b", "n1"), pki.UsageNode)
	ctx := peerContext(chain)
	call := func() error {
		_, err := f.authenticateUnary(ctx, nil, nil, func(ctx context.Context, _ any) (any, error) {
			if caller(ctx) != "cert-b" {
				return nil, fmt.Errorf("caller %q", caller(ctx))
			}
			return nil, nil
		})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("before the change: %v", err)
	}
	changePeer(t, st, "cert-b", func(p *irxv1.Peer) { p.RevokedCertificateFingerprints = []string{pki.Fingerprint(chain[0])} })
	if err := call(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after revoking the certificate: %v, want PermissionDenied", err)
	}
	changePeer(t, st, "cert-b", func(p *irxv1.Peer) { p.RevokedCertificateFingerprints = nil })
	if err := call(); err != nil {
		t.Fatalf("revocation lifted: %v", err)
	}
	deletePeer(t, st, "cert-b")
	if err := call(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("after deleting the peer: %v, want PermissionDenied", err)
	}
}

// TestAdmitRechecks: a connection whose handshake passed is verified once
// more after it is tracked, so a change applied in between is not missed.
func TestAdmitRechecks(t *testing.T) {
	caB := mustCA(t, "cert-b")
	st := stateWithPeers(t, &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM())})
	f := &Federation{state: fsmState{st}, conns: newPeerConns(), log: slog.New(slog.DiscardHandler)}
	chain := chainOf(t, caB, pki.NodeIdentity("cert-b", "n1"), pki.UsageNode)
	if err := f.admit(&peerConn{set: f.conns}, chain); err != nil || f.conns.count() != 1 {
		t.Fatalf("admitting an admissible chain: %v, %d tracked", err, f.conns.count())
	}
	deletePeer(t, st, "cert-b")
	if err := f.admit(&peerConn{set: f.conns}, chain); err == nil || f.conns.count() != 1 {
		t.Fatalf("admitted a connection of a deleted peer (%v), %d tracked", err, f.conns.count())
	}
}

// TestVerifyRefusesRevoked: a revoked certificate is refused although it
// chains to the pinned CA, and so is a chain presenting a revoked
// intermediate; other certificates of the peer are not.
func TestVerifyRefusesRevoked(t *testing.T) {
	caB := mustCA(t, "cert-b")
	n1 := chainOf(t, caB, pki.NodeIdentity("cert-b", "n1"), pki.UsageNode)
	n2 := chainOf(t, caB, pki.NodeIdentity("cert-b", "n2"), pki.UsageNode)
	intermediate := chainOf(t, caB, pki.NodeIdentity("cert-b", "n3"), pki.UsageNode)[0]
	withIntermediate := append(chainOf(t, caB, pki.NodeIdentity("cert-b", "n4"), pki.UsageNode), intermediate)
	f := &Federation{state: fsmState{stateWithPeers(t, &irxv1.Peer{
		TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM()),
		RevokedCertificateFingerprints: []string{pki.Fingerprint(n1[0]), pki.Fingerprint(intermediate)},
	})}}
	for name, chain := range map[string][]*x509.Certificate{"revoked leaf": n1, "revoked certificate in the chain": withIntermediate} {
		_, err := f.verifyPeer(chain, x509.ExtKeyUsageClientAuth)
		if err == nil || reasonOf(err) != reasonRevoked || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("%s: %v, want refused as revoked", name, err)
		}
	}
	if id, err := f.verifyPeer(n2, x509.ExtKeyUsageClientAuth); err != nil || id.Name != "n2" {
		t.Errorf("a certificate not revoked: %v, %v", id, err)
	}
}

// TestValidateRevoked: fingerprints are checked, normalised and bounded,
// and every violation names its field.
func TestValidateRevoked(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	many := make([]string, maxRevokedCertificates+1)
	for i := range many {
		many[i] = fmt.Sprintf("SHA256:%064x", i)
	}
	for _, tc := range []struct {
		name  string
		fps   []string
		want  []string // fields of the violations; nil: valid
		after []string // the stored form of a valid list
	}{
		{"empty", nil, nil, nil},
		{"canonical and upper case", []string{"SHA256:" + hex, "SHA256:" + strings.Repeat("CD", 32)}, nil, []string{"SHA256:" + hex, "SHA256:" + strings.Repeat("cd", 32)}},
		{"the most", many[:maxRevokedCertificates], nil, many[:maxRevokedCertificates]},
		{"no prefix", []string{hex}, []string{"peer.revoked_certificate_fingerprints[0]"}, nil},
		{"another hash", []string{"SHA1:" + hex[:40]}, []string{"peer.revoked_certificate_fingerprints[0]"}, nil},
		{"short", []string{"SHA256:" + hex[:62]}, []string{"peer.revoked_certificate_fingerprints[0]"}, nil},
		{"not hex", []string{"SHA256:" + hex, "SHA256:" + strings.Repeat("zz", 32)}, []string{"peer.revoked_certificate_fingerprints[1]"}, nil},
		{"colons", []string{"SHA256:" + strings.Repeat("ab:", 31) + "ab"}, []string{"peer.revoked_certificate_fingerprints[0]"}, nil},
		{"duplicate in another case", []string{"SHA256:" + hex, "SHA256:" + strings.ToUpper(hex)}, []string{"peer.revoked_certificate_fingerprints[1]"}, nil},
		{"too many", many, []string{"peer.revoked_certificate_fingerprints"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &irxv1.Peer{RevokedCertificateFingerprints: append([]string(nil), tc.fps...)}
			vs := validateRevoked(p)
			var fields []string
			for _, v := range vs {
				fields = append(fields, v.Field)
			}
			if fmt.Sprint(fields) != fmt.Sprint(tc.want) {
				t.Fatalf("violations %v, want fields %v", vs, tc.want)
			}
			if tc.want == nil && fmt.Sprint(p.GetRevokedCertificateFingerprints()) != fmt.Sprint(tc.after) {
				t.Errorf("stored as %v, want %v", p.GetRevokedCertificateFingerprints(), tc.after)
			}
		})
	}
	// validatePeer reports them with the rest, as INVALID_ARGUMENT.
	caB := mustCA(t, "cert-b")
	f := &Federation{team: "cert-a"}
	// What the caller gets is what the services' interceptor answers.
	err := errgrpc.ToStatus(f.validatePeer(&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM()), RevokedCertificateFingerprints: []string{"nope"}}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "peer.revoked_certificate_fingerprints[0]") {
		t.Errorf("validatePeer: %v, want INVALID_ARGUMENT naming the field", err)
	}
	// The pinned CA cannot be revoked: it is never presented.
	err = errgrpc.ToStatus(f.validatePeer(&irxv1.Peer{TeamId: "cert-b", CaCertificatePem: string(caB.CertPEM()), RevokedCertificateFingerprints: []string{pki.Fingerprint(caB.Cert)}}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "peer.revoked_certificate_fingerprints[0] is the pinned CA") {
		t.Errorf("revoking the pinned CA: %v, want INVALID_ARGUMENT", err)
	}
}
