package federation

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/pki"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Federation reaches its team through these interfaces, never through the
// node's types: what it needs of the node it runs on (Node), and what it
// reads of the team's replicated state (State). cmd/irxd wires them to the
// node and its state machine.

// Node is what federation needs of the node it runs on.
type Node interface {
	TeamID() string
	NodeID() string
	Logger() *slog.Logger
	// IsLeader reports whether this node leads its team (pullers and
	// redisclosures run on the leader).
	IsLeader() bool
	// ReadBarrier returns once this node has applied what a read of
	// consistency c must see.
	ReadBarrier(ctx context.Context, c irxv1.ReadConsistency) error
	// OnLeader runs local on the leader, or remote against the leader's
	// intra-cluster server from another node.
	OnLeader(ctx context.Context, local func() error, remote func(context.Context, *grpc.ClientConn) error) error
	// OnMembers calls fn with a connection to every other member of the
	// team, concurrently, and returns the errors by member.
	OnMembers(ctx context.Context, fn func(ctx context.Context, nodeID string, conn *grpc.ClientConn) error) map[string]error
	// Commit appends cmd to the team's log and returns what the state
	// machine stored for it (an incident, a policy, a peer, a team
	// description, or nil), or its refusal as the error.
	Commit(ctx context.Context, cmd *irxv1.Command) (proto.Message, error)
	// CommitInOrder appends cmds (no creates) to the log of this node,
	// which must lead, in their order and without waiting for one before
	// the next leaves, and returns each one's refusal (nil: applied).
	CommitInOrder(ctx context.Context, cmds []*irxv1.Command) []error
	// Certificate is the node's own certificate, presented to peers.
	Certificate() pki.CertSource
	// PolicyCache holds the node's compiled policies.
	PolicyCache() *policy.Cache
	RegisterMetrics(cs ...prometheus.Collector) error
}

// State is what federation reads of its team's replicated state. Every
// node of the team answers the same for the same applied index.
type State interface {
	Get(id string, version int64) (*irxv1.Incident, error)
	Peer(team string) (*irxv1.Peer, error)
	Peers(pageSize int, pageToken string) ([]*irxv1.Peer, string, error)
	PeerState(team string) (*irxv1.PeerState, error)
	Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error)
	PseudonymKey(peer string) ([]byte, error)
	TeamDescription() (*irxv1.TeamDescription, error)
	// RetentionTerms is the retention policy of origin as this team holds
	// it (ours, or the terms its views carried); nil when none.
	RetentionTerms(origin string) *irxv1.RetentionPolicy
	Disclosures(peer, incidentID string, pageSize int, pageToken string) ([]*irxv1.Disclosure, string, error)

	FeedEntries(after uint64, limit int) ([]*irxv1.FeedEntry, error)
	FeedEntry(seq uint64) (*irxv1.FeedEntry, error)
	FeedSequence() uint64
	// EachWarning calls fn with every warning the team issued or received.
	EachWarning(fn func(*irxv1.Warning) error) error
	// SharingGroups lists the team's sharing groups (without keys), and
	// OwnSightings the digests of our values a member of one may be told.
	SharingGroups() ([]*irxv1.SharingGroup, error)
	OwnSightings(group string, maxTLP irxv1.Tlp, limit int) (keyID string, digests [][]byte, err error)
	// SightingsWithdrawals lists the former members of groups still to
	// be told to drop the digests we sent them.
	SightingsWithdrawals() ([]*irxv1.SightingsWithdrawal, error)
	// Restored is the mark of the restore from a backup that started this
	// team; nil if none did.
	Restored() *irxv1.RestoreMark
	AppliedIndex() uint64
	// WarningRevision changes whenever the warnings changed.
	WarningRevision() uint64
	WaitApplied(ctx context.Context, index uint64) error

	// Redisclosures is, per peer, how far the redisclosure of what it
	// holds has come (RediscloseCommand).
	Redisclosures() (map[string]*irxv1.RedisclosureProgress, error)
	// NextStretch is where the next stretch of what peer holds after
	// after ends, within the bounds; last when it reaches the end.
	NextStretch(peer, after string, maxIncidents, maxVersions, maxBytes int) (through string, last bool, err error)
	// Versions opens a reader of versions and holdings that keeps one
	// view of the state until it is closed.
	Versions() (VersionReader, error)
}

// VersionReader reads incident versions and what peers hold of them, for a
// run of feed entries. Close it before anything slow: it holds the state
// machine's read lock.
type VersionReader interface {
	Get(id string, version int64) (*irxv1.Incident, error)
	// HeldVersions is what peer acknowledged holding of an incident: the
	// digest of its view of each version (nil when not recorded).
	HeldVersions(peer, incidentID string) (map[int64][]byte, error)
	// HeldIncidents calls fn in id order with every incident peer holds
	// whose id lies in (after, through] ("" is open), and its versions.
	HeldIncidents(peer, after, through string, fn func(id string, versions map[int64][]byte) error) error
	// HoldsAnyOf reports whether peer holds a version of any record of
	// team origin.
	HoldsAnyOf(peer, origin string) (bool, error)
	Policy(peer string, version int64) (*irxv1.DisclosurePolicy, error)
	PseudonymKey(peer string) ([]byte, error)
	// PublishedStatistics is what the statistics feed entry seq
	// published; nil once a later entry superseded them.
	PublishedStatistics(seq uint64) (*irxv1.SharedStatistics, error)
	Close() error
}

// Team is what a federation runs on: its node and its team's state.
type Team struct {
	Node  Node
	State State
}

// committed is what Commit stored, as the message type the command makes.
func committed[T proto.Message](msg proto.Message, err error) (T, error) {
	var none T
	if err != nil {
		return none, err
	}
	out, ok := msg.(T)
	if !ok {
		return none, fmt.Errorf("the command stored %T, not %T", msg, none)
	}
	return out, nil
}
