package fsm

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// peerView is a view of cert-z's incident ticket as cert-z sends it to
// this team.
func peerView(ticket uint64) *irxv1.Incident {
	v := benchIncident()
	v.Id = record.ID{Team: "cert-z", Ticket: ticket}.String()
	v.Version = 1
	v.CreateTime = timestamppb.New(t0)
	v.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-z", team}, ReceivedFrom: "cert-z"}
	return v
}

// TestReceivedViewsStoredAsSent: a view of a peer's feed is stored as the
// entry holds it with the receive time spliced in, and the bytes are those
// of the view stamped with the entry's time and encoded again, what a
// replica that encodes it stores, whatever receive time the peer's
// encoding held (times with and without nanoseconds); a view with
// withdrawal fields, which receiving clears, is encoded again.
func TestReceivedViewsStoredAsSent(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-z")
	for _, now := range []*timestamppb.Timestamp{timestamppb.New(t0.Add(7 * 3600e9)), timestamppb.New(t0.Add(7*3600e9 + 123))} {
		receiveAndCompare(t, now)
	}
}

func receiveAndCompare(t *testing.T, now *timestamppb.Timestamp) {
	h := newHarness(t)
	h.addPeer("cert-z")
	plain := peerView(1)
	stale := peerView(2)
	stale.Provenance.ReceiveTime = &timestamppb.Timestamp{Seconds: 12345, Nanos: 678}
	withdrawn := peerView(3)
	withdrawn.WithdrawReason = "not ours to clear"
	transferred := peerView(4)
	transferred.Provenance.TermsVersion = 3 // a provenance field after the receive time
	views := []*irxv1.Incident{plain, stale, withdrawn, transferred}
	items := make([]*irxv1.FeedItem, len(views))
	for i, v := range views {
		items[i] = viewItem(uint64(i+1), proto.CloneOf(v))
	}
	res := h.apply(h.command(&irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: "cert-z", Cursor: uint64(len(views)), Head: uint64(len(views)), Items: items,
	}}}))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for i, v := range views {
		id, _ := record.ParseID(v.GetId())
		stored, closer, err := h.f.db.Get(versionKey(id, 1))
		if err != nil {
			t.Fatalf("%s: %v", v.GetId(), err)
		}
		data := bytes.Clone(stored)
		_ = closer.Close()
		got := &irxv1.Incident{}
		if err := proto.Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		want := proto.CloneOf(v)
		want.Provenance.ReceiveTime, want.WithdrawReason = now, ""
		if !proto.Equal(got, want) {
			t.Errorf("view %d stored as %v, want %v", i, got, want)
		}
		if encoded, err := marshal.Marshal(want); err != nil || !bytes.Equal(data, encoded) {
			t.Errorf("view %d: stored bytes are not the stamped view's encoding (%v)", i, err)
		}
	}
	// The splice is what the state machine stored: a regression to
	// encoding every view again would pass the checks above.
	if withReceiveTime(mustMarshal(t, plain), now) == nil {
		t.Error("a plain view is not spliced")
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := marshal.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzFeedViews: whatever feedViews returns for an entry is, item by item,
// the incident the decoder reads there, and the receive time spliced into
// it decodes as the view stamped (byte for byte its encoding when the view
// came deterministically encoded): a view stored as the entry holds it is
// the view the state machine checked.
func FuzzFeedViews(f *testing.F) {
	cmd := &irxv1.Command{ProposeTime: timestamppb.New(t0), Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: "cert-z", Cursor: 3, Items: []*irxv1.FeedItem{viewItem(1, peerView(1)), withdrawalItem(2, "cert-z:1", 1, irxv1.WithdrawalReason_WITHDRAWAL_REASON_UNSPECIFIED), viewItem(3, peerView(2))},
	}}}
	b, err := proto.Marshal(cmd)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	// An item holding its incident twice, which the decoder merges.
	item := protowire.AppendTag(nil, wire.FeedItemIncident, protowire.BytesType)
	item = protowire.AppendBytes(item, []byte{0x0a, 0x08, 'c', 'e', 'r', 't', '-', 'z', ':', '9'})
	item = protowire.AppendTag(item, wire.FeedItemIncident, protowire.BytesType)
	item = protowire.AppendBytes(item, []byte{0x10, 0x02})
	feed := protowire.AppendTag(nil, wire.ApplyPeerFeedItems, protowire.BytesType)
	feed = protowire.AppendBytes(feed, item)
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, wire.CommandApplyFeed, protowire.BytesType), feed))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cmd irxv1.Command
		if proto.Unmarshal(b, &cmd) != nil {
			return
		}
		views := feedViews(&cmd, b)
		if views == nil {
			return
		}
		items := cmd.GetApplyPeerFeed().GetItems()
		if len(views) != len(items) {
			t.Fatalf("%d views for %d items", len(views), len(items))
		}
		for i, v := range views {
			inc := items[i].GetIncident()
			if v == nil || inc == nil {
				continue
			}
			var got irxv1.Incident
			if err := proto.Unmarshal(v, &got); err != nil || !proto.Equal(&got, inc) {
				t.Fatalf("item %d: view %v (%v), decoded %v", i, &got, err, inc)
			}
			now := timestamppb.New(t0.Add(5))
			spliced := withReceiveTime(v, now)
			if spliced == nil {
				continue
			}
			stamped := proto.CloneOf(inc)
			stamped.Provenance.ReceiveTime = now
			var patched irxv1.Incident
			if err := proto.Unmarshal(spliced, &patched); err != nil || !proto.Equal(&patched, stamped) {
				t.Fatalf("item %d: with the receive time %v (%v), want %v", i, &patched, err, stamped)
			}
			// From a deterministic encoding, the bytes a replica that
			// encodes the stamped view again stores.
			if canonical, err := marshal.Marshal(inc); err == nil && bytes.Equal(v, canonical) {
				if again, err := marshal.Marshal(stamped); err != nil || !bytes.Equal(spliced, again) {
					t.Fatalf("item %d: spliced %x, encoded again %x (%v)", i, spliced, again, err)
				}
			}
		}
	})
}
