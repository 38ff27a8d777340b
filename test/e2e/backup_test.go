package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/irxfed/irx/node/backup"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// takeBackup streams a backup from n into a file, as irxctl backup does,
// and returns the file and its header.
func takeBackup(t *testing.T, n *irxdtest.Node) (string, *irxv1.BackupHeader) {
	t.Helper()
	conn, err := n.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := irxv1.NewBackupServiceClient(conn).Backup(ctx, &irxv1.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "team.irxbackup")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Backup: %v", err)
		}
		if err := backup.WriteMessage(f, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	hdr, err := backup.Verify(f, "")
	if err != nil {
		t.Fatalf("the backup does not verify: %v", err)
	}
	return path, hdr
}

// restoreTeam starts node1 of team from a backup file in a new data
// directory holding the team's CA (copied from caFrom), on the given
// addresses if not empty.
func restoreTeam(t *testing.T, team, file string, caFrom *irxdtest.Node, apiAddr, fedAddr string) *irxdtest.Node {
	t.Helper()
	n, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "restored"), "--team", team, "--node", "node1", "--restore", file)
	if err != nil {
		t.Fatal(err)
	}
	if apiAddr != "" {
		n.APIAddr, n.FedAddr = apiAddr, fedAddr
	}
	if err := irxdtest.ShareDevCAFrom(caFrom, n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = n.Kill() })
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBackupUnderLoadAndRestore: a backup taken from a follower while
// writers keep creating incidents restores into a new team holding every
// acknowledged record up to the backup's point, byte for byte; the new
// team takes writes after it and a second node joins it.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	nodes := irxdtest.StartCluster(t, irxdBin, 3)
	clients := make([]client, len(nodes))
	for i, n := range nodes {
		clients[i] = dial(t, n)
	}
	leader := clusterStatus(t, clients[0]).GetLeaderId()
	follower := 0
	for i := range nodes {
		if fmt.Sprintf("node%d", i+1) != leader {
			follower = i
			break
		}
	}

	var (
		mu    sync.Mutex
		acked = map[string]*irxv1.Incident{}
	)
	ctx, stop := context.WithCancel(context.Background())
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ctx.Err() == nil; i++ {
				callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
				resp, err := clients[w%3].incidents.CreateIncident(callCtx, &irxv1.CreateIncidentRequest{Incident: sample(w*100000 + i)})
				cancel()
				if err == nil {
					mu.Lock()
					acked[resp.GetIncident().GetId()] = resp.GetIncident()
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, time.Minute, "writes before the backup", func() error {
		if n := count(); n < 50 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	file, hdr := takeBackup(t, nodes[follower])
	before := count()
	eventually(t, time.Minute, "writes after the backup", func() error {
		if n := count(); n < before+20 {
			return fmt.Errorf("%d acknowledged since", n-before)
		}
		return nil
	})
	stop()
	writers.Wait()
	if hdr.GetTeamId() != "dev" || hdr.GetNodeId() != fmt.Sprintf("node%d", follower+1) || hdr.GetRaftIndex() == 0 {
		t.Fatalf("backup header %v", hdr)
	}
	for _, n := range nodes {
		_ = n.Kill()
	}

	restored := restoreTeam(t, "dev", file, nodes[0], "", "")
	rc := dial(t, restored)
	st := clusterStatus(t, rc)
	lastTicket := st.GetLastTicket()
	if st.GetAppliedIndex() < hdr.GetRaftIndex() || len(st.GetMembers()) != 1 {
		t.Fatalf("restored team: %v (backup at index %d)", st, hdr.GetRaftIndex())
	}
	// Tickets follow the log order: the records acknowledged with a
	// ticket up to the restored team's last one are exactly those the
	// backup's index covers. Every one must be there, unchanged.
	var covered int
	for id, want := range acked {
		var ticket uint64
		if _, err := fmt.Sscanf(strings.TrimPrefix(id, "dev:"), "%d", &ticket); err != nil {
			t.Fatal(err)
		}
		if ticket > lastTicket {
			continue
		}
		covered++
		got, err := get(rc, id)
		if err != nil || !proto.Equal(got, want) {
			t.Fatalf("%s acknowledged before the backup's index: restored %v, %v", id, got, err)
		}
	}
	if covered < 50 || covered == len(acked) {
		t.Fatalf("%d of %d acknowledged records are covered by the backup: want the backup to fall within the load", covered, len(acked))
	}
	// The restored team continues the numbering after the backup.
	if inc := create(t, rc, sample(1)); inc.GetId() != fmt.Sprintf("dev:%d", lastTicket+1) {
		t.Fatalf("first record after the restore is %s, want dev:%d", inc.GetId(), lastTicket+1)
	}

	// Others join as usual and install the restored state.
	n2, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "node2"), "--node", "node2", "--join")
	if err != nil {
		t.Fatal(err)
	}
	if err := irxdtest.ShareDevCAFrom(nodes[0], n2); err != nil {
		t.Fatal(err)
	}
	irxdtest.LaunchNode(t, n2)
	if _, err := rc.cluster.AddMember(ctxT(t), &irxv1.AddMemberRequest{NodeId: "node2", Address: n2.RaftAddr}); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	c2 := dial(t, n2)
	eventually(t, time.Minute, "the new member holds the restored records", func() error {
		_, err := get(c2, fmt.Sprintf("dev:%d", lastTicket))
		return err
	})
}

