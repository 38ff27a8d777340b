package federation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

const (
	defaultSubscribeItems = 256
	maxSubscribeItems     = 4096
	// heartbeat is how often an idle stream reports the head, so the
	// peer's lag figures stay current and dead connections are noticed.
	heartbeat = 2 * time.Second
	// maxLedgerPerCommand splits a large acknowledgement into several
	// Raft entries of bounded size.
	maxLedgerPerCommand = 4096
	// maxResponseBytes starts a new response once one carries this much
	// (or a quarter of what a stream may hold, if less).
	maxResponseBytes = 4 << 20
)

type federationService struct {
	irxv1.UnimplementedFederationServiceServer
	f *Federation
}

// Subscribe implements irx.v1.FederationService.
//
// What a stream costs is bounded (limits.go): the peer's streams are
// counted, each walk computes no more than the stream may hold before it
// sends, and the bytes come out of a budget all streams share, so a peer
// that does not read holds one walk's worth and no more.
func (s *federationService) Subscribe(req *irxv1.SubscribeRequest, stream irxv1.FederationService_SubscribeServer) error {
	f, ctx := s.f, stream.Context()
	peer := caller(ctx)
	end, err := f.admitStream(peer)
	if err != nil {
		return err
	}
	defer end()
	limit := int(req.GetMaxItems())
	switch {
	case limit < 0:
		return status.Error(codes.InvalidArgument, "max_items must not be negative")
	case limit == 0:
		limit = defaultSubscribeItems
	case limit > maxSubscribeItems:
		limit = maxSubscribeItems
	}
	if mark := f.state.Restored(); req.GetGeneration() != mark.GetGeneration() && req.GetCursor() > mark.GetFeedSequence() {
		// The caller applied entries of an earlier generation that this
		// team lost with its restore: tell it, and serve nothing under
		// sequences it may already have used (docs/operations.md, Backup
		// and restore).
		return s.send(stream, &irxv1.SubscribeResponse{Cursor: req.GetCursor()})
	}
	// Subscribing at a cursor says the peer applied everything before it:
	// the ledger, and the holdings the walk below starts from, must know.
	// (acknowledge first makes sure this node's feed reaches the cursor.)
	if _, err := f.acknowledge(ctx, peer, req.GetCursor(), req.GetCursorPolicyVersion()); err != nil {
		return err
	}
	compiled, err := f.policy(peer, 0)
	if err != nil {
		return status.Errorf(codes.Internal, "policy for %s: %v", peer, err)
	}
	w := newWalker(f, peer, compiled)
	counts := newTally()
	session := f.journals.begin(peer, req.GetCursor())
	q := f.newStreamQueue(peer)
	defer q.close()
	msgBytes := f.limits.messageBytes()
	cursor := req.GetCursor()
	lastSend := time.Time{}
	idle := func(wait func(context.Context, uint64) error) error {
		if time.Since(lastSend) >= heartbeat {
			if err := s.send(stream, &irxv1.SubscribeResponse{Cursor: cursor, PolicyVersion: w.version}); err != nil {
				return err
			}
			q.sent(0)
			lastSend = time.Now()
		}
		return wait(ctx, cursor)
	}
	for {
		if w.remembered(f.limits.unacknowledged) >= f.limits.unacknowledged {
			// The peer has not acknowledged what it was sent: what the
			// walk must remember for it would grow without bound.
			if err := idle(f.waitApplied); err != nil {
				return err
			}
			continue
		}
		room := q.room()
		if err := q.reserve(ctx); err != nil {
			return err
		}
		// Compute the batch under the reader, then send: the reader holds
		// the state machine's read lock, which a slow peer must not. Each
		// response is encoded as soon as it is complete, so what the
		// stream holds is its encoding, the bytes it accounts for, and not
		// the larger decoded views.
		resp := &irxv1.SubscribeResponse{Cursor: cursor, PolicyVersion: w.version}
		var out [][]byte
		var encErr error
		size, total := 0, int64(0)
		cut := func(next *irxv1.SubscribeResponse) {
			data, err := encodeResponse(resp)
			encErr = errors.Join(encErr, err)
			out = append(out, data)
			total += int64(len(data) - size)
			resp, size = next, 0
		}
		done, err := f.limits.walking(ctx)
		if err != nil {
			return err
		}
		last, err := w.walk(cursor, limit, func(e *irxv1.FeedEntry, outs []outcome, withheld uint64) bool {
			if e.GetKind() == irxv1.FeedEntryKind_FEED_ENTRY_KIND_POLICY && e.GetPeerTeamId() == peer && len(resp.GetItems()) > 0 {
				// One response, one policy version: what the old version
				// gave goes in its own response.
				cut(&irxv1.SubscribeResponse{Cursor: resp.GetCursor()})
			}
			f.journals.record(peer, session, e.GetSequence(), outs, withheld, w.version)
			counts.add(outs, withheld > 0)
			for _, o := range outs {
				if o.item == nil {
					continue
				}
				n := proto.Size(o.item)
				if size > 0 && size+n > msgBytes {
					// Keep each message within what the stream may hold
					// and well under what the puller accepts. A cut inside
					// this entry's items leaves the response's cursor
					// before the entry: the caller moves past it with the
					// response that ends it.
					cut(&irxv1.SubscribeResponse{Cursor: resp.GetCursor(), PolicyVersion: w.version})
				}
				resp.Items = append(resp.Items, o.item)
				size += n
				total += int64(n)
			}
			resp.Cursor, resp.PolicyVersion = e.GetSequence(), w.version
			return total < room
		})
		done()
		if err == nil {
			err = encErr
		}
		if err != nil {
			return err
		}
		q.computed(total)
		if last == cursor {
			if err := idle(f.waitFeed); err != nil {
				return err
			}
			continue
		}
		f.metrics.served(peer, counts)
		cursor = last
		cut(nil)
		q.computed(total)
		for i, data := range out {
			n := int64(len(data))
			if err := s.sendEncoded(stream, data); err != nil {
				return err
			}
			// Send returned: gRPC took the message, and what it held
			// before is gone.
			q.sent(n)
			out[i] = nil
		}
		lastSend = time.Now()
	}
}

