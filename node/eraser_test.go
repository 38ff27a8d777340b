package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/atrest"
)

// startErasing starts a one-node team of "dev" in dir that erases within
// the given bound, and waits until it leads.
func startErasing(t *testing.T, dir string, within time.Duration) *Node {
	t.Helper()
	n, err := Start(Config{
		DataDir: dir, APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", EraseWithin: within,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	waitFor(t, "leadership", func() error {
		if !n.IsLeader() {
			return fmt.Errorf("not leading")
		}
		return nil
	})
	return n
}

// waitFor polls cond for up to a minute: the bound of the tests' erasures
// is a few seconds, and a busy machine may take several times that.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func propose(t *testing.T, n *Node, cmd *irxv1.Command) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Propose(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("propose %T: %v", cmd.GetKind(), err)
	}
}

// canaryView is the view of incident cert-b:ticket that team cert-b sends
// "dev", with canaries in its free text.
func canaryView(ticket uint64, canary string) *irxv1.Incident {
	t0 := timestamppb.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	return &irxv1.Incident{
		Id: fmt.Sprintf("cert-b:%d", ticket), Version: 1,
		Tlp: irxv1.Tlp_TLP_GREEN, Status: irxv1.Status_STATUS_NEW, Restriction: irxv1.Restriction_RESTRICTION_PARTNER,
		Purpose:  irxv1.Purpose_PURPOSE_REPORTING,
		Taxonomy: &irxv1.Taxonomy{Class: "intrusions", Type: "system-compromise"},
		VictimHosts: []*irxv1.Host{{
			Hostname: canary + "-host.example.org", Addresses: []string{"192.0.2.10"},
		}},
		Descriptions: []*irxv1.Description{{Lang: "en", Text: "beaconing seen by " + canary + "-desc"}},
		ReportTime:   t0, CreateTime: t0,
		Provenance: &irxv1.Provenance{OriginTeam: "cert-b", Path: []string{"dev"}, ReceivedFrom: "cert-b"},
	}
}

// peerFeed is one batch of cert-b's feed, from cursor from to to.
func peerFeed(from, to uint64, items ...*irxv1.FeedItem) *irxv1.Command {
	return &irxv1.Command{Kind: &irxv1.Command_ApplyPeerFeed{ApplyPeerFeed: &irxv1.ApplyPeerFeedCommand{
		PeerTeamId: "cert-b", FromCursor: from, Cursor: to, Head: to, Items: items,
	}}}
}

func viewItem(seq uint64, v *irxv1.Incident) *irxv1.FeedItem {
	return &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Incident{Incident: v}}
}

func withdrawalItem(seq, ticket uint64) *irxv1.FeedItem {
	return &irxv1.FeedItem{Sequence: seq, Kind: &irxv1.FeedItem_Withdrawal{Withdrawal: &irxv1.IncidentWithdrawal{
		IncidentId: fmt.Sprintf("cert-b:%d", ticket), Version: 1, Reason: irxv1.WithdrawalReason_WITHDRAWAL_REASON_ORIGIN,
	}}}
}

func addPeerB(t *testing.T, n *Node) {
	propose(t, n, &irxv1.Command{Kind: &irxv1.Command_PutPeer{PutPeer: &irxv1.PutPeerCommand{
		Peer: &irxv1.Peer{TeamId: "cert-b", CaCertificatePem: "pinned"}, Create: true,
	}}})
}

func canaries(c string) []string { return []string{c + "-host", c + "-desc"} }

