// Package transport carries hashicorp/raft intra-cluster traffic over mutual
// TLS. Both ends present node certificates of the team CA, and each end
// accepts only a peer whose certificate chains to that CA and names a node
// of the same team (see package pki for the verification rules).
//
// Wire format: a TLS 1.3 connection, after which the accepting side sends a
// single byte (0x01) once it has verified the dialler, then raft's own
// protocol. The byte exists because in TLS 1.3 the client's handshake
// completes before the server has looked at the client certificate; without
// it a refused dialler would only learn of the refusal when its first RPC
// failed, instead of getting a clear error from Dial.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/pki"
)

const (
	// DefaultHandshakeTimeout bounds how long an inbound connection may take
	// to complete TLS and the acceptance byte before it is dropped.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxPendingHandshakes bounds concurrent inbound handshakes, so
	// a flood of idle connections costs a fixed amount of memory.
	DefaultMaxPendingHandshakes = 64

	acceptedByte = 0x01
	// Channel tags: after the acceptance byte the dialler names what the
	// connection carries, so Raft and forwarded gRPC calls share one port
	// and one authentication.
	channelRaft = 'R'
	channelGRPC = 'G'
)

// Option configures a StreamLayer.
type Option func(*options)

type options struct {
	logger           *slog.Logger
	handshakeTimeout time.Duration
	maxPending       int
	admit            func(pki.Identity, *x509.Certificate) error
}

// WithAdmit has every handshake, in both directions, also pass admit with
// the other node's identity and certificate: the team's revocations, which
// the configs' chain verification does not know. Connections it admitted
// and a later change refuses are closed by CloseRefused.
func WithAdmit(admit func(pki.Identity, *x509.Certificate) error) Option {
	return func(o *options) { o.admit = admit }
}

// WithLogger sets the logger for refused and failed connections (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithHandshakeTimeout sets the inbound handshake deadline (default
// DefaultHandshakeTimeout). It is also the Dial timeout when raft passes 0.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.handshakeTimeout = d
		}
	}
}

// WithMaxPendingHandshakes sets the inbound handshake concurrency limit
// (default DefaultMaxPendingHandshakes).
func WithMaxPendingHandshakes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxPending = n
		}
	}
}

