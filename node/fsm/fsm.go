// Package fsm is the team's replicated state machine: it applies Raft log
// entries (irx.v1.Command) to a pebble database and answers reads from it.
//
// Every entry is applied in the same pebble batch as the Raft index that
// carried it, so replaying entries after a crash is a no-op, and the batch
// need not be synced: the Raft log is the durable copy until a snapshot.
package fsm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Errors an applied command can return, besides *record.ValidationError.
var (
	ErrNotFound        = errdefs.ErrNotFound
	ErrVersionConflict = errdefs.New(errdefs.ErrConflict, "version conflict")
	ErrForeignIncident = errdefs.New(errdefs.ErrFailedPrecondition, "incident belongs to another team")
	// ErrInvalidCommand refuses a log entry no proposer should have made;
	// it is a fault of the proposer, not of a client.
	ErrInvalidCommand = errors.New("invalid command")
)

// Result is what applying one command returns through raft's ApplyFuture.
type Result struct {
	Incident *irxv1.Incident
	Policy   *irxv1.DisclosurePolicy
	Peer     *irxv1.Peer
	// TeamDescription is what a SetTeamDescriptionCommand stored.
	TeamDescription *irxv1.TeamDescription
	// Binding and Revoked are what an access command stored.
	Binding *irxv1.RoleBinding
	Revoked *irxv1.RevokedCertificate
	// Alert and AlertSettings are what an alert command stored.
	Alert         *irxv1.Alert
	AlertSettings *irxv1.AlertSettings
	Warning       *irxv1.Warning
	SharingGroup  *irxv1.SharingGroup
	// Budget is what a SpendPrivacyBudgetCommand left of the budget.
	Budget *irxv1.PrivacyBudget
	Err    error
	// Batch holds one result per command of a CommandBatch entry.
	Batch []*Result
	// Encoded is the stored encoding of the incident a create made, for
	// answers that carry it as it is. A create the leader evaluated
	// answers with Encoded only; Created gives the message.
	Encoded []byte
	// Retention is what a SetRetentionPolicyCommand stored.
	Retention *irxv1.RetentionPolicy
	// RetentionMore: a retention tick stopped at its bound with more due;
	// the leader proposes the next at once.
	RetentionMore bool
	// Replayed: a create's request id was stored already, with the same
	// body; Incident is what that first create stored, and nothing was
	// created now.
	Replayed bool
}

// Created returns the incident a create stored (or, for a repeated request
// id, the one the first create stored): Incident, or Encoded decoded.
func (r *Result) Created() (*irxv1.Incident, error) {
	if r.Incident != nil || r.Encoded == nil {
		return r.Incident, nil
	}
	inc := &irxv1.Incident{}
	if err := proto.Unmarshal(r.Encoded, inc); err != nil {
		return nil, fmt.Errorf("fsm: stored incident: %w", err)
	}
	return inc, nil
}

// Stored is what the command stored (the incident, policy, peer or team
// description it made; nil for commands that store none of those), or its
// refusal as the error.
func (r *Result) Stored() (proto.Message, error) {
	switch {
	case r.Err != nil:
		return nil, r.Err
	case r.Incident != nil || r.Encoded != nil:
		return r.Created()
	case r.Policy != nil:
		return r.Policy, nil
	case r.Peer != nil:
		return r.Peer, nil
	case r.TeamDescription != nil:
		return r.TeamDescription, nil
	case r.Binding != nil:
		return r.Binding, nil
	case r.Revoked != nil:
		return r.Revoked, nil
	case r.Alert != nil:
		return r.Alert, nil
	case r.AlertSettings != nil:
		return r.AlertSettings, nil
	case r.Warning != nil:
		return r.Warning, nil
	case r.SharingGroup != nil:
		return r.SharingGroup, nil
	case r.Budget != nil:
		return r.Budget, nil
	case r.Retention != nil:
		return r.Retention, nil
	}
	return nil, nil
}

