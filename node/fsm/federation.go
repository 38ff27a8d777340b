package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Federation keys:
//
//	peer/<team>                                     Peer (configuration)
//	peerst/<team>                                   PeerState (cursors and counters)
//	heldv/<peer>\0<team>\0<ticket8><version8>        digest of the view of that version the peer holds, as it acknowledged
//	ldg/p/<peer>\0<team>\0<ticket8><seq8><version8>   Disclosure, by peer
//	ldg/i/<team>\0<ticket8><seq8><version8><peer>      Disclosure, by incident
//	tomb/<team>\0<ticket8>                          version at which the origin withdrew a foreign incident
//	redisc/<peer>                                   RedisclosureProgress while what the peer holds is disclosed again
var (
	prefixPeer         = []byte("peer/")
	prefixPeerState    = []byte("peerst/")
	prefixHeld         = []byte("heldv/")
	prefixLedgerP      = []byte("ldg/p/")
	prefixLedgerI      = []byte("ldg/i/")
	prefixTomb         = []byte("tomb/")
	prefixRedisclosure = []byte("redisc/")
)

// Errors of federation commands.
var (
	ErrAlreadyExists = errdefs.ErrAlreadyExists
	// ErrStaleCursor refuses a feed batch or acknowledgement whose starting
	// cursor no longer matches the stored one: another proposal (a former
	// leader's, a retry) already moved it. Nothing was applied.
	ErrStaleCursor = errdefs.New(errdefs.ErrConflict, "stale cursor")
	ErrWithdrawn   = errdefs.New(errdefs.ErrFailedPrecondition, "incident withdrawn")
	// ErrPeerChanged refuses an update of a peer made from a configuration
	// that is no longer the stored one.
	ErrPeerChanged = errdefs.New(errdefs.ErrConflict, "peer changed")
)

func peerKey(team string) []byte      { return cat(prefixPeer, []byte(team)) }
func peerStateKey(team string) []byte { return cat(prefixPeerState, []byte(team)) }
func heldPrefix(peer string) []byte   { return cat(prefixHeld, []byte(peer), []byte{0}) }
func heldRecordPrefix(peer string, id record.ID) []byte {
	return cat(heldPrefix(peer), idKey(id))
}
func heldKey(peer string, id record.ID, version int64) []byte {
	return cat(heldRecordPrefix(peer, id), u64(uint64(version)))
}
func tombKey(id record.ID) []byte        { return cat(prefixTomb, idKey(id)) }
func redisclosureKey(peer string) []byte { return cat(prefixRedisclosure, []byte(peer)) }

// loadHighestTickets finds, for every other team whose incidents db holds,
// the highest ticket under inc/: one seek per team.
func loadHighestTickets(db *pebble.DB, own string) (map[string]uint64, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixIncident, UpperBound: prefixEnd(prefixIncident)})
	if err != nil {
		return nil, fmt.Errorf("fsm: read incident tickets: %w", err)
	}
	defer it.Close()
	high := map[string]uint64{}
	for valid := it.First(); valid; {
		id, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			return nil, fmt.Errorf("fsm: incident key %q: %w", it.Key(), err)
		}
		teamEnd := prefixEnd(cat(prefixIncident, []byte(id.Team), []byte{0}))
		if !it.SeekLT(teamEnd) {
			break
		}
		last, err := idFromKey(it.Key(), prefixIncident)
		if err != nil {
			return nil, fmt.Errorf("fsm: incident key %q: %w", it.Key(), err)
		}
		if last.Team != own {
			high[last.Team] = last.Ticket
		}
		valid = it.SeekGE(teamEnd)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("fsm: read incident tickets: %w", err)
	}
	return high, nil
}

// loadTombstones reads every tomb/ key of db.
func loadTombstones(db *pebble.DB) (map[record.ID]uint64, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefixTomb, UpperBound: prefixEnd(prefixTomb)})
	if err != nil {
		return nil, fmt.Errorf("fsm: read tombstones: %w", err)
	}
	defer it.Close()
	tombstones := map[record.ID]uint64{}
	for it.First(); it.Valid(); it.Next() {
		id, err := idFromKey(it.Key(), prefixTomb)
		if err != nil || len(it.Value()) != 8 {
			return nil, fmt.Errorf("fsm: tombstone %q: malformed", it.Key())
		}
		tombstones[id] = binary.BigEndian.Uint64(it.Value())
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("fsm: read tombstones: %w", err)
	}
	return tombstones, nil
}