// StreamLayer implements raft.StreamLayer over mutual TLS.
//
// Inbound connections are handshaken by a background loop: one goroutine per
// connection, each under a deadline, with at most maxPending in flight.
// Accept only ever returns connections that completed the handshake and
// passed verification. raft's NetworkTransport calls Accept in a single loop
// and handles each connection in its own goroutine; handshaking inside Accept
// would let one slow or hostile client stall every other peer for the whole
// timeout, and handshaking lazily on first Read would hand raft
// unauthenticated connections and lose the chance to log refusals in one
// place.
type StreamLayer struct {
	ln         net.Listener
	advertise  net.Addr
	serverConf *tls.Config
	clientConf *tls.Config
	local      pki.Identity
	opts       options

	ctx    context.Context // cancelled by Close; aborts handshakes and dials
	cancel context.CancelFunc

	ready     chan net.Conn // verified inbound connections
	grpcReady chan net.Conn // verified inbound connections tagged for gRPC
	slots     chan struct{} // pending-handshake semaphore
	loopDone  chan struct{} // closed when the accept loop exits
	acceptErr error         // why the loop exited; written before loopDone closes

	// open are the established connections, in both directions, with the
	// other node's identity and certificate, for CloseRefused.
	openMu sync.Mutex
	open   map[*trackedConn]struct{}

	wg        sync.WaitGroup // accept loop and inbound handshakes
	closeOnce sync.Once
	closeErr  error
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewTLSStreamLayer wraps ln, which must be a dedicated TCP listener for raft
// traffic; the StreamLayer owns it and closes it on Close. advertise is the
// address peers use to reach this node (nil means ln.Addr()); it must be a
// concrete TCP address because raft hands it to the other servers.
//
// serverConf and clientConf are normally pki.MutualTLS's ServerConfig and
// ClientConfig. They are cloned. Both must require TLS 1.3 and must verify
// the peer certificate, and the local certificate they present must be a
// node identity (the same one in both); its team is the only team whose
// nodes are accepted, which the StreamLayer checks after every handshake in
// addition to whatever the configs check.
func NewTLSStreamLayer(ln net.Listener, advertise net.Addr, serverConf, clientConf *tls.Config, opts ...Option) (*StreamLayer, error) {
	if ln == nil {
		return nil, errors.New("transport: nil listener")
	}
	if serverConf == nil || clientConf == nil {
		return nil, errors.New("transport: nil TLS config")
	}
	o := options{
		logger:           slog.Default(),
		handshakeTimeout: DefaultHandshakeTimeout,
		maxPending:       DefaultMaxPendingHandshakes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	tcp, ok := advertise.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("transport: advertise address %v is not a TCP address", advertise)
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() || tcp.Port == 0 {
		return nil, fmt.Errorf("transport: advertise address %v is not reachable by peers", advertise)
	}
	if err := checkConfigs(serverConf, clientConf); err != nil {
		return nil, err
	}
	local, err := localIdentity(serverConf, clientConf)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &StreamLayer{
		ln:         ln,
		advertise:  advertise,
		serverConf: serverConf.Clone(),
		clientConf: clientConf.Clone(),
		local:      local,
		opts:       o,
		ctx:        ctx,
		cancel:     cancel,
		ready:      make(chan net.Conn),
		grpcReady:  make(chan net.Conn),
		slots:      make(chan struct{}, o.maxPending),
		loopDone:   make(chan struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// checkConfigs refuses configurations that would let an unauthenticated peer
// through. It cannot prove a custom callback is correct, but it catches the
// easy mistakes: a plain tls.Config, or InsecureSkipVerify without a
// replacement check.
func checkConfigs(serverConf, clientConf *tls.Config) error {
	if serverConf.MinVersion < tls.VersionTLS13 || clientConf.MinVersion < tls.VersionTLS13 {
		return errors.New("transport: TLS configs must set MinVersion to TLS 1.3")
	}
	switch {
	case serverConf.ClientAuth == tls.RequireAndVerifyClientCert && serverConf.ClientCAs != nil:
	case serverConf.ClientAuth == tls.RequireAnyClientCert && serverConf.VerifyConnection != nil:
	default:
		return errors.New("transport: server TLS config must require and verify client certificates")
	}
	if clientConf.InsecureSkipVerify && clientConf.VerifyConnection == nil {
		return errors.New("transport: client TLS config skips verification without a VerifyConnection replacement")
	}
	return nil
}

// localIdentity returns the node identity presented by both configs.
func localIdentity(serverConf, clientConf *tls.Config) (pki.Identity, error) {
	pick := func(get func() (*tls.Certificate, error), static []tls.Certificate) (pki.Identity, error) {
		var cert *tls.Certificate
		if get != nil {
			c, err := get()
			if err != nil {
				return pki.Identity{}, err
			}
			cert = c
		} else if len(static) > 0 {
			cert = &static[0]
		}
		leaf, err := pki.Leaf(cert)
		if err != nil {
			return pki.Identity{}, err
		}
		return pki.IdentityFromCert(leaf)
	}
	var getServer, getClient func() (*tls.Certificate, error)
	if serverConf.GetCertificate != nil {
		getServer = func() (*tls.Certificate, error) { return serverConf.GetCertificate(&tls.ClientHelloInfo{}) }
	}
	if clientConf.GetClientCertificate != nil {
		getClient = func() (*tls.Certificate, error) {
			return clientConf.GetClientCertificate(&tls.CertificateRequestInfo{})
		}
	}
	sid, err := pick(getServer, serverConf.Certificates)
	if err != nil {
		return pki.Identity{}, fmt.Errorf("transport: server TLS config certificate: %w", err)
	}
	cid, err := pick(getClient, clientConf.Certificates)
	if err != nil {
		return pki.Identity{}, fmt.Errorf("transport: client TLS config certificate: %w", err)
	}
	if sid != cid {
		return pki.Identity{}, fmt.Errorf("transport: server certificate is %s but client certificate is %s", sid, cid)
	}
	if sid.Kind != pki.KindNode {
		return pki.Identity{}, fmt.Errorf("transport: local certificate %s is not a node certificate", sid)
	}
	return sid, nil
}

// Identity returns the local node identity.
func (s *StreamLayer) Identity() pki.Identity { return s.local }

// Addr implements net.Listener; it returns the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Accept implements net.Listener. It returns the next inbound connection
// that completed TLS and peer verification; after Close, or if the listener
// fails for good, it returns an error wrapping net.ErrClosed or the failure.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.loopDone:
		return nil, s.acceptErr
	}
}

// Close stops accepting, closes the listener, aborts inbound handshakes and
// in-progress Dials, and waits for the background goroutines to exit.
// Connections already returned by Accept or Dial belong to the caller and
// stay open.
func (s *StreamLayer) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.closeErr = s.ln.Close()
		s.wg.Wait()
	})
	return s.closeErr
}

