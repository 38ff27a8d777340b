package federation

// Live revocation. The handshake and every call check a peer's certificate
// against the peer's configuration (federation.go); this file makes a change
// of that configuration reach what was admitted before it:
//
//   - The listener tracks every connection it accepted, with the chain its
//     handshake verified (trackingListener, trackingCreds). grpc-go has no
//     API to close one server connection; the transport credentials are
//     where it lets connection-level control live, and the AuthInfo they
//     return carries the connection to the interceptors.
//   - After every applied change of the state (coalesced, at most one check
//     per recheckInterval), each tracked connection whose peer configuration
//     differs from the one it last passed is verified again (watchPeers).
//     One it no longer passes is cut: its streams' contexts end with the
//     refusal, so they tell the peer why, and then its socket is closed,
//     which also ends a stream blocked in Send on flow control (cancelling a
//     context does not unblock grpc's SendMsg; closing the transport cancels
//     the stream's own context, which does).
//   - Every message a stream sends is first checked against the peer
//     configuration read after the message was computed
//     (authenticatedStream.SendMsg). The watcher runs after a change is
//     applied; this check closes the gap: no feed entry committed after the
//     change that refused the peer is ever sent to it.
//
// The costs: a pebble point read and a proto.Equal per message a stream
// sends (a message carries up to hundreds of feed entries; nothing per
// entry), one read per connected peer team per recheck, and a chain
// verification only when a peer's configuration changed.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/pki"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

const (
	// maxRevokedCertificates bounds a peer's revocation list: every
	// handshake and every call of the peer reads it. A team that must
	// refuse more of a peer's certificates should pin a new CA.
	maxRevokedCertificates = 256
	// recheckInterval coalesces the checks of open connections under a
	// stream of applied entries; with cutGrace it bounds the time from a
	// change to the cut well under a second.
	recheckInterval = 100 * time.Millisecond
	// expiryRecheck is how often open connections are checked when
	// nothing changes, for certificates that expired while connected.
	expiryRecheck = time.Second
	// cutGrace is how long a cut connection's streams get to end and send
	// the peer their status before the socket is closed under them.
	cutGrace = 250 * time.Millisecond
	// statusFlush lets the transport write the final status of streams
	// that ended before their socket is closed; only what the peer reads
	// depends on it, not whether the connection is cut.
	statusFlush = 20 * time.Millisecond
)

// Why a connection is refused or cut: the reason label of the cut metrics.
const (
	reasonDeleted   = "deleted"
	reasonDisabled  = "disabled"
	reasonRevoked   = "certificate_revoked"
	reasonUntrusted = "ca_changed" // the chain no longer verifies against the pinned CA
	reasonExpired   = "expired"
	reasonNotNode   = "not_node"
)

// A refusal is a certificate the peer's configuration does not admit.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(reason, format string, args ...any) error {
	return &refusal{reason: reason, err: fmt.Errorf(format, args...)}
}

// notConfigured is the refusal of a certificate whose team has no peer
// record; another failure to read the record is no refusal, and cuts
// nothing.
func notConfigured(claimed pki.Identity, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return refuse(reasonDeleted, "certificate of %s: %q is not a configured peer", claimed, claimed.Team)
	}
	return fmt.Errorf("certificate of %s: reading peer %q: %w", claimed, claimed.Team, err)
}

// A cut is why an admitted stream was ended: the cause of its context and
// the status the peer receives.
type cut struct{ refusal error }

func (c *cut) Error() string { return c.refusal.Error() + " (the connection is closed)" }
func (c *cut) Unwrap() error { return c.refusal }

// GRPCStatus makes the handler's return value PERMISSION_DENIED.
func (c *cut) GRPCStatus() *status.Status { return status.New(codes.PermissionDenied, c.Error()) }

// cutCause returns the cut that ended ctx, or nil.
func cutCause(ctx context.Context) error {
	var c *cut
	if errors.As(context.Cause(ctx), &c) {
		return c
	}
	return nil
}

// reasonOf labels a refusal.
func reasonOf(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.reason
	}
	return "unknown"
}

// revokedIn reports the first certificate of chain the peer's
// configuration revokes. Every certificate the peer presented counts: a
// revoked intermediate refuses everything issued under it.
func revokedIn(p *irxv1.Peer, chain []*x509.Certificate) (string, bool) {
	revoked := p.GetRevokedCertificateFingerprints()
	if len(revoked) == 0 {
		return "", false
	}
	for _, c := range chain {
		if fp := pki.Fingerprint(c); slices.Contains(revoked, fp) {
			return fp, true
		}
	}
	return "", false
}

