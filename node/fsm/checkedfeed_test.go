package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Three replicas apply the same peer feeds: one from a leader that does
// not check the views (every replica decodes and validates them), one
// from a leader that does (views_checked, where the leader found every
// record valid: the replica reads of each only what it checks and
// indexes), and one that decodes the checking leader's entries whole (as
// a replica does for an entry it does not parse, and as one that predates
// the field does). All three end in the same state: records stored,
// refused and counted alike, feed entries, indexes, correlation and
// statistics.
func TestCheckedFeedsStoreWhatReplicasWould(t *testing.T) {
	checkedEntries := 0
	rapid.Check(t, func(rt *rapid.T) {
		plain, checked, whole := newHarness(t), newHarness(t), newHarness(t)
		for _, h := range []*harness{plain, checked, whole} {
			h.addPeer("cert-z")
		}
		var cursor uint64
		versions := map[uint64]int64{}
		for e := range rapid.IntRange(1, 5).Draw(rt, "entries") {
			now := timestamppb.New(t0.Add(time.Duration(e+1) * time.Hour))
			feed := &irxv1.ApplyPeerFeedCommand{PeerTeamId: "cert-z", FromCursor: cursor, CheckText: true}
			for range rapid.IntRange(1, 6).Draw(rt, "items") {
				cursor++
				ticket := rapid.Uint64Range(1, 4).Draw(rt, "ticket")
				if versions[ticket] > 0 && rapid.IntRange(0, 5).Draw(rt, "withdrawal") == 0 {
					feed.Items = append(feed.Items, withdrawalItem(cursor, record.ID{Team: "cert-z", Ticket: ticket}.String(), versions[ticket],
						irxv1.WithdrawalReason_WITHDRAWAL_REASON_UNSPECIFIED))
					continue
				}
				versions[ticket] += int64(rapid.IntRange(0, 1).Draw(rt, "new version")) // 0: a repeat
				feed.Items = append(feed.Items, viewItem(cursor, drawPeerView(rt, ticket, max(versions[ticket], 1))))
			}
			feed.Cursor, feed.Head = cursor, cursor
			plainCmd := &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: feed}}
			checkedFeed := proto.CloneOf(feed)
			checkedFeed.ViewsChecked = viewsValid(checkedFeed)
			checkedCmd := &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: checkedFeed}}
			if rapid.Bool().Draw(rt, "in a batch") {
				checkedCmd = &irxv1.Command{ProposeTime: now, Kind: &irxv1.Command_Batch{Batch: &irxv1.CommandBatch{Commands: []*irxv1.Command{{Kind: checkedCmd.Kind}}}}}
			}
			plain.apply(plain.command(plainCmd))
			l := checked.command(checkedCmd)
			if parsed, ok := parseEntry(l.Data); checkedFeed.ViewsChecked {
				if !ok || parsed.commands[0].partial == nil {
					rt.Fatal("parseEntry did not read the checked feed")
				}
				checkedEntries++
			}
			checked.apply(l)
			// A field parseEntry does not know makes it decode the entry whole.
			w := whole.entry(raft.LogCommand, protowire.AppendVarint(protowire.AppendTag(bytes.Clone(l.Data), 999, protowire.VarintType), 1))
			whole.apply(w)
		}
		p, c, w := contentDigest(t, plain.f), contentDigest(t, checked.f), contentDigest(t, whole.f)
		if p != c || p != w {
			rt.Fatalf("states differ: plain %x, checked %x, decoded whole %x", p[:6], c[:6], w[:6])
		}
	})
	if checkedEntries == 0 {
		t.Error("no entry was a checked feed")
	}
}

// drawPeerView is cert-z's view of its incident ticket at version, with
// random content: valid or not, with a receive time of its own or a
// withdrawal's fields (which receiving clears) at times.
func drawPeerView(t *rapid.T, ticket uint64, version int64) *irxv1.Incident {
	v := drawValidIncident(t)
	if v.Tlp == irxv1.Tlp_TLP_UNSPECIFIED && rapid.IntRange(0, 3).Draw(t, "keep invalid") > 0 {
		v.Tlp = irxv1.Tlp_TLP_AMBER
	}
	v.Id = record.ID{Team: "cert-z", Ticket: ticket}.String()
	v.Version = version
	v.CreateTime = timestamppb.New(t0)
	v.GenerationTime = timestamppb.New(t0.Add(time.Duration(version) * time.Minute))
	v.Provenance = &irxv1.Provenance{OriginTeam: "cert-z", Path: []string{"cert-z", team}, ReceivedFrom: "cert-z"}
	if rapid.IntRange(0, 4).Draw(t, "stale receive time") == 0 {
		v.Provenance.ReceiveTime = timestamppb.New(t0.Add(-time.Hour))
	}
	if rapid.IntRange(0, 6).Draw(t, "withdrawn") == 0 {
		v.WithdrawReason = "withdrawn at the origin"
	}
	if rapid.IntRange(0, 6).Draw(t, "bidi text") == 0 {
		v.Descriptions[0].Text = "payload \u202e gnp.exe"
	}
	return v
}

// viewsValid is what a checking leader (federation's puller) says of a
// feed: every incident one replicas may take as it is.
func viewsValid(feed *irxv1.ApplyPeerFeedCommand) bool {
	for _, item := range feed.GetItems() {
		if inc := item.GetIncident(); inc != nil && !record.ValidView(inc, feed.GetCheckText()) {
			return false
		}
	}
	return true
}
