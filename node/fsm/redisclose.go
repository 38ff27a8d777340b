package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// A peer's copy of our records follows our current terms. Two things keep
// it so: on the sending side the feed served to a peer discloses again, as
// replacements, every version the peer holds whenever what it may hold of
// them changes (federation/feed.go); here, the receiving side replaces or
// deletes the versions it holds accordingly, and a change of our policy for
// a peer is cut into bounded stretches of what the peer holds
// (RediscloseCommand), each a feed entry of its own.

// receiveReplacement replaces, or deletes, one version of a foreign
// incident we hold. It reports whether it changed anything, or why it
// refused the item. Replacements of copies we do not hold, or hold from
// another team, change nothing and are not errors (as with withdrawals, a
// mesh delivers the same record by several paths).
func (a *applier) receiveReplacement(peer string, r *irxv1.IncidentReplacement) (replaced bool, refused string) {
	id, err := record.ParseID(r.GetIncidentId())
	if err != nil {
		return false, fmt.Sprintf("replacement: incident id: %v", err)
	}
	if id.Team == a.fsm.team {
		return false, fmt.Sprintf("replacement of %s, this team's own incident", r.GetIncidentId())
	}
	cur, err := loadLatest(a.reads(), id)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, ""
	}
	if err != nil {
		a.fail(err)
		return false, ""
	}
	if cur.GetWithdrawTime() != nil || cur.GetProvenance().GetReceivedFrom() != peer {
		return false, ""
	}
	stored, closer, err := a.reads().Get(versionKey(id, r.GetVersion()))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, ""
	}
	if err != nil {
		a.fail(err)
		return false, ""
	}
	stored = bytes.Clone(stored)
	_ = closer.Close()
	held := &irxv1.Incident{}
	if err := proto.Unmarshal(stored, held); err != nil {
		a.fail(fmt.Errorf("fsm: decode %s version %d: %w", r.GetIncidentId(), r.GetVersion(), err))
		return false, ""
	}
	if held.GetWithdrawTime() != nil {
		return false, "" // a withdrawn stub holds nothing to replace
	}
	erase := func() (bool, string) {
		a.del(versionTimeKey(id, held))
		a.eraseVersion(id, cur, r.GetVersion())
		a.appendFeed(&irxv1.FeedEntry{
			Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_REPLACEMENT, IncidentId: r.GetIncidentId(), Version: r.GetVersion(),
			ReplacementReason: r.GetReason(),
		})
		return a.err == nil, ""
	}
	view := r.GetIncident()
	if view == nil {
		return erase()
	}
	if view.GetId() != r.GetIncidentId() || view.GetVersion() != r.GetVersion() {
		return false, fmt.Sprintf("replacement of %s version %d holds %s version %d", r.GetIncidentId(), r.GetVersion(), view.GetId(), view.GetVersion())
	}
	if _, refused := a.checkView(peer, view, true); refused != "" {
		return false, "replacement: " + refused
	}
	if why := a.textRefusal(view); why != "" {
		// A narrower copy we may not store as sent: hold nothing of this
		// version rather than keep the wider one it replaces.
		a.fsm.log.Warn("erased a version a peer replaced with text this team does not store", "peer", peer, "incident", r.GetIncidentId(), "version", r.GetVersion(), "reason", why)
		return erase()
	}
	// Newer terms are the common case and cheap to see; Within walks both
	// records.
	if !newerTerms(view, held, cur) && !policy.Within(view, held) {
		return false, fmt.Sprintf("replacement of %s version %d would widen what we hold without newer terms (a newer policy version of a team on its path, or a newer version of the record)", r.GetIncidentId(), r.GetVersion())
	}
	view.Provenance.ReceiveTime = held.GetProvenance().GetReceiveTime()
	view.WithdrawTime, view.WithdrawReason = nil, ""
	data, err := marshal.Marshal(view)
	if err != nil {
		a.fail(err)
		return false, ""
	}
	if bytes.Equal(data, stored) {
		return false, "" // what we hold already (stored encodings are deterministic)
	}
	view.Provenance.ReceiveTime = a.now
	if data, err = marshal.Marshal(view); err != nil {
		a.fail(err)
		return false, ""
	}
	a.set(versionKey(id, view.GetVersion()), data)
	if from, to := versionTimeKey(id, held), versionTimeKey(id, view); !bytes.Equal(from, to) {
		a.del(from)
		a.set(to, nil)
	}
	// What the view we held said must also leave the files (erase.go).
	a.erasedKeys(versionKey(id, view.GetVersion()))
	if view.GetVersion() == cur.GetVersion() {
		a.reindex(id, held, view)
	}
	a.appendFeed(&irxv1.FeedEntry{
		Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_REPLACEMENT, IncidentId: r.GetIncidentId(), Version: r.GetVersion(),
		ReplacementReason: r.GetReason(),
	})
	// A replacement under the origin's older terms must not bring back
	// what our clock already purged.
	a.retainStored(id, view)
	return a.err == nil, ""
}

