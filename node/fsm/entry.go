package fsm

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// entry is a decoded log entry: its commands, in order, and the leader's
// clock when it proposed them.
type entry struct {
	proposeTime *timestamppb.Timestamp
	// batch: the commands came in a CommandBatch, and the entry's result
	// holds one result per command.
	batch    bool
	commands []entryCommand
}

// entryCommand is one command of an entry: decoded, or a create the leader
// evaluated, whose incident stays encoded.
type entryCommand struct {
	cmd       *irxv1.Command
	evaluated *evaluatedCreate
	actor     []byte // the encoded OperatorAction of an evaluated create; a decoded command holds its own
	// views: for a peer's feed, each item's incident as the entry holds
	// it (nil where none, or not usable as it is; see feedViews).
	views [][]byte
	// partial: for a peer's feed its proposer checked, which items'
	// incidents hold only what readIndexed reads (parseCheckedFeed).
	partial []bool
}

// evaluatedCreate is a CreateIncidentCommand with evaluated set.
type evaluatedCreate struct {
	incident  []byte // version 1 as stored but for its id, encoded
	requestID string
	fresh     bool
	digest    []byte // CreateIncidentCommand.request_digest
}

// decodeEntry decodes the command a log entry carries.
func decodeEntry(l *raft.Log) (*entry, error) {
	e, ok := parseEntry(l.Data)
	if !ok {
		cmd := &irxv1.Command{}
		if err := proto.Unmarshal(l.Data, cmd); err != nil {
			return nil, fmt.Errorf("%w at index %d: %v", ErrInvalidCommand, l.Index, err)
		}
		e = &entry{proposeTime: cmd.GetProposeTime()}
		if b := cmd.GetBatch(); b != nil {
			e.batch = true
			for _, sub := range b.GetCommands() {
				e.commands = append(e.commands, entryCommand{cmd: sub})
			}
		} else {
			e.commands = []entryCommand{{cmd: cmd, views: feedViews(cmd, l.Data)}}
		}
	}
	if !e.proposeTime.IsValid() {
		return nil, fmt.Errorf("%w at index %d: propose_time missing or invalid", ErrInvalidCommand, l.Index)
	}
	return e, nil
}

// parseEntry reads the entries the leader's group commit writes (a
// Command with its propose time and either a create or a batch) so that
// evaluated creates keep their incident encoded; every other command in a
// batch is decoded with proto.Unmarshal. For any other shape (another
// kind, a field twice, a field it does not know) it returns false, and the
// entry is decoded whole: evaluated creates then take the slower path to
// the same result.
func parseEntry(b []byte) (*entry, bool) {
	e := &entry{}
	var kind protowire.Number
	var body, actor []byte
	for len(b) > 0 {
		num, v, rest, ok := wire.NextBytesField(b)
		if !ok {
			return nil, false
		}
		b = rest
		switch {
		case num == wire.CommandProposeTime && e.proposeTime == nil:
			e.proposeTime = &timestamppb.Timestamp{}
			if proto.Unmarshal(v, e.proposeTime) != nil {
				return nil, false
			}
		case (num == wire.CommandCreate || num == wire.CommandBatch || num == wire.CommandApplyFeed) && kind == 0:
			kind, body = num, v
		case num == wire.CommandActor && actor == nil:
			actor = v
		default:
			return nil, false
		}
	}
	switch kind {
	case wire.CommandCreate:
		c, ok := parseEvaluated(body)
		if !ok {
			return nil, false
		}
		a, ok := parseActor(actor)
		if !ok {
			return nil, false
		}
		e.commands = []entryCommand{{evaluated: c, actor: a}}
	case wire.CommandApplyFeed:
		c, ok := parseCheckedFeed(body)
		if !ok || actor != nil {
			return nil, false
		}
		c.cmd.ProposeTime = e.proposeTime
		e.commands = []entryCommand{c}
	case wire.CommandBatch:
		if actor != nil {
			return nil, false
		}
		e.batch = true
		for len(body) > 0 {
			num, v, rest, ok := wire.NextBytesField(body)
			if !ok || num != wire.BatchCommands {
				return nil, false
			}
			body = rest
			cmd, ok := parseBatchCommand(v)
			if !ok {
				return nil, false
			}
			e.commands = append(e.commands, cmd)
		}
	default:
		return nil, false
	}
	return e, true
}

