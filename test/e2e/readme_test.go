package e2e

import (
	"context"
	"fmt"
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

// readmeSection returns the README section headed "## heading", up to the
// next "## " heading.
func readmeSection(t *testing.T, readme, heading string) string {
	t.Helper()
	start := strings.Index(readme, "\n## "+heading+"\n")
	if start < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	return section
}

// readmeBlocks returns the shell commands of the ```sh blocks in the
// README section headed heading, with continuation lines joined.
func readmeBlocks(t *testing.T, readme, heading string) []example {
	t.Helper()
	section := readmeSection(t, readme, heading)
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

// TestReadmeFederationRuns runs the README's two-team federation example
// as written, with its fixed ports and data directories moved to free ones,
// and checks what its comments promise: B receives cert-a:1, and after the
// withdrawal no longer holds it.
func TestReadmeFederationRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds irxctl and grpcurl")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeBlocks(t, string(data), "Federation")
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands; the README parser is broken", len(cmds))
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	irxctl := filepath.Join(tmp, "irxctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", irxctl, "./cmd/irxctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build irxctl: %v\n%s", err, out)
	}
	ports := map[string]string{}
	var replace []string
	for _, fixed := range []string{"7400", "7401", "7402", "7410", "7411", "7412"} {
		free, err := irxdtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[fixed] = free
		replace = append(replace, "127.0.0.1:"+fixed, free)
	}
	replace = append(replace,
		"go run ./cmd/irxd --team cert-a", irxdBin+" --team cert-a --api-addr 127.0.0.1:7400 --federation-addr 127.0.0.1:7401 --raft-addr 127.0.0.1:7402",
		"go run ./cmd/irxd ", irxdBin+" ",
		"go run ./cmd/irxctl ", irxctl+" --addr 127.0.0.1:7400 ",
		"irx-a", filepath.Join(tmp, "irx-a"), "irx-b", filepath.Join(tmp, "irx-b"))
	// The daemon lines first (so their ports are rewritten in turn), then
	// the ports everywhere.
	rewrite := func(cmd string) string {
		for i := 6 * 2; i < len(replace); i += 2 {
			cmd = strings.ReplaceAll(cmd, replace[i], replace[i+1])
		}
		for i := 0; i < 6*2; i += 2 {
			cmd = strings.ReplaceAll(cmd, replace[i], replace[i+1])
		}
		return cmd
	}
	run := func(cmd string) (string, error) {
		c := exec.CommandContext(ctx, "bash", "-c", cmd)
		c.Dir = root
		out, err := c.CombinedOutput()
		return string(out), err
	}
	for _, ex := range cmds {
		cmd := rewrite(ex.cmd)
		if strings.HasPrefix(ex.cmd, "go run ./cmd/irxd ") {
			daemon := exec.Command("bash", "-c", "exec "+cmd+" --log-level warn")
			daemon.Dir = root
			if err := daemon.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = daemon.Process.Kill(); _, _ = daemon.Process.Wait() })
			api := ports["7400"]
			if strings.Contains(ex.cmd, "cert-b") {
				api = ports["7410"]
			}
			eventually(t, time.Minute, "the README's irxd serves", func() error {
				out, err := run(irxctl + " --addr " + api + " cluster status")
				if err != nil || !strings.Contains(out, "leader") {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			continue
		}
		switch {
		case strings.Contains(ex.cmd, "# B holds cert-a:1"):
			eventually(t, 30*time.Second, ex.cmd, func() error {
				out, err := run(cmd)
				if err != nil || !strings.Contains(out, "cert-a:1") {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		case strings.Contains(ex.cmd, "# gone at B"):
			eventually(t, 30*time.Second, ex.cmd, func() error {
				out, err := run(cmd)
				if err != nil || strings.Contains(out, "cert-a:1") {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		default:
			if out, err := run(cmd); err != nil {
				t.Fatalf("README command failed: %v\n%s\n%s", err, ex.cmd, out)
			}
		}
	}
}

// TestReadmeIrxctlRuns runs the README's irxctl tour, as written, against a
// fresh development node (team dev), and checks that the section shows
// every command irxctl has, so the two cannot drift apart. Each command is
// run with bash from the source tree, with these substitutions only:
//   - the node's API address for 127.0.0.1:7400;
//   - an irxctl built once for "go run ./cmd/irxctl";
//   - a temporary directory for cert-b/, where the tour writes the files of
//     the partner team it plays (every --out and --ca-dir must be in it, so
//     nothing is written into the source tree);
//   - a temporary $IRXCTL_CONFIG for ~/.config/irxctl/config.yaml, and no
//     IRX_* variables, so the context the tour sets decides where irxctl
//     connects.
//
// Every command must succeed unless a "# Code: X" comment follows it: then
// it must fail with "irxctl: X: ...".
func TestReadmeIrxctlRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds irxctl")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	cmds := readmeBlocks(t, readme, "irxctl")
	if len(cmds) < 30 {
		t.Fatalf("found only %d commands; the README parser is broken", len(cmds))
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	irxctl := filepath.Join(tmp, "irxctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", irxctl, "./cmd/irxctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build irxctl: %v\n%s", err, out)
	}

	// Every command of "irxctl help" appears in the section: in the sh
	// block, or in the text block of those that need more than one node.
	help, err := exec.CommandContext(ctx, irxctl, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("irxctl help: %v\n%s", err, help)
	}
	section := readmeSection(t, readme, "irxctl")
	commands := 0
	for _, line := range strings.Split(string(help), "\n") {
		rest, ok := strings.CutPrefix(line, "  irxctl ")
		if !ok {
			continue
		}
		var words []string
		for _, w := range strings.Fields(rest) {
			if w != strings.ToLower(w) || strings.ContainsAny(w[:1], "-[(") {
				break // the first argument or flag
			}
			words = append(words, w)
		}
		if len(words) == 0 {
			continue // "irxctl COMMAND [ARGS] [flags]"
		}
		name := "irxctl " + strings.Join(words, " ")
		if !strings.Contains(section, name+" ") && !strings.Contains(section, name+"\n") {
			t.Errorf("the README's irxctl section does not show %q", name)
		}
		commands++
	}
	if commands < 30 {
		t.Fatalf("found only %d commands in irxctl help:\n%s", commands, help)
	}

	n := irxdtest.StartNode(t, irxdBin)
	partner := filepath.Join(tmp, "cert-b") + string(filepath.Separator)
	rewrite := strings.NewReplacer(
		"go run ./cmd/irxctl ", irxctl+" ",
		"127.0.0.1:7400", n.APIAddr,
		"cert-b/", partner)
	env := []string{"IRXCTL_CONFIG=" + filepath.Join(tmp, "config.yaml")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IRX_") && !strings.HasPrefix(kv, "IRXCTL_") {
			env = append(env, kv)
		}
	}
	failing := 0
	for _, ex := range cmds {
		if !strings.Contains(ex.cmd, "go run ./cmd/irxctl ") {
			t.Fatalf("unexpected command in the irxctl tour: %s", ex.cmd)
		}
		fields := strings.Fields(ex.cmd)
		for i, f := range fields {
			if (f == "--out" || f == "--ca-dir") && (i+1 == len(fields) || !strings.HasPrefix(fields[i+1], "cert-b/")) {
				t.Fatalf("the irxctl tour writes outside cert-b/, which the test moves to a temporary directory: %s", ex.cmd)
			}
		}
		cmd := rewrite.Replace(ex.cmd)
		if strings.Contains(cmd, "go run") {
			t.Fatalf("unexpected command in the irxctl tour: %s", ex.cmd)
		}
		c := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+cmd)
		c.Dir = root
		c.Env = env
		out, err := c.CombinedOutput()
		switch {
		case ex.code == "" && err != nil:
			t.Fatalf("README command failed: %v\n%s\n%s", err, ex.cmd, out)
		case ex.code != "" && (err == nil || !strings.Contains(string(out), "irxctl: "+ex.code+": ")):
			t.Fatalf("README says this fails with %s, but: %v\n%s\n%s", ex.code, err, ex.cmd, out)
		case ex.code != "":
			failing++
		}
	}
	if failing == 0 {
		t.Error("the README's failing irxctl example was not recognised")
	}
}
