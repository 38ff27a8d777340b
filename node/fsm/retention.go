package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Retention.
//
// Every team holding records applies the retention terms of their origin:
// for our own records the policy set through RetentionService, for a
// foreign copy the terms the latest view of that origin's records carried
// (Provenance.retention). The terms are applied here, by the state machine,
// on the team's replicated clock: the leader proposes a RetentionTickCommand
// periodically, and its propose time, never earlier than the last tick's,
// is the time every term is measured against, on every node alike.
//
// What a rule's age is measured from:
//   - a class rule purges the fields of its class from every version whose
//     generation_time is older than keep;
//   - a whole-record rule removes a record whose latest version's
//     generation_time is older than keep, unless that version is open
//     (status new, in progress, forwarded or future, not withdrawn): the
//     team still handles it. Its resolution makes a new version, whose
//     age starts then.
//
// The work is found through a time index of every stored version,
// rtime/<origin>\0<generation time12><ticket8><version8>, and each rule
// keeps how far it has come through its origin's part of it (its
// progress, replicated). A tick handles at most retentionBudget index
// entries, and says when more is due, so the leader proposes the next one
// at once: a policy change over a million records is a sequence of
// bounded entries, never one unbounded one. A version stored behind a
// rule's progress (a foreign version older than the rule, arriving late)
// is handled when it is stored.
//
// A purge rewrites or deletes the versions, moves the indexes of the
// latest version, notes everything removed for erasure at rest
// (erase.go), appends a feed entry so that every peer holding the version
// receives the narrower one (a replacement) or a withdrawal, and records
// a RetentionDecision: the rule, the version, the digests before and
// after, never the values.

var (
	prefixRetentionState = []byte("ret/o/")
	keyRetentionClock    = []byte("ret/clock")
	prefixRetentionTime  = []byte("rtime/")
	prefixRetentionLog   = []byte("retlog/")
	// retentionFamily is the family of the first two.
	retentionFamily = []byte("ret/")
)

// retentionBudget is how many time-index entries one tick handles at
// most (each may rewrite a version).
const retentionBudget = 512

func retentionStateKey(origin string) []byte { return cat(prefixRetentionState, []byte(origin)) }

func retentionTimePrefix(origin string) []byte {
	return cat(prefixRetentionTime, []byte(origin), []byte{0})
}

// retentionTimeKey is the time-index key of one version.
func retentionTimeKey(id record.ID, t time.Time, version int64) []byte {
	k := make([]byte, 0, len(prefixRetentionTime)+len(id.Team)+1+timeKeyLen+16)
	k = append(append(append(k, prefixRetentionTime...), id.Team...), 0)
	k = appendTimeKey(k, t)
	k = binary.BigEndian.AppendUint64(k, id.Ticket)
	return binary.BigEndian.AppendUint64(k, uint64(version))
}

func versionTimeKey(id record.ID, inc *irxv1.Incident) []byte {
	return retentionTimeKey(id, inc.GetGenerationTime().AsTime(), inc.GetVersion())
}

// parseRetentionTimeKey splits a time-index key of origin's part.
func parseRetentionTimeKey(origin string, k []byte) (t time.Time, id record.ID, version int64, err error) {
	p := retentionTimePrefix(origin)
	if !bytes.HasPrefix(k, p) || len(k) != len(p)+timeKeyLen+16 {
		return time.Time{}, record.ID{}, 0, errBadKey
	}
	rest := k[len(p):]
	const yearOneToEpoch = 62135596800
	t = time.Unix(int64(binary.BigEndian.Uint64(rest))-yearOneToEpoch, int64(binary.BigEndian.Uint32(rest[8:12]))).UTC()
	id = record.ID{Team: origin, Ticket: binary.BigEndian.Uint64(rest[12:20])}
	return t, id, int64(binary.BigEndian.Uint64(rest[20:])), nil
}

func retentionLogKey(index uint64, position uint32) []byte {
	return binary.BigEndian.AppendUint32(cat(prefixRetentionLog, u64(index)), position)
}

