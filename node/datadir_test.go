package node_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irxfed/irx/node"
)

// A second node on a running node's data directory is refused before it
// touches anything, with a message naming the directory and the process
// that holds it; once the first stops, the directory is free.
func TestSecondNodeOnADataDirectoryIsRefusedByName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := node.Config{
		DataDir: dir, APIAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	first, err := node.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := node.Start(cfg)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second node started on the same data directory")
	}
	var inUse *node.DataDirInUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Errorf("error %v (%T), want a DataDirInUseError naming pid %d", err, err, os.Getpid())
	}
	if want := fmt.Sprintf("data directory %s is in use by another irxd (pid %d)", dir, os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("%q does not say %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := node.Start(cfg)
	if err != nil {
		t.Fatalf("after the first node stopped: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