// FSM implements raft.BatchingFSM over pebble.
type FSM struct {
	team     string
	dir      string
	log      *slog.Logger
	families [][]byte // keyFamilies

	// mu guards db against Restore swapping it while readers use it. Apply
	// and Restore both run on raft's FSM goroutine, so apply needs no lock.
	mu sync.RWMutex
	db *pebble.DB

	// snapshots counts open pebble snapshots so Restore does not close a
	// database a snapshot is still being persisted from.
	snapshots sync.WaitGroup
	// openSnapshots knows what each open snapshot can still see, for
	// erasures (erase.go).
	openSnapshots openSnapshots
	// erasures are the removals applied and not yet erased at rest.
	erasures *erasures

	health health

	applied    atomic.Uint64
	lastTicket atomic.Uint64
	feedSeq    atomic.Uint64
	// restored is the state's RestoreMark, nil for a team never restored.
	// It changes only with the database (Restore).
	restored atomic.Pointer[irxv1.RestoreMark]

	// tombstones mirrors the tomb/ keys: up to which version each origin
	// withdrew a foreign incident. Every received record is checked
	// against it, and a point lookup of a key that almost never exists was
	// a noticeable part of applying a peer's feed; withdrawn incidents are
	// few, so they are kept in memory. Only raft's FSM goroutine (apply, restore)
	// uses it.
	tombstones map[record.ID]uint64
	// foreignHigh is, per origin team, a ticket at or above every one of
	// its incidents we hold: a received record above it is new, and needs
	// no lookup of a copy we cannot have. In a catch-up every record is
	// new. Kept like tombstones.
	foreignHigh map[string]uint64
	// netBits: the prefix lengths the correlation index holds
	// (correlate.go). Kept like tombstones.
	netBits *netBits
	// held: the addresses and names the correlation index holds, in order
	// (correlate.go). Kept like tombstones.
	held *heldValues
	// saturated: the keys of the saturation marks (alr/sat/, correlate.go).
	// Kept like tombstones.
	saturated map[string]struct{}
	// alertsRaised and alertChanges count, since this node started, the
	// alerts it raised and the alert changes it applied (metrics).
	alertsRaised, alertChanges atomic.Uint64

	// retention mirrors the ret/o/ keys (retention.go), replaced after
	// every batch that changes them.
	retention atomic.Pointer[retentionStates]

	// access mirrors the acc/ keys, replaced after every batch that
	// changes them: every call of the operator API checks it.
	access atomic.Pointer[Access]
	// settings are the alert settings and sharing groups in force, which
	// every batch that holds a value reads and an operator changes now and
	// then: kept here, and loaded again after a batch that changed them.
	settings atomic.Pointer[correlationSettings]
	// warningRevision: see WarningRevision.
	warningRevision atomic.Uint64

	// appliedSignal is closed and replaced whenever applied advances, so
	// linearizable reads can wait for an index without polling.
	signalMu      sync.Mutex
	appliedSignal chan struct{}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

var marshal = proto.MarshalOptions{Deterministic: true}

// Open opens the state machine database in dir for team.
func Open(dir, team string, logger *slog.Logger) (*FSM, error) {
	if err := record.ValidateTeamID(team); err != nil {
		return nil, fmt.Errorf("fsm: %w", err)
	}
	f := &FSM{team: team, dir: dir, log: logger, appliedSignal: make(chan struct{}), families: keyFamilies()}
	if err := recoverDirs(dir); err != nil {
		return nil, err
	}
	db, err := f.openVerified(dir)
	if err != nil {
		return nil, err
	}
	if err := f.adopt(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	f.erasures = newErasures(dir + ".erase-owed")
	if err := f.erasures.load(f.applied.Load()); err != nil {
		_ = db.Close()
		return nil, err
	}
	return f, nil
}

// The state database's block cache (index and filter blocks of fresh
// tables: every create checks its request id) and memtable size. Larger
// memtables mean fewer, larger flushes under ingest load.
const (
	stateCacheBytes    = 256 << 20
	stateMemTableBytes = 32 << 20
)

// ManualMemoryBytes is the most the state database holds in memory that
// pebble allocates itself (outside the Go heap where the build uses cgo):
// its block cache and its memtables, the mutable one and those queued for
// a flush before writes stop (pebble's MemTableStopWritesThreshold, 2).
const ManualMemoryBytes = stateCacheBytes + 3*stateMemTableBytes

// openDB opens the database in dir; events, if not nil, is its listener.
func openDB(dir string, logger *slog.Logger, events *pebble.EventListener) (*pebble.DB, error) {
	cache := pebble.NewCache(stateCacheBytes)
	defer cache.Unref() // the database holds its own reference
	opts := &pebble.Options{
		Logger:             pebbleLogger{logger},
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		MemTableSize:       stateMemTableBytes,
		// No write-ahead log: the Raft log is the durable copy of every
		// change, and the applied index is written in the same batch as the
		// change. After a crash the database holds a consistent prefix (what
		// was flushed), raft replays the entries after it, and when the
		// prefix is older than the newest snapshot the node restores the
		// snapshot first (Node.stateCoversSnapshots), whose index the Raft
		// log still covers. A WAL nobody needs would cost the leader CPU
		// under ingest (docs/performance.md).
		DisableWAL:    true,
		EventListener: events,
	}
	opts.Experimental.SpanPolicyFunc = splitTablesAtFamilies(keyFamilies())
	// Every create looks up its request id, which is almost always absent:
	// bloom filters answer those misses without reading a block.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].BlockSize = 32 << 10
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.FastestCompression }
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("fsm: open %s: %w", dir, err)
	}
	return db, nil
}

