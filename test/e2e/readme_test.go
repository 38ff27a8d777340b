package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
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
			if strings.HasSuffix(joined, "\\") || inQuote(joined) {
				continue // the command goes on: a continuation or an open quote
			}
			cmds = append(cmds, example{cmd: joined})
			cur.Reset()
		}
	}
	return cmds
}

// inQuote reports whether shell text ends inside a quoted string. A
// comment (a # that starts a word outside quotes) runs to the end of its
// line, so an apostrophe in it ("# B's copy") opens nothing.
func inQuote(text string) bool {
	var quote byte // the open quote, or 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '\\':
			i++
		case c == '#' && (i == 0 || text[i-1] == ' ' || text[i-1] == '\t' || text[i-1] == '\n'):
			for i < len(text) && text[i] != '\n' {
				i++
			}
		}
	}
	return quote != 0
}

// readExamples returns the root of the source tree, its README and the
// commands of the README sections headed headings. Fewer than atLeast
// commands means the parser, not the README, went wrong.
func readExamples(t *testing.T, atLeast int, headings ...string) (root, readme string, cmds []example) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Join(filepath.Dir(file), "..", "..")
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme = string(data)
	for _, h := range headings {
		cmds = append(cmds, readmeBlocks(t, readme, h)...)
	}
	if len(cmds) < atLeast {
		t.Fatalf("found only %d commands; the README parser is broken", len(cmds))
	}
	return root, readme, cmds
}

