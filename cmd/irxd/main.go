// Command irxd runs one node of a CSIRT's irx team. With no flags it starts
// a one-node development team in ./irx-data with the operator API on
// 127.0.0.1:7400.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/irxfed/irx/cmd/internal/version"
	"github.com/irxfed/irx/federation"
	"github.com/irxfed/irx/node"
	"google.golang.org/grpc"
)

// defaultGCPercent is the garbage collector's target unless GOGC is set:
// at Go's 100 a node spends a noticeable part of its CPU collecting under
// ingest, and 200 (heap up to three times what is live) buys throughput
// with memory (docs/performance.md). On a small machine, set GOGC=100 or
// a GOMEMLIMIT.
const defaultGCPercent = 200

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "irxd:", oneLine(err))
		}
		os.Exit(1)
	}
}

// oneLine keeps a start-up failure to one line an operator can grep for.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	opts, err := parseOptions(args, stderr, getenv)
	if err != nil {
		return err
	}
	build := version.Read()
	if opts.showVersion {
		_, err := fmt.Fprintf(stdout, "irxd %s %s %s/%s\n", build, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return err
	}
	logger, err := newLogger(stderr, opts.logLevel, opts.logFormat)
	if err != nil {
		return err
	}
	logger.Info("irxd starting", "version", build.Version, "commit", build.Revision, "commit_time", build.Time,
		"modified", build.Modified, "commit_from", build.CommitSource(), "go", runtime.Version())
	opts.node.Logger = logger
	if opts.debugAddr != "" {
		stopDebug, err := serveDebug(opts.debugAddr, logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	limit, source := memoryLimit(opts.memoryLimit, node.OffHeapBytes(), getenv, os.ReadFile)
	debug.SetMemoryLimit(limit)
	opts.federation.MemoryLimit = limit
	logger.Info("memory limit", "bytes", limit, "mib", limit>>20, "from", source)
	fed := federation.New(opts.federation)
	opts.node.Services = func(n *node.Node, s grpc.ServiceRegistrar) { fed.Services(federationTeam(n), s) }
	n, err := node.Start(opts.node)
	if err != nil {
		return err
	}
	if err := fed.Start(federationTeam(n)); err != nil {
		return errors.Join(err, n.Close())
	}
	printStarted(stdout, n)
	fmt.Fprintf(stdout, "irxd: peer-facing federation API on %s (mutual TLS with the CAs pinned for peers)\n", fed.Addr())
	printWaiting(stdout, n)
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		announceLeader(ctx, stdout, n, logger)
	}()
	// SIGHUP reloads the node's certificate and key from their files, so
	// certificates rotate without a restart.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case <-hup:
			if err := n.ReloadCertificates(); err != nil {
				logger.Error("certificate reload failed; still serving the previous certificate", "error", err)
			} else {
				logger.Info("certificates reloaded")
			}
		case <-ctx.Done():
			running = false
		}
	}
	<-announced // it ends with ctx, and reads the node
	logger.Info("shutting down")
	return shutdown(logger, fed, n, shutdownTimeout)
}

// closingNode is what shutdown needs of the node.
type closingNode interface {
	Close() error
	ClosingStep() string
}

// shutdownTimeout bounds a shutdown, so that SIGTERM ends irxd within 10 s
// in every state: a store whose disk has stalled cannot be closed, and
// waiting on it would leave only kill -9.
const shutdownTimeout = 8 * time.Second

// errShutdownTimeout: the shutdown did not finish in time.
var errShutdownTimeout = errors.New("shutdown did not finish in time")

// shutdown closes federation and node, giving up after timeout with a log
// line saying what did not stop. Nothing is lost by giving up: what the
// node acknowledged is in its Raft log, synced, and the state machine is
// rebuilt from it at the next start.
func shutdown(logger *slog.Logger, fed interface{ Close() error }, n closingNode, timeout time.Duration) error {
	closed := make(chan error, 1)
	var fedClosed atomic.Bool
	go func() {
		err := fed.Close()
		fedClosed.Store(true)
		closed <- errors.Join(err, n.Close())
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-closed:
		return err
	case <-t.C:
	}
	stuck := "closing the federation service"
	if fedClosed.Load() {
		stuck = n.ClosingStep()
	}
	logger.Error("shutdown did not finish in time; exiting without it", "after", timeout, "stuck", stuck)
	return fmt.Errorf("%w (%s): stuck %s", errShutdownTimeout, timeout, stuck)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "", "text":
		// The text handler quotes every value (and message) holding a
		// character that is not printable, bidirectional formatting
		// characters included, so what a client sent cannot forge a line.
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		// JSON escapes control characters but writes C1 controls and
		// bidirectional formatting characters as they are, which a log
		// viewer then obeys; they are escaped here.
		hopts.ReplaceAttr = escapeLogAttr
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// escapeLogAttr writes the C1 controls and bidirectional formatting
// characters of a string or error value as \uXXXX.
func escapeLogAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; v.Kind() {
	case slog.KindString:
		if s := v.String(); needsLogEscape(s) {
			a.Value = slog.StringValue(logEscape(s))
		}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok && err != nil && needsLogEscape(err.Error()) {
			a.Value = slog.StringValue(logEscape(err.Error()))
		}
	}
	return a
}