func ledgerPeerPrefix(peer string) []byte { return cat(prefixLedgerP, []byte(peer), []byte{0}) }
func ledgerIncidentPrefix(id record.ID) []byte {
	return cat(prefixLedgerI, idKey(id))
}

// getProto reads a message stored under key; found is false when absent.
func getProto(r reader, key []byte, m proto.Message) (found bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fsm: read %q: %w", key, err)
	}
	defer closer.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("fsm: decode %q: %w", key, err)
	}
	return true, nil
}

// setProto stores m under every key given (one encoding for all).
func (a *applier) setProto(m proto.Message, keys ...[]byte) {
	if a.err != nil {
		return
	}
	data, err := marshal.Marshal(m)
	if err != nil {
		a.fail(err)
		return
	}
	for _, k := range keys {
		a.set(k, data)
	}
}

func (a *applier) del(key []byte) {
	a.writePending()
	if a.err == nil {
		a.err = a.batch.Delete(key, nil)
	}
}

func (a *applier) appendFeed(e *irxv1.FeedEntry) {
	a.feed++
	e.Sequence = a.feed
	e.RaftIndex = a.index
	e.CommitTime = a.now
	a.setProto(e, feedKey(a.feed))
}

// withdraw marks one of this team's incidents withdrawn: a last version
// that says so, kept for the audit, and a feed entry that makes every peer
// holding it delete its copy.
func (a *applier) withdraw(c *irxv1.WithdrawIncidentCommand) *Result {
	id, err := record.ParseID(c.GetIncidentId())
	if err != nil {
		return &Result{Err: &record.ValidationError{Violations: []record.Violation{{Field: "id", Description: err.Error()}}}}
	}
	if id.Team != a.fsm.team {
		return &Result{Err: fmt.Errorf("%w: %s belongs to team %q; only its origin team withdraws it", ErrForeignIncident, c.GetIncidentId(), id.Team)}
	}
	current, err := a.fsm.getFrom(a.reads(), c.GetIncidentId(), 0)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			a.fail(err)
		}
		return &Result{Err: err}
	}
	if current.GetWithdrawTime() != nil {
		return &Result{Err: fmt.Errorf("%w: %s was withdrawn at %s", ErrWithdrawn, c.GetIncidentId(), current.GetWithdrawTime().AsTime())}
	}
	next := proto.CloneOf(current)
	next.Version++
	next.GenerationTime = versionTime(current, a.now)
	next.WithdrawTime = next.GenerationTime
	next.WithdrawReason = c.GetReason()
	if err := a.storeVersion(id, current, next, &irxv1.FeedEntry{
		Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL, WithdrawalReason: irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN,
	}); err != nil {
		return &Result{Err: err}
	}
	return &Result{Incident: next}
}

func (a *applier) putPeer(c *irxv1.PutPeerCommand) *Result {
	p := proto.CloneOf(c.GetPeer())
	if p == nil || record.ValidateTeamID(p.GetTeamId()) != nil || p.GetTeamId() == a.fsm.team {
		return &Result{Err: fmt.Errorf("%w: peer team id %q", ErrInvalidCommand, p.GetTeamId())}
	}
	var existing irxv1.Peer
	found, err := getProto(a.reads(), peerKey(p.GetTeamId()), &existing)
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	switch {
	case c.GetCreate() && found:
		return &Result{Err: fmt.Errorf("%w: peer %q", ErrAlreadyExists, p.GetTeamId())}
	case !c.GetCreate() && !found:
		return &Result{Err: fmt.Errorf("%w: peer %q", ErrNotFound, p.GetTeamId())}
	}
	if want := c.GetExpectedEtag(); !c.GetCreate() && want != "" {
		if now := record.PeerEtag(&existing); want != now {
			return &Result{Err: fmt.Errorf("%w: peer %q changed since it was read (etag %q, now %q): read it again", ErrPeerChanged, p.GetTeamId(), want, now)}
		}
	}
	p.Status, p.PolicyVersion, p.RecipientClass, p.Constituency = nil, 0, 0, nil
	p.CreateTime, p.UpdateTime = a.now, a.now
	if found {
		p.CreateTime = existing.GetCreateTime()
	}
	// The etag is not stored: it is computed from what is (record.PeerEtag).
	p.Etag = ""
	a.setProto(p, peerKey(p.GetTeamId()))
	return &Result{Peer: p, Err: a.err}
}