// migrateRetentionIndex builds the time index of a database written
// before it existed: one key per stored version. Every version stored
// since writes its key, so an empty index over stored versions means the
// database predates it. The keys are a function of the versions, so every
// replica builds the same, whenever it opens; the applied index does not
// move.
func migrateRetentionIndex(db *pebble.DB) error {
	if empty, err := emptyRange(db, prefixRetentionTime); err != nil || !empty {
		return err
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixVersion, UpperBound: prefixEnd(prefixVersion)})
	if err != nil {
		return fmt.Errorf("fsm: build the retention index: %w", err)
	}
	b := db.NewBatch()
	defer b.Close()
	for valid := it.First(); valid; valid = it.Next() {
		inc := &irxv1.Incident{}
		if err := proto.Unmarshal(it.Value(), inc); err != nil {
			return errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close())
		}
		id, err := idFromKey(it.Key()[:len(it.Key())-8], prefixVersion)
		if err != nil {
			return errors.Join(fmt.Errorf("fsm: version key %q: %w", it.Key(), err), it.Close())
		}
		if err := b.Set(versionTimeKey(id, inc), nil, nil); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("fsm: build the retention index: %w", err)
	}
	if b.Empty() {
		return nil
	}
	// Without a write-ahead log the index must be flushed, or a crash
	// before the next flush would lose it (harmless: it is built again).
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("fsm: build the retention index: %w", err)
	}
	return db.Flush()
}

func emptyRange(db *pebble.DB, prefix []byte) (bool, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, it.Close()
}

// retentionStates is the cache of the ret/o/ keys: the retention state of
// every origin, read by every stored version. Replaced, never changed.
type retentionStates map[string]*irxv1.RetentionState

func loadRetention(db *pebble.DB) (retentionStates, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixRetentionState, UpperBound: prefixEnd(prefixRetentionState)})
	if err != nil {
		return nil, err
	}
	out := retentionStates{}
	for valid := it.First(); valid; valid = it.Next() {
		st := &irxv1.RetentionState{}
		if err := proto.Unmarshal(it.Value(), st); err != nil {
			return nil, errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close())
		}
		out[string(it.Key()[len(prefixRetentionState):])] = st
	}
	return out, it.Close()
}

// retentionState is the retention state of origin as of the commands
// applied so far (nil: none). The caller must not change it.
func (a *applier) retentionState(origin string) *irxv1.RetentionState {
	if st, ok := a.retention[origin]; ok {
		return st
	}
	if m := a.fsm.retention.Load(); m != nil {
		return (*m)[origin]
	}
	return nil
}

func (a *applier) putRetentionState(origin string, st *irxv1.RetentionState) {
	if a.retention == nil {
		a.retention = map[string]*irxv1.RetentionState{}
	}
	a.retention[origin] = st
	a.setProto(st, retentionStateKey(origin))
}

// publishRetention makes the states the batch changed the cache's.
func (f *FSM) publishRetention(changed map[string]*irxv1.RetentionState) {
	if len(changed) == 0 {
		return
	}
	next := retentionStates{}
	if m := f.retention.Load(); m != nil {
		maps.Copy(next, *m)
	}
	maps.Copy(next, changed)
	f.retention.Store(&next)
}

// setRetention replaces this team's retention policy and starts every
// rule from the beginning.
func (a *applier) setRetention(c *irxv1.SetRetentionPolicyCommand) *Result {
	if err := record.ValidateRetentionPolicy(c.GetPolicy(), 0); err != nil {
		return &Result{Err: err}
	}
	cur := a.retentionState(a.fsm.team).GetPolicy()
	switch want := c.GetExpectedVersion(); {
	case want == -1 && cur != nil, want > 0 && want != cur.GetVersion():
		return &Result{Err: fmt.Errorf("%w: the retention policy is at version %d, not %d", ErrVersionConflict, cur.GetVersion(), want)}
	}
	p := &irxv1.RetentionPolicy{
		TeamId: a.fsm.team, Version: cur.GetVersion() + 1, UpdateTime: a.now,
		Rules: proto.CloneOf(c.GetPolicy()).GetRules(),
	}
	a.putRetentionState(a.fsm.team, &irxv1.RetentionState{Policy: p, Progress: make([][]byte, len(p.GetRules()))})
	a.appendFeed(&irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_RETENTION, OriginTeamId: a.fsm.team})
	return &Result{Retention: p, Err: a.err}
}

