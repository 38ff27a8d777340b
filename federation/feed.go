package federation

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/internal/wire"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// outcome is what one feed entry gives one peer. An entry can give several:
// a new version and replacements of the older versions the peer holds, or
// the replacements of a stretch of what the peer holds.
type outcome struct {
	item   *irxv1.FeedItem    // nil: nothing is sent
	ledger *irxv1.LedgerEntry // what the peer will have acknowledged; nil when nothing is sent
	ex     *irxv1.Explanation // of a view sent, for the metrics
}

// feedWalker computes a peer's view of the team's feed, entry by entry, in
// order. It must see entries in order: what an entry gives the peer
// depends on what the peer holds, which the walk itself changes.
//
// Every version the peer holds is the view our current policy for it
// allows of that version under the most restrictive markings of the
// version and the record's latest version (policy.Narrowed). The walk
// keeps it so: a new version's entry also discloses again the older
// versions the peer holds, a redisclosure entry (after a change of the
// peer's policy) a stretch of everything it holds, and a replacement entry
// (our copy of a foreign version changed) that version; each is sent as a
// replacement only when its view differs from the one the peer holds
// (their digests), as an erasure when the peer may hold the version no
// longer, and as a withdrawal of the whole record when it may hold none of
// it. "Latest" is the latest as of the entry, so that walking the same
// entries again (an acknowledgement recomputed) gives the same items.
type feedWalker struct {
	f        *Federation
	peer     string
	compiled *policy.Compiled // nil: no policy, nothing is disclosed
	version  int64
	// held overrides the acknowledged holdings (State) with what this
	// walk sent since the peer's last acknowledgement.
	held map[string]*heldRecord
	// withheld counts entries that carried a version the policy withheld.
	withheld uint64
	// r is what the walk reads through; see begin.
	r VersionReader
}

// heldRecord is what the peer holds of one incident as far as the walk
// knows: the digest of the view of every version it holds (no versions:
// nothing), and the feed sequence that last changed it.
type heldRecord struct {
	versions map[int64][]byte
	seq      uint64 // 0: as acknowledged
}

// begin opens the reader for a run of entries; end must follow before
// anything slow (sending) happens, because the reader holds the state
// machine's read lock.
func (w *feedWalker) begin() error {
	r, err := w.f.state.Versions()
	w.r = r
	return err
}

func (w *feedWalker) end() {
	if w.r != nil {
		_ = w.r.Close()
		w.r = nil
	}
}

// walk computes the entries after cursor, at most limit, under one reader,
// and hands each entry's outcomes to visit with how many entries it
// withheld; it stops early, after a whole entry, when visit returns false
// (the stream has computed what it may hold). It returns the last sequence
// walked, cursor if there was none. Serving a stream and recomputing an
// acknowledgement both walk through here, so the ledger recomputed is the
// one a stream would have produced.
func (w *feedWalker) walk(cursor uint64, limit int, visit func(e *irxv1.FeedEntry, outs []outcome, withheld uint64) bool) (uint64, error) {
	entries, err := w.f.state.FeedEntries(cursor, limit)
	if err != nil {
		return cursor, fmt.Errorf("read feed: %w", err)
	}
	if len(entries) == 0 {
		return cursor, nil
	}
	w.forgetAcknowledged()
	if err := w.begin(); err != nil {
		return cursor, fmt.Errorf("read feed: %w", err)
	}
	// visit must not block: the reader holds the state machine's read
	// lock until the walk returns.
	defer w.end()
	for _, e := range entries {
		before := w.withheld
		outs, err := w.entry(e)
		if err != nil {
			return cursor, fmt.Errorf("feed entry %d: %w", e.GetSequence(), err)
		}
		more := visit(e, outs, w.withheld-before)
		cursor = e.GetSequence()
		if !more {
			break
		}
	}
	return cursor, nil
}

// forgetAcknowledged drops what the walk remembers of holdings that the
// peer has acknowledged since: the state machine has them now, and a
// stream that runs for days would otherwise remember every record it sent.
func (w *feedWalker) forgetAcknowledged() {
	if len(w.held) < 1024 {
		return
	}
	w.forget()
}

// remembered is how many records the walk remembers beyond what the peer
// acknowledged, once it passed bound.
func (w *feedWalker) remembered(bound int) int {
	if len(w.held) >= bound {
		w.forget()
	}
	return len(w.held)
}

