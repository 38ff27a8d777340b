package raftstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger routes pebble's printf-style logging to slog. Pebble's default
// logger writes to the stdlib log package (stderr) and exits the process on
// Fatalf, neither of which a library should impose on its host.
type pebbleLogger struct {
	l *slog.Logger
}

var _ pebble.Logger = pebbleLogger{}

// Infof is debug: pebble's informational lines are its routine work (the
// WALs found and replayed at open, flush and compaction jobs), not news for
// an operator; what needs one comes through Errorf and the event listener.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.log(slog.LevelDebug, format, args)
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.log(slog.LevelError, format, args)
}

// Fatalf must not return: pebble calls it on broken invariants and carries on
// as if the process were gone. Panicking instead of os.Exit lets the host's
// recovery/crash reporting see a stack, while still never returning.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic("raftstore: pebble fatal: " + msg)
}

func (p pebbleLogger) log(level slog.Level, format string, args []any) {
	// Formatting is the expensive part; skip it when the level is filtered.
	if !p.l.Enabled(context.Background(), level) {
		return
	}
	p.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

// minLevelHandler drops records below min. It lets the default logger reuse
// slog.Default()'s destination while keeping pebble's routine info chatter
// (WAL/flush/compaction notices) out of the host's logs.
type minLevelHandler struct {
	min   slog.Level
	inner slog.Handler
}

func (h minLevelHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.inner.Enabled(ctx, level)
}

func (h minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.inner.Handle(ctx, r)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{min: h.min, inner: h.inner.WithAttrs(attrs)}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{min: h.min, inner: h.inner.WithGroup(name)}
}