// noteTerms keeps the retention terms a peer's feed item carried for
// the origin of its record, when they are newer than those we hold.
// Only the origin's own terms (named for it) and well-formed ones count;
// the rules restart from the beginning.
//
// Newer terms are also a feed entry of ours, so that the teams we pass
// the origin's records on to get them without waiting for a new record;
// refused says why terms were not kept (older terms are not refused).
func (a *applier) noteTerms(origin string, terms *irxv1.RetentionPolicy) (refused string) {
	switch {
	case terms == nil:
		return ""
	case origin == a.fsm.team:
		return "retention terms of this team, which only this team sets"
	case terms.GetTeamId() != origin:
		return fmt.Sprintf("retention terms of team %q for a record of team %q", terms.GetTeamId(), origin)
	}
	if err := record.ValidateRetentionPolicy(terms, 0); err != nil {
		return fmt.Sprintf("retention terms of team %q: %v", origin, err)
	}
	if cur := a.retentionState(origin); cur != nil && cur.GetPolicy().GetVersion() >= terms.GetVersion() {
		return ""
	}
	a.putRetentionState(origin, &irxv1.RetentionState{Policy: terms, Progress: make([][]byte, len(terms.GetRules()))})
	a.appendFeed(&irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_RETENTION, OriginTeamId: origin})
	return ""
}

// retentionTick advances the retention clock and applies what is due.
func (a *applier) retentionTick() *Result {
	clock := &timestamppb.Timestamp{}
	if _, err := getProto(a.reads(), keyRetentionClock, clock); err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	if a.now.IsValid() && a.now.AsTime().After(clock.AsTime()) {
		clock = a.now
	}
	a.setProto(clock, keyRetentionClock)
	now := clock.AsTime()
	budget := retentionBudget
	more := false
	origins := []string{a.fsm.team}
	if m := a.fsm.retention.Load(); m != nil {
		origins = append(origins, slices.Collect(maps.Keys(*m))...)
	}
	origins = append(origins, slices.Collect(maps.Keys(a.retention))...)
	slices.Sort(origins)
	for _, origin := range slices.Compact(origins) {
		st := a.retentionState(origin)
		if st == nil {
			continue
		}
		st = proto.CloneOf(st)
		moved := false
		for i, rule := range st.GetPolicy().GetRules() {
			if budget == 0 {
				more = true
				break
			}
			n, done, last := a.applyRule(origin, st, i, rule, now, budget)
			if last != nil {
				st.Progress[i], moved = last, true
			}
			budget -= n
			more = more || !done
		}
		if moved {
			a.putRetentionState(origin, st)
		}
		if a.err != nil {
			return &Result{Err: a.err}
		}
	}
	return &Result{RetentionMore: more, Err: a.err}
}

// applyRule applies rule i of origin's state to at most budget versions
// past its term at now, from its progress on. It returns how many it
// handled, whether it reached the last one due, and its new progress.
func (a *applier) applyRule(origin string, st *irxv1.RetentionState, i int, rule *irxv1.RetentionRule, now time.Time, budget int) (int, bool, []byte) {
	prefix := retentionTimePrefix(origin)
	lower := prefix
	if i < len(st.GetProgress()) && len(st.GetProgress()[i]) > 0 {
		lower = keyAfter(st.GetProgress()[i])
	}
	for len(st.Progress) < len(st.GetPolicy().GetRules()) {
		st.Progress = append(st.Progress, nil)
	}
	upper := cat(prefix, timeKey(now.Add(-rule.GetKeep().AsDuration()).Add(time.Nanosecond)))
	if bytes.Compare(lower, upper) >= 0 {
		return 0, true, nil
	}
	it, err := a.reads().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		a.fail(err)
		return 0, true, nil
	}
	var keys [][]byte
	valid := it.First()
	for ; valid && len(keys) < budget; valid = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		a.fail(err)
		return 0, true, nil
	}
	for _, k := range keys {
		a.applyRuleTo(origin, rule, k)
	}
	if len(keys) == 0 {
		return 0, true, nil
	}
	return len(keys), !valid, keys[len(keys)-1]
}