// normalizeFingerprint returns "SHA256:<lower-case hex>" of a fingerprint
// as pki.Fingerprint writes it, or ok false.
func normalizeFingerprint(s string) (string, bool) {
	hexPart, found := strings.CutPrefix(s, "SHA256:")
	if !found || len(hexPart) != 64 {
		return "", false
	}
	for _, r := range hexPart {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return "", false
		}
	}
	return "SHA256:" + strings.ToLower(hexPart), true
}

// validateRevoked checks a peer's revoked certificate fingerprints and
// stores them in their canonical form. It runs after the pinned CA was
// checked, which set ca_fingerprint.
func validateRevoked(p *irxv1.Peer) []record.Violation {
	const field = "peer.revoked_certificate_fingerprints"
	fps := p.GetRevokedCertificateFingerprints()
	if len(fps) > maxRevokedCertificates {
		return []record.Violation{{Field: field, Description: fmt.Sprintf("has %d entries, more than %d: pin a new CA of the peer instead", len(fps), maxRevokedCertificates)}}
	}
	var vs []record.Violation
	seen := make(map[string]int, len(fps))
	for i, fp := range fps {
		canonical, ok := normalizeFingerprint(fp)
		switch j, dup := seen[canonical]; {
		case !ok:
			vs = append(vs, record.Violation{Field: fmt.Sprintf("%s[%d]", field, i), Description: fmt.Sprintf("%q is not a certificate fingerprint: want SHA256: and the 64 hex digits of the SHA-256 of its DER encoding", fp)})
		case dup:
			vs = append(vs, record.Violation{Field: fmt.Sprintf("%s[%d]", field, i), Description: fmt.Sprintf("repeats entry %d", j)})
		case canonical == p.GetCaFingerprint():
			// Peers do not present their root, so this would refuse
			// nothing while looking as if it did.
			vs = append(vs, record.Violation{Field: fmt.Sprintf("%s[%d]", field, i), Description: "is the pinned CA itself: pin another CA of the peer (ca_certificate_pem) or delete the peer instead"})
		default:
			seen[canonical] = i
			fps[i] = canonical
		}
	}
	return vs
}

// peerConns are the connections the peer-facing listener accepted and
// whose handshake admitted a peer.
type peerConns struct {
	mu    sync.Mutex
	conns map[*peerConn]struct{}
	// checked is the applied index up to which the open connections were
	// last checked: a test waits on it to know a change was looked at.
	checked atomic.Uint64
}

func newPeerConns() *peerConns { return &peerConns{conns: map[*peerConn]struct{}{}} }

func (s *peerConns) add(c *peerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *peerConns) remove(c *peerConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.closed = true
	delete(s.conns, c)
}

func (s *peerConns) list() []*peerConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*peerConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// count is how many admitted connections are open (for tests).
func (s *peerConns) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// trackingListener hands grpc each accepted socket as a *peerConn: every
// way grpc or crypto/tls closes a connection ends in its Close, so nothing
// stays tracked after its socket is gone.
type trackingListener struct {
	net.Listener
	conns *peerConns
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peerConn{Conn: c, set: l.conns}, nil
}

// A peerConn is one accepted socket and, once its handshake admitted a
// peer, what it was admitted with.
type peerConn struct {
	net.Conn
	set       *peerConns
	closeOnce sync.Once
	closed    bool // guarded by set.mu

	// Set once by the handshake, before the connection is tracked.
	id    pki.Identity
	chain []*x509.Certificate

	mu      sync.Mutex
	passed  *irxv1.Peer // the peer configuration it last passed
	streams map[*trackedStream]struct{}
	cutBy   error // the refusal that cut it, once cut
}

func (c *peerConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.set.remove(c)
		err = c.Conn.Close()
	})
	return err
}

// trackedStream is a stream open on a peerConn.
type trackedStream struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when its handler returned
}

// track derives a stream's context, which a cut of c ends with the cut as
// cause; release when the handler returns. c may be nil (a server a test
// built without the tracking listener): the context then ends only with
// the stream.
func (c *peerConn) track(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if c == nil {
		return ctx, func() { cancel(nil) }
	}
	s := &trackedStream{cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	if c.cutBy != nil {
		// Admitted by a check that read the configuration before the one
		// that cut the connection.
		cancel(&cut{refusal: c.cutBy})
	} else {
		if c.streams == nil {
			c.streams = map[*trackedStream]struct{}{}
		}
		c.streams[s] = struct{}{}
	}
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		delete(c.streams, s)
		c.mu.Unlock()
		close(s.done)
		cancel(nil)
	}
}

