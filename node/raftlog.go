package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// raftLogger adapts hashicorp/raft's hclog logging to the node's slog
// logger, keeping levels and key-value pairs structured.
type raftLogger struct {
	log  *slog.Logger
	name string
	args []any
	// unreachable is shared by every logger derived from the same root.
	unreachable *unreachable
}

func newRaftLogger(l *slog.Logger) hclog.Logger {
	return &raftLogger{log: l.With("component", "raft"), name: "raft", unreachable: newUnreachable(time.Now)}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (r *raftLogger) Log(level hclog.Level, msg string, args ...any) {
	lvl := slogLevel(level)
	if lvl == slog.LevelError {
		lvl, args = r.unreachable.level(msg, args)
	}
	if !r.log.Enabled(context.Background(), lvl) {
		return
	}
	r.log.Log(context.Background(), lvl, msg, renderArgs(args)...)
}

// renderArgs formats the values raft wraps in hclog's formatting types:
// hclog.Fmt("%+v", servers) would otherwise be logged as the format and
// its arguments, "[%+v [{...}]]".
func renderArgs(args []any) []any {
	var out []any
	for i, a := range args {
		var s string
		switch v := a.(type) {
		case hclog.Format:
			s = fmt.Sprint(v...)
			if len(v) > 0 {
				if format, ok := v[0].(string); ok {
					s = fmt.Sprintf(format, v[1:]...)
				}
			}
		case hclog.Hex:
			s = fmt.Sprintf("0x%x", int(v))
		case hclog.Octal:
			s = fmt.Sprintf("0%o", int(v))
		case hclog.Binary:
			s = fmt.Sprintf("0b%b", int(v))
		case hclog.Quote:
			s = strconv.Quote(string(v))
		default:
			if out != nil {
				out = append(out, a)
			}
			continue
		}
		if out == nil {
			out = append(make([]any, 0, len(args)), args[:i]...)
		}
		out = append(out, s)
	}
	if out == nil {
		return args
	}
	return out
}

// Raft reports every failed RPC at ERROR: a member that is not up yet (its
// peers start one after another, or it is down for maintenance) costs a
// line per vote request and heartbeat, every second. A dial that fails is
// that case: the member is not listening or not reachable. The first
// failure of an episode is a warning, repeats are debug, and a reminder
// warns again while it lasts; any other error (a refused handshake, a
// broken connection) stays an error every time.
const (
	// unreachableEpisodeGap ends an episode: a failure after this long
	// without one is news again.
	unreachableEpisodeGap = 30 * time.Second
	// unreachableReminder repeats the warning while a member stays
	// unreachable, so a long outage is not a single line.
	unreachableReminder = 5 * time.Minute
)

// unreachable remembers, per raft message and member, when dialing it last
// failed and when that was last a warning.
type unreachable struct {
	now func() time.Time
	mu  sync.Mutex
	// last and warned are keyed by message and target; members times
	// messages bound them.
	last, warned map[string]time.Time
}

func newUnreachable(now func() time.Time) *unreachable {
	return &unreachable{now: now, last: map[string]time.Time{}, warned: map[string]time.Time{}}
}

// level is the level of an ERROR raft logged with args, and the args with
// a note when the error is demoted to a warning.
func (u *unreachable) level(msg string, args []any) (slog.Level, []any) {
	var target string
	var dialFailed bool
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "target", "peer":
			target = fmt.Sprint(args[i+1])
		case "error":
			err, _ := args[i+1].(error)
			dialFailed = isDialFailure(err)
		}
	}
	if !dialFailed {
		return slog.LevelError, args
	}
	key := msg + "\x00" + target
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	last, seen := u.last[key]
	u.last[key] = now
	if seen && now.Sub(last) < unreachableEpisodeGap && now.Sub(u.warned[key]) < unreachableReminder {
		return slog.LevelDebug, args
	}
	note := "member not reachable (not started yet, or down); until it answers, repeats are logged at debug"
	if seen && now.Sub(last) < unreachableEpisodeGap {
		note = "member still not reachable; repeats are logged at debug"
	}
	u.warned[key] = now
	return slog.LevelWarn, append(slices.Clip(args), "note", note)
}

// isDialFailure reports an error of connecting to a member: nothing
// listens there, or it cannot be reached.
func isDialFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (r *raftLogger) Trace(msg string, args ...any) { r.Log(hclog.Trace, msg, args...) }
func (r *raftLogger) Debug(msg string, args ...any) { r.Log(hclog.Debug, msg, args...) }
func (r *raftLogger) Info(msg string, args ...any)  { r.Log(hclog.Info, msg, args...) }
func (r *raftLogger) Warn(msg string, args ...any)  { r.Log(hclog.Warn, msg, args...) }
func (r *raftLogger) Error(msg string, args ...any) { r.Log(hclog.Error, msg, args...) }

func (r *raftLogger) enabled(l hclog.Level) bool {
	return r.log.Enabled(context.Background(), slogLevel(l))
}
func (r *raftLogger) IsTrace() bool { return r.enabled(hclog.Trace) }
func (r *raftLogger) IsDebug() bool { return r.enabled(hclog.Debug) }
func (r *raftLogger) IsInfo() bool  { return r.enabled(hclog.Info) }
func (r *raftLogger) IsWarn() bool  { return r.enabled(hclog.Warn) }
func (r *raftLogger) IsError() bool { return r.enabled(hclog.Error) }

func (r *raftLogger) ImpliedArgs() []any { return r.args }

func (r *raftLogger) With(args ...any) hclog.Logger {
	return &raftLogger{log: r.log.With(renderArgs(args)...), name: r.name, args: append(append([]any(nil), r.args...), args...), unreachable: r.unreachable}
}

func (r *raftLogger) Name() string { return r.name }

func (r *raftLogger) Named(name string) hclog.Logger {
	return &raftLogger{log: r.log.With("subsystem", name), name: r.name + "." + name, args: r.args, unreachable: r.unreachable}
}

func (r *raftLogger) ResetNamed(name string) hclog.Logger {
	return &raftLogger{log: r.log.With("subsystem", name), name: name, args: r.args, unreachable: r.unreachable}
}

// SetLevel is a no-op: the node's slog handler owns the level.
func (r *raftLogger) SetLevel(hclog.Level) {}

func (r *raftLogger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Debug, hclog.Info, hclog.Warn} {
		if r.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (r *raftLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(r.log.Handler(), slog.LevelInfo)
}

func (r *raftLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return r.StandardLogger(nil).Writer()
}
