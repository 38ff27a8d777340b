package version

import (
	"context"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestFromBuildInfoReadsWhatGoBuildRecords(t *testing.T) {
	stamped := fromBuildInfo(&debug.BuildInfo{
		Main: debug.Module{Version: "v0.0.0-20261206204101-43f5a4e7f89e+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "43f5a4e7f89e495da0c5c49a1a97665893e386b8"},
			{Key: "vcs.time", Value: "2026-12-06T20:41:01Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	if want := "v0.0.0-20261206204101-43f5a4e7f89e+dirty (commit 43f5a4e7f89e, 2026-12-06T20:41:01Z, modified)"; stamped.String() != want {
		t.Errorf("stamped build: %q, want %q", stamped, want)
	}
	if stamped.CommitSource() != "build" {
		t.Errorf("stamped build: commit source %q", stamped.CommitSource())
	}
	if stamped.Short() != "v0.0.0-20261206204101-43f5a4e7f89e+dirty" {
		t.Errorf("Short: %q", stamped.Short())
	}

	release := fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}})
	if release.String() != "v1.2.0" || release.Short() != "v1.2.0" {
		t.Errorf("release: %q / %q", release, release.Short())
	}

	bare := fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	if bare.String() != "devel (built without version control information)" || bare.Short() != "devel" {
		t.Errorf("unstamped: %q / %q", bare, bare.Short())
	}
	bare.Revision = "43f5a4e7f89e495da0c5c49a1a97665893e386b8"
	if bare.Short() != "devel-43f5a4e7f89e" {
		t.Errorf("devel with a commit: %q", bare.Short())
	}
}

// What "go run" builds carries no commit; the checkout's is read instead,
// and a change not committed shows.
func TestGoRunShowsTheCheckoutsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds irxctl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	head, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	// -buildvcs=false is what a go run records anyway, and what a machine's
	// GOFLAGS may force on go build too.
	cmd := exec.CommandContext(ctx, "go", "run", "-buildvcs=false", "github.com/irxfed/irx/cmd/irxctl", "version")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run irxctl version: %v\n%s", err, out)
	}
	if want := "(commit " + strings.TrimSpace(string(head))[:12]; !strings.Contains(string(out), want) {
		t.Errorf("irxctl version under go run: %q does not say %q", out, want)
	}
}

func TestACommitReadFromTheCheckoutSaysSo(t *testing.T) {
	v := Info{Version: "devel", Revision: "43f5a4e7f89e495da0c5c49a1a97665893e386b8", Time: time.Date(2026, 12, 6, 20, 41, 1, 0, time.UTC), FromGit: true}
	if want := "devel (built without version control information; the checkout it was built from is at commit 43f5a4e7f89e, 2026-12-06T20:41:01Z)"; v.String() != want {
		t.Errorf("go build without VCS information: %q, want %q", v, want)
	}
	if v.CommitSource() != "checkout, not recorded by the build" {
		t.Errorf("commit source %q", v.CommitSource())
	}
	v.Exact, v.Modified = true, true
	if want := "devel (commit 43f5a4e7f89e, 2026-12-06T20:41:01Z, modified, read from the checkout)"; v.String() != want {
		t.Errorf("go run: %q, want %q", v, want)
	}
	if v.CommitSource() != "checkout" {
		t.Errorf("go run: commit source %q", v.CommitSource())
	}
}

func TestWithGitOutsideACheckoutChangesNothing(t *testing.T) {
	v := Info{Version: "devel"}
	if got := v.withGit(t.TempDir()); got != v {
		t.Errorf("outside a checkout: %+v", got)
	}
	if got := v.withGit(""); got != v {
		t.Errorf("no source directory: %+v", got)
	}
}