// adopt makes db the current database and loads its counters.
func (f *FSM) adopt(db *pebble.DB) error {
	counters := []struct {
		key []byte
		dst *atomic.Uint64
	}{{keyApplied, &f.applied}, {keyTicket, &f.lastTicket}, {keyFeed, &f.feedSeq}}
	for _, c := range counters {
		n, err := getUint64(db, c.key)
		if err != nil {
			return err
		}
		c.dst.Store(n)
	}
	if err := migrateHeld(db); err != nil {
		return err
	}
	if err := migrateRetentionIndex(db); err != nil {
		return err
	}
	if err := buildStats(db, f.team); err != nil {
		return err
	}
	tombstones, err := loadTombstones(db)
	if err != nil {
		return err
	}
	high, err := loadHighestTickets(db, f.team)
	if err != nil {
		return err
	}
	access, err := loadAccess(db)
	if err != nil {
		return err
	}
	nb, held, err := loadCorrelationMemory(db)
	if err != nil {
		return err
	}
	saturated, err := loadSaturated(db)
	if err != nil {
		return err
	}
	mark := &irxv1.RestoreMark{}
	if found, err := getProto(db, keyRestore, mark); err != nil {
		return err
	} else if !found {
		mark = nil
	}
	f.restored.Store(mark)
	retention, err := loadRetention(db)
	if err != nil {
		return err
	}
	settings, err := loadCorrelationSettings(db)
	if err != nil {
		return err
	}
	f.db, f.tombstones, f.foreignHigh, f.netBits, f.held, f.saturated = db, tombstones, high, nb, held, saturated
	f.access.Store(access)
	f.settings.Store(settings)
	f.warningRevision.Add(1)
	f.retention.Store(&retention)
	return nil
}

// Close closes the database. flush says whether to write what is only in
// memory first: without a WAL, that would be replayed from the Raft log
// at the next start, and flushing makes a clean restart quick; on a full
// or stalled disk the flush would never finish.
func (f *FSM) Close() error { return f.close(true) }

// CloseWithoutFlush closes the database without writing what is only in
// memory, for a node whose disk cannot take it: the next start replays
// it from the Raft log.
func (f *FSM) CloseWithoutFlush() error { return f.close(false) }

func (f *FSM) close(flush bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapshots.Wait()
	if f.db == nil {
		return nil
	}
	var err error
	if flush {
		err = f.db.Flush()
	}
	err = errors.Join(err, f.db.Close())
	f.db = nil
	return err
}

// StorageMetrics returns pebble's metrics of the state machine's database,
// or nil once it is closed.
func (f *FSM) StorageMetrics() *pebble.Metrics {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil
	}
	return f.db.Metrics()
}

// AppliedIndex is the last Raft index whose effects are in the database.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// LastTicket is the last ticket the team assigned.
func (f *FSM) LastTicket() uint64 { return f.lastTicket.Load() }

// FeedSequence is the last sequence number of the team's feed.
func (f *FSM) FeedSequence() uint64 { return f.feedSeq.Load() }

// Restored returns the mark of the restore that started this team, nil if
// it was never restored from a backup.
func (f *FSM) Restored() *irxv1.RestoreMark { return f.restored.Load() }

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: one pebble batch for all entries.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	applied := f.applied.Load()
	last := applied
	entries := make([]*entry, len(logs))
	reads := false
	for i, l := range logs {
		if l.Index <= applied {
			// Replay after a restart: the effect is already in the database.
			continue
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		e, err := decodeEntry(l)
		if err != nil {
			results[i] = &Result{Err: err}
			continue
		}
		entries[i] = e
		reads = reads || e.readsState()
	}
	if last == applied {
		return results
	}
	// Commands that read state see the writes of the commands before them
	// through an indexed batch. Ingest's entries hold only creates with
	// fresh request ids, which read nothing, so their batch skips the
	// index: keeping it cost each replica a skiplist insert per key.
	var b *pebble.Batch
	if reads {
		b = f.db.NewIndexedBatchWithSize(batchSizeHint(logs))
	} else {
		b = f.db.NewBatchWithSize(batchSizeHint(logs))
	}
	defer b.Close()
	// Writes are added to the batch in key order (writePending), also in
	// a batch that reads: its reads add what is held back first, and a
	// peer's feed, which reads its peer's state once per command and
	// little else, then inserts its records' keys in order too.
	a := applier{fsm: f, batch: b, ticket: f.lastTicket.Load(), feed: f.feedSeq.Load(), sorted: true}
	commands, size := 0, 0
	for i, e := range entries {
		if e != nil {
			commands += len(e.commands)
			size += len(logs[i].Data)
		}
	}
	// A create of 1 KiB makes about 18 writes; a peer's view of 1 KiB
	// about as many, and a feed command holds hundreds of them.
	a.pending = make([]pendingSet, 0, max(commands*writesPerCreate, size/64))
	for i, e := range entries {
		if e != nil {
			results[i] = a.apply(e, logs[i].Index)
		}
	}
	a.writePending()
	if err := a.cor.close(); err != nil {
		a.fail(err)
	}
	a.writeStats()
	if a.err == nil && len(a.erasedSpans) > 0 {
		a.err = f.erasures.prepare()
	}
	if a.err == nil {
		a.err = errors.Join(
			b.Set(keyApplied, u64(last), nil),
			b.Set(keyTicket, u64(a.ticket), nil),
			b.Set(keyFeed, u64(a.feed), nil),
			b.Commit(pebble.NoSync))
	}
	if a.err != nil {
		// A storage failure leaves this replica unable to follow the log.
		// Stopping is the only safe answer: raft re-applies from the last
		// durable index on restart.
		f.log.Error("state machine cannot write; stopping", "error", a.err)
		panic(fmt.Sprintf("fsm: apply batch ending at %d: %v", last, a.err))
	}
	if a.accessChanged {
		reload(f, last, "access", loadAccess, &f.access)
	}
	if a.settingsChanged {
		reload(f, last, "alert settings", loadCorrelationSettings, &f.settings)
	}
	if a.warningsChanged {
		f.warningRevision.Add(1)
	}
	f.publishRetention(a.retention)
	f.applied.Store(last)
	f.lastTicket.Store(a.ticket)
	f.feedSeq.Store(a.feed)
	if len(a.erasedSpans) > 0 {
		f.erasures.note(a.erasedSpans, a.erasedIndex, time.Now())
	}
	f.signalApplied()
	return results
}

