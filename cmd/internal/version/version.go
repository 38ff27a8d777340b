// Package version says which build of irx is running, for "irxctl version",
// "irxd --version" and irxd's start-up log line.
package version

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Info describes the running binary.
type Info struct {
	// Version is the module version: a release tag for "go install
	// ...@v1.2.3", a pseudo-version that "go build" derives from the
	// commit, or "devel" when the build recorded none.
	Version string
	// Revision is the commit the binary was built from; empty if unknown.
	Revision string
	// Time is the commit's time; zero if unknown.
	Time time.Time
	// Modified reports uncommitted changes in the built tree.
	Modified bool
	// FromGit reports that Revision was read from the checkout the binary
	// was built from, when the program started, because the build recorded
	// none: "go run" never does, nor "go build" with -buildvcs=false or in a
	// git worktree (whose .git is a file the go command does not look for).
	FromGit bool
	// Exact reports, with FromGit, that the checkout's commit is the one
	// built: "go run" builds the tree as it is when it runs. Any other
	// binary may be older than the checkout it came from.
	Exact bool
}

// Read describes the running binary.
func Read() Info {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "devel"}
	}
	v := fromBuildInfo(info)
	if v.Revision == "" {
		v = v.withGit(sourceDir())
		v.Exact = v.FromGit && builtByGoRun()
	}
	return v
}

// fromBuildInfo reads what the go command recorded: the main module's
// version and the vcs.* settings, which "go build" and "go install" in a
// checkout record unless -buildvcs=false.
func fromBuildInfo(info *debug.BuildInfo) Info {
	v := Info{Version: info.Main.Version}
	if v.Version == "" || v.Version == "(devel)" {
		v.Version = "devel"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// builtByGoRun reports whether the executable is one "go run" made: it
// lives in a go-build directory, either a temporary one (.../exe/NAME) or
// the build cache, where go run keeps what it built for the same sources
// (.../go-build/XX/HASH-d/NAME). Only then is the checkout's current commit
// surely the one that was built; a binary installed from a checkout that
// later moved on must not claim the newer commit as its own.
func builtByGoRun() bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	dir := filepath.Base(filepath.Dir(exe))
	return strings.Contains(filepath.ToSlash(exe), "/go-build") && (dir == "exe" || strings.HasSuffix(dir, "-d"))
}

// sourceDir is the directory this file was compiled from: with -trimpath it
// is a module path that does not exist on disk, and git then finds nothing.
func sourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(file)
}

// withGit asks git for the commit of the checkout that holds dir. Any
// failure (no git, not a checkout) leaves v as it was.
func (v Info) withGit(dir string) Info {
	if dir == "" {
		return v
	}
	if _, err := os.Stat(dir); err != nil {
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	git := func(args ...string) (string, bool) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	rev, ok := git("log", "-1", "--format=%H %cI")
	if !ok {
		return v
	}
	hash, when, _ := strings.Cut(rev, " ")
	if hash == "" {
		return v
	}
	v.Revision, v.FromGit = hash, true
	v.Time, _ = time.Parse(time.RFC3339, when)
	v.Time = v.Time.UTC()
	if changes, ok := git("status", "--porcelain", "--untracked-files=no"); ok {
		v.Modified = changes != ""
	}
	return v
}

// CommitSource says where Revision comes from, for logs: "build" (recorded
// by the go command), "checkout" (go run: the tree it built), "checkout,
// not recorded by the build" (possibly newer than the binary) or "" when
// the commit is unknown.
func (v Info) CommitSource() string {
	switch {
	case v.Revision == "":
		return ""
	case !v.FromGit:
		return "build"
	case v.Exact:
		return "checkout"
	}
	return "checkout, not recorded by the build"
}

// Short is the version alone, for user agents: "v1.2.0", the
// pseudo-version, or "devel-<commit>[-dirty]" when only the commit is known.
func (v Info) Short() string {
	if v.Version != "devel" || v.Revision == "" {
		return v.Version
	}
	s := "devel-" + shortRevision(v.Revision)
	if v.Modified {
		s += "-dirty"
	}
	return s
}

// String is the version with what is known of the commit:
// "v0.0.0-<commit time>-<commit>+dirty (commit <commit>, <commit time, RFC 3339>, modified)".
func (v Info) String() string {
	if v.Revision == "" {
		if v.Version == "devel" {
			return "devel (built without version control information)"
		}
		return v.Version
	}
	details := []string{"commit " + shortRevision(v.Revision)}
	if !v.Time.IsZero() {
		details = append(details, v.Time.UTC().Format(time.RFC3339))
	}
	if v.Modified {
		details = append(details, "modified")
	}
	if v.FromGit && !v.Exact {
		// Not recorded by the build: say what is known, and no more.
		return v.Version + " (built without version control information; the checkout it was built from is at " +
			strings.Join(details, ", ") + ")"
	}
	if v.FromGit {
		details = append(details, "read from the checkout")
	}
	return v.Version + " (" + strings.Join(details, ", ") + ")"
}

func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
