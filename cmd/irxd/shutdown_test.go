package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type closer func() error

func (c closer) Close() error { return c() }

type stuckNode struct{ release chan struct{} }

func (s stuckNode) Close() error        { <-s.release; return nil }
func (s stuckNode) ClosingStep() string { return "closing the Raft log's database" }

// A node that does not finish closing does not keep irxd running: the
// shutdown gives up after its timeout and says what did not stop.
func TestShutdownGivesUpAndSaysWhat(t *testing.T) {
	var logs bytes.Buffer
	n := stuckNode{release: make(chan struct{})}
	defer close(n.release)
	start := time.Now()
	err := shutdown(slog.New(slog.NewTextHandler(&logs, nil)), closer(func() error { return nil }), n, 100*time.Millisecond)
	if !errors.Is(err, errShutdownTimeout) {
		t.Fatalf("shutdown of a stuck node: %v, want errShutdownTimeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a 100ms timeout", took)
	}
	if !strings.Contains(logs.String(), "Raft log's database") || !strings.Contains(err.Error(), "Raft log's database") {
		t.Errorf("neither the log nor the error says what did not stop: %q, %v", logs.String(), err)
	}
}

func TestShutdownReturnsCloseErrors(t *testing.T) {
	n := stuckNode{release: make(chan struct{})}
	close(n.release)
	boom := errors.New("federation close failed")
	err := shutdown(slog.New(slog.DiscardHandler), closer(func() error { return boom }), n, 10*time.Second)
	if !errors.Is(err, boom) || errors.Is(err, errShutdownTimeout) {
		t.Fatalf("shutdown: %v, want the close error", err)
	}
}
