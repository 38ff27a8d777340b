package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/irxfed/irx/node/api"
	"github.com/irxfed/irx/node/webhook"
	"github.com/irxfed/irx/pki"
	"github.com/irxfed/irx/record"
)

// MaxRequestBytes is the largest request the operator API reads. It is above
// record.MaxIncidentBytes so an oversize incident gets a field violation
// naming it; anything larger is refused by gRPC with RESOURCE_EXHAUSTED.
const MaxRequestBytes = 2 * record.MaxIncidentBytes

// DefaultEraseWithin is Config.EraseWithin's default: a pass of the eraser
// starts half of it after a removal, so removals that come together are
// erased together, and has the other half, ample for a snapshot and a few
// compactions of a team's state on ordinary disks.
const DefaultEraseWithin = 30 * time.Second

// Webhook is one endpoint the leader posts alerts and warnings to.
type Webhook = webhook.Hook

// ImportDefaults are what ImportIncidents applies where a document says no
// TLP or no taxonomy entry (irxd's import.default_tlp and
// import.default_taxonomy).
type ImportDefaults = api.ImportDefaults

// DefaultFutureSkew is Config.FutureSkew when unset.
const DefaultFutureSkew = 5 * time.Minute

// Default listen addresses (see DESIGN.md "The embedded default").
const (
	DefaultAPIAddr  = "127.0.0.1:7400"
	DefaultRaftAddr = "127.0.0.1:7402"
)

// Config is what a node needs to start. Zero values take the defaults.
type Config struct {
	TeamID  string
	NodeID  string
	DataDir string

	// APIAddr is the operator gRPC listener. On a loopback address in
	// development mode it serves plaintext; anywhere else it requires
	// operator client certificates from the team CA.
	APIAddr string
	// MetricsAddr serves Prometheus metrics at /metrics; empty: off.
	MetricsAddr string
	// RaftAddr is the intra-cluster listener (mutual TLS, team CA).
	RaftAddr string
	// RaftAdvertise is the address other members dial; defaults to the
	// bound RaftAddr, which must then not be a wildcard.
	RaftAdvertise string

	// Members is the initial configuration of a new team (static
	// bootstrap); every initial member is started with the same list. Empty
	// means a one-node team of this node.
	Members []Member
	// Join starts the node without bootstrapping: it waits for a member of
	// a running team to add it (ClusterService/AddMember).
	Join bool
	// Restore is a backup file (BackupService/Backup) to start a new team
	// from; the data directory must be empty. See CheckRestore.
	Restore string

	TLS     TLSConfig
	Raft    RaftConfig
	Storage StorageConfig

	// EraseWithin bounds the time from applying a removal a peer asked for
	// (a withdrawal of a record we hold) to its values being unreadable
	// from every file of the data directory (node/eraser.go).
	EraseWithin time.Duration

	// FutureSkew is how far past the receiving node's clock a time in an
	// incident (report, detection, a history item, ...) may lie: clocks
	// differ a little between a client and the team, a report time years
	// ahead is a mistake or an attempt to pin a record to the top of every
	// time-ordered list.
	FutureSkew time.Duration
	// StatisticsMaxPeriods bounds the periods one GetStatistics call may
	// produce; 0 means api.DefaultMaxStatisticsPeriods.
	StatisticsMaxPeriods int

	// Import is what ImportIncidents applies where a document says no TLP
	// or no taxonomy entry and the request names none.
	Import ImportDefaults

	// Retention configures the team's retention clock and the floor of
	// its retention policy (node/retention.go).
	Retention RetentionConfig

	// Webhooks are the HTTPS endpoints the leader posts alerts and
	// warnings to (node/webhook); plain http only in development mode.
	Webhooks []Webhook
	// OtherListeners are the host:port addresses the process serves
	// besides the node's own (the federation listener, a debug server): a
	// webhook pointing at one of them is refused like one pointing at the
	// operator API, since the node would post its alerts to itself.
	OtherListeners []string

	Logger *slog.Logger

	// Services, when set, registers more gRPC services (federation's) on
	// the operator API and on the intra-cluster server, before either
	// serves. It must not call back into the node until Start returns.
	Services func(n *Node, s grpc.ServiceRegistrar)

	// FirstOperator names the operator (irx://<team>/operator/<name>)
	// bound to every role at the team's first start, before any binding
	// exists (node/access.go). Default "admin", the operator certificate
	// the development PKI makes with the team.
	FirstOperator string
}