// peerAuthInfo is the AuthInfo of a connection of the peer-facing
// listener: the TLS state, and the connection, for the interceptors.
type peerAuthInfo struct {
	credentials.TLSInfo
	conn *peerConn
}

// peerTLS returns the TLS state of a call's connection and, when the
// tracking listener accepted it, the connection.
func peerTLS(auth credentials.AuthInfo) (credentials.TLSInfo, *peerConn, bool) {
	switch a := auth.(type) {
	case peerAuthInfo:
		return a.TLSInfo, a.conn, true
	case credentials.TLSInfo:
		return a, nil, true
	}
	return credentials.TLSInfo{}, nil, false
}

// trackingCreds runs the TLS handshake (whose VerifyConnection refuses
// what the current configuration does not admit) and then tracks the
// connection with its verified chain.
type trackingCreds struct {
	credentials.TransportCredentials
	f *Federation
}

func (t trackingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, auth, err := t.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	pc, tracked := raw.(*peerConn)
	info, isTLS := auth.(credentials.TLSInfo)
	if !tracked || !isTLS {
		_ = conn.Close()
		return nil, nil, errors.New("federation: a connection the peer-facing listener did not accept")
	}
	if err := t.f.admit(pc, info.State.PeerCertificates); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, peerAuthInfo{TLSInfo: info, conn: pc}, nil
}

func (t trackingCreds) Clone() credentials.TransportCredentials {
	return trackingCreds{TransportCredentials: t.TransportCredentials.Clone(), f: t.f}
}

// admit tracks a connection whose handshake passed, then verifies it once
// more: a change applied between the handshake's check and the tracking
// would otherwise be missed by the watcher, which only sees tracked
// connections.
func (f *Federation) admit(c *peerConn, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("no certificate presented")
	}
	claimed, err := pki.IdentityFromCert(chain[0])
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	// Set before the connection is tracked, which publishes them to the
	// watcher.
	c.id, c.chain = claimed, chain
	if !c.set.add(c) {
		return net.ErrClosed
	}
	_, p, err := f.verifyCurrent(chain, x509.ExtKeyUsageClientAuth)
	if err != nil {
		c.set.remove(c)
		f.log.Warn("refused a peer connection", "error", err)
		return err
	}
	c.mu.Lock()
	if c.passed == nil {
		c.passed = p
	}
	c.mu.Unlock()
	return nil
}

// recheck verifies a chain again if the peer's configuration p (as read,
// with readErr) differs from *passed, the one it last passed, and records
// p when it passes. It returns a *refusal, or another error if the
// configuration could not be read (which refuses nothing).
func (f *Federation) recheck(passed **irxv1.Peer, chain []*x509.Certificate, claimed pki.Identity, p *irxv1.Peer, readErr error) error {
	if readErr != nil {
		return notConfigured(claimed, readErr)
	}
	// A chain that verified at the handshake stops being valid when one
	// of its certificates expires, whatever the configuration does.
	if at, ok := chainExpiry(chain); ok && !time.Now().Before(at) {
		return refuse(reasonExpired, "certificate of %s: its chain expired at %s", claimed, at.UTC().Format(time.RFC3339))
	}
	if *passed != nil && proto.Equal(*passed, p) {
		return nil
	}
	if _, err := f.verifyAgainst(p, chain, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	*passed = p
	return nil
}

// chainExpiry is when the first certificate of chain expires.
func chainExpiry(chain []*x509.Certificate) (time.Time, bool) {
	var at time.Time
	for _, c := range chain {
		if at.IsZero() || c.NotAfter.Before(at) {
			at = c.NotAfter
		}
	}
	return at, !at.IsZero()
}

// check re-verifies a connection against its peer's configuration p.
func (f *Federation) check(c *peerConn, p *irxv1.Peer, readErr error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cutBy != nil {
		return c.cutBy
	}
	return f.recheck(&c.passed, c.chain, c.id, p, readErr)
}

// watchPeers re-verifies the open connections after the state changed,
// until stop closes.
func (f *Federation) watchPeers(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	seen := f.state.AppliedIndex()
	for {
		// A change of the state wakes the check, and so does time: a
		// certificate expires without any change.
		wait, cancelWait := context.WithTimeout(ctx, expiryRecheck)
		err := f.state.WaitApplied(wait, seen+1)
		cancelWait()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			f.log.Warn("waiting for applied changes to recheck peer connections", "error", err)
		}
		// Read before checking: a change applied after this index wakes
		// the next round; one at or before it is in what the check reads.
		seen = f.state.AppliedIndex()
		f.recheckConns()
		f.conns.checked.Store(seen)
		select {
		case <-stop:
			return
		case <-time.After(recheckInterval):
		}
	}
}