func (s *StreamLayer) acceptLoop() {
	defer s.wg.Done()
	const maxDelay = time.Second
	var delay time.Duration
	for {
		// Take a slot before accepting, so that when handshakes pile up new
		// connections wait in the kernel backlog instead of in memory.
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			s.stopAccepting(net.ErrClosed)
			return
		}
		raw, err := s.ln.Accept()
		if err != nil {
			<-s.slots
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				s.stopAccepting(err)
				return
			}
			// Typically EMFILE: back off like net/http does rather than
			// spinning, and keep serving once descriptors are available.
			delay = min(max(2*delay, 5*time.Millisecond), maxDelay)
			s.opts.logger.Warn("raft transport: accept failed", "local", s.ln.Addr().String(), "retry_in", delay, "error", err)
			select {
			case <-time.After(delay):
				continue
			case <-s.ctx.Done():
				s.stopAccepting(net.ErrClosed)
				return
			}
		}
		delay = 0
		s.wg.Add(1)
		go s.handleInbound(raw)
	}
}

func (s *StreamLayer) stopAccepting(err error) {
	if !errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("transport: listener failed: %w", err)
	} else {
		err = fmt.Errorf("transport: %w", net.ErrClosed)
	}
	s.acceptErr = err
	close(s.loopDone)
}

func (s *StreamLayer) handleInbound(raw net.Conn) {
	defer s.wg.Done()
	defer func() { <-s.slots }()
	remote := raw.RemoteAddr().String()

	ctx, cancel := context.WithTimeout(s.ctx, s.opts.handshakeTimeout)
	defer cancel()
	tc := tls.Server(raw, s.serverConf)
	peer, channel, err := s.establish(ctx, raw, tc, true, 0)
	if err != nil {
		_ = raw.Close()
		s.logRefusal(true, remote, err)
		return
	}
	ready := s.ready
	if channel == channelGRPC {
		ready = s.grpcReady
	}
	c := s.track(tc, peer)
	if c == nil {
		s.logRefusal(true, remote, errors.New("refused after the handshake by a change of the admitted certificates"))
		return
	}
	select {
	case ready <- c:
		s.opts.logger.Debug("raft transport: accepted connection", "remote", remote, "peer", peer.String())
	case <-s.ctx.Done():
		_ = c.Close()
	}
}

// Dial implements raft.StreamLayer: it connects, completes the TLS handshake,
// verifies that the server is a node of our team and waits for the server's
// acceptance, all within timeout.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = s.opts.handshakeTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	return s.dial(ctx, string(address), channelRaft)
}

