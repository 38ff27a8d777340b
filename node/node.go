// Package node runs one member of a team's cluster: hashicorp/raft over the
// pebble log store and state machine, the intra-cluster mTLS transport, and
// the operator gRPC API.
package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/errdefs/errgrpc"
	"github.com/irxfed/irx/node/api"
	"github.com/irxfed/irx/node/diskspace"
	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/node/raftstore"
	"github.com/irxfed/irx/node/transport"
	"github.com/irxfed/irx/node/webhook"
	"github.com/irxfed/irx/pki"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Node is one running member of a team.
type Node struct {
	cfg      Config
	log      *slog.Logger
	reloader *pki.Reloader // nil in development mode
	dirLock  *os.File      // held while the node runs: see lockDataDir
	creds    nodeCredentials

	logs      *raftstore.Store
	state     *fsm.FSM
	snapshots raft.SnapshotStore
	stream    *transport.StreamLayer
	transport *raft.NetworkTransport
	raft      *raft.Raft

	apiListener net.Listener
	grpc        *grpc.Server
	health      *health.Server
	intra       *grpc.Server // NodeService and forwarded ClusterService calls
	peers       peerConns
	// operatorStreams are the open operator streams, ended when their
	// certificate is revoked.
	operatorStreams operatorStreams
	batcher         *batcher
	forwarder       *forwarder
	eraser          *eraser
	stopErasing     context.CancelFunc
	// policies are the team's compiled disclosure policies, for the policy
	// service's previews and the federation's feeds alike.
	policies policy.Cache

	metrics         *metrics
	metricsServer   *http.Server
	metricsListener net.Listener

	// readyTerm is the term in which this node, as leader, has committed an
	// entry of its own, so its commit index is safe for read-index reads.
	readyTerm atomic.Uint64

	// disks guards the free space of the data directory's file systems.
	disks        *diskspace.Guard
	stopWatching context.CancelFunc
	handingOff   atomic.Bool
	// lastProblem is the storage problem last reported, for logging
	// changes only (watchLeadership's goroutine).
	lastProblem string
	// closing names the step Close is at, for the log line of a shutdown
	// that does not finish in time.
	closing atomic.Pointer[string]

	stopObserving chan struct{}
	// webhooks posts alerts and warnings while this node leads; nil
	// without configured webhooks.
	webhooks  *webhook.Sender
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start opens the node's storage, joins or bootstraps its Raft cluster and
// starts serving the operator API. It returns once the listeners are bound;
// the node may still be electing a leader.
func Start(cfg Config) (_ *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("team", cfg.TeamID, "node", cfg.NodeID), stopObserving: make(chan struct{}), metrics: newMetrics()}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	if cfg.Restore != "" {
		// Checked again here, before anything is written, for callers
		// other than irxd.
		if _, err := CheckRestore(cfg, cfg.Restore); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if n.dirLock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	creds, err := n.loadCredentials()
	if err != nil {
		return nil, err
	}
	n.creds = creds
	if err := n.startRaft(creds); err != nil {
		return nil, err
	}
	if err := n.startAPI(creds); err != nil {
		return nil, err
	}
	n.startWebhooks()
	n.metrics.watchNode(n)
	if cfg.MetricsAddr != "" {
		if err := n.serveMetrics(cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("metrics listener %s: %w", cfg.MetricsAddr, err)
		}
	}
	return n, nil
}

// nodeCredentials are this node's certificate and its team's CA.
type nodeCredentials struct {
	cert  pki.CertSource
	roots *x509.CertPool
}

func (n *Node) loadCredentials() (nodeCredentials, error) {
	t := n.cfg.TLS
	if t.DevDir != "" {
		dev, err := pki.EnsureDevPKI(t.DevDir, n.cfg.TeamID, n.cfg.NodeID, n.cfg.certHosts(), time.Now())
		if err != nil {
			return nodeCredentials{}, fmt.Errorf("development PKI: %w", err)
		}
		if len(dev.Written) > 0 {
			n.log.Info("created development PKI", "dir", dev.Dir, "files", len(dev.Written))
		}
		return nodeCredentials{cert: pki.StaticCertificate(dev.Node), roots: dev.Roots}, nil
	}
	reloader, err := pki.NewReloader(t.CertFile, t.KeyFile)
	if err != nil {
		return nodeCredentials{}, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	if id := reloader.Identity(); !id.IsNodeOf(n.cfg.TeamID) {
		return nodeCredentials{}, fmt.Errorf("tls.cert_file: certificate is %s, not a node of team %q", id, n.cfg.TeamID)
	}
	roots, err := pki.LoadCertPool(t.CAFile)
	if err != nil {
		return nodeCredentials{}, fmt.Errorf("tls.ca_file: %w", err)
	}
	n.reloader = reloader
	return nodeCredentials{cert: reloader, roots: roots}, nil
}

// ReloadCertificates reads the node certificate and key again from their
// files; new handshakes (Raft, forwarded calls, the operator API) use them.
// In development mode the generated certificate is kept.
func (n *Node) ReloadCertificates() error {
	if n.reloader == nil {
		return nil
	}
	return n.reloader.Reload()
}

func (n *Node) startRaft(creds nodeCredentials) error {
	var err error
	raftLogger := newRaftLogger(n.log)
	// The leader's appends are written ahead of the disk (see durable.go).
	// leading reads the Raft instance through an atomic pointer: raft's
	// goroutines append before NewRaft has returned.
	var running atomic.Pointer[raft.Raft]
	leading := func() bool {
		r := running.Load()
		return r != nil && r.State() == raft.Leader
	}
	n.disks = newDiskGuard(n.cfg)
	n.logs, err = raftstore.Open(filepath.Join(n.cfg.DataDir, "raft"), raftstore.WithLogger(n.log),
		raftstore.WithWriteAhead(leading), raftstore.WithSyncObserver(func(d time.Duration) { n.metrics.logSync.Observe(d.Seconds()) }),
		raftstore.WithWriteCheck(n.disks.Exhausted), raftstore.WithStallTimeout(n.cfg.Storage.StallTimeout))
	if err != nil {
		return err
	}
	n.state, err = fsm.Open(filepath.Join(n.cfg.DataDir, "state"), n.cfg.TeamID, n.log)
	if err != nil {
		return err
	}
	// Both directories exist now; a node started on a full disk refuses
	// writes from its first call.
	n.disks.Poll()
	var watchCtx context.Context
	watchCtx, n.stopWatching = context.WithCancel(context.Background())
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchStorage(watchCtx)
	}()
	snapshotBase := filepath.Join(n.cfg.DataDir, "snapshots")
	snapshots, err := raft.NewFileSnapshotStoreWithLogger(snapshotBase, 2, raftLogger)
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	n.snapshots = snapshots

	mtls := pki.MutualTLS{Team: n.cfg.TeamID, Roots: creds.roots, Cert: creds.cert}
	serverConf, err := mtls.ServerConfig()
	if err != nil {
		return err
	}
	clientConf, err := mtls.ClientConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft listener %s: %w", n.cfg.RaftAddr, err)
	}
	advertise, err := n.cfg.raftAdvertise(ln.Addr())
	if err != nil {
		_ = ln.Close()
		return err
	}
	n.stream, err = transport.NewTLSStreamLayer(ln, advertise, serverConf, clientConf, transport.WithLogger(n.log), transport.WithAdmit(n.admitNode))
	if err != nil {
		_ = ln.Close()
		return err
	}
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 4, Timeout: 10 * time.Second, Logger: raftLogger,
	})

	if n.cfg.Restore != "" {
		if err := n.seedFromBackup(snapshots, n.transport.LocalAddr()); err != nil {
			return err
		}
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.Logger = raftLogger
	rc.HeartbeatTimeout = n.cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.Raft.HeartbeatTimeout
	rc.LeaderLeaseTimeout = n.cfg.Raft.HeartbeatTimeout / 2
	rc.SnapshotThreshold = n.cfg.Raft.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.Raft.SnapshotInterval
	rc.TrailingLogs = n.cfg.Raft.TrailingLogs
	// Hand the FSM whole batches of committed entries: one pebble batch
	// per group instead of one per entry.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	// The state machine is persistent and knows its applied index, so
	// restoring the last snapshot on start would only rewrite what is there.
	// It still must when its database is older than the snapshot.
	rc.NoSnapshotRestoreOnStart, err = n.stateCoversSnapshots(snapshots)
	if err != nil {
		return err
	}
	if err := n.logReachesState(snapshots); err != nil {
		return err
	}

	existing, err := raft.HasExistingState(n.logs, n.logs, snapshots)
	if err != nil {
		return fmt.Errorf("raft state: %w", err)
	}
	if !existing && !n.cfg.Join {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.transport.LocalAddr(), Suffrage: raft.Voter}}}
		if len(n.cfg.Members) > 0 {
			// Static bootstrap: every initial member bootstraps with the
			// same configuration; raft accepts the identical copies.
			conf.Servers = conf.Servers[:0]
			for _, m := range n.cfg.Members {
				conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
			}
		}
		if err := raft.BootstrapCluster(rc, n.logs, n.logs, snapshots, n.transport, conf); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		n.log.Info("bootstrapped a new team", "members", len(conf.Servers))
	}
	state := durableFSM{BatchingFSM: measuredFSM{FSM: n.state, apply: n.metrics.apply}, log: n.logs}
	trans := durableTransport{raftTransport: n.transport, log: n.logs, stalled: n.writeStalled}
	// Raft reads each entry back right after writing it (to replicate it,
	// to apply it on a follower); the newest 32 MiB, a few seconds of
	// ingest at full speed, are answered from memory.
	logs := raftstore.NewRecent(measuredLogStore{Store: n.logs, append: n.metrics.logAppend}, 32<<20)
	n.raft, err = raft.NewRaft(rc, state, logs, n.logs, snapshots, trans)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	running.Store(n.raft)
	n.batcher = newBatcher(n)
	n.forwarder = newForwarder(n)
	// The file snapshot store keeps its snapshots in a directory of its own
	// under the one it is given.
	n.eraser = newEraser(n, logs, snapshots, filepath.Join(snapshotBase, "snapshots"))
	var eraseCtx context.Context
	eraseCtx, n.stopErasing = context.WithCancel(context.Background())
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.eraser.run(eraseCtx)
	}()
	go func() {
		defer n.wg.Done()
		n.batcher.run()
	}()
	go func() {
		defer n.wg.Done()
		n.forwarder.run()
	}()
	n.peers.dial = n.stream.DialGRPC
	n.intra = grpc.NewServer(
		grpc.MaxRecvMsgSize(maxIntraRequestBytes),
		streamWorkers(),
		grpc.ChainUnaryInterceptor(errgrpc.RecoverUnary(n.log), logUnary(n.log), n.statusUnary),
		grpc.ChainStreamInterceptor(errgrpc.RecoverStream(n.log)))
	irxv1.RegisterNodeServiceServer(n.intra, nodeService{n: n})
	irxv1.RegisterClusterServiceServer(n.intra, api.NewClusterService(n))
	if n.cfg.Services != nil {
		n.cfg.Services(n, n.intra)
	}
	intraListener := n.stream.GRPCListener()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.intra.Serve(intraListener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Debug("intra-cluster server stopped", "error", err)
		}
	}()
	return nil
}