// applyRuleTo applies one rule to the version of one time-index key.
func (a *applier) applyRuleTo(origin string, rule *irxv1.RetentionRule, k []byte) {
	_, id, version, err := parseRetentionTimeKey(origin, k)
	if err != nil {
		a.fail(fmt.Errorf("fsm: time index key %q: %w", k, err))
		return
	}
	latest, err := getUint64(a.reads(), incidentKey(id))
	if err != nil {
		a.fail(err)
		return
	}
	class := rule.GetInfoClass()
	if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED && int64(latest) != version {
		return // a whole-record rule looks at the latest version only
	}
	stored, closer, err := a.reads().Get(versionKey(id, version))
	if errors.Is(err, pebble.ErrNotFound) {
		return
	}
	if err != nil {
		a.fail(err)
		return
	}
	stored = bytes.Clone(stored)
	_ = closer.Close()
	inc := &irxv1.Incident{}
	if err := proto.Unmarshal(stored, inc); err != nil {
		a.fail(fmt.Errorf("fsm: decode %s version %d: %w", id, version, err))
		return
	}
	if t := rule.GetTlp(); t != irxv1.Tlp_TLP_UNSPECIFIED && inc.GetTlp() != t {
		return
	}
	decision := &irxv1.RetentionDecision{
		Time: a.now, RaftIndex: a.index, OriginTeam: origin, Rule: rule.GetName(), IncidentId: id.String(),
		Version: version, InfoClass: class, DigestBefore: storedDigest(stored),
	}
	if class == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
		if IncidentOpen(inc) {
			return
		}
		a.removeRecord(id, inc)
		decision.Removed = true
	} else {
		purged := proto.CloneOf(inc)
		if !policy.Purge(purged, class) {
			return
		}
		data, err := marshal.Marshal(purged)
		if err != nil {
			a.fail(err)
			return
		}
		key := versionKey(id, version)
		a.set(key, data)
		a.erasedKeys(key)
		if int64(latest) == version {
			a.reindex(id, inc, purged)
		}
		a.appendFeed(&irxv1.FeedEntry{
			Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_REPLACEMENT, IncidentId: id.String(), Version: version,
			ReplacementReason: irxv1.ReplacementReason_REPLACEMENT_REASON_RETENTION,
		})
		decision.DigestAfter = storedDigest(data)
	}
	a.setProto(decision, retentionLogKey(a.index, a.position))
	a.position++
}

// IncidentOpen reports whether an incident is still being handled: its status
// says so and it is not withdrawn. A whole-record retention rule spares
// it.
func IncidentOpen(inc *irxv1.Incident) bool {
	if inc.GetWithdrawTime() != nil {
		return false
	}
	switch inc.GetStatus() {
	case irxv1.Status_STATUS_NEW, irxv1.Status_STATUS_IN_PROGRESS, irxv1.Status_STATUS_FORWARDED, irxv1.Status_STATUS_FUTURE:
		return true
	}
	return false
}

func storedDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "SHA256:" + hex.EncodeToString(sum[:])
}