// DialGRPC opens an authenticated connection to another node's intra-cluster
// gRPC server at address (its Raft address). Use it as grpc.WithContextDialer
// with insecure transport credentials: TLS is already done here.
func (s *StreamLayer) DialGRPC(ctx context.Context, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.handshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	return s.dial(ctx, address, channelGRPC)
}

func (s *StreamLayer) dial(ctx context.Context, address string, channel byte) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	conf := s.clientConf
	if !conf.InsecureSkipVerify && conf.ServerName == "" {
		// Standard verification needs a name; use the host we dialled, as
		// tls.Dial does. pki configs verify identities instead and skip this.
		if host, _, err := net.SplitHostPort(address); err == nil {
			conf = conf.Clone()
			conf.ServerName = host
		}
	}
	tc := tls.Client(raw, conf)
	if _, _, err := s.establish(ctx, raw, tc, false, channel); err != nil {
		_ = raw.Close()
		s.logRefusal(false, address, err)
		return nil, fmt.Errorf("transport: dial %s: %w", address, err)
	}
	peer, _ := pki.PeerIdentity(tc.ConnectionState())
	c := s.track(tc, peer)
	if c == nil {
		return nil, fmt.Errorf("transport: dial %s: refused after the handshake by a change of the admitted certificates", address)
	}
	return c, nil
}

// trackedConn is an established connection and the node at its other end.
type trackedConn struct {
	*tls.Conn
	s    *StreamLayer
	peer pki.Identity
	once sync.Once
}

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.s.openMu.Lock()
		delete(c.s.open, c)
		c.s.openMu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// track records an established connection, or closes it and returns nil
// when admit refuses it now: a change between the handshake's check and
// the tracking would otherwise be missed by CloseRefused, which only sees
// tracked connections.
func (s *StreamLayer) track(tc *tls.Conn, peer pki.Identity) *trackedConn {
	c := &trackedConn{Conn: tc, s: s, peer: peer}
	s.openMu.Lock()
	if s.open == nil {
		s.open = map[*trackedConn]struct{}{}
	}
	s.open[c] = struct{}{}
	s.openMu.Unlock()
	if certs := tc.ConnectionState().PeerCertificates; s.opts.admit != nil && len(certs) > 0 && s.opts.admit(peer, certs[0]) != nil {
		_ = c.Close()
		return nil
	}
	return c
}

// CloseRefused closes every established connection whose other node the
// admit function (WithAdmit) now refuses, and returns how many it closed:
// Raft and the intra-cluster gRPC server then see the connection end, and
// every new one passes the handshake's check again.
func (s *StreamLayer) CloseRefused() int {
	if s.opts.admit == nil {
		return 0
	}
	s.openMu.Lock()
	var refused []*trackedConn
	for c := range s.open {
		if certs := c.ConnectionState().PeerCertificates; len(certs) > 0 && s.opts.admit(c.peer, certs[0]) != nil {
			refused = append(refused, c)
		}
	}
	s.openMu.Unlock()
	for _, c := range refused {
		s.opts.logger.Warn("raft transport: closed the connection of a refused node", "peer", c.peer.String(), "remote", c.RemoteAddr().String())
		_ = c.Close()
	}
	return len(refused)
}

