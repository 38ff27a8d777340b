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
// entry holds it with the receive time appended, and reads back as the
// view stamped with the entry's time, whatever receive time (with or
// without nanoseconds) the peer's encoding held; a view with withdrawal
// fields, which receiving clears, is encoded again.
func TestReceivedViewsStoredAsSent(t *testing.T) {
	h := newHarness(t)
	h.addPeer("cert-z")
	now := timestamppb.New(t0.Add(7 * 3600e9)) // no nanoseconds: the patch must still clear the sender's
	plain := peerView(1)
	stale := peerView(2)
	stale.Provenance.ReceiveTime = &timestamppb.Timestamp{Seconds: 12345, Nanos: 678}
	withdrawn := peerView(3)
	withdrawn.WithdrawReason = "not ours to clear"
	views := []*irxv1.Incident{plain, stale, withdrawn}
	items := make([]*irxv1.FeedItem, len(views))
	for i, v := range views {
		items[i] = viewItem(uint64(i+1), proto.CloneOf(v))
	}
	res := h.apply(h.command(&irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: "cert-z", Cursor: 3, Head: 3, Items: items,
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
		sent, _ := proto.Marshal(v)
		if asSent := bytes.HasPrefix(data, sent); asSent != (v != withdrawn) {
			t.Errorf("view %d: stored as the peer sent it: %v", i, asSent)
		}
	}
}

// FuzzFeedViews: whatever feedViews returns for an entry is, item by item,
// the incident the decoder reads there: a view stored as the entry holds
// it is the view the state machine checked.
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
			now := timestamppb.New(t0)
			stamped := proto.CloneOf(inc)
			if stamped.Provenance == nil {
				stamped.Provenance = &irxv1.Provenance{}
			}
			stamped.Provenance.ReceiveTime = now
			var patched irxv1.Incident
			if err := proto.Unmarshal(withReceiveTime(v, now), &patched); err != nil || !proto.Equal(&patched, stamped) {
				t.Fatalf("item %d: with the receive time %v (%v), want %v", i, &patched, err, stamped)
			}
		}
	})
}
