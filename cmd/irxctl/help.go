package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// printHelp writes the help of the last command of path.
func (c *cli) printHelp(w io.Writer, path []*command) {
	cmd := path[len(path)-1]
	if len(path) == 1 {
		fmt.Fprintf(w, "%s\n\nUsage:\n  irxctl %s\n\nCommands:\n", cmd.short, cmd.usage)
		for _, sub := range cmd.subs {
			for _, leaf := range sub.leaves() {
				fmt.Fprintf(w, "  irxctl %s\n", leaf.usage)
			}
		}
		fmt.Fprintln(w, "\nGlobal flags (before or after the command):")
		c.printGlobalFlags(w, true, true)
		fmt.Fprint(w, "\nSettings come from flags, then IRX_ADDR, IRX_CA_FILE, IRX_CERT_FILE, IRX_KEY_FILE,\n"+
			"then the current context of $IRXCTL_CONFIG (default ~/.config/irxctl/config.yaml).\n"+
			"The pki commands work on local files and need no node.\n"+
			"\nRun 'irxctl help COMMAND...' or 'irxctl COMMAND... -h' for details.\n")
		return
	}
	if cmd.setup == nil {
		fmt.Fprintf(w, "%s\n\nUsage:\n  irxctl %s [ARGS] [flags]\n\nCommands:\n", cmd.short, cmd.usage)
		tw := newTable(w)
		for _, sub := range cmd.subs {
			fmt.Fprintf(tw, "  %s\t%s\n", sub.name, sub.short)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun 'irxctl help %s COMMAND' for details.\n", commandPath(path[1:]))
		return
	}
	fmt.Fprintf(w, "Usage:\n  irxctl %s\n\n%s\n", cmd.usage, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	own := c.newFlagSet(cmd.name)
	cmd.setup(own)
	if hasFlags(own) {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, own)
	}
	if cmd.connects || cmd.printsOutput {
		fmt.Fprintln(w, "\nGlobal flags:")
		c.printGlobalFlags(w, cmd.connects, cmd.printsOutput)
	}
}

func (cmd *command) leaves() []*command {
	if cmd.setup != nil {
		return []*command{cmd}
	}
	var out []*command
	for _, s := range cmd.subs {
		out = append(out, s.leaves()...)
	}
	return out
}

func (c *cli) printGlobalFlags(w io.Writer, conn, output bool) {
	// A scratch cli, so the defaults shown are the defaults and not what
	// this invocation happened to set.
	scratch := &cli{}
	fs := c.newFlagSet("global")
	if conn {
		scratch.registerConnFlags(fs)
	}
	if output {
		scratch.registerOutputFlag(fs)
	}
	printFlags(w, fs)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printFlags lists flags with double dashes, as they are documented
// everywhere else; flags registered with an empty usage are aliases and are
// named in their main flag's usage instead.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := newTable(w)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		synopsis := "  " + dashes + f.Name
		if name != "" {
			synopsis += " " + name
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "%s\t%s\n", synopsis, usage)
	})
	tw.Flush()
}
