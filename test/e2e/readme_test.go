package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/irxfed/irx/test/irxdtest"
)

// example is one README command; code is the gRPC code a "# Code: X"
// comment right after it says it fails with, or "" for success.
type example struct {
	cmd, code string
}

// readmeBlocks returns the shell commands of the ```sh blocks in the
// README section headed heading, with continuation lines joined.
func readmeBlocks(t *testing.T, readme, heading string) []example {
	t.Helper()
	start := strings.Index(readme, "\n## "+heading+"\n")
	if start < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var cmds []example
	for _, block := range strings.Split(section, "```sh\n")[1:] {
		block = block[:strings.Index(block, "```")]
		var cur strings.Builder
		for _, line := range strings.Split(block, "\n") {
			trimmed := strings.TrimSpace(line)
			if code, ok := strings.CutPrefix(trimmed, "# Code: "); ok && cur.Len() == 0 && len(cmds) > 0 && cmds[len(cmds)-1].code == "" {
				cmds[len(cmds)-1].code = code
				continue
			}
			if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
				continue
			}
			cur.WriteString(line + "\n")
			joined := strings.TrimSpace(cur.String())
			if strings.HasSuffix(joined, "\\") || strings.Count(joined, "'")%2 == 1 {
				continue // the command goes on: a continuation or an open quote
			}
			cmds = append(cmds, example{cmd: joined})
			cur.Reset()
		}
	}
	return cmds
}

// TestReadmeWalkthroughRuns runs the README's grpcurl walkthrough and policy
// examples, as written, against a fresh node, so they cannot drift from the
// code.
func TestReadmeWalkthroughRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds grpcurl")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	cmds := append(readmeBlocks(t, readme, "Walkthrough with grpcurl"), readmeBlocks(t, readme, "Disclosure policies")...)
	if len(cmds) < 15 {
		t.Fatalf("found only %d commands; the README parser is broken", len(cmds))
	}
	n := irxdtest.StartNode(t, irxdBin)
	failing := 0
	for _, ex := range cmds {
		if !strings.HasPrefix(ex.cmd, "go tool grpcurl") {
			t.Fatalf("unexpected command in the walkthrough: %s", ex.cmd)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		c := exec.CommandContext(ctx, "bash", "-c", strings.ReplaceAll(ex.cmd, "127.0.0.1:7400", n.APIAddr))
		c.Dir = root
		out, err := c.CombinedOutput()
		cancel()
		switch {
		case ex.code == "" && err != nil:
			t.Fatalf("README command failed: %v\n%s\n%s", err, ex.cmd, out)
		case ex.code != "" && (err == nil || !strings.Contains(string(out), "Code: "+ex.code)):
			t.Fatalf("README says this fails with %s, but: %v\n%s\n%s", ex.code, err, ex.cmd, out)
		case ex.code != "":
			failing++
		}
	}
	if failing == 0 {
		t.Error("the README's bad-input example was not recognised")
	}
}
