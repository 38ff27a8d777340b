package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// records keeps what a logger logged.
type records struct {
	mu  sync.Mutex
	all []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) take() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.all
	r.all = nil
	return out
}

func attr(rec slog.Record, key string) string {
	var v string
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// refusedDial is what dialing a member that is not up returns: a real
// connection refused from the operating system.
func refusedDial(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		conn.Close()
		t.Skip("the closed port was taken again")
	}
	return err
}

func TestRaftLoggerRendersFormatValues(t *testing.T) {
	var got records
	l := newRaftLogger(slog.New(&got))
	servers := []raft.Server{{Suffrage: raft.Voter, ID: "node1", Address: "127.0.0.1:7402"}}
	l.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", servers))
	l.Named("snapshot").Info("progress", "percent-complete", hclog.Fmt("%0.2f%%", 42.0), "mode", hclog.Hex(255), "q", hclog.Quote("a b"))
	recs := got.take()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if s := attr(recs[0], "servers"); s != "[{Suffrage:Voter ID:node1 Address:127.0.0.1:7402}]" {
		t.Errorf("servers=%q", s)
	}
	if s := attr(recs[1], "percent-complete"); s != "42.00%" {
		t.Errorf("percent-complete=%q", s)
	}
	if s := attr(recs[1], "mode"); s != "0xff" {
		t.Errorf("mode=%q", s)
	}
	if s := attr(recs[1], "q"); s != `"a b"` {
		t.Errorf("q=%q", s)
	}
}

// A member that is not up yet is a warning once, then debug; other errors
// stay errors every time; after a quiet spell or a long outage it warns
// again.
func TestRaftLoggerDemotesUnreachableMembers(t *testing.T) {
	var got records
	now := time.Unix(1_000_000, 0)
	root := &raftLogger{log: slog.New(&got), name: "raft", unreachable: newUnreachable(func() time.Time { return now })}
	l := root.Named("replication") // derived loggers share what was seen
	refused := refusedDial(t)
	node2 := raft.Server{Suffrage: raft.Voter, ID: "node2", Address: "127.0.0.1:7412"}
	node3 := raft.Server{Suffrage: raft.Voter, ID: "node3", Address: "127.0.0.1:7422"}
	vote := func(target raft.Server, err error) slog.Level {
		t.Helper()
		l.Error("failed to make requestVote RPC", "target", target, "error", err, "term", 2)
		recs := got.take()
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		return recs[0].Level
	}
	if lv := vote(node2, refused); lv != slog.LevelWarn {
		t.Errorf("first refused dial: %v, want WARN", lv)
	}
	for range 3 {
		now = now.Add(time.Second)
		if lv := vote(node2, refused); lv != slog.LevelDebug {
			t.Errorf("repeated refused dial: %v, want DEBUG", lv)
		}
	}
	if lv := vote(node3, refused); lv != slog.LevelWarn {
		t.Errorf("another member: %v, want WARN", lv)
	}
	tlsErr := errors.New("transport: dial 127.0.0.1:7412: remote error: tls: bad certificate")
	for range 2 {
		if lv := vote(node2, tlsErr); lv != slog.LevelError {
			t.Errorf("a refused handshake: %v, want ERROR", lv)
		}
	}
	now = now.Add(unreachableEpisodeGap + time.Second)
	if lv := vote(node2, refused); lv != slog.LevelWarn {
		t.Errorf("after a quiet spell: %v, want WARN", lv)
	}
	for step := 10 * time.Second; step <= unreachableReminder; step += 10 * time.Second {
		now = now.Add(10 * time.Second)
		want := slog.LevelDebug
		if step == unreachableReminder {
			want = slog.LevelWarn // the reminder
		}
		if lv := vote(node2, refused); lv != want {
			t.Errorf("%v into the outage: %v, want %v", step, lv, want)
		}
	}
}