func (a *applier) deletePeer(c *irxv1.DeletePeerCommand) *Result {
	_, closer, err := a.reads().Get(peerKey(c.GetTeamId()))
	if errors.Is(err, pebble.ErrNotFound) {
		return &Result{Err: fmt.Errorf("%w: peer %q", ErrNotFound, c.GetTeamId())}
	}
	if err != nil {
		a.fail(err)
		return &Result{Err: err}
	}
	_ = closer.Close()
	if err := a.leaveSharingGroups(c.GetTeamId()); err != nil {
		return &Result{Err: err}
	}
	// Leaving its groups owed it withdrawals; a deleted peer is not called.
	if err := a.dropWithdrawals(c.GetTeamId()); err != nil {
		return &Result{Err: err}
	}
	// The state and the ledger stay: what the peer received remains
	// answerable, and a re-created peer resumes where it was.
	a.del(peerKey(c.GetTeamId()))
	// Its statistics go with it: a federation's statistics count peers.
	a.del(peerStatsKey(c.GetTeamId()))
	return &Result{Err: a.err}
}

func (a *applier) peerState(team string) (*irxv1.PeerState, error) {
	st := &irxv1.PeerState{}
	if _, err := getProto(a.reads(), peerStateKey(team), st); err != nil {
		a.fail(err)
		return nil, err
	}
	return st, nil
}

// applyPeerFeed applies a batch of a peer's feed and moves our cursor, in
// the same pebble batch as everything else of this log entry: the batch
// takes effect exactly once whichever leader pulled it.
func (a *applier) applyPeerFeed(c *irxv1.ApplyPeerFeedCommand) *Result {
	peer := c.GetPeerTeamId()
	if _, closer, err := a.reads().Get(peerKey(peer)); errors.Is(err, pebble.ErrNotFound) {
		return &Result{Err: fmt.Errorf("%w: peer %q", ErrNotFound, peer)}
	} else if err != nil {
		a.fail(err)
		return &Result{Err: err}
	} else {
		_ = closer.Close()
	}
	st, err := a.peerState(peer)
	if err != nil {
		return &Result{Err: err}
	}
	if st.GetInboundResyncPending() {
		return &Result{Err: fmt.Errorf("%w: a resync with %s is under way: its feed applies once our copies of its records are gone", ErrStaleCursor, peer)}
	}
	if st.GetInboundCursor() != c.GetFromCursor() || c.GetCursor() < c.GetFromCursor() {
		return &Result{Err: fmt.Errorf("%w: our cursor in %s's feed is %d, the batch starts at %d", ErrStaleCursor, peer, st.GetInboundCursor(), c.GetFromCursor())}
	}
	a.checkText = c.GetCheckText()
	defer func() { a.checkText = false }()
	views, partial := a.views, a.partial
	if len(views) != len(c.GetItems()) {
		views = nil
	}
	if len(partial) != len(c.GetItems()) {
		partial = nil
	}
	for i, item := range c.GetItems() {
		if terms := item.GetRetention(); terms != nil {
			var id string
			switch k := item.GetKind().(type) {
			case *irxv1.FeedItem_Incident:
				id = k.Incident.GetId()
			case *irxv1.FeedItem_Replacement:
				id = k.Replacement.GetIncidentId()
			}
			if rid, err := record.ParseID(id); err == nil {
				// Terms that do not fit the record are dropped; the
				// record itself is judged on its own below.
				_ = a.noteTerms(rid.Team, terms)
			}
		}
		var reason string
		switch k := item.GetKind().(type) {
		case *irxv1.FeedItem_Incident:
			var stored bool
			var encoded []byte
			if views != nil {
				encoded = views[i]
			}
			stored, reason = a.receive(peer, k.Incident, encoded, partial != nil && partial[i])
			if stored {
				st.Received++
			}
		case *irxv1.FeedItem_Withdrawal:
			var deleted bool
			deleted, reason = a.receiveWithdrawal(peer, k.Withdrawal)
			if deleted {
				st.ReceivedWithdrawals++
			}
		case *irxv1.FeedItem_Replacement:
			var replaced bool
			replaced, reason = a.receiveReplacement(peer, k.Replacement)
			if replaced {
				st.ReceivedReplacements++
			}
		case *irxv1.FeedItem_Statistics:
			reason = a.receiveStatistics(peer, k.Statistics)
		case *irxv1.FeedItem_RetentionTerms:
			if origin := k.RetentionTerms.GetTeamId(); origin == "" {
				reason = "retention terms without a team"
			} else {
				reason = a.noteTerms(origin, k.RetentionTerms)
			}
		default:
			reason = "an item with neither incident, withdrawal, replacement, statistics nor retention terms"
		}
		if a.err != nil {
			return &Result{Err: a.err}
		}
		if reason != "" {
			st.Rejected++
			st.LastRejection = fmt.Sprintf("sequence %d: %s", item.GetSequence(), reason)
			a.fsm.log.Warn("refused an item of a peer's feed", "peer", peer, "sequence", item.GetSequence(), "reason", reason)
		}
	}
	st.InboundCursor = c.GetCursor()
	st.InboundPolicyVersion = c.GetPolicyVersion()
	st.InboundGeneration = c.GetGeneration()
	st.InboundHead = max(c.GetHead(), c.GetCursor())
	st.InboundHeadTime = c.GetHeadTime()
	a.setProto(st, peerStateKey(peer))
	return &Result{Err: a.err}
}