// encodeResponse encodes a response without its head, with room for the
// head that sendEncoded appends.
func encodeResponse(resp *irxv1.SubscribeResponse) ([]byte, error) {
	return proto.MarshalOptions{}.MarshalAppend(make([]byte, 0, proto.Size(resp)+headBytes), resp)
}

// headBytes is room for the head and its commit time appended to an
// encoded response (two tags, a varint and a timestamp) and the restore
// generation (two tags, two varints).
const headBytes = 72

// sendEncoded sends an encoded response with the head as of now appended:
// fields appended to an encoding are read as if they were set in it.
func (s *federationService) sendEncoded(stream irxv1.FederationService_SubscribeServer, data []byte) error {
	head := s.f.state.FeedSequence()
	data = protowire.AppendTag(data, wire.SubscribeResponseHead, protowire.VarintType)
	data = protowire.AppendVarint(data, head)
	if e, err := s.f.state.FeedEntry(head); err == nil && e.GetCommitTime() != nil {
		t, err := proto.Marshal(e.GetCommitTime())
		if err != nil {
			return err
		}
		data = protowire.AppendTag(data, wire.SubscribeResponseHeadTime, protowire.BytesType)
		data = protowire.AppendBytes(data, t)
	}
	if mark := s.f.state.Restored(); mark != nil {
		data = protowire.AppendTag(data, wire.SubscribeResponseGeneration, protowire.VarintType)
		data = protowire.AppendVarint(data, mark.GetGeneration())
		data = protowire.AppendTag(data, wire.SubscribeResponseRestoredFeedSequence, protowire.VarintType)
		data = protowire.AppendVarint(data, mark.GetFeedSequence())
	}
	return stream.SendMsg(&frame{data: data})
}

func (s *federationService) send(stream irxv1.FederationService_SubscribeServer, resp *irxv1.SubscribeResponse) error {
	resp.Head = s.f.state.FeedSequence()
	if e, err := s.f.state.FeedEntry(resp.GetHead()); err == nil {
		resp.HeadTime = e.GetCommitTime()
	}
	mark := s.f.state.Restored()
	resp.Generation, resp.RestoredFeedSequence = mark.GetGeneration(), mark.GetFeedSequence()
	return stream.Send(resp)
}