// buildCommand builds the Go command pkg of the source tree at root into
// dir and returns the binary's path, so the README's "go run" and "go tool"
// lines can run without compiling on each line.
func buildCommand(ctx context.Context, t *testing.T, root, dir, pkg string) string {
	t.Helper()
	name := path.Base(pkg)
	bin := filepath.Join(dir, name)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// freePorts gives each of the README's fixed ports a free loopback address:
// ports maps "127.0.0.1:7400" to it, and pairs holds the same for a
// strings.Replacer.
func freePorts(t *testing.T, fixed ...string) (ports map[string]string, pairs []string) {
	t.Helper()
	ports = map[string]string{}
	for _, p := range fixed {
		free, err := irxdtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports["127.0.0.1:"+p] = free
		pairs = append(pairs, "127.0.0.1:"+p, free)
	}
	return ports, pairs
}

// checkOutcome fails t unless the README command ex ended as the README
// says: in success or, with a "# Code: X" comment, in an error whose output
// holds failure (how the tool reports X). It reports whether ex was one
// that must fail.
func checkOutcome(t *testing.T, ex example, failure string, out []byte, err error) bool {
	t.Helper()
	switch {
	case ex.code == "" && err != nil:
		t.Fatalf("README command failed: %v\n%s\n%s", err, ex.cmd, out)
	case ex.code != "" && (err == nil || !strings.Contains(string(out), failure)):
		t.Fatalf("README says this fails with %s, but: %v\n%s\n%s", ex.code, err, ex.cmd, out)
	}
	return ex.code != ""
}

// TestReadmeWalkthroughRuns runs the README's grpcurl walkthrough and policy
// examples, as written, against a fresh node, so they cannot drift from the
// code.
func TestReadmeWalkthroughRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds grpcurl")
	}
	root, _, cmds := readExamples(t, 15, "Walkthrough with grpcurl", "Disclosure policies")
	// grpcurl is built once, before the node starts, with the version
	// go.mod pins ("go tool grpcurl" builds it on first use, which on a
	// loaded machine took longer than a call's bound).
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 10*time.Minute)
	grpcurl := buildCommand(buildCtx, t, root, t.TempDir(), "github.com/fullstorydev/grpcurl/cmd/grpcurl")
	cancelBuild()
	n := irxdtest.StartNode(t, irxdBin)
	failing := 0
	for _, ex := range cmds {
		if !strings.HasPrefix(ex.cmd, "go tool grpcurl ") {
			t.Fatalf("unexpected command in the walkthrough: %s", ex.cmd)
		}
		cmd := grpcurl + " " + strings.TrimPrefix(strings.ReplaceAll(ex.cmd, "127.0.0.1:7400", n.APIAddr), "go tool grpcurl ")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		c := exec.CommandContext(ctx, "bash", "-c", cmd)
		c.Dir = root
		out, err := c.CombinedOutput()
		cancel()
		if checkOutcome(t, ex, "Code: "+ex.code, out, err) {
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
// withdrawal no longer holds it; B's copy of cert-a:2 narrows with A's
// policy; the hand-off makes cert-b:1; each team reads the other's
// description with its signature verified.
func TestReadmeFederationRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds irxctl and grpcurl")
	}
	root, _, cmds := readExamples(t, 10, "Federation")
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	irxctl := buildCommand(ctx, t, root, tmp, "./cmd/irxctl")
	ports, portPairs := freePorts(t, "7400", "7401", "7402", "7410", "7411", "7412")
	replace := []string{
		"go run ./cmd/irxd --team cert-a", irxdBin + " --team cert-a --api-addr 127.0.0.1:7400 --federation-addr 127.0.0.1:7401 --raft-addr 127.0.0.1:7402",
		"go run ./cmd/irxd ", irxdBin + " ",
		"go run ./cmd/irxctl ", irxctl + " --addr 127.0.0.1:7400 ",
		"irx-a", filepath.Join(tmp, "irx-a"), "irx-b", filepath.Join(tmp, "irx-b"),
	}
	// The daemon lines first (so their ports are rewritten in turn), then
	// the ports everywhere.
	rewrite := func(cmd string) string {
		for _, pairs := range [][]string{replace, portPairs} {
			for i := 0; i < len(pairs); i += 2 {
				cmd = strings.ReplaceAll(cmd, pairs[i], pairs[i+1])
			}
		}
		return cmd
	}
	run := func(cmd string) (string, error) {
		c := exec.CommandContext(ctx, "bash", "-c", cmd)
		c.Dir = root
		out, err := c.CombinedOutput()
		return string(out), err
	}
	// Lines that read what B holds wait for it: B gets there in its
	// own time.
	until := map[string]func(string) bool{
		"# B holds cert-a:1":    func(out string) bool { return strings.Contains(out, "cert-a:1") },
		"# gone at B":           func(out string) bool { return !strings.Contains(out, "cert-a:1") },
		"# B holds cert-a:2 v1": func(out string) bool { return strings.Contains(out, "192.0.2.0/24") },
		"# B's v1 without the victim": func(out string) bool {
			return !strings.Contains(out, "192.0.2.") && strings.Contains(out, "198.51.100.9")
		},
		"# sent ... replacements, once": func(out string) bool {
			return regexp.MustCompile(`sent \d+ versions, [1-9]\d* replacements`).MatchString(out)
		},
	}
	// Lines whose outcome is known at once: their output must say so.
	expect := map[string]string{
		"# B records it as cert-b:1": "as cert-b:1",
		"# B reads A's":              "signature verified: signed by irx://cert-a/node/",
		"# A reads B's":              "signature verified: signed by irx://cert-b/node/",
	}
	seen := map[string]bool{} // the markers above, as found
	for _, ex := range cmds {
		cmd := rewrite(ex.cmd)
		if strings.HasPrefix(ex.cmd, "go run ./cmd/irxd ") {
			daemon := exec.Command("bash", "-c", "exec "+cmd+" --log-level warn")
			daemon.Dir = root
			if err := daemon.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = daemon.Process.Kill(); _, _ = daemon.Process.Wait() })
			api := ports["127.0.0.1:7400"]
			if strings.Contains(ex.cmd, "cert-b") {
				api = ports["127.0.0.1:7410"]
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
		var cond func(string) bool
		for marker, c := range until {
			if strings.Contains(ex.cmd, marker) {
				cond, seen[marker] = c, true
			}
		}
		var want string
		for marker, w := range expect {
			if strings.Contains(ex.cmd, marker) {
				want, seen[marker] = w, true
			}
		}
		switch {
		case cond != nil:
			eventually(t, 30*time.Second, ex.cmd, func() error {
				out, err := run(cmd)
				if err != nil || !cond(out) {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		default:
			out, err := run(cmd)
			if err != nil {
				t.Fatalf("README command failed: %v\n%s\n%s", err, ex.cmd, out)
			}
			if !strings.Contains(out, want) {
				t.Fatalf("README command: the output does not say %q\n%s\n%s", want, ex.cmd, out)
			}
		}
	}
	// A comment reworded must not drop its check unnoticed.
	for _, markers := range []map[string]bool{keys(until), keys(expect)} {
		for marker := range markers {
			if !seen[marker] {
				t.Errorf("no README command in the Federation section has the comment %q, which the test checks", marker)
			}
		}
	}
}

// keys returns the set of m's keys.
func keys[V any](m map[string]V) map[string]bool {
	set := map[string]bool{}
	for k := range m {
		set[k] = true
	}
	return set
}

// TestReadmeIrxctlRuns runs the README's irxctl tour, as written, against a
// fresh development node (team dev), and checks that every command irxctl
// has is run by the README: in the tour, or (those that need more than one
// node) in the sections TestReadmeFederationRuns and
// TestReadmeThreeNodeTeamRuns run, so the two cannot drift apart. Each
// command of the tour is run with bash from the source tree, with these
// substitutions only:
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
	root, readme, cmds := readExamples(t, 30, "irxctl")
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	irxctl := buildCommand(ctx, t, root, tmp, "./cmd/irxctl")

	// Every command of "irxctl help" is one the README runs: in the tour's
	// sh blocks, or in those of the sections other tests run.
	help, err := exec.CommandContext(ctx, irxctl, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("irxctl help: %v\n%s", err, help)
	}
	executed := slices.Clone(cmds)
	for _, h := range []string{"Federation", "A three-node team"} {
		executed = append(executed, readmeBlocks(t, readme, h)...)
	}
	runs := func(name string) bool {
		for _, ex := range executed {
			if strings.Contains(ex.cmd, name+" ") || strings.HasSuffix(ex.cmd, name) || strings.Contains(ex.cmd, name+"\n") {
				return true
			}
		}
		return false
	}
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
		if !runs(name) {
			t.Errorf("no sh block of the README's irxctl, Federation or three-node sections runs %q", name)
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
		"cert-b/", partner,
		"dev.irxbackup", filepath.Join(tmp, "dev.irxbackup"))
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
		if checkOutcome(t, ex, "irxctl: "+ex.code+": ", out, err) {
			failing++
		}
	}
	if failing == 0 {
		t.Error("the README's failing irxctl example was not recognised")
	}
}

// TestReadmeThreeNodeTeamRuns runs the README's three-node team, as
// written, in a temporary directory (where the data directories n1..n4 go),
// with these substitutions only:
//   - a free loopback port for each fixed one (7400-7402, 7410-7412,
//     7420-7422, 7430-7432); a daemon line without --api-addr,
//     --federation-addr or --raft-addr is refused, as it would bind a
//     default port (two nodes on one machine cannot share one);
//   - the test's irxd for "go run ./cmd/irxd", and a grpcurl built once for
//     "go tool grpcurl";
//   - an irxctl built once, with --addr node1's API address, for "go run
//     ./cmd/irxctl" (irxctl's default address, 127.0.0.1:7400, is node1's in
//     the README).
//
// Each line runs with bash after the variable assignments before it (M=...,
// which the README has a human set in each terminal). Daemon lines run in
// the background; the test waits until the daemon listens and, before the
// first grpcurl or irxctl line, until the bootstrapped nodes serve (health
// SERVING), as the README says to. It checks what the README promises: the
// status shows the three members and a leader; the create through node3 is
// dev:1 and node2 reads it (stale: once it has applied it); node4 is added
// as a voter at its Raft address; leadership moves to node2; node4 is
// removed; irxctl's status shows node2 leading node1..node3; and at the end
// every node reports node1, node2 and node3, led by node2.
func TestReadmeThreeNodeTeamRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds grpcurl")
	}
	root, _, cmds := readExamples(t, 12, "A three-node team")
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	grpcurl := buildCommand(ctx, t, root, tmp, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
	irxctl := buildCommand(ctx, t, root, tmp, "./cmd/irxctl")

	ports, pairs := freePorts(t, "7400", "7401", "7402", "7410", "7411", "7412",
		"7420", "7421", "7422", "7430", "7431", "7432")
	pairs = append(pairs, "go run ./cmd/irxd ", irxdBin+" ", "go tool grpcurl ", grpcurl+" ",
		"go run ./cmd/irxctl ", irxctl+" --addr "+ports["127.0.0.1:7400"]+" ")
	rewrite := strings.NewReplacer(pairs...)
	fixedPort := regexp.MustCompile(`\b74\d\d\b`)
	assignment := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=[^\s;&|]*$`)

	var vars strings.Builder // the assignments so far, for every later line
	run := func(cmd string) (string, error) {
		c := exec.CommandContext(ctx, "bash", "-c", vars.String()+cmd)
		c.Dir = tmp
		out, err := c.CombinedOutput()
		return string(out), err
	}
	mustRun := func(ex example, cmd string) string {
		t.Helper()
		out, err := run(cmd)
		if err != nil {
			t.Fatalf("README command failed: %v\n%s\n%s", err, ex.cmd, out)
		}
		return out
	}
	parse := func(ex example, out string, m proto.Message) {
		t.Helper()
		if err := protojson.Unmarshal([]byte(out), m); err != nil {
			t.Fatalf("README command: %v\n%s\n%s", err, ex.cmd, out)
		}
	}
	status := func(api string) (*irxv1.GetClusterStatusResponse, error) {
		out, err := run(grpcurl + " -plaintext " + api + " irx.v1.ClusterService/GetClusterStatus")
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, out)
		}
		st := &irxv1.GetClusterStatusResponse{}
		return st, protojson.Unmarshal([]byte(out), st)
	}

	type daemon struct {
		name, api string
		join      bool
		exited    chan struct{}
		log       string
	}
	var daemons []*daemon
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, d := range daemons {
			logs, _ := os.ReadFile(d.log)
			lines := strings.Split(strings.TrimSpace(string(logs)), "\n")
			t.Logf("last log lines of %s:\n%s", d.name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	serving := false // the bootstrapped daemons were seen SERVING
	// "Node1 serves (health SERVING) once a second member is up and a
	// leader is elected. Then, on any node:"
	waitServing := func() {
		t.Helper()
		if serving {
			return
		}
		for _, d := range daemons {
			if d.join {
				continue
			}
			eventually(t, time.Minute, d.name+" serves", func() error {
				out, err := run(grpcurl + " -plaintext " + d.api + " grpc.health.v1.Health/Check")
				if err != nil || !strings.Contains(out, `"SERVING"`) {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		}
		serving = true
	}
	// membersAt waits until node1 reports want as the members, and the
	// leader lead ("" for any).
	membersAt := func(what string, want []string, lead string) *irxv1.GetClusterStatusResponse {
		t.Helper()
		var st *irxv1.GetClusterStatusResponse
		eventually(t, 30*time.Second, what, func() error {
			var err error
			st, err = status(ports["127.0.0.1:7400"])
			if err != nil {
				return err
			}
			if got := memberIDs(st.GetMembers()); !slices.Equal(got, want) || st.GetLeaderId() == "" || lead != "" && st.GetLeaderId() != lead {
				return fmt.Errorf("members %v, leader %q; want %v, leader %q", got, st.GetLeaderId(), want, lead)
			}
			return nil
		})
		return st
	}
	membershipChanges := 0
	for _, ex := range cmds {
		cmd := rewrite.Replace(ex.cmd)
		if port := fixedPort.FindString(cmd); port != "" {
			t.Fatalf("the README uses port %s, which the test does not move: %s", port, ex.cmd)
		}
		switch {
		case assignment.MatchString(ex.cmd):
			vars.WriteString(cmd + "\n")

		case strings.HasPrefix(ex.cmd, "go run ./cmd/irxd "):
			fields := strings.Fields(cmd)
			flag := func(name string) string {
				for i, f := range fields[:len(fields)-1] {
					if f == name {
						return fields[i+1]
					}
				}
				return ""
			}
			for _, name := range []string{"--node", "--api-addr", "--federation-addr", "--raft-addr"} {
				if flag(name) == "" {
					t.Fatalf("a README daemon line without %s (the default would clash with the other nodes on one machine): %s", name, ex.cmd)
				}
			}
			d := &daemon{name: flag("--node"), api: flag("--api-addr"), join: slices.Contains(fields, "--join"), exited: make(chan struct{})}
			d.log = filepath.Join(tmp, d.name+".log")
			logFile, err := os.Create(d.log)
			if err != nil {
				t.Fatal(err)
			}
			c := exec.Command("bash", "-c", vars.String()+"exec "+cmd)
			c.Dir = tmp
			c.Stdout, c.Stderr = logFile, logFile
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			logFile.Close()
			go func() { _ = c.Wait(); close(d.exited) }()
			t.Cleanup(func() { _ = c.Process.Kill(); <-d.exited })
			daemons = append(daemons, d)
			eventually(t, 30*time.Second, d.name+" listens on "+d.api, func() error {
				select {
				case <-d.exited:
					logs, _ := os.ReadFile(d.log)
					t.Fatalf("%s exited: %s\n%s", d.name, ex.cmd, logs)
				default:
				}
				conn, err := net.DialTimeout("tcp", d.api, time.Second)
				if err == nil {
					conn.Close()
				}
				return err
			})

		case strings.HasPrefix(ex.cmd, "mkdir ") || strings.HasPrefix(ex.cmd, "cp "):
			mustRun(ex, cmd)

		case strings.HasPrefix(ex.cmd, "go run ./cmd/irxctl "):
			waitServing()
			var words []string // the command's words before its arguments
			for _, w := range strings.Fields(strings.TrimPrefix(ex.cmd, "go run ./cmd/irxctl ")) {
				if strings.HasPrefix(w, "#") || strings.HasPrefix(w, "-") || w != strings.ToLower(w) || strings.ContainsAny(w, ".:") {
					break
				}
				words = append(words, w)
			}
			out := mustRun(ex, cmd)
			switch strings.Join(words, " ") {
			case "cluster add node4":
				st := membersAt("node4 added", []string{"node1", "node2", "node3", "node4"}, "")
				for _, m := range st.GetMembers() {
					if m.GetNodeId() == "node4" && (!m.GetVoter() || m.GetAddress() != ports["127.0.0.1:7432"]) {
						t.Fatalf("README cluster add: node4 is %v, want a voter at %s", m, ports["127.0.0.1:7432"])
					}
				}
				// node4, added, now knows the leader and serves.
				eventually(t, time.Minute, "node4 serves", func() error {
					st, err := status(ports["127.0.0.1:7430"])
					if err != nil || st.GetLeaderId() == "" || len(st.GetMembers()) != 4 {
						return fmt.Errorf("%v: %v", err, st)
					}
					return nil
				})
			case "cluster transfer node2":
				membersAt("node2 leads", []string{"node1", "node2", "node3", "node4"}, "node2")
			case "cluster remove node4":
				membersAt("node4 removed", []string{"node1", "node2", "node3"}, "node2")
			case "cluster status":
				if !strings.Contains(out, "leader node2") || strings.Contains(out, "node4") ||
					!strings.Contains(out, "node1") || !strings.Contains(out, "node3") {
					t.Fatalf("README cluster status: want node1..node3 led by node2:\n%s\n%s", ex.cmd, out)
				}
			default:
				t.Fatalf("an irxctl command the test does not know: %s", ex.cmd)
			}
			membershipChanges++

		case strings.HasPrefix(ex.cmd, "go tool grpcurl "):
			waitServing()
			var method string // the last word before a trailing comment
			for _, w := range strings.Fields(ex.cmd) {
				if strings.HasPrefix(w, "#") {
					break
				}
				method = w
			}
			switch method {
			case "irx.v1.ClusterService/GetClusterStatus":
				st := &irxv1.GetClusterStatusResponse{}
				parse(ex, mustRun(ex, cmd), st)
				if got := memberIDs(st.GetMembers()); !slices.Equal(got, []string{"node1", "node2", "node3"}) || st.GetLeaderId() == "" {
					t.Fatalf("README status: members %v, leader %q; want node1, node2, node3 and a leader\n%s", got, st.GetLeaderId(), ex.cmd)
				}
			case "irx.v1.IncidentService/CreateIncident":
				created := &irxv1.CreateIncidentResponse{}
				parse(ex, mustRun(ex, cmd), created)
				if id := created.GetIncident().GetId(); id != "dev:1" {
					t.Fatalf("README create: got %q, the next command reads dev:1\n%s", id, ex.cmd)
				}
			case "irx.v1.IncidentService/GetIncident":
				// A stale read answers from the node's applied state,
				// which may be a moment behind the acknowledged create.
				eventually(t, 30*time.Second, ex.cmd, func() error {
					out, err := run(cmd)
					if err != nil {
						return fmt.Errorf("%v: %s", err, out)
					}
					got := &irxv1.GetIncidentResponse{}
					if err := protojson.Unmarshal([]byte(out), got); err != nil || got.GetIncident().GetId() != "dev:1" {
						return fmt.Errorf("want dev:1: %v: %s", err, out)
					}
					return nil
				})
			case "irx.v1.ClusterService/AddMember":
				added := &irxv1.AddMemberResponse{}
				parse(ex, mustRun(ex, cmd), added)
				if got := memberIDs(added.GetMembers()); !slices.Equal(got, []string{"node1", "node2", "node3", "node4"}) {
					t.Fatalf("README AddMember: members %v, want node1..node4\n%s", got, ex.cmd)
				}
				for _, m := range added.GetMembers() {
					if m.GetNodeId() == "node4" && (!m.GetVoter() || m.GetAddress() != ports["127.0.0.1:7432"]) {
						t.Fatalf("README AddMember: node4 is %v, want a voter at %s", m, ports["127.0.0.1:7432"])
					}
				}
				// node4, added, now knows the leader and serves.
				eventually(t, time.Minute, "node4 serves", func() error {
					st, err := status(ports["127.0.0.1:7430"])
					if err != nil || st.GetLeaderId() == "" || len(st.GetMembers()) != 4 {
						return fmt.Errorf("%v: %v", err, st)
					}
					return nil
				})
			case "irx.v1.ClusterService/TransferLeadership":
				moved := &irxv1.TransferLeadershipResponse{}
				parse(ex, mustRun(ex, cmd), moved)
				eventually(t, 30*time.Second, "node2 leads", func() error {
					st, err := status(ports["127.0.0.1:7400"])
					if err != nil || st.GetLeaderId() != "node2" {
						return fmt.Errorf("%v: leader %q (transfer answered %q)", err, st.GetLeaderId(), moved.GetLeaderId())
					}
					return nil
				})
			case "irx.v1.ClusterService/RemoveMember":
				removed := &irxv1.RemoveMemberResponse{}
				parse(ex, mustRun(ex, cmd), removed)
				if got := memberIDs(removed.GetMembers()); !slices.Equal(got, []string{"node1", "node2", "node3"}) {
					t.Fatalf("README RemoveMember: members %v, want node1, node2, node3\n%s", got, ex.cmd)
				}
			default:
				t.Fatalf("a grpcurl call the test does not know: %s", ex.cmd)
			}

		default:
			t.Fatalf("unexpected command in the three-node team: %s", ex.cmd)
		}
	}
	if len(daemons) != 4 || !serving {
		t.Fatalf("the README started %d daemons, want node1..node4", len(daemons))
	}
	if membershipChanges != 4 {
		t.Fatalf("the README ran %d of the irxctl lines add, transfer, remove and status", membershipChanges)
	}
	// Every node of the team agrees: node1, node2, node3, led by node2, each
	// answering for itself.
	for _, fixed := range []string{"127.0.0.1:7400", "127.0.0.1:7410", "127.0.0.1:7420"} {
		eventually(t, 30*time.Second, "the final status at "+fixed, func() error {
			st, err := status(ports[fixed])
			if err != nil {
				return err
			}
			if got := memberIDs(st.GetMembers()); !slices.Equal(got, []string{"node1", "node2", "node3"}) || st.GetLeaderId() != "node2" {
				return fmt.Errorf("members %v, leader %q", got, st.GetLeaderId())
			}
			for _, m := range st.GetMembers() {
				if m.GetError() != "" || !m.GetVoter() {
					return fmt.Errorf("member %v", m)
				}
			}
			return nil
		})
	}
}

// memberIDs returns the members' node ids, sorted.
func memberIDs(ms []*irxv1.ClusterMember) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.GetNodeId())
	}
	slices.Sort(ids)
	return ids
}