// stateCoversSnapshots reports whether the state machine's database already
// holds everything the newest snapshot does.
func (n *Node) stateCoversSnapshots(store raft.SnapshotStore) (bool, error) {
	metas, err := store.List()
	if err != nil {
		return false, fmt.Errorf("snapshot store: %w", err)
	}
	if len(metas) == 0 {
		return true, nil
	}
	return n.state.AppliedIndex() >= metas[0].Index, nil
}

// logReachesState refuses to start a node whose state machine cannot be
// rebuilt from what it holds: an empty state machine (new, or removed
// for damage), no snapshot, and a log that no longer begins at the first
// entry. Raft would stop the process at the first entry it cannot read;
// the way out is the team's copy, through a snapshot from the leader.
func (n *Node) logReachesState(store raft.SnapshotStore) error {
	if n.state.AppliedIndex() != 0 {
		return nil
	}
	metas, err := store.List()
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	if len(metas) > 0 {
		return nil
	}
	first, err := n.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	if first > 1 {
		return fmt.Errorf("the state machine in %s is empty and must be rebuilt, but this node has no snapshot and its Raft log begins at entry %d: "+
			"remove the node from the team (irxctl cluster remove), empty its data directory and add it again; it then receives the leader's snapshot",
			filepath.Join(n.cfg.DataDir, "state"), first)
	}
	return nil
}