// parseBatchCommand reads one command of a batch: an evaluated create
// stays encoded, so do the incidents of a checked peer feed
// (parseCheckedFeed); anything else is decoded.
func parseBatchCommand(b []byte) (entryCommand, bool) {
	if create, actor, ok := createFields(b); ok {
		if c, ok := parseEvaluated(create); ok {
			if a, ok := parseActor(actor); ok {
				return entryCommand{evaluated: c, actor: a}, true
			}
		}
	}
	if num, body, rest, ok := wire.NextBytesField(b); ok && num == wire.CommandApplyFeed && len(rest) == 0 {
		if c, ok := parseCheckedFeed(body); ok {
			return c, true
		}
	}
	cmd := &irxv1.Command{}
	if proto.Unmarshal(b, cmd) != nil {
		return entryCommand{}, false
	}
	return entryCommand{cmd: cmd, views: feedViews(cmd, b)}, true
}

// feedViews returns, for cmd decoded from b and holding a peer's feed,
// each item's incident as b encodes it, so that a received view can be
// stored as the peer sent it, its receive time appended
// (withReceiveTime), instead of being encoded again. An item without an
// incident, or with the field more than once (decoding merges them), has
// nil; for any other command, or a shape it does not expect, feedViews
// returns nil.
func feedViews(cmd *irxv1.Command, b []byte) [][]byte {
	n := len(cmd.GetApplyPeerFeed().GetItems())
	if n == 0 {
		return nil
	}
	body, ok := onlyOnce(b, wire.CommandApplyFeed)
	if !ok {
		return nil
	}
	_, items, _, ok := feedFields(body)
	if !ok || len(items) != n {
		return nil
	}
	views := make([][]byte, n)
	for i, item := range items {
		views[i], _ = onlyOnce(item, wire.FeedItemIncident)
	}
	return views
}

// feedFields splits the body of a peer's feed command into its items, as
// encoded, and its other fields (shell, in order), and reads whether it
// says views_checked (the last value wins, as when decoding). It returns
// false for malformed bytes and for an item that is not length-delimited,
// which the decoder refuses too.
func feedFields(body []byte) (shell []byte, items [][]byte, checked, ok bool) {
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, false, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, nil, false, false
		}
		switch {
		case num == wire.ApplyPeerFeedItems:
			v, _, ok := wire.BytesValue(typ, b[n:])
			if !ok {
				return nil, nil, false, false
			}
			items = append(items, v)
		case num == wire.ApplyPeerFeedViewsChecked && typ == protowire.VarintType:
			v, _ := protowire.ConsumeVarint(b[n:])
			checked = v != 0
			fallthrough
		default:
			shell = append(shell, b[:n+m]...)
		}
		b = b[n+m:]
	}
	return shell, items, checked, true
}

