// Package federation connects a team to its peer teams: the peer-facing
// listener that authenticates peers by pinned CA and team id, the feed it
// serves them through their disclosure policy, the puller that follows
// their feeds on the team's leader, and the operator services that manage
// and audit all of it (PeerService, AuditService).
package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/errdefs/errgrpc"
	"github.com/irxfed/irx/pki"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// DefaultAddr is the peer-facing listener of the embedded default.
const DefaultAddr = "127.0.0.1:7401"

// MaxRequestBytes bounds what the peer-facing listener reads of one
// request. A peer sends cursors, acknowledgements and hand-offs of one
// incident (at most record.MaxIncidentBytes) with a reason; anything larger
// is refused by gRPC from the length prefix, before it is read.
const MaxRequestBytes = 1 << 20

// Config configures a team's federation.
type Config struct {
	// Addr is the peer-facing listener (mutual TLS always).
	Addr string
	// BatchItems is how many feed entries a puller asks for per response
	// (SubscribeRequest.max_items).
	BatchItems int
	// RetryMax caps the backoff between a puller's reconnection attempts.
	RetryMax time.Duration
	// StreamsPerPeer bounds the Subscribe streams one peer may have open
	// on this node (default DefaultStreamsPerPeer).
	StreamsPerPeer int
	// StreamBytes bounds the encoded bytes one Subscribe stream holds
	// (default DefaultStreamBytes).
	StreamBytes int64
	// MemoryLimit is the node's memory limit: all streams together hold at
	// most an eighth of it, and new streams are refused while the live
	// heap is near it. 0: the Go runtime's limit (GOMEMLIMIT, or what
	// irxd set); math.MaxInt64: none.
	MemoryLimit int64
	// StatisticsInterval is how often the leader publishes the team's
	// statistics to its peers, when they changed (default
	// DefaultStatisticsInterval).
	StatisticsInterval time.Duration
}

// DefaultStatisticsInterval is Config.StatisticsInterval when unset: at
// most one statistics entry per minute, and none while nothing changed.
const DefaultStatisticsInterval = time.Minute

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.BatchItems <= 0 {
		c.BatchItems = 512
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.StatisticsInterval <= 0 {
		c.StatisticsInterval = DefaultStatisticsInterval
	}
	if c.StreamsPerPeer <= 0 {
		c.StreamsPerPeer = DefaultStreamsPerPeer
	}
	if c.StreamBytes <= 0 {
		c.StreamBytes = DefaultStreamBytes
	}
	c.StreamBytes = max(c.StreamBytes, minStreamBytes)
	if c.MemoryLimit <= 0 {
		c.MemoryLimit = debug.SetMemoryLimit(-1) // a read: a negative limit changes nothing
	}
	return c
}

