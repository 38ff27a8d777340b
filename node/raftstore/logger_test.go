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