// receive stores a peer's view of an incident version. It reports whether
// it stored it, or why it refused it; duplicates and versions older than
// ours are neither (they change nothing, by design).
//
// A partial view (parseCheckedFeed) holds only what readIndexed reads of
// encoded: the leader that proposed the feed found the whole record valid,
// so it is not validated again here, and it is stored as encoded, stamped
// (withReceiveTime). Encoded bytes that cannot be stamped so are decoded
// whole and take the path of any decoded view.
func (a *applier) receive(peer string, view *irxv1.Incident, encoded []byte, partial bool) (stored bool, refused string) {
	var data []byte
	if partial {
		if data = withReceiveTime(encoded, a.now); data == nil {
			view, partial = &irxv1.Incident{}, false
			if err := proto.Unmarshal(encoded, view); err != nil {
				return false, fmt.Sprintf("incident: %v", err)
			}
			encoded = nil // it cannot be stamped: the view is encoded again
		}
	}
	id, refused := a.checkView(peer, view, !partial)
	if refused == "" && !partial {
		refused = a.textRefusal(view)
	}
	if refused != "" {
		return false, refused
	}
	if tomb := a.fsm.tombstones[id]; tomb > 0 && view.GetVersion() <= int64(tomb) {
		return false, "" // the origin withdrew it
	}
	var current *irxv1.Incident
	if id.Ticket <= a.fsm.foreignHigh[id.Team] {
		switch cur, err := loadLatest(a.reads(), id); {
		case err == nil:
			if cur.GetVersion() >= view.GetVersion() {
				return false, "" // duplicate or older: versions never go backwards
			}
			current = cur
		case !errors.Is(err, pebble.ErrNotFound):
			a.fail(err)
			return false, ""
		}
	}
	// The view was decoded from this log entry and nothing else holds it:
	// stamping it in place saves a deep copy per record. Its encoding in
	// the entry with the receive time spliced in is the stamped view's
	// encoding (withReceiveTime), which saves encoding it again; a view
	// with withdrawal fields (which stamping clears) is encoded again.
	inc := view
	if data == nil && encoded != nil && inc.WithdrawTime == nil && inc.WithdrawReason == "" {
		data = withReceiveTime(encoded, a.now)
	}
	inc.Provenance.ReceiveTime = a.now
	inc.WithdrawTime, inc.WithdrawReason = nil, ""
	entry := &irxv1.FeedEntry{Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_VERSION}
	var err error
	if data != nil {
		err = a.storeEncodedVersion(id, current, inc, data, entry)
	} else {
		err = a.storeVersion(id, current, inc, entry)
	}
	if err != nil {
		return false, ""
	}
	return true, ""
}

// checkView checks a view a peer sent before anything of it is stored:
// its id, that its provenance names the peer as the sender and this team
// as the last on its path (and not before: no loops), and, with validate,
// that it is a valid record.
func (a *applier) checkView(peer string, view *irxv1.Incident, validate bool) (record.ID, string) {
	id, err := record.ParseID(view.GetId())
	if err != nil {
		return id, fmt.Sprintf("incident id: %v", err)
	}
	prov := view.GetProvenance()
	switch path := prov.GetPath(); {
	case id.Team == a.fsm.team:
		return id, fmt.Sprintf("%s is this team's own incident: records never come back to their origin", view.GetId())
	case prov.GetOriginTeam() != id.Team:
		return id, fmt.Sprintf("%s: provenance names origin %q", view.GetId(), prov.GetOriginTeam())
	case prov.GetReceivedFrom() != peer:
		return id, fmt.Sprintf("%s: provenance says it comes from %q, not %q", view.GetId(), prov.GetReceivedFrom(), peer)
	case len(path) == 0 || path[len(path)-1] != a.fsm.team:
		return id, fmt.Sprintf("%s: this team is not the last team of its path %v", view.GetId(), path)
	case slices.Contains(path[:len(path)-1], a.fsm.team):
		return id, fmt.Sprintf("%s: already crossed this team (path %v)", view.GetId(), path)
	}
	if !validate {
		return id, ""
	}
	if err := record.Validate(view, "incident"); err != nil {
		return id, err.Error()
	}
	return id, ""
}