// Federation is one node's part in its team's federation. Every node
// serves the peer-facing API; only the leader runs the pullers.
type Federation struct {
	cfg   Config
	team  string
	node  Node
	state State
	log   *slog.Logger
	// cert is the node's certificate, which the peer-facing listener
	// presents.
	cert pki.CertSource
	// commit is the node's Commit, held apart so that a test can make a
	// proposal fail without a cluster.
	commit func(context.Context, *irxv1.Command) (proto.Message, error)
	// commitInOrder is the node's CommitInOrder; until bound (a test
	// without a cluster), commitEach.
	commitInOrder func(context.Context, []*irxv1.Command) []error
	bound         sync.Once
	// maxLedgerPerCommand is the ledger entries one acknowledgement
	// command may carry (a field so a test can split a small one).
	maxLedgerPerCommand int

	policies *policy.Cache // the node's, once bound
	pools    sync.Map      // pinned CA PEM -> *x509.CertPool
	journals journals
	pullers  *pullers
	metrics  *metrics
	conns    *peerConns
	cuts     *cutMetrics
	// followers are the peers' Subscribe streams open on this node.
	followers *followers
	limits    *streamLimits
	// refusals and handshakes rate-limit the log lines a peer's refused
	// streams and a stranger's refused handshakes write.
	refusals   *rateLog
	handshakes *rateLog

	listener net.Listener
	server   *grpc.Server
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New returns a federation to wire into a node: register its Services on
// the node's servers (node.Config.Services), then Start it with the
// started node.
func New(cfg Config) *Federation {
	f := &Federation{cfg: cfg.withDefaults(), stop: make(chan struct{})}
	f.journals.byPeer = map[string]*journal{}
	f.maxLedgerPerCommand = maxLedgerPerCommand
	f.policies = &policy.Cache{}
	f.pullers = newPullers(f)
	f.metrics = newMetrics(f)
	f.conns = newPeerConns()
	f.cuts = newCutMetrics()
	f.followers = newFollowers()
	f.limits = newStreamLimits(f.cfg)
	f.refusals = newRateLog(refusalLogBurst, refusalLogInterval)
	f.handshakes = newRateLog(refusalLogBurst, refusalLogInterval)
	f.commitInOrder = f.commitEach
	return f
}

// commitEach commits cmds one after the other through commit, stopping at
// the first refusal.
func (f *Federation) commitEach(ctx context.Context, cmds []*irxv1.Command) []error {
	errs := make([]error, len(cmds))
	for i, cmd := range cmds {
		if _, errs[i] = f.commit(ctx, cmd); errs[i] != nil {
			for j := i + 1; j < len(cmds); j++ {
				errs[j] = fmt.Errorf("not proposed: %w", errs[i])
			}
			break
		}
	}
	return errs
}

// Services registers PeerService, AuditService and TeamService on the
// node's operator API and intra-cluster server.
func (f *Federation) Services(t Team, s grpc.ServiceRegistrar) {
	f.bind(t)
	irxv1.RegisterPeerServiceServer(s, &peerService{f: f})
	irxv1.RegisterAuditServiceServer(s, &auditService{f: f})
	irxv1.RegisterTeamServiceServer(s, &teamService{f: f})
	irxv1.RegisterPeerStreamServiceServer(s, &peerStreamService{f: f})
}

// bind attaches the federation to its node. The operator services may
// serve before Start runs, so both Services and Start bind; only the first
// writes, as handlers may already be reading what it set.
func (f *Federation) bind(t Team) {
	f.bound.Do(func() {
		n := t.Node
		f.node, f.state, f.team, f.log = n, t.State, n.TeamID(), n.Logger().With("component", "federation")
		f.cert = n.Certificate()
		f.commit, f.commitInOrder = n.Commit, n.CommitInOrder
		f.policies = n.PolicyCache()
	})
}

// Start binds the peer-facing listener and starts following peers while
// this node leads.
func (f *Federation) Start(t Team) error {
	f.bind(t)
	if f.node != t.Node {
		return errors.New("federation: started with another node than the one whose services it registered")
	}
	if err := f.node.RegisterMetrics(f.metrics, f.cuts); err != nil {
		return fmt.Errorf("federation metrics: %w", err)
	}
	if err := f.listen(func(s *grpc.Server) { irxv1.RegisterFederationServiceServer(s, &federationService{f: f}) }); err != nil {
		return err
	}
	f.wg.Add(4)
	go func() {
		defer f.wg.Done()
		f.pullers.run(f.stop)
	}()
	go func() {
		defer f.wg.Done()
		(&warningSender{f: f, retry: map[string]retryState{}, inflight: map[string]bool{}}).run(f.stop)
	}()
	go func() {
		defer f.wg.Done()
		f.runStatistics(f.stop)
	}()
	go func() {
		defer f.wg.Done()
		f.runRedisclosures(f.stop)
	}()
	return nil
}

// listen binds the peer-facing listener, serves the services register
// adds, and keeps the connections it accepted in step with the peers'
// configuration.
func (f *Federation) listen(register func(*grpc.Server)) error {
	ln, err := net.Listen("tcp", f.cfg.Addr)
	if err != nil {
		return fmt.Errorf("federation listener %s: %w", f.cfg.Addr, err)
	}
	f.listener = ln
	f.server = grpc.NewServer(
		// Connections are tracked from accept to close, with the chain
		// each verified in its handshake, so that a change to a peer can
		// close those it no longer admits (revoke.go).
		grpc.Creds(trackingCreds{TransportCredentials: credentials.NewTLS(f.serverTLS()), f: f}),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		// Subscribe sends responses it encoded itself (a *frame).
		grpc.ForceServerCodecV2(newFeedCodec()),
		// Streams beyond a peer's limit must reach the handler to be told
		// RESOURCE_EXHAUSTED; this bounds the goroutines one connection
		// can make before that.
		grpc.MaxConcurrentStreams(uint32(max(maxStreamsPerConn, f.cfg.StreamsPerPeer+8))),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second}),
		grpc.ChainUnaryInterceptor(errgrpc.RecoverUnary(f.log), f.authenticateUnary, errgrpc.UnaryServerInterceptor),
		grpc.ChainStreamInterceptor(errgrpc.RecoverStream(f.log), f.authenticateStream, errgrpc.StreamServerInterceptor),
	)
	register(f.server)
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		if err := f.server.Serve(trackingListener{Listener: ln, conns: f.conns}); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			f.log.Error("federation listener stopped", "error", err)
		}
	}()
	go func() {
		defer f.wg.Done()
		f.watchPeers(f.stop)
	}()
	f.log.Info("federation listening", "addr", ln.Addr().String(), "limits", f.limits.String())
	return nil
}