// parseCheckedFeed reads a peer's feed command (the body of
// Command.apply_peer_feed) whose proposer checked every incident of its
// items (views_checked): everything but those incidents is decoded, and of
// each incident only what readIndexed reads, the view itself kept as the
// entry holds it (partial). Decoding and validating every record of a
// catch-up on every replica was most of what the replicas spent on it. An
// incident readIndexed does not read is decoded whole (not partial), as
// is an item with its incident more than once (no view: decoding merges
// them). It returns false for a command without views_checked and for a
// shape it does not expect (an item that holds another kind besides its
// incident); the entry is then decoded whole.
func parseCheckedFeed(body []byte) (entryCommand, bool) {
	shell, items, checked, ok := feedFields(body)
	if !ok || !checked {
		return entryCommand{}, false
	}
	feed := &irxv1.ApplyPeerFeedCommand{}
	if proto.Unmarshal(shell, feed) != nil {
		return entryCommand{}, false
	}
	feed.Items = make([]*irxv1.FeedItem, len(items))
	c := entryCommand{
		cmd:     &irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: feed}},
		views:   make([][]byte, len(items)),
		partial: make([]bool, len(items)),
	}
	for i, b := range items {
		item := &irxv1.FeedItem{}
		tag, start, end, once := fieldSpan(b, wire.FeedItemIncident)
		if !once {
			if proto.Unmarshal(b, item) != nil {
				return entryCommand{}, false
			}
			feed.Items[i] = item
			continue
		}
		// A message's encoding is its fields one after the other: the
		// item is what is before its incident merged with what is after.
		if proto.Unmarshal(b[:tag], item) != nil || (proto.UnmarshalOptions{Merge: true}).Unmarshal(b[end:], item) != nil || item.Kind != nil {
			return entryCommand{}, false
		}
		view := b[start:end]
		inc, ok := readIndexed(view)
		if !ok {
			inc = &irxv1.Incident{}
			if proto.Unmarshal(view, inc) != nil {
				return entryCommand{}, false
			}
		}
		item.Kind = &irxv1.FeedItem_Incident{Incident: inc}
		feed.Items[i], c.views[i], c.partial[i] = item, view, ok
	}
	return c, true
}

// onlyOnce returns the value of the length-delimited field num of the
// message b, when b holds it exactly once.
func onlyOnce(b []byte, num protowire.Number) ([]byte, bool) {
	_, start, end, ok := fieldSpan(b, num)
	if !ok {
		return nil, false
	}
	return b[start:end], true
}

// withReceiveTime returns view, an encoded incident, with its provenance's
// receive time replaced by t, spliced in where a deterministic encoding
// puts it (fields in number order, zeros left out): when view is the
// deterministic encoding of an incident, as a peer's feed sends it, the
// result is, byte for byte, the deterministic encoding of the incident
// stamped with t, which a replica that decodes and encodes the view again
// stores. It returns nil for a view without a provenance, or with the
// provenance or its receive time more than once.
func withReceiveTime(view []byte, t *timestamppb.Timestamp) []byte {
	provTag, provStart, provEnd, ok := fieldSpan(view, wire.IncidentProvenance)
	if !ok {
		return nil
	}
	prov := view[provStart:provEnd]
	cut, cutEnd := len(prov), len(prov)
	for off := 0; off < len(prov); {
		num, typ, n := protowire.ConsumeTag(prov[off:])
		if n < 0 {
			return nil
		}
		m := protowire.ConsumeFieldValue(num, typ, prov[off+n:])
		if m < 0 {
			return nil
		}
		switch {
		case num == wire.ProvenanceReceiveTime:
			if cutEnd != cut {
				return nil // twice
			}
			cut, cutEnd = off, off+n+m
		case num > wire.ProvenanceReceiveTime && cut == len(prov):
			cut, cutEnd = off, off
		}
		off += n + m
	}
	var ts [2 * (1 + binary.MaxVarintLen64)]byte
	tb := ts[:0]
	if sec := t.GetSeconds(); sec != 0 {
		tb = protowire.AppendTag(tb, wire.TimestampSeconds, protowire.VarintType)
		tb = protowire.AppendVarint(tb, uint64(sec))
	}
	if nanos := t.GetNanos(); nanos != 0 {
		tb = protowire.AppendTag(tb, wire.TimestampNanos, protowire.VarintType)
		tb = protowire.AppendVarint(tb, uint64(int64(nanos)))
	}
	rtLen := protowire.SizeTag(wire.ProvenanceReceiveTime) + protowire.SizeBytes(len(tb))
	provLen := len(prov) - (cutEnd - cut) + rtLen
	out := make([]byte, 0, len(view)+rtLen+binary.MaxVarintLen64)
	out = append(out, view[:provTag]...)
	out = protowire.AppendTag(out, wire.IncidentProvenance, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(provLen))
	out = append(out, prov[:cut]...)
	out = protowire.AppendTag(out, wire.ProvenanceReceiveTime, protowire.BytesType)
	out = protowire.AppendBytes(out, tb)
	out = append(out, prov[cutEnd:]...)
	return append(out, view[provEnd:]...)
}