// removeRecord removes every version of a record, its indexes and its
// time-index keys, notes them for erasure, and tells whoever holds a copy
// from us to delete it. A foreign record gets a tombstone, so a copy on
// its way by another path does not bring it back.
func (a *applier) removeRecord(id record.ID, cur *irxv1.Incident) {
	a.deleteCopy(id, cur)
	if id.Team != a.fsm.team {
		if v := uint64(cur.GetVersion()); v > a.fsm.tombstones[id] {
			a.set(tombKey(id), u64(v))
			a.fsm.tombstones[id] = v
		}
	}
	a.appendFeed(&irxv1.FeedEntry{
		Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL, IncidentId: id.String(), Version: cur.GetVersion(),
		WithdrawalReason: irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION,
	})
}

// deleteTimeKeys deletes the time-index keys of every stored version of
// an incident (read before the versions go).
func (a *applier) deleteTimeKeys(id record.ID) {
	prefix := cat(prefixVersion, idKey(id))
	it, err := a.stateReader().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		a.fail(err)
		return
	}
	var keys [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		inc := &irxv1.Incident{}
		if err := proto.Unmarshal(it.Value(), inc); err != nil {
			a.fail(errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close()))
			return
		}
		keys = append(keys, versionTimeKey(id, inc))
	}
	if err := it.Close(); err != nil {
		a.fail(err)
		return
	}
	for _, k := range keys {
		a.del(k)
	}
}

// retainStored applies, to a version just stored, the rules of its
// origin that have already passed its place in the time index: a foreign
// version older than a rule's progress, arriving late.
func (a *applier) retainStored(id record.ID, inc *irxv1.Incident) {
	st := a.retentionState(id.Team)
	if st == nil {
		return
	}
	key := versionTimeKey(id, inc)
	for i, rule := range st.GetPolicy().GetRules() {
		if i < len(st.GetProgress()) && len(st.GetProgress()[i]) > 0 && bytes.Compare(key, st.GetProgress()[i]) <= 0 {
			a.applyRuleTo(id.Team, rule, key)
		}
	}
}

// RetentionPolicy returns the retention policy of origin ("" or this
// team: ours): for another team, the terms its latest view we received
// carried. ErrNotFound when there is none.
func (f *FSM) RetentionPolicy(origin string) (*irxv1.RetentionPolicy, error) {
	if origin == "" {
		origin = f.team
	}
	if m := f.retention.Load(); m != nil {
		if st := (*m)[origin]; st != nil {
			return st.GetPolicy(), nil
		}
	}
	return nil, fmt.Errorf("%w: no retention policy of team %q", ErrNotFound, origin)
}

// HasRetention reports whether the team holds any retention terms (its
// own, or an origin's).
func (f *FSM) HasRetention() bool {
	m := f.retention.Load()
	return m != nil && len(*m) > 0
}

// RetentionTerms is what a view of origin's record carries: its policy,
// or nil.
func (f *FSM) RetentionTerms(origin string) *irxv1.RetentionPolicy {
	p, _ := f.RetentionPolicy(origin)
	return p
}

// previewScanLimit bounds the index entries a preview reads per rule.
const previewScanLimit = 100_000