// Addr is the bound peer-facing address.
func (f *Federation) Addr() net.Addr { return f.listener.Addr() }

// Close stops the pullers and the peer-facing listener.
func (f *Federation) Close() error {
	select {
	case <-f.stop:
		return nil
	default:
	}
	close(f.stop)
	if f.server != nil {
		stopped := make(chan struct{})
		go func() { f.server.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(3 * time.Second):
			f.server.Stop()
		}
	}
	f.wg.Wait()
	return nil
}

// serverTLS accepts a client only if its chain verifies against the CA
// pinned for the peer its certificate names, and that peer is enabled. The
// check runs in the handshake, so nothing of an unknown caller reaches a
// handler.
func (f *Federation) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return f.cert.Certificate()
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := f.verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
			if err != nil {
				f.metrics.handshakeRefused(err)
				f.handshakes.log(f.log, slog.LevelWarn, "refused a peer connection", "error", err)
			}
			return err
		},
	}
}

// verifyPeer checks a peer's certificate chain against the CA pinned for
// the team it names and returns its identity.
func (f *Federation) verifyPeer(chain []*x509.Certificate, usage x509.ExtKeyUsage) (pki.Identity, error) {
	id, _, err := f.verifyCurrent(chain, usage)
	return id, err
}

// verifyCurrent is verifyPeer that also returns the peer configuration the
// chain passed, for checking it again when that configuration changes.
func (f *Federation) verifyCurrent(chain []*x509.Certificate, usage x509.ExtKeyUsage) (pki.Identity, *irxv1.Peer, error) {
	if len(chain) == 0 {
		return pki.Identity{}, nil, errors.New("no certificate presented")
	}
	claimed, err := pki.IdentityFromCert(chain[0])
	if err != nil {
		return pki.Identity{}, nil, fmt.Errorf("peer certificate: %w", err)
	}
	p, err := f.state.Peer(claimed.Team)
	if err != nil {
		return pki.Identity{}, nil, notConfigured(claimed, err)
	}
	id, err := f.verifyAgainst(p, chain, usage)
	if err != nil {
		return pki.Identity{}, nil, err
	}
	return id, p, nil
}

// verifyAgainst checks a certificate chain against one configuration of
// the peer it names. A refusal is a *refusal, whose reason labels the
// connections a changed configuration cuts.
func (f *Federation) verifyAgainst(p *irxv1.Peer, chain []*x509.Certificate, usage x509.ExtKeyUsage) (pki.Identity, error) {
	if len(chain) == 0 {
		return pki.Identity{}, errors.New("no certificate presented")
	}
	claimed, err := pki.IdentityFromCert(chain[0])
	if err != nil {
		return pki.Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	if p.GetDisabled() {
		return pki.Identity{}, refuse(reasonDisabled, "certificate of %s: peer %q is disabled", claimed, claimed.Team)
	}
	if fp, revoked := revokedIn(p, chain); revoked {
		return pki.Identity{}, refuse(reasonRevoked, "certificate of %s: %s is in the revoked certificates of peer %q", claimed, fp, p.GetTeamId())
	}
	pool, err := f.pinnedPool(p)
	if err != nil {
		return pki.Identity{}, err
	}
	id, err := pki.VerifyCert(chain, pool, usage)
	if err != nil {
		reason := reasonUntrusted
		if invalid := (x509.CertificateInvalidError{}); errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			reason = reasonExpired
		}
		return pki.Identity{}, refuse(reason, "certificate of %s does not verify against the CA pinned for %q: %w", claimed, p.GetTeamId(), err)
	}
	if !id.IsNodeOf(p.GetTeamId()) {
		return pki.Identity{}, refuse(reasonNotNode, "certificate of %s is not a node of peer %q", id, p.GetTeamId())
	}
	return id, nil
}

