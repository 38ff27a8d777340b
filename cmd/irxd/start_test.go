package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// syncBuffer is stdout shared between run and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is irxd's run in this process, stopped when the test ends.
type daemon struct {
	stdout, stderr *syncBuffer
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, d.stdout, d.stderr, func(string) string { return "" }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("irxd: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("irxd did not stop within 30s")
		}
	})
	return d
}

// waitFor waits until stdout matches re and returns the submatches.
func (d *daemon) waitFor(t *testing.T, re string) []string {
	t.Helper()
	pattern := regexp.MustCompile(re)
	deadline := time.Now().Add(time.Minute)
	for {
		out := d.stdout.String()
		if m := pattern.FindStringSubmatch(out); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdout never matched %q:\n%s\nstderr:\n%s", re, out, d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	addr, err := irxdtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func baseArgs(dataDir string) []string {
	return []string{"--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--federation-addr", "127.0.0.1:0", "--log-level", "warn"}
}

// Nothing claims the team is up before it has a leader: a lone member of a
// three-node team, which cannot elect one, says what it waits for.
func TestLoneMemberSaysItWaitsForALeader(t *testing.T) {
	self, other1, other2 := freePort(t), freePort(t), freePort(t)
	members := fmt.Sprintf("node1=%s,node2=%s,node3=%s", self, other1, other2)
	d := startDaemon(t, append(baseArgs(filepath.Join(t.TempDir(), "data")), "--raft-addr", self, "--members", members)...)
	d.waitFor(t, `irxd: waiting for a leader: 2 of the team's 3 voting members must be up\n`)
	out := d.stdout.String()
	if !strings.Contains(out, `irxd: node node1 of team "dev" started; operator API on 127.0.0.1:`) {
		t.Errorf("no start line:\n%s", out)
	}
	// With one of three members up there is no leader, whenever we look.
	for _, claim := range []string{"is up", "has a leader", "Try"} {
		if strings.Contains(out, claim) {
			t.Errorf("stdout says %q without a leader:\n%s", claim, out)
		}
	}
}

// A one-node team says it has a leader, and only then what to try; a node
// started to join says it waits to be added, with the command that adds it,
// and once added, that it is a member.
func TestStartUpLinesFollowLeaderAndMembership(t *testing.T) {
	dir := t.TempDir()
	dir1, dir2 := filepath.Join(dir, "node1"), filepath.Join(dir, "node2")
	if err := irxdtest.ShareDevCA("dev", &irxdtest.Node{DataDir: dir1}, &irxdtest.Node{DataDir: dir2}); err != nil {
		t.Fatal(err)
	}
	first := startDaemon(t, append(baseArgs(dir1), "--raft-addr", "127.0.0.1:0")...)
	api := first.waitFor(t, `operator API on (\S+) `)[1]
	first.waitFor(t, `irxd: team "dev" has a leader: node1\n\nTry`)
	if out := first.stdout.String(); strings.Index(out, "Try") < strings.Index(out, "has a leader") {
		t.Errorf("what to try comes before the leader:\n%s", out)
	}

	joiner := startDaemon(t, append(baseArgs(dir2), "--raft-addr", "127.0.0.1:0", "--node", "node2", "--join")...)
	m := joiner.waitFor(t, `irxd: waiting to be added to the team \(ClusterService/AddMember\): on a member, irxctl cluster add node2 (\S+)\n`)
	if out := joiner.stdout.String(); strings.Contains(out, "leader") && !strings.Contains(out, "member") {
		t.Errorf("a node that is no member claims a leader:\n%s", out)
	}
	conn, err := grpc.NewClient(api, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := irxv1.NewClusterServiceClient(conn).AddMember(ctx, &irxv1.AddMemberRequest{NodeId: "node2", Address: m[1]}); err != nil {
		t.Fatalf("AddMember with the address the joining node printed: %v", err)
	}
	joiner.waitFor(t, `irxd: node node2 is a member of team "dev"; leader node1\n`)
}

func TestVersionFlagPrintsTheBuildAndStartsNothing(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	var out strings.Builder
	if err := run(context.Background(), append(baseArgs(dataDir), "--version"), &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^irxd \S+.* go1\.\S+ \S+/\S+\n$`).MatchString(out.String()) {
		t.Errorf("--version printed %q", out.String())
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Errorf("--version created the data directory %s", dataDir)
	}
	// A variable meant for another program does not turn the daemon into
	// one that prints its version.
	o, err := parseOptions(nil, io.Discard, func(k string) string {
		if k == "IRX_VERSION" {
			return "true"
		}
		return ""
	})
	if err != nil || o.showVersion {
		t.Errorf("IRX_VERSION=true: showVersion %v, err %v", o.showVersion, err)
	}
}