// RetentionConfig is the retention clock and floor.
type RetentionConfig struct {
	// Tick is how often the leader proposes the retention clock entry
	// (the time every retention term is measured against). Default 1m.
	Tick time.Duration
	// MinKeep is the shortest keep a retention rule may have: shorter
	// rules are refused. Default 1h.
	MinKeep time.Duration
}

// Retention defaults.
const (
	DefaultRetentionTick    = time.Minute
	DefaultRetentionMinKeep = time.Hour
)

// Member is a node of the initial configuration.
type Member struct {
	ID       string
	RaftAddr string // its intra-cluster address, host:port
}

// TLSConfig selects the node's certificates. Either DevDir (generated
// development PKI) or all three files.
type TLSConfig struct {
	DevDir   string
	CAFile   string
	CertFile string
	KeyFile  string
	// APITLSOnLoopback requires client certificates on the operator API
	// even on loopback, as in production.
	APITLSOnLoopback bool
}

// RaftConfig tunes replication.
type RaftConfig struct {
	HeartbeatTimeout  time.Duration
	SnapshotThreshold uint64        // log entries between snapshots
	SnapshotInterval  time.Duration // how often to check the threshold
	TrailingLogs      uint64        // entries kept after a snapshot for slow followers
	ApplyTimeout      time.Duration // for writes whose caller set no deadline
}

// StorageConfig is how the node guards its disks.
type StorageConfig struct {
	// MinFreeBytes is the free space kept on the file systems of the Raft
	// log and the state machine: below it the node refuses client writes
	// and hands its leadership away; below half of it the log takes no
	// appends at all. Default DefaultMinFreeBytes; negative: no reserve.
	MinFreeBytes int64
	// StallTimeout is how long a write to either store may take before the
	// node treats its disk as stalled: it refuses writes, and stops
	// sending Raft's heartbeats so that another node leads. Default 2 s.
	StallTimeout time.Duration
	// ScrubInterval is the time between background checks of every block
	// of the state machine's files. Default 24 h; negative: none.
	ScrubInterval time.Duration
	// ScrubBytesPerSecond paces the check. Default 8 MiB/s.
	ScrubBytesPerSecond int64
}

// DefaultMinFreeBytes is StorageConfig.MinFreeBytes' default: room for a
// few of the state machine's memtable flushes and compactions after the
// node stops taking writes.
const DefaultMinFreeBytes = 256 << 20

func (s StorageConfig) withDefaults() StorageConfig {
	if s.MinFreeBytes == 0 {
		s.MinFreeBytes = DefaultMinFreeBytes
	}
	if s.MinFreeBytes < 0 {
		s.MinFreeBytes = 0
	}
	if s.StallTimeout <= 0 {
		s.StallTimeout = 2 * time.Second
	}
	if s.ScrubInterval == 0 {
		s.ScrubInterval = 24 * time.Hour
	}
	if s.ScrubBytesPerSecond <= 0 {
		s.ScrubBytesPerSecond = 8 << 20
	}
	return s
}