// readsState reports whether applying the entry may read the database or
// the writes of earlier commands.
func (e *entry) readsState() bool {
	for _, c := range e.commands {
		if c.evaluated != nil && c.evaluated.requestID != "" && !c.evaluated.fresh {
			return true
		}
		if c.cmd != nil && readsState(c.cmd) {
			return true
		}
	}
	return false
}

// readsState reports whether applying cmd may read the database or the
// writes of earlier commands. Only commands known to read nothing say no:
// the leader's no-op and a create whose request id the node made for it
// (nothing can have stored that id yet, so it is not looked up). Every
// other kind, including any added later, reads.
func readsState(cmd *irxv1.Command) bool {
	switch k := cmd.GetKind().(type) {
	case *irxv1.Command_LeaderNoop:
		return false
	case *irxv1.Command_CreateIncident:
		return k.CreateIncident.GetRequestId() != "" && !k.CreateIncident.GetFreshRequestId()
	case *irxv1.Command_Batch:
		for _, sub := range k.Batch.GetCommands() {
			if readsState(sub) {
				return true
			}
		}
		return false
	}
	return true
}

// batchSizeHint estimates the pebble batch that applying logs writes: about
// the commands' own size (each record is stored once) and three quarters
// again for index keys, correlation's keys, feed entries and pebble's
// record headers (creates of 1 KiB records with four indicators each write
// 1.07 times the estimate of half again, which then doubled). A batch that
// starts small doubles its buffer, copying everything so far, a dozen times
// for a 4 MiB peer feed entry (BenchmarkApplyPeerFeed shows the
// difference).
func batchSizeHint(logs []*raft.Log) int {
	n := 0
	for _, l := range logs {
		n += len(l.Data)
	}
	return n + n*3/4 + 4<<10
}

// reload reads back what a batch changed of the state kept in memory; a
// replica that cannot read what it wrote stops, as one that cannot write.
func reload[T any](f *FSM, last uint64, what string, load func(pebble.Reader) (*T, error), into *atomic.Pointer[T]) {
	v, err := load(f.db)
	if err != nil {
		f.log.Error("state machine cannot read what it wrote; stopping", "error", err)
		panic(fmt.Sprintf("fsm: %s after batch ending at %d: %v", what, last, err))
	}
	into.Store(v)
}

func (f *FSM) signalApplied() {
	f.signalMu.Lock()
	close(f.appliedSignal)
	f.appliedSignal = make(chan struct{})
	f.signalMu.Unlock()
}