// caughtUp makes sure this node's feed reaches cursor: a peer that read
// further on another node of the team may reconnect to one that lags, which
// then catches up with the leader first. A cursor beyond the team's feed is
// the peer's mistake.
func (f *Federation) caughtUp(ctx context.Context, cursor uint64) error {
	if cursor <= f.state.FeedSequence() {
		return nil
	}
	if err := f.node.ReadBarrier(ctx, irxv1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); err != nil {
		return err
	}
	if head := f.state.FeedSequence(); cursor > head {
		return status.Errorf(codes.OutOfRange, "cursor %d is beyond our feed's last sequence %d", cursor, head)
	}
	return nil
}

// waitFeed blocks until the feed has an entry after cursor, for at most a
// heartbeat.
func (f *Federation) waitFeed(ctx context.Context, cursor uint64) error {
	wait, cancel := context.WithTimeout(ctx, heartbeat)
	defer cancel()
	for f.state.FeedSequence() <= cursor {
		if err := f.state.WaitApplied(wait, f.state.AppliedIndex()+1); err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return nil
		}
	}
	return nil
}

// waitApplied blocks until this node applies another entry (an
// acknowledgement, say), for at most a heartbeat.
func (f *Federation) waitApplied(ctx context.Context, _ uint64) error {
	wait, cancel := context.WithTimeout(ctx, heartbeat)
	defer cancel()
	if err := f.state.WaitApplied(wait, f.state.AppliedIndex()+1); err != nil && ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return nil
}

// Acknowledge implements irx.v1.FederationService.
func (s *federationService) Acknowledge(ctx context.Context, req *irxv1.AcknowledgeRequest) (*irxv1.AcknowledgeResponse, error) {
	acked, err := s.f.acknowledge(ctx, caller(ctx), req.GetCursor(), req.GetPolicyVersion())
	if err != nil {
		return nil, err
	}
	return &irxv1.AcknowledgeResponse{Acknowledged: acked}, nil
}

// acknowledge commits that peer applied our feed up to cursor: the ledger
// of what it received and the records it now holds. The stream that
// served the entries left their ledger in the journal; without it (another
// node served them, or this one restarted) the walk is recomputed under
// policyVersion.
func (f *Federation) acknowledge(ctx context.Context, peer string, cursor uint64, policyVersion int64) (uint64, error) {
	if err := f.caughtUp(ctx, cursor); err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		st, err := f.state.PeerState(peer)
		if err != nil {
			return 0, status.Errorf(codes.Internal, "peer state: %v", err)
		}
		from := st.GetOutboundAcknowledged()
		f.journals.release(peer, from)
		if cursor <= from {
			return from, nil
		}
		sent, journaled := f.journals.ledger(peer, from, cursor)
		if !journaled {
			if sent, err = f.recompute(peer, from, cursor, policyVersion); err != nil {
				return 0, err
			}
		}
		committed, err := f.proposeAcknowledgement(ctx, peer, from, cursor, sent)
		f.journals.release(peer, committed)
		if err == nil {
			return cursor, nil
		}
		if !isStaleCursor(err) || attempt == 2 {
			return 0, err
		}
	}
}

// proposeAcknowledgement commits an acknowledgement in pieces of bounded
// size, each starting where the previous ended and carrying the withheld
// count and policy version of its own stretch of the feed. It returns the
// cursor the committed pieces reached (from if none was), also when a later
// piece fails.
func (f *Federation) proposeAcknowledgement(ctx context.Context, peer string, from, cursor uint64, sent sentLedger) (uint64, error) {
	entries := sent.entries
	for {
		to, n := cursor, len(entries)
		if n > f.maxLedgerPerCommand {
			// Cut between sequences: a piece acknowledges whole sequences,
			// and the state machine refuses entries at or before a piece's
			// start. One sequence with more entries than a piece holds (a
			// policy change withdrawing thousands of records) goes alone,
			// whole.
			n = f.maxLedgerPerCommand
			for n > 0 && entries[n].GetSequence() == entries[n-1].GetSequence() {
				n--
			}
			if n == 0 {
				for n < len(entries) && entries[n].GetSequence() == entries[0].GetSequence() {
					n++
				}
			}
			if n < len(entries) {
				to = entries[n-1].GetSequence()
			}
		}
		withheld, version := sent.span(from, to)
		cmd := &irxv1.AcknowledgePeerCommand{PeerTeamId: peer, FromCursor: from, Cursor: to, PolicyVersion: version, Entries: entries[:n], Withheld: withheld}
		_, err := f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_AcknowledgePeer{AcknowledgePeer: cmd}})
		if err != nil {
			return from, err
		}
		if to == cursor {
			return to, nil
		}
		from, entries = to, entries[n:]
	}
}