func (c Config) withDefaults() (Config, error) {
	if c.TeamID == "" {
		c.TeamID = "dev"
	}
	if c.NodeID == "" {
		c.NodeID = "node1"
	}
	if c.DataDir == "" {
		c.DataDir = "irx-data"
	}
	c.Storage = c.Storage.withDefaults()
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if c.RaftAddr == "" {
		c.RaftAddr = DefaultRaftAddr
	}
	if c.FirstOperator == "" {
		c.FirstOperator = pki.DevOperatorName
	}
	if c.TLS.DevDir == "" && c.TLS.CAFile == "" && c.TLS.CertFile == "" && c.TLS.KeyFile == "" {
		c.TLS.DevDir = filepath.Join(c.DataDir, "pki")
	}
	r := &c.Raft
	if r.HeartbeatTimeout == 0 {
		r.HeartbeatTimeout = 500 * time.Millisecond
	}
	if r.SnapshotThreshold == 0 {
		r.SnapshotThreshold = 8192
	}
	if r.SnapshotInterval == 0 {
		r.SnapshotInterval = 30 * time.Second
	}
	if r.TrailingLogs == 0 {
		r.TrailingLogs = 10240
	}
	if r.ApplyTimeout == 0 {
		r.ApplyTimeout = 10 * time.Second
	}
	if c.EraseWithin == 0 {
		c.EraseWithin = DefaultEraseWithin
	}
	if c.FutureSkew == 0 {
		c.FutureSkew = DefaultFutureSkew
	}
	if c.Retention.Tick == 0 {
		c.Retention.Tick = DefaultRetentionTick
	}
	if c.Retention.MinKeep == 0 {
		c.Retention.MinKeep = DefaultRetentionMinKeep
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if err := record.ValidateTeamID(c.TeamID); err != nil {
		errs = append(errs, fmt.Errorf("team_id: %w", err))
	}
	if err := record.ValidateTeamID(c.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("node_id: %w", err))
	}
	if err := record.ValidateTeamID(c.TeamID); err == nil {
		if err := pki.OperatorIdentity(c.TeamID, c.FirstOperator).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("first_operator %q: %w", c.FirstOperator, err))
		}
	}
	for name, addr := range map[string]string{"api_addr": c.APIAddr, "raft_addr": c.RaftAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	if c.TLS.DevDir == "" && (c.TLS.CAFile == "" || c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: set ca_file, cert_file and key_file together, or none for the development PKI"))
	}
	if len(c.Members) > 0 {
		seen := map[string]bool{}
		self := false
		for i, m := range c.Members {
			if err := record.ValidateTeamID(m.ID); err != nil {
				errs = append(errs, fmt.Errorf("cluster.members[%d].id: %w", i, err))
			}
			if _, _, err := net.SplitHostPort(m.RaftAddr); err != nil {
				errs = append(errs, fmt.Errorf("cluster.members[%d].raft: %q: %w", i, m.RaftAddr, err))
			}
			if seen[m.ID] {
				errs = append(errs, fmt.Errorf("cluster.members[%d].id: %q listed twice", i, m.ID))
			}
			seen[m.ID] = true
			self = self || m.ID == c.NodeID
		}
		if !self {
			errs = append(errs, fmt.Errorf("cluster.members: does not list this node (%q)", c.NodeID))
		}
		if c.Join {
			errs = append(errs, errors.New("cluster: members (bootstrap) and join exclude each other"))
		}
	}
	if c.EraseWithin < time.Second {
		errs = append(errs, errors.New("erase_within: must be at least 1s"))
	}
	if c.Retention.Tick < 10*time.Millisecond {
		errs = append(errs, errors.New("retention.tick: must be at least 10ms"))
	}
	if c.Retention.MinKeep < time.Second {
		errs = append(errs, errors.New("retention.min_keep: must be at least 1s"))
	}
	own := append([]string{c.APIAddr, c.RaftAddr, c.RaftAdvertise, c.MetricsAddr}, c.OtherListeners...)
	if err := webhook.Check(c.Webhooks, c.TLS.DevDir != "", own); err != nil {
		errs = append(errs, err)
	}
	if c.FutureSkew < 0 {
		errs = append(errs, errors.New("future_skew: must not be negative"))
	}
	if c.Raft.HeartbeatTimeout < 50*time.Millisecond {
		errs = append(errs, errors.New("raft.heartbeat_timeout: must be at least 50ms"))
	}
	return errors.Join(errs...)
}

// apiPlaintext reports whether the operator API may run without TLS: only
// in development mode and only where nobody else can connect.
func (c Config) apiPlaintext() bool {
	return c.TLS.DevDir != "" && !c.TLS.APITLSOnLoopback && pki.IsLoopback(c.APIAddr)
}

// certHosts are the names the development node certificate covers.
func (c Config) certHosts() []string {
	var hosts []string
	for _, addr := range []string{c.APIAddr, c.RaftAddr, c.RaftAdvertise} {
		if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

func (c Config) raftAdvertise(bound net.Addr) (net.Addr, error) {
	addr := c.RaftAdvertise
	if addr == "" {
		addr = bound.String()
	}
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raft_advertise %q: %w", addr, err)
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft_advertise: %q is not an address other members can dial; set raft_advertise", addr)
	}
	return tcp, nil
}