func logEscaped(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
		r == 0x200e || r == 0x200f || r == 0x061c
}

func needsLogEscape(s string) bool {
	for _, r := range s {
		if logEscaped(r) {
			return true
		}
	}
	return false
}

func logEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if logEscaped(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// printStarted says what is true once the listeners are bound: the node
// runs. It has no leader yet; printWaiting says what it waits for.
func printStarted(w io.Writer, n *node.Node) {
	mode := "development mode: plaintext on loopback"
	if !n.APIPlaintext() {
		mode = "mutual TLS: use an operator certificate from the team CA"
	}
	// The address is followed by a space: scripts and tests read it with
	// "operator API on (\S+)".
	fmt.Fprintf(w, "irxd: node %s of team %q started; operator API on %s (%s)\n", n.NodeID(), n.TeamID(), n.APIAddr(), mode)
}

// printWaiting says what the node waits for before the team can serve: a
// leader, which a majority of the voting members elects once it is up, or,
// for a node started to join, a member adding it.
func printWaiting(w io.Writer, n *node.Node) {
	st, err := n.Standing()
	switch {
	case err != nil:
		fmt.Fprintln(w, "irxd: waiting for a leader")
	case !st.Member && n.Joining():
		fmt.Fprintf(w, "irxd: waiting to be added to the team (ClusterService/AddMember): on a member, irxctl cluster add %s %s\n", n.NodeID(), n.RaftAddr())
	case st.Voters > 1:
		fmt.Fprintf(w, "irxd: waiting for a leader: %d of the team's %d voting members must be up\n", st.Voters/2+1, st.Voters)
	default:
		fmt.Fprintln(w, "irxd: waiting for a leader")
	}
}

// announceLeader waits until the node is a member and knows a leader, then
// says so and, in development mode, what to try. Until then writes would
// only wait, so nothing before it says the team is up.
func announceLeader(ctx context.Context, w io.Writer, n *node.Node, logger *slog.Logger) {
	const poll = 100 * time.Millisecond
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		st, err := n.Standing()
		if err != nil {
			logger.Debug("reading the node's standing", "error", err)
		}
		if err == nil && st.Member && st.Leader != "" {
			if n.Joining() {
				fmt.Fprintf(w, "irxd: node %s is a member of team %q; leader %s\n", n.NodeID(), n.TeamID(), st.Leader)
			} else {
				fmt.Fprintf(w, "irxd: team %q has a leader: %s\n", n.TeamID(), st.Leader)
			}
			if n.APIPlaintext() {
				printTry(w, n.APIAddr().String())
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// printTry shows a newcomer what to try. Only a plaintext API (development
// mode on loopback) can be tried with these commands as they are.
func printTry(w io.Writer, addr string) {
	fmt.Fprintf(w, `
Try (from the irx source tree, "go tool grpcurl" needs nothing installed):
  go tool grpcurl -plaintext %[1]s list
  go tool grpcurl -plaintext -d '{"incident":{"tlp":"TLP_AMBER","taxonomy":{"class":"malicious-code","type":"c2-server"}}}' %[1]s irx.v1.IncidentService/CreateIncident
  go tool grpcurl -plaintext -d '{}' %[1]s irx.v1.IncidentService/ListIncidents
  go tool grpcurl -plaintext %[1]s irx.v1.ClusterService/GetClusterStatus
  go tool grpcurl -plaintext %[1]s grpc.health.v1.Health/Check

`, addr)
}

// serveDebug serves net/http/pprof on a loopback address only: profiles
// reveal memory contents, so they are never exposed beyond the host.
func serveDebug(addr string, logger *slog.Logger) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return nil, fmt.Errorf("--debug-addr %q: must be a loopback host:port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("debug server stopped", "error", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