// recheckConns cuts every open connection the current configuration of
// its peer no longer admits.
func (f *Federation) recheckConns() {
	conns := f.conns.list()
	if len(conns) == 0 {
		return
	}
	type read struct {
		p   *irxv1.Peer
		err error
	}
	peers := map[string]read{}
	for _, c := range conns {
		team := c.id.Team
		r, ok := peers[team]
		if !ok {
			r.p, r.err = f.state.Peer(team)
			peers[team] = r
		}
		err := f.check(c, r.p, r.err)
		var ref *refusal
		switch {
		case errors.As(err, &ref):
			f.cut(c, err)
		case err != nil:
			f.log.Warn("could not check a peer connection", "peer", team, "error", err)
		}
	}
}

// cut ends a connection its peer's configuration no longer admits: its
// streams first, so that each can tell the peer why, then its socket,
// within cutGrace whether or not they ended.
func (f *Federation) cut(c *peerConn, refused error) {
	c.mu.Lock()
	if c.cutBy != nil {
		c.mu.Unlock()
		return
	}
	c.cutBy = refused
	streams := make([]*trackedStream, 0, len(c.streams))
	for s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	cause := &cut{refusal: refused}
	for _, s := range streams {
		s.cancel(cause)
	}
	reason := reasonOf(refused)
	f.cuts.connections.WithLabelValues(c.id.Team, reason).Inc()
	f.cuts.streams.WithLabelValues(c.id.Team, reason).Add(float64(len(streams)))
	f.log.Warn("cut a peer connection", "peer", c.id.Team, "certificate", c.id.String(),
		"fingerprint", pki.Fingerprint(c.chain[0]), "remote", c.RemoteAddr().String(),
		"reason", reason, "streams", len(streams), "error", refused)
	go func() {
		defer c.Close()
		grace := time.NewTimer(cutGrace)
		defer grace.Stop()
		for _, s := range streams {
			select {
			case <-s.done:
			case <-grace.C:
				return // a stream blocked in Send ends with the socket
			}
		}
		if len(streams) > 0 {
			time.Sleep(statusFlush)
		}
	}()
}

// authenticatedStream is an admitted stream: its context carries the
// caller and ends when the connection is cut, and each message is checked
// against the peer's configuration before it is sent.
type authenticatedStream struct {
	grpc.ServerStream
	ctx    context.Context
	f      *Federation
	caller admitted // passed is updated by SendMsg, which grpc never runs concurrently
}

func (s *authenticatedStream) Context() context.Context { return s.ctx }

func (s *authenticatedStream) SendMsg(m any) error {
	if err := cutCause(s.ctx); err != nil {
		return err
	}
	// Read after the message was computed: whatever of the state it holds,
	// this read holds too, including a change that refuses the peer.
	p, readErr := s.f.state.Peer(s.caller.id.Team)
	err := s.f.recheck(&s.caller.peer, s.caller.chain, s.caller.id, p, readErr)
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		if s.caller.conn != nil {
			s.f.cut(s.caller.conn, err)
		} else {
			s.f.cuts.streams.WithLabelValues(s.caller.id.Team, ref.reason).Inc()
		}
		return &cut{refusal: err}
	case err != nil:
		return status.Errorf(codes.Unavailable, "checking the peer's configuration: %v", err)
	}
	return s.ServerStream.SendMsg(m)
}

// cutMetrics count what changes of peers' configurations cut.
type cutMetrics struct {
	streams     *prometheus.CounterVec
	connections *prometheus.CounterVec
}

func newCutMetrics() *cutMetrics {
	return &cutMetrics{
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_peer_streams_cut_total",
			Help: "Open streams of peers this node ended because a change of the peer's configuration refuses their certificate, by peer and reason (deleted, disabled, certificate_revoked, ca_changed, expired, not_node).",
		}, []string{"peer", "reason"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_peer_connections_cut_total",
			Help: "Connections of peers to the peer-facing listener this node closed because a change of the peer's configuration refuses their certificate, by peer and reason.",
		}, []string{"peer", "reason"}),
	}
}

func (m *cutMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.streams.Describe(ch)
	m.connections.Describe(ch)
}

func (m *cutMetrics) Collect(ch chan<- prometheus.Metric) {
	m.streams.Collect(ch)
	m.connections.Collect(ch)
}