func (n *Node) startAPI(creds nodeCredentials) error {
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listener %s: %w", n.cfg.APIAddr, err)
	}
	n.apiListener = ln
	auth := &authorizer{team: n.cfg.TeamID, plaintext: n.cfg.apiPlaintext(), state: n.state, streams: &n.operatorStreams}
	opts := []grpc.ServerOption{
		// ImportIncidents carries a whole document; every other request
		// stays far below.
		grpc.MaxRecvMsgSize(max(MaxRequestBytes, api.MaxImportRequestBytes)),
		grpc.ChainUnaryInterceptor(errgrpc.RecoverUnary(n.log), n.metrics.unary(), logUnary(n.log), n.statusUnary, auth.unary, refuseUnknownFields, refuseBadText),
		grpc.ChainStreamInterceptor(errgrpc.RecoverStream(n.log), auth.stream),
		streamWorkers(),
	}
	if auth.plaintext {
		n.log.Warn("operator API without TLS: allowed on loopback in development mode only; every caller holds every role", "addr", ln.Addr().String())
	} else {
		tlsConf, err := pki.ServerConfig(creds.cert, creds.roots, true)
		if err != nil {
			return fmt.Errorf("api TLS: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	n.grpc = grpc.NewServer(opts...)
	n.health = health.NewServer()
	registerServices(n.grpc, n, n.state, n.health)
	if n.cfg.Services != nil {
		n.cfg.Services(n, n.grpc)
	}
	// Resolved once, here, before the server serves: a method that
	// declares no permission keeps the node from starting at all.
	var err2 error
	if auth.perms, auth.open, err2 = MethodPermissions(n.grpc); err2 != nil {
		return fmt.Errorf("operator API: %w", err2)
	}

	n.wg.Add(4)
	go func() {
		defer n.wg.Done()
		n.watchAccess(n.stopObserving)
	}()
	go func() {
		defer n.wg.Done()
		n.bootstrapAccess(n.stopObserving)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.retentionClock(n.stopObserving)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("operator API stopped", "error", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.watchLeadership()
	}()
	return nil
}

// startWebhooks runs the webhook sender until the node closes. Every node
// runs it; it posts only while the node leads.
func (n *Node) startWebhooks() {
	if len(n.cfg.Webhooks) == 0 {
		return
	}
	n.webhooks = webhook.New(n.cfg.Webhooks, n.state, webhook.Options{IsLeader: n.IsLeader, Logger: n.log.With("component", "webhook")})
	ctx, cancel := context.WithCancel(context.Background())
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		<-n.stopObserving
		cancel()
	}()
	go func() {
		defer n.wg.Done()
		n.webhooks.Run(ctx)
	}()
}

// watchLeadership keeps grpc.health.v1 honest: a node that knows no leader
// cannot serve writes, and one whose disks refuse them does not, so it
// reports NOT_SERVING until both are well; such a node also hands its
// leadership away. A node that has not yet applied the first operator's
// bootstrap grant would refuse that operator's first calls, so it waits
// for it too.
func (n *Node) watchLeadership() {
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	var last healthpb.HealthCheckResponse_ServingStatus = -1
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		problem := n.storageProblem()
		if addr, _ := n.raft.LeaderWithID(); addr != "" && problem == nil && n.state.Access().Bootstrapped() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		n.noteProblem(problem)
		if problem != nil {
			n.handOffLeadership(problem)
		}
		if st != last {
			n.health.SetServingStatus("", st)
			for svc := range n.grpc.GetServiceInfo() {
				n.health.SetServingStatus(svc, st)
			}
			last = st
		}
		select {
		case <-n.stopObserving:
			return
		case <-ticker.C:
		}
	}
}

// noteProblem logs a storage problem when it begins, changes or ends.
func (n *Node) noteProblem(problem error) {
	// Which disk, not its figures: free bytes and stall durations change
	// with every look.
	key := ""
	var serr *errdefs.StorageError
	switch {
	case errors.As(problem, &serr):
		key = serr.Disk + " " + serr.Path
	case problem != nil:
		key = problem.Error()
	}
	if key == n.lastProblem {
		return
	}
	switch {
	case problem != nil:
		n.log.Error("this node refuses writes and reports NOT_SERVING", "problem", problem.Error())
	default:
		n.log.Info("disks take writes again", "was", n.lastProblem)
	}
	n.lastProblem = key
}

// MetricsAddr is the bound address of the Prometheus endpoint, or nil.
func (n *Node) MetricsAddr() net.Addr {
	if n.metricsListener == nil {
		return nil
	}
	return n.metricsListener.Addr()
}

// APIAddr is the bound address of the operator API.
func (n *Node) APIAddr() net.Addr { return n.apiListener.Addr() }

// State is the team's replicated state machine as this node applied it.
func (n *Node) State() *fsm.FSM { return n.state }

// PolicyCache is the node's cache of compiled disclosure policies.
func (n *Node) PolicyCache() *policy.Cache { return &n.policies }

// IsLeader reports whether this node currently leads its team.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Certificate is this node's certificate (reloaded on SIGHUP).
func (n *Node) Certificate() pki.CertSource { return n.creds.cert }

// Logger is the node's logger, labelled with team and node.
func (n *Node) Logger() *slog.Logger { return n.log }

// OnLeader runs local when this node leads, or remote against the leader's
// intra-cluster server (where Config.Services registered the same
// services) otherwise, waiting through elections within ctx. Use it for
// reads only the leader can answer; remote must be idempotent.
func (n *Node) OnLeader(ctx context.Context, local func() error, remote func(context.Context, *grpc.ClientConn) error) error {
	return n.onLeader(ctx, true, local, remote)
}

// OnMembers calls fn, concurrently, for every other member of the team's
// configuration with a connection to its intra-cluster server (where
// Config.Services registered the same services), and returns each member's
// error by node id. Use it for what each node alone knows; fn bounds its
// own calls.
func (n *Node) OnMembers(ctx context.Context, fn func(ctx context.Context, nodeID string, conn *grpc.ClientConn) error) map[string]error {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return map[string]error{n.cfg.NodeID: fmt.Errorf("raft configuration: %w", err)}
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs = map[string]error{}
	)
	for _, s := range future.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.NodeID) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := n.peers.get(string(s.Address))
			if err == nil {
				err = fn(ctx, string(s.ID), conn)
			}
			mu.Lock()
			errs[string(s.ID)] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errs
}

