// Command irxctl is the operator CLI of an irx team. It talks to any node's
// operator gRPC API (irxd) to create, read, list, update, bulk-import,
// withdraw and hand off incidents, to manage disclosure policies and peer
// teams, to publish the team's RFC 2350 description and read its peers'
// (signed and verified), to audit what each peer was told, and to inspect
// and change the team's Raft cluster. Its pki commands make the team's CA, node and
// operator certificates and peering bundle from local files, without a node.
//
// Run "irxctl help" for the command reference.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is the whole program minus the process: tests call it in-process with
// their own streams and environment.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: env}
	return c.exitCode(c.dispatch(ctx, args))
}

// cli is one invocation: its streams, environment and global flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	conn   connFlags
	output string
	// dialed is where the command connected, for the hint an error about
	// the connection gets; nil before any connection.
	dialed *target
}

// command is a node of the command tree: a group with subcommands, or a leaf
// with an action.
type command struct {
	name  string
	usage string // the synopsis after "irxctl "
	short string
	long  string

	minArgs, maxArgs int  // positional arguments of a leaf
	connects         bool // takes the connection flags
	printsOutput     bool // takes -o

	// setup registers the leaf's own flags on fs and returns the action that
	// reads them, so every invocation gets fresh flag variables.
	setup func(fs *flag.FlagSet) action
	subs  []*command
}

type action func(ctx context.Context, c *cli, args []string) error

func commandTree() *command {
	root := &command{
		name:  "irxctl",
		usage: "COMMAND [ARGS] [flags]",
		short: "irxctl operates an irx team through the operator API of any of its nodes.",
		subs: []*command{
			incidentCommand(), policyCommand(), peerCommand(), teamCommand(), retentionCommand(), auditCommand(), clusterCommand(), accessCommand(),
			alertCommand(), warningCommand(), groupCommand(),
			statsCommand(), backupCommand(), pkiCommand(), configCommand(), versionCommand(),
		},
	}
	root.subs = append(root.subs, &command{
		name:    "help",
		usage:   "help [COMMAND...]",
		short:   "Show the help of a command",
		maxArgs: -1,
		setup: func(*flag.FlagSet) action {
			return func(_ context.Context, c *cli, args []string) error {
				path, err := root.resolve(args)
				if err != nil {
					return err
				}
				c.printHelp(c.stdout, path)
				return nil
			}
		},
	})
	return root
}

// resolve walks names down the tree.
func (cmd *command) resolve(names []string) ([]*command, error) {
	path := []*command{cmd}
	for _, name := range names {
		sub := path[len(path)-1].find(name)
		if sub == nil {
			return nil, usageErrorf("unknown command %q for %q", name, commandPath(path))
		}
		path = append(path, sub)
	}
	return path, nil
}

func (cmd *command) find(name string) *command {
	for _, s := range cmd.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func commandPath(path []*command) string {
	names := make([]string, len(path))
	for i, p := range path {
		names[i] = p.name
	}
	return strings.Join(names, " ")
}

// dispatch accepts global flags before the command, between group names and
// anywhere among a leaf's arguments, as kubectl does.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	path := []*command{commandTree()}
	for {
		cmd := path[len(path)-1]
		if cmd.setup != nil {
			return c.runLeaf(ctx, path, args)
		}
		fs := c.newFlagSet(cmd.name)
		c.registerConnFlags(fs)
		c.registerOutputFlag(fs)
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(c.stdout, path)
				return nil
			}
			return usageError{msg: err.Error(), path: path}
		}
		args = fs.Args()
		if len(args) == 0 {
			c.printHelp(c.stderr, path)
			return exitError(2)
		}
		sub := cmd.find(args[0])
		if sub == nil {
			return usageError{msg: fmt.Sprintf("unknown command %q for %q", args[0], commandPath(path)), path: path}
		}
		path, args = append(path, sub), args[1:]
	}
}

func (c *cli) runLeaf(ctx context.Context, path []*command, args []string) error {
	cmd := path[len(path)-1]
	fs := c.newFlagSet(commandPath(path))
	if cmd.connects {
		c.registerConnFlags(fs)
	}
	if cmd.printsOutput {
		c.registerOutputFlag(fs)
	}
	act := cmd.setup(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(c.stdout, path)
			return nil
		}
		return usageError{msg: err.Error(), path: path}
	}
	synopsis, _, _ := strings.Cut(cmd.usage, "\n")
	switch {
	case len(pos) < cmd.minArgs:
		return usageError{msg: "missing argument; usage: irxctl " + synopsis, path: path}
	case cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs:
		return usageError{msg: fmt.Sprintf("unexpected argument %q; usage: irxctl %s", pos[cmd.maxArgs], synopsis), path: path}
	}
	if cmd.printsOutput {
		if err := checkOutputFormat(c.output); err != nil {
			return usageError{msg: err.Error(), path: path}
		}
	}
	err = act(ctx, c, pos)
	var ue usageError
	if errors.As(err, &ue) && ue.path == nil {
		ue.path = path
		return ue
	}
	return err
}

func (c *cli) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors and help are printed by dispatch, in irxctl's own format.
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterspersed lets flags follow positional arguments ("get dev:1 -o
// json"), which the flag package alone does not; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError is a mistake on the command line: exit status 2 and a pointer
// to the help.
type usageError struct {
	msg  string
	path []*command
}

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return usageError{msg: fmt.Sprintf(format, a...)}
}

// exitError ends the program with a status after the command has already
// said what went wrong.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func (c *cli) exitCode(err error) int {
	var (
		ue usageError
		ee exitError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "irxctl: %s\n", ue.msg)
		if ue.path != nil {
			fmt.Fprintf(c.stderr, "Run '%s -h' for usage.\n", commandPath(ue.path))
		}
		return 2
	}
	printError(c.stderr, err)
	if hint := connectionHint(err, c.dialed); hint != "" {
		fmt.Fprintf(c.stderr, "irxctl: %s\n", hint)
	}
	return 1
}