// WaitApplied blocks until the applied index reaches index or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.signalMu.Lock()
		signal := f.appliedSignal
		f.signalMu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-signal:
		case <-ctx.Done():
			return fmt.Errorf("waiting to apply index %d (applied %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// applier applies commands to one batch, carrying the counters forward.
type applier struct {
	fsm *FSM
	// batch is written through set and del, and read through reads, which
	// sees every write made before it.
	batch  *pebble.Batch
	ticket uint64
	feed   uint64
	err    error // first storage error; the batch is then abandoned

	// sorted holds the writes in pending until writePending, which a read
	// of the batch, a deletion and the end of the batch call.
	sorted  bool
	pending []pendingSet

	// Of the command being applied: its log index and propose time.
	index uint64
	now   *timestamppb.Timestamp
	// checkText: the peer feed being applied asks for the text rules
	// (ApplyPeerFeedCommand.check_text).
	checkText bool
	// views: the encoded incidents of the peer feed being applied, by
	// item (entryCommand.views); partial: which of them were read only in
	// part (entryCommand.partial).
	views   [][]byte
	partial []bool

	// accessChanged: a command changed bindings or revocations; bound: the
	// bootstrap grant applied (so a later one in the batch is moot).
	accessChanged, bound bool
	// settingsChanged: a command changed the alert settings or a sharing
	// group (FSM.settings).
	settingsChanged bool
	// warningsChanged: a command stored a warning (FSM.warningRevision).
	warningsChanged bool
	// position numbers the actions recorded within one entry; journalPos
	// the keys it wrote to correlation's journal (correlate.go).
	position, journalPos uint32

	// stats sums the batch's changes to the statistics' counters by key
	// (stats.go).
	stats map[string]int64
	// retention holds the retention states the batch changed, until they
	// are published (retention.go).
	retention map[string]*irxv1.RetentionState

	// Removals to erase at rest (erase.go), and the last entry that made one.
	erasedSpans []Span
	erasedIndex uint64

	// cor: correlation's state in this batch (correlate.go).
	cor *correlator
}

func (a *applier) apply(e *entry, index uint64) *Result {
	a.position, a.journalPos = 0, 0
	if !e.batch {
		return a.applyCommand(e.commands[0], e.proposeTime, index, false)
	}
	// Each command of a batch takes the batch's propose time, so it is
	// stamped once, by the leader, like a single command.
	res := &Result{Batch: make([]*Result, len(e.commands))}
	for i, c := range e.commands {
		res.Batch[i] = a.applyCommand(c, e.proposeTime, index, true)
	}
	return res
}

func (a *applier) applyCommand(c entryCommand, now *timestamppb.Timestamp, index uint64, inBatch bool) *Result {
	ticket := a.ticket
	if c.evaluated != nil {
		a.index, a.now = index, now
		res := a.createEvaluated(c.evaluated)
		if c.actor != nil && res.Err == nil && a.ticket != ticket {
			a.recordAction(c.actor, "", record.ID{Team: a.fsm.team, Ticket: a.ticket}, 1, index)
		}
		return res
	}
	if inBatch {
		if c.cmd.GetBatch() != nil {
			return &Result{Err: fmt.Errorf("%w at index %d: a batch inside a batch", ErrInvalidCommand, index)}
		}
		c.cmd.ProposeTime = now
	}
	a.views, a.partial = c.views, c.partial
	res := a.applyOne(c.cmd, index)
	a.views, a.partial = nil, nil
	// A command that changed nothing (refused, a repeated request id, a
	// bootstrap grant after the first) leaves no action.
	if actor := c.cmd.GetActor(); actor != nil && res.Err == nil && a.changed(c.cmd, res, ticket) {
		target, version := a.actionTarget(c.cmd, res, ticket)
		encoded, err := marshal.Marshal(actor)
		if err != nil {
			a.fail(err)
			return res
		}
		var incident record.ID
		if id, ok := strings.CutPrefix(target, "incident/"); ok {
			if rid, err := record.ParseID(id); err == nil {
				target, incident = "", rid
			}
		}
		a.recordAction(encoded, target, incident, version, index)
	}
	return res
}

// changed reports whether an applied command changed the state.
func (a *applier) changed(cmd *irxv1.Command, res *Result, ticketBefore uint64) bool {
	switch cmd.GetKind().(type) {
	case *irxv1.Command_CreateIncident:
		return a.ticket != ticketBefore
	case *irxv1.Command_ChangeRole:
		return res.Binding != nil
	}
	return true
}

func (a *applier) applyOne(cmd *irxv1.Command, index uint64) *Result {
	a.index, a.now = index, cmd.GetProposeTime()
	switch k := cmd.GetKind().(type) {
	case *irxv1.Command_CreateIncident:
		return a.create(cmd, k.CreateIncident)
	case *irxv1.Command_UpdateIncident:
		return a.update(cmd, k.UpdateIncident)
	case *irxv1.Command_LeaderNoop:
		return &Result{}
	case *irxv1.Command_SetPolicy:
		return a.setPolicy(cmd, k.SetPolicy)
	case *irxv1.Command_WithdrawIncident:
		return a.withdraw(k.WithdrawIncident)
	case *irxv1.Command_PutPeer:
		return a.putPeer(k.PutPeer)
	case *irxv1.Command_DeletePeer:
		return a.deletePeer(k.DeletePeer)
	case *irxv1.Command_ApplyPeerFeed:
		return a.applyPeerFeed(k.ApplyPeerFeed)
	case *irxv1.Command_AcknowledgePeer:
		return a.acknowledgePeer(k.AcknowledgePeer)
	case *irxv1.Command_ResyncPeer:
		return a.resyncPeer(k.ResyncPeer)
	case *irxv1.Command_SetTeamDescription:
		return a.setTeamDescription(k.SetTeamDescription)
	case *irxv1.Command_Redisclose:
		return a.redisclose(k.Redisclose)
	case *irxv1.Command_ChangeRole:
		return a.changeRole(k.ChangeRole)
	case *irxv1.Command_RevokeCertificate:
		return a.revokeCertificate(k.RevokeCertificate, cmd.GetActor())
	case *irxv1.Command_UpdateAlertSettings:
		return a.updateAlertSettings(k.UpdateAlertSettings)
	case *irxv1.Command_AcknowledgeAlert:
		return a.acknowledgeAlert(cmd, k.AcknowledgeAlert)
	case *irxv1.Command_IssueWarning:
		return a.issueWarning(cmd, k.IssueWarning)
	case *irxv1.Command_ReceiveWarning:
		return a.receiveWarning(k.ReceiveWarning)
	case *irxv1.Command_AcknowledgeWarning:
		return a.acknowledgeWarning(cmd, k.AcknowledgeWarning)
	case *irxv1.Command_RecordWarningDelivery:
		return a.recordWarningDelivery(k.RecordWarningDelivery)
	case *irxv1.Command_MarkWarningAcknowledgementDelivered:
		return a.markWarningAcknowledgementDelivered(k.MarkWarningAcknowledgementDelivered)
	case *irxv1.Command_PutSharingGroup:
		return a.putSharingGroup(k.PutSharingGroup)
	case *irxv1.Command_ReceiveSightings:
		return a.receiveSightings(k.ReceiveSightings)
	case *irxv1.Command_DeleteSharingGroup:
		return a.deleteSharingGroup(k.DeleteSharingGroup)
	case *irxv1.Command_ClearSightingsWithdrawal:
		return a.clearSightingsWithdrawal(k.ClearSightingsWithdrawal)
	case *irxv1.Command_PublishStatistics:
		return a.publishStatistics()
	case *irxv1.Command_SpendPrivacyBudget:
		return a.spendPrivacyBudget(k.SpendPrivacyBudget)
	case *irxv1.Command_SetRetentionPolicy:
		return a.setRetention(k.SetRetentionPolicy)
	case *irxv1.Command_RetentionTick:
		return a.retentionTick()
	case *irxv1.Command_RecordAction:
		if cmd.GetActor().GetTarget() == "" {
			return &Result{Err: fmt.Errorf("%w at index %d: an action to record without actor and target", ErrInvalidCommand, index)}
		}
		return &Result{}
	}
	return &Result{Err: fmt.Errorf("%w at index %d: unknown kind", ErrInvalidCommand, index)}
}

func (a *applier) create(cmd *irxv1.Command, c *irxv1.CreateIncidentCommand) *Result {
	if res := a.duplicateOf(c.GetRequestId(), c.GetFreshRequestId(), c.GetRequestDigest()); res != nil {
		return res
	}
	// The command was decoded from this log entry, but CompleteCreate works
	// on a copy anyway; an evaluated create that comes this way (in an entry
	// parseEntry does not read) is completed again, to the same result.
	inc, data, err := CompleteCreate(a.fsm.team, c.GetIncident(), cmd.GetProposeTime())
	if err != nil {
		var verr *record.ValidationError
		if !errors.As(err, &verr) {
			a.fail(err)
		}
		return &Result{Err: err}
	}
	id := a.nextID()
	inc.Id = id.String()
	res := a.storeCreated(id, inc, data, c.GetRequestId(), c.GetRequestDigest())
	res.Incident = inc
	return res
}

// createEvaluated stores a create the leader evaluated: its bytes, with
// the id of the next ticket in front. They are decoded, for the index keys
// and so that nothing unreadable is stored, but not checked or encoded
// again: the leader did that, once for every replica.
func (a *applier) createEvaluated(c *evaluatedCreate) *Result {
	if res := a.duplicateOf(c.requestID, c.fresh, c.digest); res != nil {
		return res
	}
	inc, ok := readIndexed(c.incident)
	if !ok {
		inc = &irxv1.Incident{}
		if err := proto.Unmarshal(c.incident, inc); err != nil {
			return &Result{Err: fmt.Errorf("%w at index %d: evaluated incident: %v", ErrInvalidCommand, a.index, err)}
		}
	}
	// What the keys and the feed say about the record must hold in it.
	if inc.GetId() != "" || inc.GetVersion() != 1 || !sameInstant(inc.GetCreateTime(), a.now) ||
		!sameInstant(inc.GetGenerationTime(), a.now) || inc.GetProvenance().GetOriginTeam() != a.fsm.team {
		return &Result{Err: fmt.Errorf("%w at index %d: evaluated incident is not version 1 of a new incident of this team at the entry's time", ErrInvalidCommand, a.index)}
	}
	id := a.nextID()
	inc.Id = id.String()
	// inc may hold only the indexed fields: the answer is the stored
	// encoding (Result.Created decodes it for the few callers that want the
	// message).
	return a.storeCreated(id, inc, c.incident, c.requestID, c.digest)
}

// sameInstant is proto.Equal for two timestamps, without its reflection
// (which every replica paid twice per create): the same instant and
// nothing unknown in t.
func sameInstant(t, want *timestamppb.Timestamp) bool {
	return t != nil && want != nil && t.GetSeconds() == want.GetSeconds() && t.GetNanos() == want.GetNanos() &&
		len(t.ProtoReflect().GetUnknown()) == 0
}

// duplicateOf returns what the create that stored requestID answered, or
// nil when none did. A fresh id is not looked up: nothing can have stored
// it yet.
//
// A request id stored with a digest of its body answers only a create of
// the same body; another body is refused (ErrRequestReused), so that a
// reused key can never pass a change off as stored. Where either side has
// no digest (a request id stored before digests were kept, or one the
// node made, which only the node retries) the first create answers, as it
// always did: its body is not known.
func (a *applier) duplicateOf(requestID string, fresh bool, digest []byte) *Result {
	if requestID == "" || fresh {
		return nil
	}
	v, closer, err := a.reads().Get(requestKey(requestID))
	switch {
	case err == nil:
		existing, stored := parseRequestValue(v)
		differs := len(digest) > 0 && len(stored) > 0 && !bytes.Equal(digest, stored)
		_ = closer.Close()
		if differs {
			return &Result{Err: &errdefs.ExistsError{
				Resource: "irx.v1.Incident", Name: existing,
				Msg: fmt.Sprintf("request_id %q already created %s from a different incident body; nothing was stored: "+
					"use a new request_id for a new incident, or UpdateIncident %s to change it", requestID, existing, existing),
			}}
		}
		inc, err := a.fsm.getFrom(a.reads(), existing, 0)
		if errors.Is(err, ErrNotFound) {
			// Retention removed what the first create made.
			return &Result{Err: fmt.Errorf("%w: request_id %q created %s, which retention has since removed", ErrNotFound, requestID, existing)}
		}
		if err != nil {
			a.fail(err)
			return &Result{Err: err}
		}
		return &Result{Incident: inc, Replayed: true}
	case !errors.Is(err, pebble.ErrNotFound):
		a.fail(err)
		return &Result{Err: err}
	}
	return nil
}

func (a *applier) nextID() record.ID {
	a.ticket++
	return record.ID{Team: a.fsm.team, Ticket: a.ticket}
}

// storeCreated writes version 1 of a new incident: rest is its encoding
// without the id, and indexed holds the id as text (id.String(), made once)
// and at least the fields its index keys are made of. The request id keeps
// the incident's id and the digest of the request's body.
func (a *applier) storeCreated(id record.ID, indexed *irxv1.Incident, rest []byte, requestID string, digest []byte) *Result {
	text := indexed.GetId()
	stored := withID(text, rest)
	a.set(incidentKey(id), u64(1))
	a.set(versionKey(id, 1), stored)
	// Our own versions are stamped with the entry's time, after every
	// tick's: none lies behind a rule's progress (retention.go).
	a.set(retentionTimeKey(id, a.now.AsTime(), 1), nil)
	a.appendFeed(&irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION, IncidentId: text, Version: 1})
	for _, k := range indexKeys(id, indexed) {
		a.set(k, nil)
	}
	a.correlate(id, nil, indexed, false)
	a.statsMoved(id, nil, indexed)
	if requestID != "" {
		a.set(requestKey(requestID), requestValue(text, digest))
	}
	return &Result{Encoded: stored}
}