// textRefusal says why view breaks the text rules, when the feed being
// applied asks for them; "" otherwise.
func (a *applier) textRefusal(view *irxv1.Incident) string {
	if !a.checkText {
		return ""
	}
	if vs := record.CheckRecordText(view, "incident"); len(vs) > 0 {
		return vs[0].String()
	}
	return ""
}

// receiveWithdrawal replaces our copy of a foreign incident with a
// withdrawn stub (see withdrawnStub). The origin's withdrawal is honoured
// from the origin or from the team we received the copy from; a policy
// withdrawal only from the team we received it from (another team's policy
// says nothing about a copy it did not give us).
func (a *applier) receiveWithdrawal(peer string, w *irxv1.IncidentWithdrawal) (deleted bool, refused string) {
	id, err := record.ParseID(w.GetIncidentId())
	if err != nil {
		return false, fmt.Sprintf("withdrawal: incident id: %v", err)
	}
	if id.Team == a.fsm.team {
		return false, fmt.Sprintf("withdrawal of %s, this team's own incident", w.GetIncidentId())
	}
	if len(w.GetDescription()) > record.MaxWithdrawReasonLength {
		return false, fmt.Sprintf("withdrawal of %s: description is longer than %d bytes", w.GetIncidentId(), record.MaxWithdrawReasonLength)
	}
	if a.checkText {
		if why := record.CheckText(w.GetDescription(), record.FreeText); why != "" {
			// The withdrawal is honoured all the same (what the peer takes
			// back must go); only its text is not kept.
			w = proto.CloneOf(w)
			w.Description = "(the reason the peer sent was not kept: " + why + ")"
		}
	}
	cur, err := loadLatest(a.reads(), id)
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		a.fail(err)
		return false, ""
	}
	// The origin's retention removed the record everywhere, like its
	// withdrawal.
	origin := w.GetReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN || w.GetReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION
	if origin {
		if v := uint64(max(w.GetVersion(), cur.GetVersion())); v > a.fsm.tombstones[id] && (peer == id.Team || cur.GetProvenance().GetReceivedFrom() == peer || cur == nil) {
			a.set(tombKey(id), u64(v))
			a.fsm.tombstones[id] = v
		}
	}
	if cur == nil || cur.GetWithdrawTime() != nil {
		return false, ""
	}
	switch {
	case cur.GetProvenance().GetReceivedFrom() != peer && !(origin && peer == id.Team):
		// In a mesh the same record arrives by several paths; we keep the
		// first copy, and only the team that gave it (or the origin) can
		// take it back. The others' withdrawals are expected, not errors.
		return false, ""
	case cur.GetVersion() > w.GetVersion() && !origin:
		return false, "" // a newer version arrived since; it was disclosed under the newer policy
	}
	a.deleteCopy(id, cur)
	if w.GetReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_RETENTION {
		// Retention leaves nothing, not even a stub; the tombstone keeps a
		// copy on its way by another path from coming back, and the feed
		// entry tells whoever we passed it on to.
		a.appendFeed(&irxv1.FeedEntry{
			Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL, IncidentId: cur.GetId(), Version: max(w.GetVersion(), cur.GetVersion()),
			WithdrawalReason: w.GetReason(),
		})
		return a.err == nil, ""
	}
	stub := withdrawnStub(cur, peer, w, a.now)
	if err := a.storeVersion(id, nil, stub, &irxv1.FeedEntry{
		Kind: irxv1.FeedEntryKind_FEED_ENTRY_KIND_WITHDRAWAL, WithdrawalReason: w.GetReason(),
	}); err != nil {
		return false, ""
	}
	return a.err == nil, ""
}

// withdrawnStub is what a team keeps of a foreign incident once it may no
// longer hold it: the id, the markings and provenance it came with, when
// and why it was withdrawn (also as an item of its history), and nothing
// of its content. Like the origin's withdrawn version, it is not listed by
// default and is never passed on.
func withdrawnStub(cur *irxv1.Incident, peer string, w *irxv1.IncidentWithdrawal, now *timestamppb.Timestamp) *irxv1.Incident {
	id, _, _ := strings.Cut(cur.GetId(), ":")
	var why string
	switch w.GetReason() {
	case irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN:
		why = "withdrawn by its origin " + id
		if d := w.GetDescription(); d != "" {
			why += ": " + d
		}
	default:
		why = "withdrawn by " + peer + ": its disclosure policy no longer lets this team hold the record"
	}
	prov := proto.CloneOf(cur.GetProvenance())
	return &irxv1.Incident{
		Id: cur.GetId(), Version: max(w.GetVersion(), cur.GetVersion()),
		Tlp: cur.GetTlp(), Restriction: cur.GetRestriction(), NamedRecipients: cur.GetNamedRecipients(),
		CreateTime: cur.GetCreateTime(), GenerationTime: now,
		Provenance:   prov,
		WithdrawTime: now, WithdrawReason: w.GetDescription(),
		History: []*irxv1.HistoryItem{{
			Action: irxv1.HistoryAction_HISTORY_ACTION_WITHDRAWN, Time: now, TeamId: peer, Description: why,
		}},
	}
}