// fieldSpan finds the length-delimited field num, which the message b
// must hold exactly once: where its tag starts, and its value's bounds.
func fieldSpan(b []byte, num protowire.Number) (tag, start, end int, ok bool) {
	found := false
	for off := 0; off < len(b); {
		n, typ, l := protowire.ConsumeTag(b[off:])
		if l < 0 {
			return 0, 0, 0, false
		}
		m := protowire.ConsumeFieldValue(n, typ, b[off+l:])
		if m < 0 {
			return 0, 0, 0, false
		}
		if n == num {
			if found || typ != protowire.BytesType {
				return 0, 0, 0, false
			}
			_, k := protowire.ConsumeVarint(b[off+l:])
			tag, start, end, found = off, off+l+k, off+l+m, true
		}
		off += l + m
	}
	return tag, start, end, found
}

// createFields splits a command that holds a create and, optionally, its
// actor, each once and nothing else.
func createFields(b []byte) (create, actor []byte, ok bool) {
	for len(b) > 0 {
		num, v, rest, ok := wire.NextBytesField(b)
		if !ok {
			return nil, nil, false
		}
		b = rest
		switch {
		case num == wire.CommandCreate && create == nil:
			create = v
		case num == wire.CommandActor && actor == nil:
			actor = v
		default:
			return nil, nil, false
		}
	}
	return create, actor, create != nil
}

// parseActor checks an evaluated create's encoded actor, which is stored
// as it is with the fields of the action appended (recordAction): it must
// be well-formed, with valid UTF-8 in its strings, as proto.Unmarshal
// wants. Nothing is decoded. nil is no actor.
func parseActor(b []byte) ([]byte, bool) {
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, false
		}
		rest = rest[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(rest)
			if n < 0 || (num <= 4 && !utf8.Valid(v)) {
				return nil, false
			}
			rest = rest[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, rest); n < 0 {
			return nil, false
		}
		rest = rest[n:]
	}
	return b, true
}

// parseEvaluated reads a CreateIncidentCommand with evaluated set, each
// field at most once and no other field; anything else returns false.
func parseEvaluated(b []byte) (*evaluatedCreate, bool) {
	c := &evaluatedCreate{}
	var seen [wire.CreateDigest + 1]bool
	evaluated := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < wire.CreateIncident || num > wire.CreateDigest || seen[num] {
			return nil, false
		}
		seen[num] = true
		b = b[n:]
		switch num {
		case wire.CreateIncident, wire.CreateRequestID, wire.CreateDigest:
			var v []byte
			var ok bool
			if v, b, ok = wire.BytesValue(typ, b); !ok {
				return nil, false
			}
			switch num {
			case wire.CreateIncident:
				c.incident = v
			case wire.CreateDigest:
				c.digest = v
			default:
				if !utf8.Valid(v) { // proto.Unmarshal refuses it too
					return nil, false
				}
				c.requestID = string(v)
			}
		default:
			var v uint64
			var ok bool
			if v, b, ok = wire.VarintValue(typ, b); !ok {
				return nil, false
			}
			if num == wire.CreateFresh {
				c.fresh = v != 0
			} else {
				evaluated = v != 0
			}
		}
	}
	return c, evaluated && seen[wire.CreateIncident]
}

// EvaluatedCreate is the command that stores incident, the encoding
// CompleteCreate made of c's incident, as the leader evaluated it. The
// encoding goes in as it is (as the command's unknown field, which the
// encoder writes out verbatim), so it is not encoded a second time; a
// decoder sees an ordinary incident field.
func EvaluatedCreate(c *irxv1.CreateIncidentCommand, incident []byte) *irxv1.Command {
	out := &irxv1.CreateIncidentCommand{
		RequestId: c.GetRequestId(), FreshRequestId: c.GetFreshRequestId(), RequestDigest: c.GetRequestDigest(), Evaluated: true,
	}
	wire.SetEncoded(out, wire.CreateIncident, incident)
	return &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: out}}
}