func (a *applier) update(cmd *irxv1.Command, c *irxv1.UpdateIncidentCommand) *Result {
	patch := c.GetIncident()
	id, err := record.ParseID(patch.GetId())
	if err != nil {
		return &Result{Err: &record.ValidationError{Violations: []record.Violation{{Field: "incident.id", Description: err.Error()}}}}
	}
	if err := record.CheckMask(c.GetUpdateMask(), "update_mask"); err != nil {
		return &Result{Err: err}
	}
	current, err := a.fsm.getFrom(a.reads(), patch.GetId(), 0)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			a.fail(err)
		}
		return &Result{Err: err}
	}
	if origin := current.GetProvenance().GetOriginTeam(); origin != a.fsm.team {
		return &Result{Err: fmt.Errorf("%w: %s belongs to team %q; only its origin team changes it", ErrForeignIncident, patch.GetId(), origin)}
	}
	if current.GetWithdrawTime() != nil {
		return &Result{Err: fmt.Errorf("%w: %s was withdrawn; it cannot change", ErrWithdrawn, patch.GetId())}
	}
	if want := c.GetExpectedVersion(); want != 0 && want != current.GetVersion() {
		return &Result{Err: fmt.Errorf("%w: %s is at version %d, not %d", ErrVersionConflict, patch.GetId(), current.GetVersion(), want)}
	}
	next := record.ApplyMask(current, patch, c.GetUpdateMask())
	// A defaulted field the mask clears takes its default, as on create;
	// report_time defaults to the creation time. Otherwise an update could
	// store STATUS_UNSPECIFIED (which no status filter finds) or an
	// unspecified root restriction (which children would inherit).
	record.ApplyDefaults(next, proto.Clone(current.GetCreateTime()).(*timestamppb.Timestamp))
	if err := record.Validate(next, "incident"); err != nil {
		return &Result{Err: err}
	}
	next.Version = current.GetVersion() + 1
	next.GenerationTime = versionTime(current, cmd.GetProposeTime())
	if err := a.storeVersion(id, current, next, &irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION}); err != nil {
		return &Result{Err: err}
	}
	return &Result{Incident: next}
}