// deleteCopy removes every trace of an incident but its feed entries and
// ledger: its versions, its latest pointer, its indexes, its statistics.
// It is a foreign copy, or an own record that retention removes.
func (a *applier) deleteCopy(id record.ID, cur *irxv1.Incident) {
	a.deleteTimeKeys(id)
	for _, k := range indexKeys(id, cur) {
		a.del(k)
	}
	a.correlate(id, cur, nil, true)
	// An own record (removed by retention) takes its response times with
	// it; a foreign copy has none.
	memo := statMemo{}
	if id.Team == a.fsm.team {
		m, err := a.statMemo(id, cur)
		if err != nil {
			a.fail(err)
			return
		}
		memo = m
		a.del(statMemoKey(id))
	}
	a.statsAdd(id, cur, memo, -1)
	a.del(incidentKey(id))
	a.erasedCopy(id, cur)
	prefix := cat(prefixVersion, idKey(id))
	a.writePending()
	if a.err == nil {
		a.err = a.batch.DeleteRange(prefix, prefixEnd(prefix), nil)
	}
}

// acknowledgePeer commits a peer's acknowledgement: the ledger of what it
// received and the versions it now holds.
func (a *applier) acknowledgePeer(c *irxv1.AcknowledgePeerCommand) *Result {
	peer := c.GetPeerTeamId()
	st, err := a.peerState(peer)
	if err != nil {
		return &Result{Err: err}
	}
	if st.GetOutboundAcknowledged() != c.GetFromCursor() || c.GetCursor() <= c.GetFromCursor() {
		return &Result{Err: fmt.Errorf("%w: %s acknowledged our feed up to %d, the acknowledgement starts at %d", ErrStaleCursor, peer, st.GetOutboundAcknowledged(), c.GetFromCursor())}
	}
	// Check every entry before writing any: a refused acknowledgement
	// changes nothing.
	ids := make([]record.ID, len(c.GetEntries()))
	for i, e := range c.GetEntries() {
		id, err := record.ParseID(e.GetIncidentId())
		if err != nil || e.GetSequence() <= c.GetFromCursor() || e.GetSequence() > c.GetCursor() || e.GetVersion() < 1 {
			return &Result{Err: fmt.Errorf("%w: ledger entry %s version %d at %d", ErrInvalidCommand, e.GetIncidentId(), e.GetVersion(), e.GetSequence())}
		}
		if e.GetDigest() != "" {
			if _, err := parseDigest(e.GetDigest()); err != nil {
				return &Result{Err: fmt.Errorf("%w: ledger entry %s: %v", ErrInvalidCommand, e.GetIncidentId(), err)}
			}
		}
		ids[i] = id
	}
	for i, e := range c.GetEntries() {
		id := ids[i]
		d := &irxv1.Disclosure{
			PeerTeamId: peer, IncidentId: e.GetIncidentId(), IncidentVersion: e.GetVersion(), Sequence: e.GetSequence(),
			PolicyVersion: e.GetPolicyVersion(), AcknowledgeTime: a.now,
			ReplacementReason: e.GetReplacementReason(), Erased: e.GetErased(), TermsVersion: e.GetTermsVersion(), Digest: e.GetDigest(),
		}
		switch {
		case e.GetWithdrawalReason() != irxv1.WithdrawalReason_WITHDRAWAL_REASON_UNSPECIFIED:
			d.Withdrawal, d.WithdrawalReason = true, e.GetWithdrawalReason()
			a.deleteRange(heldRecordPrefix(peer, id))
			st.SentWithdrawals++
		case e.GetErased():
			a.del(heldKey(peer, id, e.GetVersion()))
			st.SentReplacements++
		default:
			digest, _ := parseDigest(e.GetDigest()) // checked above; empty for old entries
			a.set(heldKey(peer, id, e.GetVersion()), digest)
			if e.GetReplacementReason() != irxv1.ReplacementReason_REPLACEMENT_REASON_UNSPECIFIED {
				st.SentReplacements++
			} else {
				st.Sent++
			}
		}
		k := cat(u64(e.GetSequence()), u64(uint64(e.GetVersion())))
		a.setProto(d, cat(ledgerPeerPrefix(peer), idKey(id), k), cat(ledgerIncidentPrefix(id), k, []byte(peer)))
	}
	st.Withheld += c.GetWithheld()
	st.OutboundAcknowledged = c.GetCursor()
	st.OutboundPolicyVersion = c.GetPolicyVersion()
	st.LastAcknowledgeTime = a.now
	a.setProto(st, peerStateKey(peer))
	a.rediscloseLate(peer, c.GetEntries())
	return &Result{Err: a.err}
}