// TeamID is the team this node belongs to.
func (n *Node) TeamID() string { return n.cfg.TeamID }

// NodeID is this node's id within its team.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// RaftAddr is the intra-cluster address other members dial: what
// ClusterService/AddMember needs to add this node.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// Joining reports whether the node was started to join a running team.
func (n *Node) Joining() bool { return n.cfg.Join }

// Standing is what a node knows of its place in the team.
type Standing struct {
	// Member reports that the node is in the team's configuration. A node
	// started to join is not until ClusterService/AddMember adds it.
	Member bool
	// Voters is the number of voting members in that configuration.
	Voters int
	// Leader is the id of the leader this node follows or is, "" while it
	// knows none.
	Leader string
}

// Standing reports the node's membership and the leader it knows.
func (n *Node) Standing() (Standing, error) {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return Standing{}, fmt.Errorf("raft configuration: %w", err)
	}
	var s Standing
	for _, srv := range future.Configuration().Servers {
		if srv.ID == raft.ServerID(n.cfg.NodeID) {
			s.Member = true
		}
		if srv.Suffrage == raft.Voter {
			s.Voters++
		}
	}
	_, leader := n.raft.LeaderWithID()
	s.Leader = string(leader)
	return s, nil
}

// APIPlaintext reports whether the operator API runs without TLS
// (development mode on loopback).
func (n *Node) APIPlaintext() bool { return n.cfg.apiPlaintext() }

