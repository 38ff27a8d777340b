package raftstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestPebbleLogger(t *testing.T) {
	var buf bytes.Buffer
	quiet := slog.New(minLevelHandler{min: slog.LevelWarn, inner: slog.NewTextHandler(&buf, nil)})
	pl := pebbleLogger{l: quiet.With("subsystem", "pebble")}
	pl.Infof("flushed %d", 1)
	if buf.Len() != 0 {
		t.Fatalf("info passed the warn filter: %q", buf.String())
	}
	pl.Errorf("background error: %s", "boom")
	if !strings.Contains(buf.String(), "background error: boom") || !strings.Contains(buf.String(), "subsystem=pebble") {
		t.Fatalf("error not logged with attrs: %q", buf.String())
	}

	defer func() {
		if recover() == nil {
			t.Fatal("Fatalf returned")
		}
	}()
	pl.Fatalf("invariant %s", "broken")
}

// Opening a store that holds entries replays its WAL, and pebble says so at
// length: none of it reaches an operator at the default level (info).
func TestPebbleRoutineWorkIsDebug(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for range 2 {
		s, err := Open(dir, WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if !strings.Contains(out, "WAL") {
		t.Fatalf("pebble logged nothing about its WALs; the test shows nothing:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "subsystem=pebble") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("pebble's routine work above debug: %s", line)
		}
	}
}