// rediscloseLate makes sure a view the peer now holds, acknowledged
// after a newer policy for it was set, is disclosed again under that
// policy. It was sent before the change and acknowledged after: the
// redisclosure the change started walks what the peer is known to hold,
// and may have passed it, or ended, before this acknowledgement; the peer
// would keep what the new policy takes back. The redisclosure starts over
// unless the stretches still to come cover every such view.
func (a *applier) rediscloseLate(peer string, entries []*irxv1.LedgerEntry) {
	latest, err := getUint64(a.reads(), policyLatestKey(peer))
	if err != nil {
		a.fail(err)
		return
	}
	var late []string
	for _, e := range entries {
		if e.GetWithdrawalReason() == irxv1.WithdrawalReason_WITHDRAWAL_REASON_UNSPECIFIED && !e.GetErased() && e.GetPolicyVersion() < int64(latest) {
			late = append(late, e.GetIncidentId())
		}
	}
	if len(late) == 0 {
		return
	}
	progress := &irxv1.RedisclosureProgress{}
	found, err := getProto(a.reads(), redisclosureKey(peer), progress)
	if err != nil {
		a.fail(err)
		return
	}
	// The stretches to come cover what lies after the progress.
	after := progress.GetAfterIncidentId()
	if found && progress.GetPolicyVersion() == int64(latest) &&
		!slices.ContainsFunc(late, func(id string) bool { return after != "" && !idAfter(id, after) }) {
		return
	}
	a.startRedisclosure(peer, int64(latest))
}

// deleteRange deletes every key with prefix p.
func (a *applier) deleteRange(p []byte) {
	a.writePending()
	if a.err == nil {
		a.err = a.batch.DeleteRange(p, prefixEnd(p), nil)
	}
}

// parseDigest reads "SHA256:<hex>" into its 32 bytes.
func parseDigest(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "SHA256:")
	if !ok || len(h) != 2*sha256.Size {
		return nil, fmt.Errorf("digest %q is not SHA256:<64 hex digits>", s)
	}
	return hex.DecodeString(h)
}

// Peer returns a configured peer.
func (f *FSM) Peer(team string) (*irxv1.Peer, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	p := &irxv1.Peer{}
	found, err := getProto(f.db, peerKey(team), p)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: peer %q", ErrNotFound, team)
	}
	return p, nil
}

// Peers lists configured peers by team id.
func (f *FSM) Peers(pageSize int, pageToken string) ([]*irxv1.Peer, string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	return pageDecoded[irxv1.Peer](f, prefixPeer, pageSize, pageToken, valueItself)
}

// PeerState returns a peer's replicated federation state (zero if none).
func (f *FSM) PeerState(team string) (*irxv1.PeerState, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	st := &irxv1.PeerState{}
	_, err := getProto(f.db, peerStateKey(team), st)
	return st, err
}

// HoldsAnyOf reports whether peer holds a version of any record of team
// origin.
func (r *VersionReader) HoldsAnyOf(peer, origin string) (bool, error) {
	prefix := cat(heldPrefix(peer), []byte(origin), []byte{0})
	it, err := r.f.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, errors.Join(it.Error(), it.Close())
}

// HeldVersions returns the versions of an incident a peer holds, with
// the digest of the view of each (nil for views acknowledged before
// digests were kept).
func (r *VersionReader) HeldVersions(peer, incidentID string) (map[int64][]byte, error) {
	id, err := record.ParseID(incidentID)
	if err != nil {
		return nil, err
	}
	out := map[int64][]byte{}
	err = r.heldIn(peer, heldRecordPrefix(peer, id), prefixEnd(heldRecordPrefix(peer, id)), func(_ record.ID, hv map[int64][]byte) error {
		out = hv
		return nil
	})
	return out, err
}