// PreviewRetention says what origin's rules ("": ours) will purge and
// when, as of the retention clock: per rule, how many versions (or
// records) are past their term and how many come later, and the first
// maxItems.
func (f *FSM) PreviewRetention(origin string, maxItems int) (*irxv1.PreviewRetentionResponse, error) {
	if origin == "" {
		origin = f.team
	}
	var st *irxv1.RetentionState
	if m := f.retention.Load(); m != nil {
		st = (*m)[origin]
	}
	if st == nil {
		return nil, fmt.Errorf("%w: no retention policy of team %q", ErrNotFound, origin)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	snap := f.db.NewSnapshot()
	defer snap.Close()
	clock := &timestamppb.Timestamp{}
	if _, err := getProto(snap, keyRetentionClock, clock); err != nil {
		return nil, err
	}
	resp := &irxv1.PreviewRetentionResponse{Clock: clock, Policy: st.GetPolicy()}
	for i, rule := range st.GetPolicy().GetRules() {
		var progress []byte
		if i < len(st.GetProgress()) {
			progress = st.GetProgress()[i]
		}
		p, err := previewRule(snap, origin, rule, progress, clock.AsTime(), maxItems)
		if err != nil {
			return nil, err
		}
		resp.Rules = append(resp.Rules, p)
	}
	return resp, nil
}

func previewRule(snap *pebble.Snapshot, origin string, rule *irxv1.RetentionRule, progress []byte, clock time.Time, maxItems int) (*irxv1.RetentionRulePreview, error) {
	out := &irxv1.RetentionRulePreview{Rule: rule}
	prefix := retentionTimePrefix(origin)
	lower := prefix
	if len(progress) > 0 {
		lower = keyAfter(progress)
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	keep := rule.GetKeep().AsDuration()
	scanned := 0
	for valid := it.First(); valid; valid = it.Next() {
		if scanned++; scanned > previewScanLimit {
			out.Truncated = true
			break
		}
		t, id, version, err := parseRetentionTimeKey(origin, it.Key())
		if err != nil {
			return nil, err
		}
		applies, err := ruleApplies(snap, rule, id, version)
		if err != nil {
			return nil, err
		}
		if !applies {
			continue
		}
		purge := t.Add(keep)
		if !purge.After(clock) {
			out.Due++
		} else {
			out.Later++
		}
		if len(out.Next) < maxItems {
			out.Next = append(out.Next, &irxv1.RetentionPreviewItem{IncidentId: id.String(), Version: version, PurgeTime: timestamppb.New(purge)})
		}
	}
	// The index is in generation time order, but keep is the same for
	// every entry, so the purge times are in order too.
	return out, it.Error()
}

// ruleApplies reports whether rule would purge something of the version:
// for a class rule, a version of its TLP holding the class; for a
// whole-record rule, the latest version of a record of its TLP, not open.
func ruleApplies(r reader, rule *irxv1.RetentionRule, id record.ID, version int64) (bool, error) {
	if rule.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
		latest, err := getUint64(r, incidentKey(id))
		if err != nil || int64(latest) != version {
			return false, err
		}
	}
	inc, err := loadIncident(r, versionKey(id, version))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if t := rule.GetTlp(); t != irxv1.Tlp_TLP_UNSPECIFIED && inc.GetTlp() != t {
		return false, nil
	}
	if rule.GetInfoClass() == irxv1.InfoClass_INFO_CLASS_UNSPECIFIED {
		return !IncidentOpen(inc), nil
	}
	return policy.Purge(inc, rule.GetInfoClass()), nil
}

// RetentionDecisions returns the retention decisions applied, oldest
// first, optionally only those about one incident.
func (f *FSM) RetentionDecisions(incidentID string, pageSize int, pageToken string) ([]*irxv1.RetentionDecision, string, error) {
	lower := prefixRetentionLog
	if pageToken != "" {
		after, err := hex.DecodeString(pageToken)
		if err != nil || !bytes.HasPrefix(after, prefixRetentionLog) {
			return nil, "", &record.ValidationError{Violations: []record.Violation{{Field: "page_token", Description: "is not a token this service returned"}}}
		}
		lower = keyAfter(after)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefixRetentionLog)})
	if err != nil {
		return nil, "", err
	}
	defer it.Close()
	var out []*irxv1.RetentionDecision
	scanned := 0
	for valid := it.First(); valid; valid = it.Next() {
		d := &irxv1.RetentionDecision{}
		if err := proto.Unmarshal(it.Value(), d); err != nil {
			return nil, "", fmt.Errorf("fsm: decode %q: %w", it.Key(), err)
		}
		scanned++
		if incidentID == "" || d.GetIncidentId() == incidentID {
			out = append(out, d)
		}
		// A filtered page stops after a bounded scan, like ListIncidents.
		if len(out) == pageSize || scanned >= 10*pageSize+1000 {
			last := bytes.Clone(it.Key())
			if it.Next() {
				return out, hex.EncodeToString(last), nil
			}
			break
		}
	}
	return out, "", it.Error()
}