// newerTerms reports whether a replacement that widens a version we hold
// rests on terms newer than those the held copy was computed under: a
// transfer on its path made under a newer policy version, or markings
// taken from a newer version of the record than the held copy's. A copy
// narrowed by the markings of a later version may also widen again once an
// even later version arrived (cur, the latest we hold), whose markings may
// have undone the narrowing.
func newerTerms(view, held, cur *irxv1.Incident) bool {
	vt, ht := view.GetProvenance().GetTransfers(), held.GetProvenance().GetTransfers()
	for i, t := range vt {
		if i < len(ht) && ht[i].GetTeamId() == t.GetTeamId() && t.GetPolicyVersion() > ht[i].GetPolicyVersion() {
			return true
		}
		if i >= len(ht) && t.GetPolicyVersion() > 0 {
			return true // the held copy predates transfers being recorded
		}
	}
	terms := held.GetProvenance().GetTermsVersion()
	return view.GetProvenance().GetTermsVersion() > terms ||
		terms > held.GetVersion() && cur.GetVersion() > terms
}

// reindex moves the secondary indexes of the latest version from one copy
// to another: a value the new copy no longer holds must not find it, nor
// be read from the files (the keys hold an indicator's hash, a taxonomy
// term, a time).
func (a *applier) reindex(id record.ID, from, to *irxv1.Incident) {
	for _, k := range indexKeys(id, from) {
		a.del(k)
		a.erasedKeys(k)
	}
	for _, k := range indexKeys(id, to) {
		a.set(k, nil)
	}
	a.correlate(id, from, to, true)
	// Only foreign copies are reindexed: no response times to move.
	a.statsAdd(id, from, statMemo{}, -1)
	a.statsAdd(id, to, statMemo{}, +1)
}

// eraseVersion deletes one version of our copy of a foreign incident. When
// it is the latest, the newest version left takes its place; when none is
// left, the copy goes.
func (a *applier) eraseVersion(id record.ID, cur *irxv1.Incident, version int64) {
	key := versionKey(id, version)
	a.del(key)
	a.erasedKeys(key)
	if version != cur.GetVersion() {
		return
	}
	prev, err := newestVersion(a.reads(), id)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		a.deleteCopy(id, cur)
	case err != nil:
		a.fail(err)
	default:
		a.set(incidentKey(id), u64(uint64(prev.GetVersion())))
		a.reindex(id, cur, prev)
	}
}

// newestVersion reads the highest version of an incident stored under ver/.
func newestVersion(db iterable, id record.ID) (*irxv1.Incident, error) {
	prefix := cat(prefixVersion, idKey(id))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	if !it.Last() {
		return nil, errors.Join(pebble.ErrNotFound, it.Error(), it.Close())
	}
	inc := &irxv1.Incident{}
	if err := proto.Unmarshal(it.Value(), inc); err != nil {
		return nil, errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close())
	}
	return inc, it.Close()
}

// startRedisclosure begins disclosing again, under policy version, what
// peer holds: the leader proposes its stretches (RediscloseCommand). A
// redisclosure under way for an older version starts over. It starts even
// when the peer acknowledged holding nothing: what a stream sent it is
// acknowledged later, and the last stretch, open-ended, covers it.
func (a *applier) startRedisclosure(peer string, version int64) {
	a.setProto(&irxv1.RedisclosureProgress{PolicyVersion: version}, redisclosureKey(peer))
}

// redisclose appends the feed entry of one stretch of a redisclosure.
func (a *applier) redisclose(c *irxv1.RediscloseCommand) *Result {
	peer := c.GetPeerTeamId()
	progress := &irxv1.RedisclosureProgress{}
	found, err := getProto(a.reads(), redisclosureKey(peer), progress)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	switch {
	case !found:
		return &Result{Err: fmt.Errorf("%w: no redisclosure of what %s holds is under way", ErrStaleCursor, peer)}
	case progress.GetPolicyVersion() != c.GetPolicyVersion() || progress.GetAfterIncidentId() != c.GetAfterIncidentId():
		return &Result{Err: fmt.Errorf("%w: the redisclosure of what %s holds is at %q under policy version %d, not %q under %d", ErrStaleCursor,
			peer, progress.GetAfterIncidentId(), progress.GetPolicyVersion(), c.GetAfterIncidentId(), c.GetPolicyVersion())}
	}
	through := c.GetThroughIncidentId()
	if c.GetLast() {
		through = ""
	} else if _, err := record.ParseID(through); err != nil || c.GetAfterIncidentId() != "" && !idAfter(through, c.GetAfterIncidentId()) {
		return &Result{Err: fmt.Errorf("%w: redisclosure stretch (%q, %q]", ErrInvalidCommand, c.GetAfterIncidentId(), through)}
	}
	a.appendFeed(&irxv1.FeedEntry{
		Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_REDISCLOSURE, PeerTeamId: peer, PolicyVersion: c.GetPolicyVersion(),
		AfterIncidentId: c.GetAfterIncidentId(), IncidentId: through,
	})
	if c.GetLast() {
		a.del(redisclosureKey(peer))
	} else {
		progress.AfterIncidentId = through
		a.setProto(progress, redisclosureKey(peer))
	}
	return &Result{Err: a.err}
}