// Close stops serving, shuts Raft down and closes storage. Calls in flight
// get a few seconds to finish.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.closingStep("stopping the operator API")
		if n.health != nil {
			n.health.Shutdown()
		}
		if n.grpc != nil {
			stopped := make(chan struct{})
			go func() { n.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
				n.grpc.Stop()
			}
		}
		if n.metricsServer != nil {
			errs = append(errs, n.metricsServer.Close())
		}
		close(n.stopObserving)
		if n.stopErasing != nil {
			n.stopErasing()
		}
		if n.stopWatching != nil {
			n.stopWatching()
		}
		if n.intra != nil {
			n.intra.Stop()
		}
		errs = append(errs, n.peers.close())
		if n.raft != nil {
			n.closingStep("shutting Raft down (it waits for a write to the log or the state machine in progress)")
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.transport != nil {
			errs = append(errs, n.transport.Close())
		}
		n.closingStep("waiting for the node's goroutines")
		n.wg.Wait()
		if n.state != nil {
			if problem := n.storageProblem(); problem != nil {
				n.closingStep("closing the state machine's database (without a flush: " + problem.Error() + ")")
				errs = append(errs, n.state.CloseWithoutFlush())
			} else {
				n.closingStep("closing the state machine's database (flushing it to disk)")
				errs = append(errs, n.state.Close())
			}
		}
		if n.logs != nil {
			n.closingStep("closing the Raft log's database (syncing it to disk)")
			errs = append(errs, n.logs.Close())
		}
		n.closingStep("closed")
		if n.dirLock != nil {
			// Last: the directory is free once nothing in it is open.
			errs = append(errs, n.dirLock.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

func (n *Node) closingStep(step string) { n.closing.Store(&step) }

// ClosingStep names what Close is doing, or "" before it began: for the
// log line of a shutdown that did not finish in time.
func (n *Node) ClosingStep() string {
	if s := n.closing.Load(); s != nil {
		return *s
	}
	return ""
}

func roleOf(s raft.RaftState) irxv1.NodeRole {
	switch s {
	case raft.Follower:
		return irxv1.NodeRole_NODE_ROLE_FOLLOWER
	case raft.Candidate:
		return irxv1.NodeRole_NODE_ROLE_CANDIDATE
	case raft.Leader:
		return irxv1.NodeRole_NODE_ROLE_LEADER
	case raft.Shutdown:
		return irxv1.NodeRole_NODE_ROLE_SHUTDOWN
	}
	return irxv1.NodeRole_NODE_ROLE_UNSPECIFIED
}

// OffHeapBytes is the most memory a node's databases hold outside the Go
// heap in this build: their block caches and memtables where pebble
// allocates them through cgo, nothing in a static build. A process's memory
// budget less this is what Go's memory limit may have.
func OffHeapBytes() int64 {
	if !pebbleOffHeap {
		return 0
	}
	// C's allocator keeps a quarter more than pebble asks for at its peak
	// under ingest (its own arenas and the cache's many small blocks; the
	// scale runs in docs/performance.md).
	return (fsm.ManualMemoryBytes + raftstore.ManualMemoryBytes) * 5 / 4
}