// versionTime is the time of a new version of current made by an entry
// proposed at now (the leader's clock): now, but never before current's
// own time. A leader whose clock is behind the one before it (a failover,
// a clock stepped back) would otherwise give a later version an earlier
// time, and whoever orders versions or asks what changed since a time
// would be misled. It is decided here, from the entry and the state, so
// every replica stores the same.
func versionTime(current *irxv1.Incident, now *timestamppb.Timestamp) *timestamppb.Timestamp {
	prev := current.GetGenerationTime()
	if prev.IsValid() && now.IsValid() && prev.AsTime().After(now.AsTime()) {
		return proto.CloneOf(prev)
	}
	return now
}

// storeVersion writes a new version of an incident: the record, its
// version history, the feed entry (entry, completed here) and the
// secondary indexes of the latest version.
func (a *applier) storeVersion(id record.ID, previous, next *irxv1.Incident, entry *irxv1.FeedEntry) error {
	data, err := marshal.Marshal(next)
	if err != nil {
		a.fail(err)
		return err
	}
	return a.storeEncodedVersion(id, previous, next, data, entry)
}

// storeEncodedVersion is storeVersion with next encoded as data.
func (a *applier) storeEncodedVersion(id record.ID, previous, next *irxv1.Incident, data []byte, entry *irxv1.FeedEntry) error {
	// The record is stored once, under its version; inc/ names the latest
	// version, which halves what every create writes and compacts.
	a.set(incidentKey(id), u64(uint64(next.GetVersion())))
	if id.Team != a.fsm.team && id.Ticket > a.fsm.foreignHigh[id.Team] {
		a.fsm.foreignHigh[id.Team] = id.Ticket
	}
	a.set(versionKey(id, next.GetVersion()), data)
	entry.IncidentId, entry.Version = next.GetId(), next.GetVersion()
	a.appendFeed(entry)
	if previous != nil {
		for _, k := range indexKeys(id, previous) {
			a.del(k)
		}
	}
	for _, k := range indexKeys(id, next) {
		a.set(k, nil)
	}
	a.correlate(id, previous, next, false)
	a.statsMoved(id, previous, next)
	a.set(versionTimeKey(id, next), nil)
	a.retainStored(id, next)
	return a.err
}

