package federation

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// The puller passes the peer's feed items into its Raft entries as the
// peer encoded them: encoding each one again into the command was a large
// part of the receiving leader's work during a catch-up. Only the
// response's own fields and each item's sequence are read here; the
// incidents are decoded once, to be checked (checkedViews), so that the
// replicas need not decode and validate them each.

// rawResponse is a SubscribeResponse whose items are still encoded.
type rawResponse struct {
	items         []rawItem
	cursor        uint64
	head          uint64
	headTime      *timestamppb.Timestamp
	policyVersion int64
	// generation and restoredSeq are the peer's restore generation and
	// the last feed sequence of the backup it was restored from.
	generation, restoredSeq uint64
	// held is what the response costs of the puller's receive budget:
	// its encoding and its parsed items.
	held int64
}

// rawItem is one encoded irx.v1.FeedItem and its sequence.
type rawItem struct {
	sequence uint64
	data     []byte
}

var errMalformedResponse = errors.New("malformed SubscribeResponse")

// parseResponse reads a SubscribeResponse, keeping the items encoded. The
// items' bytes alias b.
func parseResponse(b []byte) (*rawResponse, error) {
	r := &rawResponse{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errMalformedResponse, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == wire.SubscribeResponseItems && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: item: %v", errMalformedResponse, protowire.ParseError(n))
			}
			seq, err := itemSequenceOf(v)
			if err != nil {
				return nil, err
			}
			r.items = append(r.items, rawItem{sequence: seq, data: v})
			b = b[n:]
		case num == wire.SubscribeResponseHeadTime && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: head_time: %v", errMalformedResponse, protowire.ParseError(n))
			}
			r.headTime = &timestamppb.Timestamp{}
			if err := proto.Unmarshal(v, r.headTime); err != nil {
				return nil, fmt.Errorf("%w: head_time: %v", errMalformedResponse, err)
			}
			b = b[n:]
		case (num == wire.SubscribeResponseCursor || num == wire.SubscribeResponseHead || num == wire.SubscribeResponsePolicyVersion ||
			num == wire.SubscribeResponseGeneration || num == wire.SubscribeResponseRestoredFeedSequence) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", errMalformedResponse, num, protowire.ParseError(n))
			}
			switch num {
			case wire.SubscribeResponseCursor:
				r.cursor = v
			case wire.SubscribeResponseHead:
				r.head = v
			case wire.SubscribeResponseGeneration:
				r.generation = v
			case wire.SubscribeResponseRestoredFeedSequence:
				r.restoredSeq = v
			default:
				r.policyVersion = int64(v)
			}
			b = b[n:]
		default:
			// A field a newer peer added: skip it, as proto.Unmarshal would.
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", errMalformedResponse, num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return r, nil
}

// itemSequenceOf reads the sequence of an encoded FeedItem (the last one
// wins, as when decoding).
func itemSequenceOf(b []byte) (uint64, error) {
	var seq uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("%w: item: %v", errMalformedResponse, protowire.ParseError(n))
		}
		b = b[n:]
		if num == wire.FeedItemSequence && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, fmt.Errorf("%w: item sequence: %v", errMalformedResponse, protowire.ParseError(n))
			}
			seq, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, fmt.Errorf("%w: item field %d: %v", errMalformedResponse, num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return seq, nil
}

// checkedViews reports whether every incident the items hold is one the
// replicas may take as it is (record.ValidView). A command proposed with
// that (views_checked) is applied without decoding and validating each
// record again on every replica; one with a record that fails is checked
// there item by item, and the records that fail are refused the usual way.
func checkedViews(items []rawItem, checkText bool) bool {
	for _, it := range items {
		item := &irxv1.FeedItem{}
		if proto.Unmarshal(it.data, item) != nil {
			return false
		}
		if inc := item.GetIncident(); inc != nil && !record.ValidView(inc, checkText) {
			return false
		}
	}
	return true
}

// setItems makes items the command's items field as they are
// (wire.SetEncoded): whoever decodes the command (the state machine, or the
// leader a follower forwards it to) sees ordinary items. It marks the
// command views_checked when checkedViews says so of them.
func setItems(cmd *irxv1.ApplyPeerFeedCommand, items []rawItem) {
	values := make([][]byte, len(items))
	for i, it := range items {
		values[i] = it.data
	}
	wire.SetEncoded(cmd, wire.ApplyPeerFeedItems, values...)
	cmd.ViewsChecked = checkedViews(items, cmd.GetCheckText())
}

// frame is a message the feed codec leaves encoded.
type frame struct{ data []byte }

// feedCodec is gRPC's protobuf codec, except that it hands a *frame the
// message's bytes instead of decoding them, and sends a *frame's bytes
// instead of encoding a message.
type feedCodec struct{ encoding.CodecV2 }

func newFeedCodec() feedCodec {
	return feedCodec{encoding.GetCodecV2(grpcproto.Name)}
}

// Marshal sends a *frame's bytes as they are: the feed server encodes
// its responses as it computes them (serve.go).
func (c feedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.data)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func (c feedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.data = data.Materialize()
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}