func (w *feedWalker) forget() {
	st, err := w.f.state.PeerState(w.peer)
	if err != nil {
		return
	}
	acked := st.GetOutboundAcknowledged()
	for id, h := range w.held {
		if h.seq <= acked {
			delete(w.held, id)
		}
	}
}

func newWalker(f *Federation, peer string, compiled *policy.Compiled) *feedWalker {
	w := &feedWalker{f: f, peer: peer, compiled: compiled, held: map[string]*heldRecord{}}
	if compiled != nil {
		w.version = compiled.Version()
	}
	return w
}

// holding is what the peer holds of an incident at this point of the walk.
func (w *feedWalker) holding(id string) (*heldRecord, error) {
	if h, ok := w.held[id]; ok {
		return h, nil
	}
	versions, err := w.r.HeldVersions(w.peer, id)
	if err != nil {
		return nil, err
	}
	h := &heldRecord{versions: versions}
	w.held[id] = h
	return h, nil
}

// latestHeld is the highest version the peer holds, 0 if none.
func (h *heldRecord) latestHeld() int64 {
	var top int64
	for v := range h.versions {
		top = max(top, v)
	}
	return top
}

// sorted lists the versions held, oldest first.
func (h *heldRecord) sorted() []int64 {
	out := make([]int64, 0, len(h.versions))
	for v := range h.versions {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// disclose is what the peer of compiled (nil: no policy, so nothing)
// receives of version when latest is the record's latest version, and
// why: the view under the markings of both (policy.Narrowed). The view's
// provenance is the one the peer stores: the peer appended to the path and
// to the transfers (with the policy version), this team as sender, the
// re-share terms the policy grants and the version whose markings applied.
// Serving the feed, handing off and the audit all go through here, so the
// audit recomputes exactly what was sent.
func (f *Federation) disclose(version, latest *irxv1.Incident, compiled *policy.Compiled) (*irxv1.Incident, *irxv1.Explanation) {
	marked := policy.Narrowed(version, latest)
	view, ex := policy.Disclose(marked, compiled)
	if view == nil {
		return nil, ex
	}
	terms := version.GetVersion()
	if marked != version {
		terms = latest.GetVersion()
	}
	// The view shares sub-messages with inc, so its provenance is a new
	// message.
	prov := version.GetProvenance()
	origin := prov.GetOriginTeam()
	if origin == "" {
		origin = f.team
	}
	view.Provenance = &irxv1.Provenance{
		OriginTeam:   origin,
		Path:         append(slices.Clip(prov.GetPath()), compiled.PeerTeamID()),
		ReceivedFrom: f.team,
		Reshare:      proto.CloneOf(ex.GetReshare()),
		Transfers:    append(slices.Clip(prov.GetTransfers()), &irxv1.Transfer{TeamId: compiled.PeerTeamID(), PolicyVersion: compiled.Version()}),
		TermsVersion: terms,
	}
	return view, ex
}

// viewDigest is ViewDigest's bytes for a view disclose made (it has no
// receive time, so it needs no copy), and the encoding it is the digest of,
// which the item sends as it is (wire.SetEncoded) rather than encoding the
// view a second time.
func viewDigest(view *irxv1.Incident) (digest, data []byte, err error) {
	data, err = proto.MarshalOptions{Deterministic: true}.Marshal(view)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	return sum[:], data, nil
}

func digestString(d []byte) string { return "SHA256:" + hex.EncodeToString(d) }

// entry computes what one feed entry gives the peer.
func (w *feedWalker) entry(e *irxv1.FeedEntry) ([]outcome, error) {
	switch e.GetKind() {
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION:
		return w.newVersion(e)
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL:
		return w.withdrawn(e)
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_REPLACEMENT:
		return w.replaced(e)
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_POLICY:
		if e.GetPeerTeamId() == w.peer {
			return nil, w.policyAt(e.GetPolicyVersion())
		}
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_REDISCLOSURE:
		if e.GetPeerTeamId() == w.peer {
			return w.redisclose(e)
		}
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_STATISTICS:
		return w.statistics(e)
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_RETENTION:
		return w.retentionTerms(e)
	}
	return nil, nil
}

// retentionTerms is a change of a team's retention terms. Our own go to
// every peer (each may hold or receive our records); another team's only
// to a peer that holds some of its records through us, so a peer does not
// learn of teams whose records it never got from us.
func (w *feedWalker) retentionTerms(e *irxv1.FeedEntry) ([]outcome, error) {
	origin := e.GetOriginTeamId()
	if origin != w.f.team {
		holds, err := w.r.HoldsAnyOf(w.peer, origin)
		if err != nil || !holds {
			return nil, err
		}
	}
	terms := w.f.state.RetentionTerms(origin)
	if terms == nil {
		return nil, nil
	}
	return []outcome{{item: &irxv1.FeedItem{Sequence: e.GetSequence(), CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_RetentionTerms{RetentionTerms: terms}}}}, nil
}

// statistics is the team's statistics, published: the peer gets them if
// its policy discloses the statistical class, and they are the latest
// (a later entry carries newer ones). They are counts, not records: the
// ledger of records has nothing to acknowledge for them.
func (w *feedWalker) statistics(e *irxv1.FeedEntry) ([]outcome, error) {
	if !w.compiled.SharesStatistics() {
		return nil, nil
	}
	s, err := w.r.PublishedStatistics(e.GetSequence())
	if err != nil || s == nil {
		return nil, err
	}
	return []outcome{{item: &irxv1.FeedItem{Sequence: e.GetSequence(), CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_Statistics{Statistics: s}}}}, nil
}

// policyAt moves the walk to the peer's newest policy if version is newer
// than the one it walks under.
func (w *feedWalker) policyAt(version int64) error {
	if version <= w.version {
		return nil
	}
	c, err := w.f.policyFrom(w.r, w.peer, 0)
	if err != nil {
		return err
	}
	w.compiled, w.version = c, c.Version()
	return nil
}

// newVersion is a new version of an incident: its view, and the older
// versions the peer holds under its markings.
func (w *feedWalker) newVersion(e *irxv1.FeedEntry) ([]outcome, error) {
	id, v := e.GetIncidentId(), e.GetVersion()
	inc, err := w.r.Get(id, v)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil // a foreign copy deleted since; its withdrawal entry follows
	}
	if err != nil {
		return nil, err
	}
	var held *heldRecord
	if v == 1 {
		// A first version's entry comes once, after everything the peer
		// acknowledged: it can hold nothing of the record yet. (Most of a
		// catch-up is first versions; reading what the peer holds cost an
		// iterator per record.)
		held = &heldRecord{versions: map[int64][]byte{}}
		w.held[id] = held
	} else if held, err = w.holding(id); err != nil {
		return nil, err
	}
	view, ex := w.f.disclose(inc, inc, w.compiled)
	if view == nil {
		w.withheld++
		if len(held.versions) == 0 {
			return nil, nil
		}
		// The peer holds an older version this one may not replace: the
		// record's TLP, restriction or taxonomy changed under the policy,
		// and a record whose latest version the peer may not have it may
		// not keep at all.
		return []outcome{w.withdrawal(e, id, v, irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY, "")}, nil
	}
	var outs []outcome
	if _, holds := held.versions[v]; holds {
		// Walked again (our copy of a foreign record came back under the
		// same version number): what it holds is replaced if it differs.
		o, err := w.offer(e, id, v, view, ex, held, irxv1.ReplacementReason_REPLACEMENT_REASON_MARKINGS)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	} else {
		d, data, err := viewDigest(view)
		if err != nil {
			return nil, err
		}
		held.set(e.GetSequence(), v, d)
		item := &irxv1.FeedItem{
			Sequence: e.GetSequence(), CommitTime: e.GetCommitTime(),
			Retention: w.f.state.RetentionTerms(view.GetProvenance().GetOriginTeam()),
		}
		wire.SetEncoded(item, wire.FeedItemIncident, data) // the incident
		outs = append(outs, outcome{item: item, ledger: w.ledgerEntry(e, id, v, view, d, 0), ex: ex})
	}
	for _, u := range held.sorted() {
		if u >= v {
			continue // only older versions take this one's markings
		}
		o, err := w.again(e, id, u, inc, held, irxv1.ReplacementReason_REPLACEMENT_REASON_MARKINGS)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

// withdrawn is a withdrawal of an incident: by its origin (here, or the
// team we received it from), so every copy goes.
func (w *feedWalker) withdrawn(e *irxv1.FeedEntry) ([]outcome, error) {
	id := e.GetIncidentId()
	held, err := w.holding(id)
	if err != nil || len(held.versions) == 0 {
		return nil, err
	}
	var note string
	if e.GetWithdrawalReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN {
		if last, err := w.r.Get(id, 0); err == nil {
			note = last.GetWithdrawReason()
		}
	}
	return []outcome{w.withdrawal(e, id, e.GetVersion(), e.GetWithdrawalReason(), note)}, nil
}

// replaced is our copy of a version of a foreign incident replaced or
// deleted by the team we received it from: the peer holding it gets it
// again.
func (w *feedWalker) replaced(e *irxv1.FeedEntry) ([]outcome, error) {
	id, v := e.GetIncidentId(), e.GetVersion()
	held, err := w.holding(id)
	if err != nil {
		return nil, err
	}
	if _, holds := held.versions[v]; !holds {
		return nil, nil
	}
	latest, err := w.latestOf(id, held)
	if latest == nil || err != nil {
		return nil, err
	}
	reason := irxv1.ReplacementReason_REPLACEMENT_REASON_UPSTREAM
	if e.GetReplacementReason() == irxv1.ReplacementReason_REPLACEMENT_REASON_RETENTION {
		// Our own retention purge (of our record, or of our copy on our
		// clock): say so, rather than "upstream".
		reason = e.GetReplacementReason()
	}
	return w.again(e, id, v, latest, held, reason)
}

// redisclose is a stretch of what the peer holds, disclosed again under
// its current policy.
func (w *feedWalker) redisclose(e *irxv1.FeedEntry) ([]outcome, error) {
	if err := w.policyAt(e.GetPolicyVersion()); err != nil {
		return nil, err
	}
	after, through := e.GetAfterIncidentId(), e.GetIncidentId()
	ids := map[string]bool{}
	err := w.r.HeldIncidents(w.peer, after, through, func(id string, versions map[int64][]byte) error {
		ids[id] = true
		if _, known := w.held[id]; !known {
			// What the peer acknowledged holding, read here once rather
			// than looked up again per incident.
			w.held[id] = &heldRecord{versions: versions}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for id := range w.held {
		if inStretch(id, after, through) {
			ids[id] = true
		}
	}
	order := slices.Collect(maps.Keys(ids))
	slices.SortFunc(order, compareIDs) // the map's order is random; the stream's must not be
	var outs []outcome
	for _, id := range order {
		held, err := w.holding(id)
		if err != nil {
			return nil, err
		}
		if len(held.versions) == 0 {
			continue
		}
		latest, err := w.latestOf(id, held)
		if err != nil {
			return nil, err
		}
		if latest == nil {
			continue
		}
		if view, _ := w.f.disclose(latest, latest, w.compiled); view == nil {
			outs = append(outs, w.withdrawal(e, id, latest.GetVersion(), irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY, ""))
			continue
		}
		for _, u := range held.sorted() {
			o, err := w.again(e, id, u, latest, held, irxv1.ReplacementReason_REPLACEMENT_REASON_POLICY)
			if err != nil {
				return nil, err
			}
			outs = append(outs, o...)
		}
	}
	return outs, nil
}

// latestOf is the version whose markings apply to what the peer holds of
// an incident: the latest it holds (the latest as of this point of the
// feed, since every newer version it was sent). nil when our copy is gone
// (its withdrawal entry covers it) or withdrawn.
func (w *feedWalker) latestOf(id string, held *heldRecord) (*irxv1.Incident, error) {
	latest, err := w.r.Get(id, held.latestHeld())
	if errors.Is(err, errdefs.ErrNotFound) {
		// Our copy of a foreign record lost that version since.
		latest, err = w.r.Get(id, 0)
	}
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case latest.GetWithdrawTime() != nil:
		return nil, nil
	}
	return latest, nil
}

// again discloses version u of an incident the peer holds once more, under
// the markings of latest, and offers it.
func (w *feedWalker) again(e *irxv1.FeedEntry, id string, u int64, latest *irxv1.Incident, held *heldRecord, reason irxv1.ReplacementReason) ([]outcome, error) {
	inc, err := w.r.Get(id, u)
	if errors.Is(err, errdefs.ErrNotFound) {
		return []outcome{w.erasure(e, id, u, held, reason)}, nil
	}
	if err != nil {
		return nil, err
	}
	view, ex := w.f.disclose(inc, latest, w.compiled)
	return w.offer(e, id, u, view, ex, held, reason)
}

// offer sends view as the peer's new copy of version u if it differs from
// the one it holds, or erases the version when view is nil.
func (w *feedWalker) offer(e *irxv1.FeedEntry, id string, u int64, view *irxv1.Incident, ex *irxv1.Explanation, held *heldRecord, reason irxv1.ReplacementReason) ([]outcome, error) {
	if view == nil {
		return []outcome{w.erasure(e, id, u, held, reason)}, nil
	}
	d, data, err := viewDigest(view)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(d, held.versions[u]) {
		return nil, nil
	}
	held.set(e.GetSequence(), u, d)
	// The replacement carries the view as encoded for its digest.
	r := &irxv1.IncidentReplacement{IncidentId: id, Version: u, Reason: reason}
	wire.SetEncoded(r, wire.ReplacementIncident, data)
	return []outcome{{
		item: &irxv1.FeedItem{Sequence: e.GetSequence(), CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_Replacement{
			Replacement: r,
		}, Retention: w.f.state.RetentionTerms(view.GetProvenance().GetOriginTeam())},
		ledger: w.ledgerEntry(e, id, u, view, d, reason),
		ex:     ex,
	}}, nil
}

func (w *feedWalker) erasure(e *irxv1.FeedEntry, id string, u int64, held *heldRecord, reason irxv1.ReplacementReason) outcome {
	held.drop(e.GetSequence(), u)
	return outcome{
		item: &irxv1.FeedItem{Sequence: e.GetSequence(), CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_Replacement{
			Replacement: &irxv1.IncidentReplacement{IncidentId: id, Version: u, Reason: reason},
		}},
		ledger: &irxv1.LedgerEntry{IncidentId: id, Version: u, Sequence: e.GetSequence(), PolicyVersion: w.version, ReplacementReason: reason, Erased: true},
	}
}

func (w *feedWalker) withdrawal(e *irxv1.FeedEntry, id string, version int64, reason irxv1.WithdrawalReason, note string) outcome {
	if h := w.held[id]; h != nil {
		h.versions, h.seq = map[int64][]byte{}, e.GetSequence()
	}
	return outcome{
		item: &irxv1.FeedItem{Sequence: e.GetSequence(), CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_Withdrawal{
			Withdrawal: &irxv1.IncidentWithdrawal{IncidentId: id, Version: version, Reason: reason, Description: note},
		}},
		ledger: &irxv1.LedgerEntry{IncidentId: id, Version: version, Sequence: e.GetSequence(), WithdrawalReason: reason, PolicyVersion: w.version},
	}
}

func (w *feedWalker) ledgerEntry(e *irxv1.FeedEntry, id string, version int64, view *irxv1.Incident, digest []byte, reason irxv1.ReplacementReason) *irxv1.LedgerEntry {
	return &irxv1.LedgerEntry{
		IncidentId: id, Version: version, Sequence: e.GetSequence(), PolicyVersion: w.version,
		ReplacementReason: reason, TermsVersion: view.GetProvenance().GetTermsVersion(), Digest: digestString(digest),
	}
}

func (h *heldRecord) set(seq uint64, version int64, digest []byte) {
	h.versions[version], h.seq = digest, seq
}

func (h *heldRecord) drop(seq uint64, version int64) {
	delete(h.versions, version)
	h.seq = seq
}

// inStretch reports whether id lies in (after, through]; "" is open.
func inStretch(id, after, through string) bool {
	return (after == "" || compareIDs(id, after) > 0) && (through == "" || compareIDs(id, through) <= 0)
}

// compareIDs orders incident ids as the state machine's keys do: by team,
// then by ticket as a number.
func compareIDs(x, y string) int {
	a, errA := record.ParseID(x)
	b, errB := record.ParseID(y)
	if errA != nil || errB != nil {
		return strings.Compare(x, y)
	}
	if c := strings.Compare(a.Team, b.Team); c != 0 {
		return c
	}
	return cmp.Compare(a.Ticket, b.Ticket)
}

// journals remember, per peer, the ledger entries a stream produced until
// the peer's acknowledgement of them is committed, so an acknowledgement
// records exactly what was sent without computing it again.
type journals struct {
	mu     sync.Mutex
	byPeer map[string]*journal
}

type journal struct {
	session uint64
	start   uint64 // the acknowledged cursor the journal starts after
	end     uint64 // the last sequence recorded
	sent    sentLedger
}

// sentLedger is what a stream sent for a stretch of the feed: the ledger
// entries, and for every feed sequence it walked how many records it
// withheld and the policy version in force. An acknowledgement committed
// in pieces gives each piece its own counts and version.
type sentLedger struct {
	entries  []*irxv1.LedgerEntry
	seqs     []uint64
	withheld []uint64 // parallel to seqs
	versions []int64  // parallel to seqs
}

func (l *sentLedger) add(seq uint64, outs []outcome, withheld uint64, version int64) {
	for _, o := range outs {
		if o.ledger != nil {
			l.entries = append(l.entries, o.ledger)
		}
	}
	l.seqs = append(l.seqs, seq)
	l.withheld = append(l.withheld, withheld)
	l.versions = append(l.versions, version)
}

// upTo counts the ledger entries and walked sequences up to and including
// to.
func (l *sentLedger) upTo(to uint64) (entries, seqs int) {
	for entries < len(l.entries) && l.entries[entries].GetSequence() <= to {
		entries++
	}
	for seqs < len(l.seqs) && l.seqs[seqs] <= to {
		seqs++
	}
	return entries, seqs
}

// head is what was sent up to and including to, copied: the journal goes on
// growing and being cut while an acknowledgement holds it.
func (l *sentLedger) head(to uint64) sentLedger {
	n, k := l.upTo(to)
	return sentLedger{
		entries: slices.Clone(l.entries[:n]), seqs: slices.Clone(l.seqs[:k]),
		withheld: slices.Clone(l.withheld[:k]), versions: slices.Clone(l.versions[:k]),
	}
}

// cut forgets what was sent up to and including to.
func (l *sentLedger) cut(to uint64) {
	n, k := l.upTo(to)
	l.entries = l.entries[n:]
	l.seqs, l.withheld, l.versions = l.seqs[k:], l.withheld[k:], l.versions[k:]
}

// span sums the withheld counts of the sequences in (from, to] and gives
// the policy version in force at the last of them (0 if none was walked).
// The sequences are in order, so a piece costs only its own length.
func (l *sentLedger) span(from, to uint64) (withheld uint64, version int64) {
	first, _ := slices.BinarySearch(l.seqs, from+1)
	for i := first; i < len(l.seqs) && l.seqs[i] <= to; i++ {
		withheld += l.withheld[i]
		version = l.versions[i]
	}
	return withheld, version
}

// maxJournal bounds a journal; past it acknowledgements recompute.
const maxJournal = 1 << 17

func (j *journals) begin(peer string, cursor uint64) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	var session uint64 = 1
	if old := j.byPeer[peer]; old != nil {
		session = old.session + 1
	}
	j.byPeer[peer] = &journal{session: session, start: cursor, end: cursor}
	return session
}

// record adds the outcomes of the entries up to seq under a policy version.
func (j *journals) record(peer string, session, seq uint64, outs []outcome, withheld uint64, version int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	jr := j.byPeer[peer]
	if jr == nil || jr.session != session {
		return // a newer stream of the same peer took over
	}
	if len(jr.sent.entries) > maxJournal || len(jr.sent.seqs) > maxJournal {
		delete(j.byPeer, peer)
		return
	}
	jr.sent.add(seq, outs, withheld, version)
	jr.end = seq
}

// covering is the peer's journal if it holds (from, to].
func (j *journals) covering(peer string, from, to uint64) *journal {
	jr := j.byPeer[peer]
	if jr == nil || jr.start != from || jr.end < to {
		return nil
	}
	return jr
}

// ledger returns what the stream sent for (from, to] if the journal covers
// it. It leaves the journal as it is: only a committed acknowledgement
// releases entries (see release), so if the proposal fails, the retry is
// served from the journal again instead of walking the feed.
func (j *journals) ledger(peer string, from, to uint64) (sentLedger, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	jr := j.covering(peer, from, to)
	if jr == nil {
		return sentLedger{}, false
	}
	return jr.sent.head(to), true
}

// release forgets what the peer has acknowledged, up to acked: the peer
// state proves (start, acked] committed, whether this node's proposal
// reported it or not (an error after the entry committed, or another
// acknowledgement of the same range that won). A journal that ends before
// acked never served the rest of it (another node or stream did), so it
// can serve nothing after acked either and goes.
func (j *journals) release(peer string, acked uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	jr := j.byPeer[peer]
	if jr == nil || acked <= jr.start {
		return
	}
	if acked > jr.end {
		delete(j.byPeer, peer)
		return
	}
	jr.sent.cut(acked)
	jr.start = acked
}