// HeldIncidents calls fn, in id order, with every incident a peer holds
// whose id lies in (after, through], and the versions it holds (as
// HeldVersions); after "" starts at the first, through "" ends at the
// last.
func (r *VersionReader) HeldIncidents(peer, after, through string, fn func(id string, versions map[int64][]byte) error) error {
	lower, upper, err := heldBounds(peer, after, through)
	if err != nil {
		return err
	}
	return r.heldIn(peer, lower, upper, func(id record.ID, hv map[int64][]byte) error { return fn(id.String(), hv) })
}

func heldBounds(peer, after, through string) (lower, upper []byte, err error) {
	prefix := heldPrefix(peer)
	lower, upper = prefix, prefixEnd(prefix)
	if after != "" {
		id, err := record.ParseID(after)
		if err != nil {
			return nil, nil, err
		}
		lower = prefixEnd(cat(prefix, idKey(id)))
	}
	if through != "" {
		id, err := record.ParseID(through)
		if err != nil {
			return nil, nil, err
		}
		upper = prefixEnd(cat(prefix, idKey(id)))
	}
	return lower, upper, nil
}

// heldIn reads the held/ keys in [lower, upper), grouped by incident.
func (r *VersionReader) heldIn(peer string, lower, upper []byte, fn func(record.ID, map[int64][]byte) error) error {
	return eachHeld(r.f.db, heldPrefix(peer), lower, upper, fn)
}

type iterable interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// eachHeld calls fn for every incident with held keys in [lower, upper),
// with its versions in order.
func eachHeld(db iterable, prefix, lower, upper []byte, fn func(record.ID, map[int64][]byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	var (
		cur      record.ID
		versions map[int64][]byte
	)
	flush := func() error {
		if len(versions) == 0 {
			return nil
		}
		err := fn(cur, versions)
		versions = nil
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) < len(prefix)+8 {
			return errors.Join(fmt.Errorf("fsm: held key %q: %w", k, errBadKey), it.Close())
		}
		id, err := idFromKey(k[:len(k)-8], prefix)
		if err != nil {
			return errors.Join(fmt.Errorf("fsm: held key %q: %w", k, err), it.Close())
		}
		if id != cur {
			if err := flush(); err != nil {
				return errors.Join(err, it.Close())
			}
			cur = id
		}
		if versions == nil {
			versions = map[int64][]byte{}
		}
		versions[int64(binary.BigEndian.Uint64(k[len(k)-8:]))] = slices.Clone(it.Value())
	}
	if err := flush(); err != nil {
		return errors.Join(err, it.Close())
	}
	return it.Close()
}

// FeedEntries returns up to limit entries of the feed after sequence.
func (f *FSM) FeedEntries(after uint64, limit int) ([]*irxv1.FeedEntry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: feedKey(after + 1), UpperBound: prefixEnd(prefixFeed)})
	if err != nil {
		return nil, err
	}
	var out []*irxv1.FeedEntry
	for valid := it.First(); valid && len(out) < limit; valid = it.Next() {
		e := &irxv1.FeedEntry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, errors.Join(fmt.Errorf("fsm: decode feed entry %x: %w", it.Key(), err), it.Close())
		}
		out = append(out, e)
	}
	return out, it.Close()
}

// FeedEntry returns one entry of the feed.
func (f *FSM) FeedEntry(seq uint64) (*irxv1.FeedEntry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errClosed
	}
	e := &irxv1.FeedEntry{}
	found, err := getProto(f.db, feedKey(seq), e)
	if err == nil && !found {
		err = fmt.Errorf("%w: feed entry %d", ErrNotFound, seq)
	}
	return e, err
}

// Disclosures lists ledger entries of a peer (incident empty) or of an
// incident (peer empty), or of both.
func (f *FSM) Disclosures(peer, incidentID string, pageSize int, pageToken string) ([]*irxv1.Disclosure, string, error) {
	var prefix []byte
	switch {
	case incidentID != "":
		id, err := record.ParseID(incidentID)
		if err != nil {
			return nil, "", err
		}
		if peer != "" {
			prefix = cat(ledgerPeerPrefix(peer), idKey(id))
		} else {
			prefix = ledgerIncidentPrefix(id)
		}
	case peer != "":
		prefix = ledgerPeerPrefix(peer)
	default:
		return nil, "", fmt.Errorf("%w: a peer or an incident is required", ErrInvalidCommand)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, "", errClosed
	}
	// The prefixes are exact: tickets are fixed width and team ids hold no
	// NUL, so no other incident's or peer's keys share them.
	return pageDecoded[irxv1.Disclosure](f, prefix, pageSize, pageToken, valueItself)
}