func isStaleCursor(err error) bool {
	return errors.Is(err, errdefs.ErrConflict)
}

// recompute walks (from, to] again to learn what the peer was sent,
// starting under the policy version the peer names for its cursor (the one
// the stream reported) and, like a stream, moving to a newer version at its
// own feed entry.
func (f *Federation) recompute(peer string, from, to uint64, policyVersion int64) (sentLedger, error) {
	compiled, err := f.policy(peer, policyVersion)
	if errors.Is(err, errdefs.ErrNotFound) {
		return sentLedger{}, status.Errorf(codes.InvalidArgument, "policy_version %d: no such version of our policy for %s", policyVersion, peer)
	}
	if err != nil {
		return sentLedger{}, status.Errorf(codes.Internal, "policy for %s: %v", peer, err)
	}
	w := newWalker(f, peer, compiled)
	var sent sentLedger
	collect := func(e *irxv1.FeedEntry, outs []outcome, withheld uint64) bool {
		sent.add(e.GetSequence(), outs, withheld, w.version)
		return true
	}
	for cursor := from; cursor < to; {
		next, err := w.walk(cursor, int(min(to-cursor, 4096)), collect)
		if err != nil {
			return sentLedger{}, err
		}
		if next == cursor {
			break
		}
		cursor = next
	}
	return sent, nil
}

// HandOffIncident implements irx.v1.FederationService: the caller asks us
// to coordinate one of its incidents. We record it under our own ticket,
// naming the caller's as an alternative id.
func (s *federationService) HandOffIncident(ctx context.Context, req *irxv1.HandOffIncidentRequest) (*irxv1.HandOffIncidentResponse, error) {
	from := caller(ctx)
	theirs := req.GetIncident()
	id, err := record.ParseID(theirs.GetId())
	switch {
	case theirs == nil:
		return nil, status.Error(codes.InvalidArgument, "incident is required")
	case err != nil:
		return nil, status.Errorf(codes.InvalidArgument, "incident.id: %v", err)
	case id.Team != from:
		return nil, status.Errorf(codes.PermissionDenied, "%s hands off %s, which is not its own incident", from, theirs.GetId())
	case len(req.GetReason()) > record.MaxWithdrawReasonLength:
		return nil, status.Errorf(codes.InvalidArgument, "reason is longer than %d bytes", record.MaxWithdrawReasonLength)
	}
	// The interceptor answers the ValidationError as INVALID_ARGUMENT naming
	// the fields.
	vs := record.CheckRecordText(theirs, "incident")
	if why := record.CheckText(req.GetReason(), record.FreeText); why != "" {
		vs = append(vs, record.Violation{Field: "reason", Description: why})
	}
	if len(vs) > 0 {
		return nil, &record.ValidationError{What: "request", Violations: vs}
	}
	ours := proto.CloneOf(theirs)
	record.ClearOutputOnly(ours)
	ours.Status = irxv1.Status_STATUS_IN_PROGRESS
	ours.AlternativeIds = append(ours.AlternativeIds, &irxv1.AlternativeId{
		TeamId: from, Ticket: theirs.GetId(), Kind: irxv1.AlternativeIdKind_ALTERNATIVE_ID_KIND_RESPONSE_TEAM,
	})
	ours.History = append(ours.History, &irxv1.HistoryItem{
		Action: irxv1.HistoryAction_HISTORY_ACTION_HAND_OFF, TeamId: from, Time: timestamppb.Now(),
		Description: fmt.Sprintf("coordination handed off by %s (their %s): %s", from, theirs.GetId(), req.GetReason()),
	})
	created, err := committed[*irxv1.Incident](s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
		Incident: ours, RequestId: "handoff/" + theirs.GetId(),
	}}}))
	if err != nil {
		return nil, err
	}
	return &irxv1.HandOffIncidentResponse{Incident: created}, nil
}