// idAfter reports whether incident id x comes after y in key order (team,
// then ticket as a number), the order stretches follow.
func idAfter(x, y string) bool {
	a, errA := record.ParseID(x)
	b, errB := record.ParseID(y)
	return errA == nil && errB == nil && bytes.Compare(idKey(a), idKey(b)) > 0
}

// Redisclosures returns, for every peer whose holdings are being disclosed
// again, how far it has come.
func (f *FSM) Redisclosures() (map[string]*irxv1.RedisclosureProgress, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: prefixRedisclosure, UpperBound: prefixEnd(prefixRedisclosure)})
	if err != nil {
		return nil, err
	}
	out := map[string]*irxv1.RedisclosureProgress{}
	for valid := it.First(); valid; valid = it.Next() {
		p := &irxv1.RedisclosureProgress{}
		if err := proto.Unmarshal(it.Value(), p); err != nil {
			return nil, errors.Join(fmt.Errorf("fsm: decode %q: %w", it.Key(), err), it.Close())
		}
		out[string(it.Key()[len(prefixRedisclosure):])] = p
	}
	return out, it.Close()
}

// NextStretch returns the last incident of the next stretch of what peer
// holds after after: at most maxIncidents incidents and maxVersions held
// versions, and about maxBytes of stored versions (at least one incident).
// last is true when the stretch reaches the last incident the peer holds
// (or it holds none after after).
func (f *FSM) NextStretch(peer, after string, maxIncidents, maxVersions, maxBytes int) (through string, last bool, err error) {
	lower, upper, err := heldBounds(peer, after, "")
	if err != nil {
		return "", false, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return "", false, errClosed
	}
	incidents, versions, size := 0, 0, 0
	errFull := errors.New("stretch full")
	err = eachHeld(f.db, heldPrefix(peer), lower, upper, func(id record.ID, held map[int64][]byte) error {
		n := 0
		for version := range held {
			v, closer, err := f.db.Get(versionKey(id, version))
			if errors.Is(err, pebble.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			n += len(v)
			_ = closer.Close()
		}
		if incidents > 0 && (incidents+1 > maxIncidents || versions+len(held) > maxVersions || size+n > maxBytes) {
			return errFull
		}
		incidents, versions, size = incidents+1, versions+len(held), size+n
		through = id.String()
		return nil
	})
	switch {
	case errors.Is(err, errFull):
		return through, false, nil
	case err != nil:
		return "", false, err
	}
	return through, true, nil
}

// legacyHeld is where a state machine written before versions were tracked
// per peer kept the latest version a peer acknowledged of each incident:
// held/<peer>\0<team>\0<ticket8> -> version8.
var legacyHeld = []byte("held/")

// migrateHeld rewrites legacy held/ keys as heldv/ keys, one per version up
// to the one acknowledged and with no digest, so that the next change of
// terms discloses all of them again (a version the peer never got is a
// replacement it ignores). Every replica migrates the same keys the same
// way, so their states stay equal; the applied index does not move.
func migrateHeld(db *pebble.DB) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: legacyHeld, UpperBound: prefixEnd(legacyHeld)})
	if err != nil {
		return fmt.Errorf("fsm: migrate held versions: %w", err)
	}
	b := db.NewBatch()
	defer b.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		rest := k[len(legacyHeld):]
		sep := bytes.IndexByte(rest, 0)
		if sep < 0 || len(v) != 8 {
			return errors.Join(fmt.Errorf("fsm: legacy held key %q: %w", k, errBadKey), it.Close())
		}
		peer := string(rest[:sep])
		id, err := idFromKey(k, cat(legacyHeld, rest[:sep+1]))
		if err != nil {
			return errors.Join(fmt.Errorf("fsm: legacy held key %q: %w", k, err), it.Close())
		}
		for version := int64(1); version <= int64(binary.BigEndian.Uint64(v)); version++ {
			if err := b.Set(heldKey(peer, id, version), nil, nil); err != nil {
				return errors.Join(err, it.Close())
			}
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("fsm: migrate held versions: %w", err)
	}
	if b.Empty() {
		return nil
	}
	if err := b.DeleteRange(legacyHeld, prefixEnd(legacyHeld), nil); err != nil {
		return err
	}
	// The state machine runs without a write-ahead log; the migration
	// must survive a crash before the next flush, or it would run again
	// over keys already rewritten (harmless) or be lost (not).
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("fsm: migrate held versions: %w", err)
	}
	return db.Flush()
}