// pinnedPool is the pool of a peer's pinned CA. Every handshake and every
// call checks the caller against it, so parsed pools are kept, by PEM: a
// re-pinned CA is a different key, and a dropped one is never looked up.
func (f *Federation) pinnedPool(p *irxv1.Peer) (*x509.CertPool, error) {
	pemData := p.GetCaCertificatePem()
	if pool, ok := f.pools.Load(pemData); ok {
		return pool.(*x509.CertPool), nil
	}
	pool, err := pki.NewCertPool([]byte(pemData))
	if err != nil {
		return nil, fmt.Errorf("pinned CA of peer %q: %w", p.GetTeamId(), err)
	}
	f.pools.Store(pemData, pool)
	return pool, nil
}

type callerKey struct{}

// caller is the authenticated peer team of a federation call.
func caller(ctx context.Context) string {
	team, _ := ctx.Value(callerKey{}).(string)
	return team
}

// authenticate re-reads the verified identity and checks the peer is
// still configured: a peer deleted or disabled after the handshake loses
// access on its next call.
func (f *Federation) authenticate(ctx context.Context) (context.Context, error) {
	c, err := f.authorize(ctx)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, callerKey{}, c.id.Team), nil
}

// admitted is a caller that passed authorize.
type admitted struct {
	id    pki.Identity
	chain []*x509.Certificate
	peer  *irxv1.Peer // the configuration it passed
	conn  *peerConn   // nil when the listener did not accept it (tests)
}

// authorize verifies a call's client certificate against the current
// configuration of the peer it names.
func (f *Federation) authorize(ctx context.Context) (admitted, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return admitted{}, status.Error(codes.Unauthenticated, "no peer information")
	}
	info, conn, ok := peerTLS(p.AuthInfo)
	if !ok {
		return admitted{}, status.Error(codes.Unauthenticated, "a client certificate from a peer team is required")
	}
	chain := info.State.PeerCertificates
	id, config, err := f.verifyCurrent(chain, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return admitted{}, status.Error(codes.PermissionDenied, err.Error())
	}
	return admitted{id: id, chain: chain, peer: config, conn: conn}, nil
}

func (f *Federation) authenticateUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := f.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// authenticateStream admits a stream like a call, then keeps checking it:
// its context ends when its connection is cut, and every message it sends
// is checked against the peer's configuration of that moment (revoke.go).
func (f *Federation) authenticateStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, err := f.authorize(ss.Context())
	if err != nil {
		return err
	}
	ctx, release := c.conn.track(context.WithValue(ss.Context(), callerKey{}, c.id.Team))
	defer release()
	err = handler(srv, &authenticatedStream{ServerStream: ss, ctx: ctx, f: f, caller: c})
	if cut := cutCause(ctx); cut != nil {
		// Whatever the handler made of its cancelled context, the peer
		// is told why the stream ended.
		return cut
	}
	return err
}

// policySource is where policies and pseudonym keys are read: the state
// machine, or the reader a feed walk holds.
type policySource interface {
	Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error)
	PseudonymKey(peer string) ([]byte, error)
}

// policy returns the compiled version of a peer's policy (0: latest). A
// peer without a policy gets nil: Disclose then withholds everything.
func (f *Federation) policy(peer string, version int64) (*policy.Compiled, error) {
	return f.policyFrom(f.state, peer, version)
}

func (f *Federation) policyFrom(src policySource, peer string, version int64) (*policy.Compiled, error) {
	p, err := src.Policy(peer, version)
	if errors.Is(err, errdefs.ErrNotFound) && version == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := f.policies.Compile(peer, p, func() ([]byte, error) { return src.PseudonymKey(peer) })
	if err != nil {
		return nil, fmt.Errorf("policy %d for %s: %w", p.GetVersion(), peer, err)
	}
	return c, nil
}
