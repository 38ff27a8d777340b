package federation

import (
	"errors"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/irxfed/irx/node/fsm"
	"github.com/irxfed/irx/policy"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// outcome is what one feed entry gives one peer. A policy entry can give
// several (one withdrawal per record the new policy takes back).
type outcome struct {
	item   *irxv1.FeedItem    // nil: nothing is sent
	ledger *irxv1.LedgerEntry // what the peer will have acknowledged; nil when nothing is sent
}

// feedWalker computes a peer's view of the team's feed, entry by entry, in
// order. It must see entries in order: whether a withheld version means
// "nothing" or "withdraw your copy" depends on what the peer holds, which
// the walk itself changes.
type feedWalker struct {
	f        *Federation
	peer     string
	compiled *policy.Compiled // nil: no policy, nothing is disclosed
	version  int64
	// held overrides the acknowledged holdings (fsm held/) with what this
	// walk sent since the peer's last acknowledgement.
	held map[string]bool
	// withheld counts entries that carried a record the policy withheld.
	withheld uint64
	// r is what the walk reads through; see begin.
	r *fsm.VersionReader
	// explained is the explanation of the last view disclosed, for the
	// metrics.
	explained *irxv1.Explanation
}

// begin opens the reader for a run of entries; end must follow before
// anything slow (sending) happens, because the reader holds the state
// machine's read lock.
func (w *feedWalker) begin() error {
	r, err := w.f.state.NewVersionReader()
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
// withheld. It returns the last sequence walked, cursor if there was
// none. Serving a stream and recomputing an acknowledgement both walk
// through here, so the ledger recomputed is the one a stream would have
// produced.
func (w *feedWalker) walk(cursor uint64, limit int, visit func(e *irxv1.FeedEntry, outs []outcome, withheld uint64)) (uint64, error) {
	entries, err := w.f.state.FeedEntries(cursor, limit)
	if err != nil {
		return cursor, status.Errorf(codes.Internal, "read feed: %v", err)
	}
	if len(entries) == 0 {
		return cursor, nil
	}
	if err := w.begin(); err != nil {
		return cursor, status.Errorf(codes.Internal, "read feed: %v", err)
	}
	// visit must not block: the reader holds the state machine's read
	// lock until the walk returns.
	defer w.end()
	for _, e := range entries {
		before := w.withheld
		outs, err := w.entry(e)
		if err != nil {
			return cursor, status.Errorf(codes.Internal, "feed entry %d: %v", e.GetSequence(), err)
		}
		visit(e, outs, w.withheld-before)
		cursor = e.GetSequence()
	}
	return cursor, nil
}

func newWalker(f *Federation, peer string, compiled *policy.Compiled) *feedWalker {
	w := &feedWalker{f: f, peer: peer, compiled: compiled, held: map[string]bool{}}
	if compiled != nil {
		w.version = compiled.Version()
	}
	return w
}

func (w *feedWalker) holds(id string) (bool, error) {
	if h, ok := w.held[id]; ok {
		return h, nil
	}
	v, err := w.r.HeldVersion(w.peer, id)
	return v > 0, err
}

// view is what the peer receives of inc, or nil. Its provenance is the one
// the peer stores: the peer appended to the path, this team as sender, and
// the re-share terms the policy grants.
func (w *feedWalker) view(inc *irxv1.Incident) *irxv1.Incident {
	v, ex := w.f.disclose(inc, w.compiled)
	if v != nil {
		w.explained = ex
	}
	return v
}

// disclose is what the peer of compiled (nil: no policy, so nothing)
// receives of inc, and why. The view's provenance is the one the peer
// stores: the peer appended to the path, this team as sender, and the
// re-share terms the policy grants. Serving the feed, handing off and the
// audit all go through here, so the audit recomputes exactly what was sent.
func (f *Federation) disclose(inc *irxv1.Incident, compiled *policy.Compiled) (*irxv1.Incident, *irxv1.Explanation) {
	view, ex := policy.Disclose(inc, compiled)
	if view == nil {
		return nil, ex
	}
	// The view shares sub-messages with inc, so its provenance is a new
	// message.
	prov := inc.GetProvenance()
	origin := prov.GetOriginTeam()
	if origin == "" {
		origin = f.team
	}
	view.Provenance = &irxv1.Provenance{
		OriginTeam:   origin,
		Path:         append(slices.Clip(prov.GetPath()), compiled.PeerTeamID()),
		ReceivedFrom: f.team,
		Reshare:      proto.CloneOf(ex.GetReshare()),
	}
	return view, ex
}

func (w *feedWalker) withdrawal(seq uint64, e *irxv1.FeedEntry, id string, version int64, reason irxv1.WithdrawalReason) outcome {
	return outcome{
		item: &irxv1.FeedItem{Sequence: seq, CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_Withdrawal{
			Withdrawal: &irxv1.IncidentWithdrawal{IncidentId: id, Version: version, Reason: reason},
		}},
		ledger: &irxv1.LedgerEntry{IncidentId: id, Version: version, Sequence: seq, WithdrawalReason: reason, PolicyVersion: w.version},
	}
}

// entry computes what one feed entry gives the peer.
func (w *feedWalker) entry(e *irxv1.FeedEntry) ([]outcome, error) {
	seq := e.GetSequence()
	switch e.GetKind() {
	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION:
		inc, err := w.r.Get(e.GetIncidentId(), e.GetVersion())
		if errors.Is(err, fsm.ErrNotFound) {
			return nil, nil // a foreign copy deleted since; its withdrawal entry follows
		}
		if err != nil {
			return nil, err
		}
		if v := w.view(inc); v != nil {
			w.held[e.GetIncidentId()] = true
			return []outcome{{
				item:   &irxv1.FeedItem{Sequence: seq, CommitTime: e.GetCommitTime(), Kind: &irxv1.FeedItem_Incident{Incident: v}},
				ledger: &irxv1.LedgerEntry{IncidentId: e.GetIncidentId(), Version: e.GetVersion(), Sequence: seq, PolicyVersion: w.version},
			}}, nil
		}
		w.withheld++
		held, err := w.holds(e.GetIncidentId())
		if err != nil || !held {
			return nil, err
		}
		// The peer holds an older version this one may not replace: the
		// record's TLP, restriction or taxonomy changed under the policy.
		w.held[e.GetIncidentId()] = false
		return []outcome{w.withdrawal(seq, e, e.GetIncidentId(), e.GetVersion(), irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY)}, nil

	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL:
		held, err := w.holds(e.GetIncidentId())
		if err != nil || !held {
			return nil, err
		}
		w.held[e.GetIncidentId()] = false
		return []outcome{w.withdrawal(seq, e, e.GetIncidentId(), e.GetVersion(), e.GetWithdrawalReason())}, nil

	case irxv1.FeedEntryKind_FEED_ENTRY_KIND_POLICY:
		if e.GetPeerTeamId() != w.peer {
			return nil, nil
		}
		return w.policyChanged(e)
	}
	return nil, nil
}

// policyChanged moves the walk to the peer's newest policy and withdraws
// every record the peer holds that it no longer discloses.
func (w *feedWalker) policyChanged(e *irxv1.FeedEntry) ([]outcome, error) {
	if e.GetPolicyVersion() > w.version {
		c, err := w.f.policyFrom(w.r, w.peer, 0)
		if err != nil {
			return nil, err
		}
		w.compiled, w.version = c, c.Version()
	}
	var ids []string
	err := w.r.HeldIncidents(w.peer, func(id string) error {
		if _, overridden := w.held[id]; !overridden {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for id, h := range w.held {
		if h {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // the map's order is random; the stream must not be
	var out []outcome
	for _, id := range ids {
		inc, err := w.r.Get(id, 0)
		if errors.Is(err, fsm.ErrNotFound) {
			continue // deleted here; its own withdrawal entry covers it
		}
		if err != nil {
			return nil, err
		}
		// Only asking whether the peer may still hold it: nothing is sent,
		// so nothing is counted as disclosed (w.view would count it).
		if v, _ := w.f.disclose(inc, w.compiled); v != nil {
			continue
		}
		w.held[id] = false
		out = append(out, w.withdrawal(e.GetSequence(), e, id, inc.GetVersion(), irxv1.WithdrawalReason_WITHDRAWAL_REASON_POLICY))
	}
	return out, nil
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