func (a *applier) set(k, v []byte) {
	switch {
	case a.err != nil:
	case a.sorted:
		a.pending = append(a.pending, pendingSet{key: k, value: v, seq: len(a.pending)})
	default:
		a.err = a.batch.Set(k, v, nil)
	}
}

// pendingSet is a write held back to be added to the batch in key order.
type pendingSet struct {
	key, value []byte
	seq        int // the order it was made in, for two writes to one key
	family     int // see inKeyOrder
}

// writesPerCreate sizes the pending writes of a batch of creates: the
// latest-version pointer, the version, the feed entry, the request id,
// four indexes and the statistics' cells, and room for correlation's keys
// of a few indicators (a create of four writes 16).
const writesPerCreate = 18

// writePending adds the held-back writes to the batch in key order; a
// stable sort keeps the order of two writes to one key.
//
// Pebble inserts a batch's keys into the memtable's skiplist one after the
// other, starting each search from where the previous insert ended when
// that brackets the key. A create's keys are spread over the key space
// (its feed entry, indexes, request id, version), so in the order they
// are made each one is searched from the top; in key order the feed
// entries, versions, latest-version pointers and most index keys of a
// batch of creates each follow the one before, and insert in constant
// time. The memtable inserts were a large part of the nodes' CPU under
// load.
func (a *applier) writePending() {
	if len(a.pending) == 0 {
		return
	}
	for _, w := range inKeyOrder(a.pending, a.fsm.families) {
		if a.err != nil {
			break
		}
		a.err = a.batch.Set(w.key, w.value, nil)
	}
	a.pending = a.pending[:0]
}

// reads returns the batch to read, after adding the writes held back for
// key order to it: a read sees every write made before it.
func (a *applier) reads() *pebble.Batch {
	a.writePending()
	return a.batch
}

// stateReader is what a read of state goes to: the batch when it is
// indexed (reads, which sees the writes of earlier commands), else the
// database: an unindexed batch holds only creates whose request ids the
// node made, which read nothing another command of the batch wrote.
func (a *applier) stateReader() interface {
	reader
	iterable
} {
	if a.batch.Indexed() {
		return a.reads()
	}
	return a.fsm.db
}

func (a *applier) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}

// indexKeys lists the secondary index entries of an incident's latest
// version. Updates delete the previous version's entries and add these.
// Every stored version builds them, so they share one buffer instead of
// costing a few allocations each (the batch copies them anyway).
func indexKeys(id record.ID, inc *irxv1.Incident) [][]byte {
	tax, inds := inc.GetTaxonomy(), inc.GetIndicators()
	tail := 1 + len(id.Team) + 1 + 8 // NUL, team, NUL, ticket
	size := len(prefixStatus) + 1 + len(prefixTLP) + 1 + len(prefixTaxonomy) + len(tax.GetClass()) + 1 + len(tax.GetType()) +
		len(prefixTime) + timeKeyLen + len(inds)*(len(prefixInd)+indicatorKeyLen) + (4+len(inds))*tail
	b := make([]byte, 0, size)
	keys := make([][]byte, 0, 4+len(inds))
	start := 0
	end := func() {
		b = append(b, 0)
		b = append(b, id.Team...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, id.Ticket)
		keys = append(keys, b[start:len(b):len(b)])
		start = len(b)
	}
	b = append(append(b, prefixStatus...), byte(inc.GetStatus()))
	end()
	b = append(append(b, prefixTLP...), byte(inc.GetTlp()))
	end()
	b = append(append(append(append(b, prefixTaxonomy...), tax.GetClass()...), 0), tax.GetType()...)
	end()
	b = appendTimeKey(append(b, prefixTime...), inc.GetReportTime().AsTime())
	end()
	// A handful of indicators is checked for repeats by a scan; a long list
	// (a 256 KiB record holds thousands) gets a map, so it stays linear.
	var seen map[string]bool
	if len(inds) > 16 {
		seen = make(map[string]bool, len(inds))
	}
	for i, ind := range inds {
		v := ind.GetValue()
		if seen != nil {
			if seen[v] {
				continue
			}
			seen[v] = true
		} else if slices.ContainsFunc(inds[:i], func(o *irxv1.Indicator) bool { return o.GetValue() == v }) {
			continue
		}
		b = appendIndicatorKey(append(b, prefixInd...), v)
		end()
	}
	return keys
}

type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func getUint64(r reader, key []byte) (uint64, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fsm: read %s: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("fsm: %s holds %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// pebbleLogger routes pebble's logging to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic(msg) // pebble's contract: Fatalf does not return
}