// counter reads one of the node's own metrics.
func counter(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	families, err := n.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func scanDir(t *testing.T, dir string, needles ...string) []atrest.Finding {
	t.Helper()
	found, err := atrest.Scan(dir, needles...)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEraserErasesWithdrawnCopyFromEveryFile: a peer's view full of
// canaries is in the Raft log, a Raft snapshot and the state machine's
// files; after the peer withdraws it, no file of the data directory holds
// them, while another record's values stay, and the node restarts on
// what is left.
func TestEraserErasesWithdrawnCopyFromEveryFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startErasing(t, dir, time.Second)
	addPeerB(t, n)
	propose(t, n, peerFeed(0, 2, viewItem(1, canaryView(1, "GONE")), viewItem(2, canaryView(2, "KEEP"))))
	// A snapshot from before the withdrawal holds the view too, and flushes
	// the state machine's memtable to sstables.
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // more entries after the view
		propose(t, n, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
			Incident:  &irxv1.Incident{Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}},
			RequestId: fmt.Sprintf("r%d", i),
		}}})
	}
	// The snapshot's flush of the state runs in the background.
	waitFor(t, "before the withdrawal, the canaries in the raft log, the state's tables and a snapshot", func() error {
		found := scanDir(t, dir, canaries("GONE")...)
		where := map[string]bool{}
		for _, f := range found {
			where[strings.SplitN(f.File, string(filepath.Separator), 2)[0]] = true
		}
		if !where["raft"] || !where["state"] || !where["snapshots"] {
			return fmt.Errorf("found in %v", found)
		}
		return nil
	})
	if passes := counter(t, n, "irx_erasure_passes_total"); passes != 0 {
		t.Fatalf("%v erasure passes with nothing removed", passes)
	}

	propose(t, n, peerFeed(2, 3, withdrawalItem(3, 1)))
	withdrawnAt := n.state.AppliedIndex()
	// Once a pass is done, the values are gone: not later, when pebble's
	// own compactions or raft's log compaction might have removed them.
	waitFor(t, "an erasure pass", func() error {
		if counter(t, n, "irx_erasure_passes_total") < 1 || counter(t, n, "irx_erasure_pending") != 0 {
			return fmt.Errorf("passes %v, pending %v", counter(t, n, "irx_erasure_passes_total"), counter(t, n, "irx_erasure_pending"))
		}
		return nil
	})
	if found := scanDir(t, dir, canaries("GONE")...); len(found) > 0 {
		t.Fatalf("after the pass, still readable: %v", found)
	}
	// Truncated through the withdrawal, and not emptied (see
	// keepLogFromEmptying).
	if first, _ := n.logs.FirstIndex(); first <= withdrawnAt {
		t.Errorf("the raft log starts at %d, not after the withdrawal at %d", first, withdrawnAt)
	}
	if len(scanDir(t, dir, canaries("KEEP")...)) == 0 {
		t.Error("the kept record's values are in no file")
	}
	if _, err := os.Stat(filepath.Join(dir, "state.erase-owed")); !os.IsNotExist(err) {
		t.Errorf("erasure marker after the pass: %v", err)
	}

	// What is left is a sound Raft state: the node restarts and serves.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startErasing(t, dir, time.Second)
	if _, err := n.state.Get("cert-b:2", 0); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	propose(t, n, &irxv1.Command{Kind: &irxv1.Command_CreateIncident{CreateIncident: &irxv1.CreateIncidentCommand{
		Incident: &irxv1.Incident{Tlp: irxv1.Tlp_TLP_GREEN, Taxonomy: &irxv1.Taxonomy{Class: "test", Type: "test"}},
	}}})
}

// TestEraserBatchesBurstAndIdlesOtherwise: records received and created
// cost no pass; a burst of withdrawals costs one.
func TestEraserBatchesBurstAndIdlesOtherwise(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// Half the bound (the batching window) is ample for the burst below.
	n := startErasing(t, dir, 10*time.Second)
	addPeerB(t, n)
	const records = 12
	var items []*irxv1.FeedItem
	for i := range uint64(records) {
		items = append(items, viewItem(i+1, canaryView(i+1, fmt.Sprintf("C%d", i+1))))
	}
	propose(t, n, peerFeed(0, records, items...))
	// A pass is due half the bound after a removal; wait a little longer.
	time.Sleep(6 * time.Second)
	if passes := counter(t, n, "irx_erasure_passes_total"); passes != 0 {
		t.Fatalf("%v erasure passes with nothing removed", passes)
	}
	if snaps, _ := os.ReadDir(filepath.Join(dir, "snapshots", "snapshots")); len(snaps) != 0 {
		t.Fatalf("%d snapshots taken with nothing removed", len(snaps))
	}

	// Each withdrawal is an entry of its own.
	for i := range uint64(records) {
		propose(t, n, peerFeed(records+i, records+i+1, withdrawalItem(records+i+1, i+1)))
	}
	var needles []string
	for i := range records {
		needles = append(needles, canaries(fmt.Sprintf("C%d", i+1))...)
	}
	waitFor(t, "every withdrawal erased", func() error {
		if counter(t, n, "irx_erasure_passes_total") < 1 || counter(t, n, "irx_erasure_pending") != 0 {
			return fmt.Errorf("passes %v, pending %v", counter(t, n, "irx_erasure_passes_total"), counter(t, n, "irx_erasure_pending"))
		}
		return nil
	})
	if found := scanDir(t, dir, needles...); len(found) > 0 {
		t.Fatalf("after the pass, still readable: %v", found)
	}
	if passes := counter(t, n, "irx_erasure_passes_total"); passes != 1 {
		t.Errorf("%v erasure passes for one burst of %d withdrawals, want 1", passes, records)
	}
}

func TestSnapshotIndexFromDirectoryName(t *testing.T) {
	for name, want := range map[string]uint64{"3-1207-1733500000000": 1207, "3-1207-1733500000000.tmp": 1207} {
		if got, ok := snapshotIndex(name); !ok || got != want {
			t.Errorf("snapshotIndex(%q) = %d, %v", name, got, ok)
		}
	}
	for _, name := range []string{"meta.json", "1-x-2", "lost+found"} {
		if _, ok := snapshotIndex(name); ok {
			t.Errorf("snapshotIndex(%q) parsed", name)
		}
	}
}