// TestRestoreRefusesBadBackups: a truncated file, a flipped byte and
// another team's backup are refused with the reason, and irxd writes
// nothing to its data directory.
func TestRestoreRefusesBadBackups(t *testing.T) {
	n := irxdtest.StartNode(t, irxdBin)
	c := dial(t, n)
	for i := range 5 {
		create(t, c, sample(i))
	}
	file, _ := takeBackup(t, n)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x01
	for _, tc := range []struct {
		name, file, team, want string
	}{
		{"truncated", write("truncated", data[:len(data)-40]), "dev", "truncated"},
		{"flipped byte", write("flipped", flipped), "dev", "checksum mismatch"},
		{"other team", file, "cert-z", `backup of team "dev", and this node is configured for team "cert-z"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			r, err := irxdtest.NewNode(irxdBin, dataDir, "--team", tc.team, "--restore", tc.file)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = r.Launch(ctx)
			if err == nil {
				_ = r.Kill()
				t.Fatal("irxd started from a bad backup")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("irxd's refusal does not say %q: %v", tc.want, err)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("irxd wrote its data directory before refusing: %v", err)
			}
		})
	}
	// A data directory in use is refused too (the node's own).
	if err := n.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	r, err := irxdtest.NewNode(irxdBin, n.DataDir, "--restore", file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Launch(ctx); err == nil || !strings.Contains(err.Error(), "the data directory is not empty") {
		_ = r.Kill()
		t.Fatalf("restore into a node's data directory: %v", err)
	}
}

// TestRestoredTeamPeerNeitherLosesNorDuplicates: B follows A. A is backed
// up, then makes more changes that B applies (a new record, a new version
// of an old one). A is lost and restored from the backup; the restored A
// hands out the same ticket and version numbers again for other content.
// B must end up holding exactly what the restored A serves: the lost
// record gone, the reused numbers holding the new content (not taken for
// duplicates of the old), one copy of each version, and A's new records
// arriving. C, which also follows A but applied nothing after the backup,
// keeps what it holds and just follows on: it receives only A's new
// versions, once.
func TestRestoredTeamPeerNeitherLosesNorDuplicates(t *testing.T) {
	a := startTeam(t, "cert-a", 1)
	b := startTeam(t, "cert-b", 1)
	c := startTeam(t, "cert-c", 1)
	for _, p := range []*team{b, c} {
		a.peerWith(t, p, false)
		p.peerWith(t, a, true)
		a.setPolicy(t, sharePolicy(p.id, irxv1.Tlp_TLP_AMBER, 2))
	}
	follow := func(tm *team, on bool) {
		t.Helper()
		if _, err := tm.peers[0].UpdatePeer(ctxT(t), &irxv1.UpdatePeerRequest{Peer: &irxv1.Peer{TeamId: "cert-a", Disabled: !on},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"disabled"}}}); err != nil {
			t.Fatal(err)
		}
	}
	received := func(tm *team) uint64 {
		t.Helper()
		p, err := tm.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"})
		if err != nil {
			t.Fatal(err)
		}
		return p.GetPeer().GetStatus().GetReceived()
	}

	var kept []*irxv1.Incident
	for i := range 3 {
		kept = append(kept, create(t, a.clients[0], shareable(i, irxv1.Tlp_TLP_GREEN)))
	}
	within := 30 * time.Second
	eventually(t, within, "B holds A's first records", hasVersion(b.clients[0], kept[2].GetId(), 1))
	eventually(t, within, "C holds A's first records", hasVersion(c.clients[0], kept[2].GetId(), 1))
	// C stops following before the backup, so its cursor stays within it.
	follow(c, false)
	eventually(t, within, "C stops following A", func() error {
		p, err := c.peers[0].GetPeer(ctxT(t), &irxv1.GetPeerRequest{TeamId: "cert-a"})
		if err != nil {
			return err
		}
		if p.GetPeer().GetStatus().GetConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	cBefore := received(c)
	file, _ := takeBackup(t, a.nodes[0])

	lost := create(t, a.clients[0], shareable(10, irxv1.Tlp_TLP_GREEN)) // cert-a:4, after the backup
	upd := proto.Clone(kept[0]).(*irxv1.Incident)
	upd.Status = irxv1.Status_STATUS_RESOLVED
	if _, err := a.clients[0].incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{Incident: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"status"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, within, "B holds A's changes after the backup", func() error {
		if err := hasVersion(b.clients[0], lost.GetId(), 1)(); err != nil {
			return err
		}
		return hasVersion(b.clients[0], kept[0].GetId(), 2)()
	})

	// A is lost; the restored A serves on the same addresses, with the
	// same CA, so B's peer record still finds and admits it.
	old := a.nodes[0]
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	restored := restoreTeam(t, "cert-a", file, old, old.APIAddr, old.FedAddr)
	ra := dial(t, restored)
	reissued := shareable(20, irxv1.Tlp_TLP_GREEN)
	reissued.Descriptions[0].Text = "the restored team's fourth record"
	if got := create(t, ra, reissued); got.GetId() != lost.GetId() {
		t.Fatalf("the restored team's next record is %s; this test needs it to reuse %s", got.GetId(), lost.GetId())
	}
	upd2 := proto.Clone(kept[0]).(*irxv1.Incident)
	upd2.Priority = irxv1.Priority_PRIORITY_LOW
	if _, err := ra.incidents.UpdateIncident(ctxT(t), &irxv1.UpdateIncidentRequest{Incident: upd2, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"priority"}}}); err != nil {
		t.Fatal(err)
	}
	fresh := create(t, ra, shareable(21, irxv1.Tlp_TLP_GREEN))
	follow(c, true)

	eventually(t, 2*within, "B follows the restored A", func() error {
		if err := hasVersion(b.clients[0], fresh.GetId(), 1)(); err != nil {
			return err
		}
		got, err := get(b.clients[0], lost.GetId())
		if err != nil {
			return err
		}
		if got.GetDescriptions()[0].GetText() != reissued.Descriptions[0].Text {
			return fmt.Errorf("B holds the lost content under %s: %q", lost.GetId(), got.GetDescriptions()[0].GetText())
		}
		v2, err := get(b.clients[0], kept[0].GetId())
		if err != nil {
			return err
		}
		if v2.GetVersion() != 2 || v2.GetPriority() != irxv1.Priority_PRIORITY_LOW || v2.GetStatus() == irxv1.Status_STATUS_RESOLVED {
			return fmt.Errorf("B's %s is the lost version 2: %v", kept[0].GetId(), v2)
		}
		return nil
	})
	eventually(t, 2*within, "C follows the restored A", hasVersion(c.clients[0], fresh.GetId(), 1))
	// Exactly what the restored A holds, one copy of each version.
	want := map[string]int64{}
	for _, inc := range listOrigin(t, ra, "cert-a") {
		want[inc.GetId()] = inc.GetVersion()
	}
	for _, tm := range []*team{b, c} {
		eventually(t, within, tm.id+" holds what the restored A holds", func() error {
			got := map[string]int64{}
			for _, inc := range listOrigin(t, tm.clients[0], "cert-a") {
				got[inc.GetId()] = inc.GetVersion()
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("%s holds %v of cert-a, the restored cert-a %v", tm.id, got, want)
			}
			return nil
		})
		for id, latest := range want {
			resp, err := tm.clients[0].incidents.ListIncidentVersions(ctxT(t), &irxv1.ListIncidentVersionsRequest{Id: id})
			if err != nil {
				t.Fatal(err)
			}
			if n := int64(len(resp.GetIncidents())); n != latest {
				t.Fatalf("%s holds %d versions of %s, latest %d", tm.id, n, id, latest)
			}
		}
	}
	// C kept its copies: it stored the restored A's three new versions
	// (the reissued record, the new version 2, the fresh record) and
	// nothing again.
	if got := received(c) - cBefore; got != 3 {
		t.Fatalf("C stored %d versions after the restore, want the 3 new ones (a resync would store every version again)\n%s", got, c.nodes[0].Logs())
	}
}