// establish runs the handshake, the identity check and the acceptance byte
// under ctx, and leaves the connection without deadlines on success (raft
// sets its own per-RPC deadlines).
func (s *StreamLayer) establish(ctx context.Context, raw net.Conn, tc *tls.Conn, inbound bool, channel byte) (pki.Identity, byte, error) {
	start := time.Now()
	peer, channel, err := s.exchange(ctx, raw, tc, inbound, channel)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		// The connection deadline and the context deadline are the same
		// instant and either may fire first; report both as one thing.
		err = fmt.Errorf("handshake timed out after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return peer, channel, err
}

// exchange runs the handshake and the acceptance byte, then the channel tag:
// outbound writes channel, inbound reads and returns it.
func (s *StreamLayer) exchange(ctx context.Context, raw net.Conn, tc *tls.Conn, inbound bool, channel byte) (pki.Identity, byte, error) {
	if deadline, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(deadline); err != nil {
			return pki.Identity{}, 0, err
		}
	}
	// Close aborts the acceptance-byte exchange too, not only the handshake
	// (HandshakeContext handles that part itself).
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := tc.HandshakeContext(ctx); err != nil {
		return pki.Identity{}, 0, err
	}
	peer, err := pki.PeerIdentity(tc.ConnectionState())
	if err != nil {
		return pki.Identity{}, 0, err
	}
	if !peer.IsNodeOf(s.local.Team) {
		return pki.Identity{}, 0, fmt.Errorf("peer %s is not a node of team %q", peer, s.local.Team)
	}
	if s.opts.admit != nil {
		if err := s.opts.admit(peer, tc.ConnectionState().PeerCertificates[0]); err != nil {
			return pki.Identity{}, 0, fmt.Errorf("peer %s: %w", peer, err)
		}
	}
	if inbound {
		if _, err := tc.Write([]byte{acceptedByte}); err != nil {
			return pki.Identity{}, 0, fmt.Errorf("send acceptance: %w", err)
		}
	} else {
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			// A server that refused our certificate answers with a TLS
			// alert, which surfaces here.
			return pki.Identity{}, 0, fmt.Errorf("server did not accept the connection: %w", err)
		}
		if b[0] != acceptedByte {
			return pki.Identity{}, 0, fmt.Errorf("unexpected acceptance byte %#x", b[0])
		}
		if _, err := tc.Write([]byte{channel}); err != nil {
			return pki.Identity{}, 0, fmt.Errorf("send channel: %w", err)
		}
	}
	if inbound {
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			return pki.Identity{}, 0, fmt.Errorf("read channel: %w", err)
		}
		if b[0] != channelRaft && b[0] != channelGRPC {
			return pki.Identity{}, 0, fmt.Errorf("unknown channel %#x", b[0])
		}
		channel = b[0]
	}
	if !stop() {
		// The cancellation callback has run or is running and may set the
		// expired deadline at any moment; the connection is unusable.
		return pki.Identity{}, 0, context.Cause(ctx)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return pki.Identity{}, 0, err
	}
	return peer, channel, nil
}

// logRefusal logs a connection that failed before it was handed to raft.
// Only the peer address and the error are logged: TLS errors name
// certificates at most, never key material.
func (s *StreamLayer) logRefusal(inbound bool, remote string, err error) {
	msg := "raft transport: outbound connection failed"
	if inbound {
		msg = "raft transport: refused inbound connection"
	}
	level := slog.LevelWarn
	if s.ctx.Err() != nil || (inbound && errors.Is(err, io.EOF)) {
		// Our own shutdown, and port probes or health checks that close
		// without speaking TLS, are not worth a warning.
		level = slog.LevelDebug
	}
	s.opts.logger.Log(context.Background(), level, msg,
		"local", s.local.String(), "remote", remote, "reason", err.Error())
}

// GRPCListener returns the listener of inbound connections tagged for the
// intra-cluster gRPC server. They are authenticated nodes of the team.
// Closing it stops its Accept; the port itself closes with the StreamLayer.
func (s *StreamLayer) GRPCListener() net.Listener {
	return &grpcListener{s: s, done: make(chan struct{})}
}

type grpcListener struct {
	s    *StreamLayer
	once sync.Once
	done chan struct{}
}

func (l *grpcListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.grpcReady:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("transport: grpc listener: %w", net.ErrClosed)
	case <-l.s.loopDone:
		return nil, l.s.acceptErr
	}
}

func (l *grpcListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *grpcListener) Addr() net.Addr { return l.s.advertise }
