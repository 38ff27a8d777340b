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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

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
	logger, err := newLogger(stderr, opts.logLevel, opts.logFormat)
	if err != nil {
		return err
	}
	opts.node.Logger = logger
	if opts.debugAddr != "" {
		stopDebug, err := serveDebug(opts.debugAddr, logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	fed := federation.New(opts.federation)
	opts.node.Services = func(n *node.Node, s grpc.ServiceRegistrar) { fed.Services(federationTeam(n), s) }
	n, err := node.Start(opts.node)
	if err != nil {
		return err
	}
	if err := fed.Start(federationTeam(n)); err != nil {
		return errors.Join(err, n.Close())
	}
	printWelcome(stdout, n)
	fmt.Fprintf(stdout, "irxd: peer-facing federation API on %s (mutual TLS with the CAs pinned for peers)\n", fed.Addr())
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
	logger.Info("shutting down")
	return errors.Join(fed.Close(), n.Close())
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
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// printWelcome shows a newcomer what to try. Only a plaintext API (development
// mode on loopback) can be tried with these commands as they are.
func printWelcome(w io.Writer, n *node.Node) {
	addr := n.APIAddr().String()
	if !n.APIPlaintext() {
		fmt.Fprintf(w, "irxd: team %q is up; operator API on %s (mutual TLS: use an operator certificate from the team CA)\n", n.TeamID(), addr)
		return
	}
	fmt.Fprintf(w, `irxd: team %q is up; operator API on %s (development mode: plaintext on loopback)

Try (from the irx source tree, "go tool grpcurl" needs nothing installed):
  go tool grpcurl -plaintext %[2]s list
  go tool grpcurl -plaintext -d '{"incident":{"tlp":"TLP_AMBER","taxonomy":{"class":"malicious-code","type":"c2-server"}}}' %[2]s irx.v1.IncidentService/CreateIncident
  go tool grpcurl -plaintext -d '{}' %[2]s irx.v1.IncidentService/ListIncidents
  go tool grpcurl -plaintext %[2]s irx.v1.ClusterService/GetClusterStatus
  go tool grpcurl -plaintext %[2]s grpc.health.v1.Health/Check

`, n.TeamID(), addr)
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
