package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// flipStateTables flips a byte at every tenth of the first seven tenths
// of each of the node's state machine tables (inside checksummed blocks:
// only the footer, at the end, is not) and returns their paths.
func flipStateTables(t *testing.T, dataDir string) []string {
	t.Helper()
	tables, err := filepath.Glob(filepath.Join(dataDir, "state", "*.sst"))
	if err != nil || len(tables) == 0 {
		t.Fatalf("no state tables in %s (%v)", dataDir, err)
	}
	for _, p := range tables {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		for tenth := int64(1); tenth <= 7; tenth++ {
			at := fi.Size() * tenth / 10
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, at); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x5a
			if _, err := f.WriteAt(b, at); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return tables
}

// waitTablesSettle waits until the node's state tables stop changing (its
// compactions after a start are done), so that the tables damaged next
// are the ones it reads.
func waitTablesSettle(t *testing.T, dataDir string) {
	t.Helper()
	prev := ""
	eventually(t, 30*time.Second, "state tables settle", func() error {
		time.Sleep(time.Second)
		tables, _ := filepath.Glob(filepath.Join(dataDir, "state", "*.sst"))
		now := strings.Join(tables, ",")
		if now != prev {
			prev = now
			return fmt.Errorf("tables changed: %s", now)
		}
		return nil
	})
}

// namesOneOf reports whether text names one of paths.
func namesOneOf(text string, paths []string) bool {
	for _, p := range paths {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}

// listAllIDs pages through every incident the node holds.
func listAllIDs(c client) ([]string, error) {
	var ids []string
	token := ""
	for {
		ctx, cancel := ctxWithin(30 * time.Second)
		resp, err := c.incidents.ListIncidents(ctx, &irxv1.ListIncidentsRequest{PageSize: 100, PageToken: token})
		cancel()
		if err != nil {
			return ids, err
		}
		for _, inc := range resp.GetIncidents() {
			ids = append(ids, inc.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			return ids, nil
		}
	}
}

// A flipped byte in a state machine table: a read that meets it is
// answered UNAVAILABLE naming the file (not INTERNAL, no panic), the node
// reports NOT_SERVING; at the next start the damage is found before
// anything is served, the state machine is rebuilt from the Raft snapshot
// and log, and every record is there.
func TestCorruptStateTableRebuiltFromLog(t *testing.T) {
	n, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "data"),
		// Snapshots and a compacted log, so the rebuild needs both.
		"--snapshot-threshold", "64", "--trailing-logs", "16", "--snapshot-interval", "200ms", "--scrub-interval", "1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Kill() })
	start := func() client {
		t.Helper()
		if err := n.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return dial(t, n)
	}
	c := start()
	const records = 400
	var wg sync.WaitGroup
	errs := make(chan error, records)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < records; i += 8 {
				if _, err := createWithin(c, 30*time.Second, sample(i), fmt.Sprintf("corrupt-%d", i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a snapshot on disk", func() error {
		snaps, _ := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			return fmt.Errorf("no snapshot yet")
		}
		return nil
	})
	// A clean stop flushes the state machine to its tables; the restart
	// reads none of their data blocks before the damage is made.
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	c = start()
	waitTablesSettle(t, n.DataDir)
	bad := flipStateTables(t, n.DataDir)

	// The background scrub finds the damage: the node stops serving and
	// says which file.
	eventually(t, 30*time.Second, "NOT_SERVING with a damaged state machine", func() error {
		if s := servingStatus(c); s != healthpb.HealthCheckResponse_NOT_SERVING {
			return fmt.Errorf("health %v", s)
		}
		for _, d := range clusterStatus(t, c).GetDisks() {
			if namesOneOf(d.GetProblem(), bad) {
				return nil
			}
		}
		return fmt.Errorf("no disk problem names a damaged table: %v", clusterStatus(t, c).GetDisks())
	})
	// A read that meets the damage is answered UNAVAILABLE naming the
	// file; never INTERNAL.
	if _, err = listAllIDs(c); err != nil {
		if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !namesOneOf(st.Message(), bad) {
			t.Fatalf("listing over damaged tables: %v, want UNAVAILABLE naming one of %s", err, bad)
		}
	}
	t.Logf("listing over damaged tables: %v", err)
	if strings.Contains(n.Logs(), "panic") {
		t.Errorf("a panic in the log:\n%s", tail(n.Logs(), 30))
	}
	if err := n.Terminate(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	// The next start finds the damage, rebuilds, and serves everything.
	c = start()
	logs := n.Logs()
	at := strings.LastIndex(logs, "removing the state machine to rebuild it")
	if at < 0 || !namesOneOf(logs[at:], bad) {
		t.Errorf("the log does not name one of %s and the rebuild:\n%s", bad, tail(logs, 30))
	} else {
		t.Logf("the node said: %s", strings.SplitN(logs[at:], "\n", 2)[0])
	}
	ids, err := listAllIDs(c)
	if err != nil {
		t.Fatalf("listing after the rebuild: %v", err)
	}
	if len(ids) != records {
		t.Fatalf("%d records after the rebuild, want %d", len(ids), records)
	}
	inc := create(t, c, sample(records))
	if inc.GetId() != fmt.Sprintf("dev:%d", records+1) {
		t.Errorf("the next create after the rebuild is %s, want dev:%d", inc.GetId(), records+1)
	}
}

func ctxWithin(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// A damaged state machine on a node that has lost its snapshots, and whose
// log no longer reaches back to the first entry, cannot be rebuilt from
// the node's own copy: it refuses to start, saying so and what to do,
// instead of stopping later on an entry it cannot read.
func TestCorruptStateWithoutSnapshotRefusesToStart(t *testing.T) {
	n, err := irxdtest.NewNode(irxdBin, filepath.Join(t.TempDir(), "data"),
		"--snapshot-threshold", "64", "--trailing-logs", "16", "--snapshot-interval", "200ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Kill() })
	if err := n.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n)
	for i := range 150 {
		create(t, c, sample(i))
	}
	eventually(t, 30*time.Second, "a snapshot on disk", func() error {
		snaps, _ := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			return fmt.Errorf("no snapshot yet")
		}
		return nil
	})
	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(n.DataDir, "snapshots", "snapshots")); err != nil {
		t.Fatal(err)
	}
	flipStateTables(t, n.DataDir)

	err = n.Launch(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "no snapshot and its Raft log begins at entry") || !strings.Contains(err.Error(), "add it again") {
		t.Fatalf("start without a way to rebuild: %v", err)
	}
}
