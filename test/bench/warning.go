package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// warningSample is one emergency warning the bench issued at A and saw
// at B.
type warningSample struct {
	id                 string
	issued             time.Time // IssueWarning returned at A
	listed             time.Time // first in B's ListWarnings
	stored             time.Time // B's receive_time, stamped by B's leader
	progressAtIssue    uint64    // records of the backlog B had received when it was issued
	progressWhenListed uint64    // ... when B listed it
}

// runWarning measures emergency warnings while the receiver catches up: A
// records a backlog B does not follow; then B peers with A and, while it
// pulls the backlog, A issues a warning every -every. For each warning it
// reports the time from IssueWarning's return at A to the warning listed
// at B, and how far B's catch-up was then.
func runWarning(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("warning", flag.ContinueOnError)
	var (
		nodes    = fs.Int("nodes", 3, "nodes of team A (the issuer)")
		bNodes   = fs.Int("b-nodes", 3, "nodes of team B (the recipient)")
		backlog  = fs.Int("backlog", 100000, "records team A creates while B does not follow it")
		every    = fs.Duration("every", 100*time.Millisecond, "issue a warning at A this often while B catches up")
		poll     = fs.Duration("poll", 5*time.Millisecond, "how often the tool lists B's warnings")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		keep     = fs.Bool("keep", false, "keep the data directories")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd")
		gmp      = fs.Int("gomaxprocs", 0, gomaxprocsUsage)
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *backlog <= 0 || *every <= 0 || *poll <= 0 {
		return errors.New("-backlog, -every and -poll must be positive")
	}
	dir, err := os.MkdirTemp("", "irx-bench-warn")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	procsUsed := setProcs(*gmp, *nodes+*bNodes+1)
	bin, err := buildOrUse(ctx, dir, *prebuilt)
	if err != nil {
		return err
	}
	teams, err := startTeams(ctx, bin, dir, []int{*nodes, *bNodes}, 0, procsUsed)
	defer stopTeams(teams)
	if err != nil {
		return err
	}
	a, b := teams[0], teams[1]
	fmt.Fprintf(out, "started team A (%d nodes) and team B (%d nodes) in %s, %s\n", *nodes, *bNodes, dir, procsUsed.note(true))
	// A delivers warnings to B's endpoints, so A's peer record of B has
	// them (A also follows B's feed, where B's lack of a policy for A
	// leaves nothing to pull).
	if err := peer(ctx, a, b, true); err != nil {
		return err
	}
	if _, err := a.policies.SetPolicy(ctx, &irxv1.SetPolicyRequest{PolicyYaml: benchPolicy}); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	incident := paddedIncident(*size)
	incident.Tlp = irxv1.Tlp_TLP_GREEN
	incident.Restriction = irxv1.Restriction_RESTRICTION_PARTNER
	fmt.Fprintf(out, "team A records %d incidents while B does not follow it\n", *backlog)
	began := time.Now()
	if err := createBacklog(ctx, a, incident, *backlog); err != nil {
		return err
	}
	fmt.Fprintf(out, "backlog recorded in %v; B starts following A, A issues a warning every %v until B has caught up\n",
		time.Since(began).Round(time.Millisecond), *every)

	// B's warnings and progress, read by one poller until stopped.
	var (
		mu      sync.Mutex
		seen    = map[string]warningSample{} // by id, as B lists it
		current uint64                       // B's received count at the last poll
		pollErr error
	)
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(*poll)
		defer tick.Stop()
		for {
			ws, werr := b.alerts.ListWarnings(pollCtx, &irxv1.ListWarningsRequest{PageSize: 1000})
			now := time.Now()
			st, perr := b.peers.GetPeer(pollCtx, &irxv1.GetPeerRequest{TeamId: "cert-a"})
			mu.Lock()
			if err := errors.Join(werr, perr); err != nil && pollCtx.Err() == nil {
				pollErr = err
			}
			if perr == nil {
				current = st.GetPeer().GetStatus().GetReceived()
			}
			for _, w := range ws.GetWarnings() {
				if _, ok := seen[w.GetWarningId()]; !ok && w.GetReceivedFrom() == "cert-a" {
					seen[w.GetWarningId()] = warningSample{listed: now, stored: w.GetReceiveTime().AsTime(), progressWhenListed: current}
				}
			}
			mu.Unlock()
			select {
			case <-pollCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { stopPoll(); <-polled }()

	start := time.Now()
	if err := peer(ctx, b, a, true); err != nil {
		return err
	}
	var issued []warningSample
	expire := timestamppb.New(time.Now().Add(time.Hour))
	for next := time.Now(); ; next = next.Add(*every) {
		mu.Lock()
		progress, perr := current, pollErr
		mu.Unlock()
		if perr != nil {
			return fmt.Errorf("reading B: %w", perr)
		}
		if progress >= uint64(*backlog) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("B received %d of %d records in 10 minutes", progress, *backlog)
		}
		time.Sleep(time.Until(next))
		resp, err := a.alerts.IssueWarning(ctx, &irxv1.IssueWarningRequest{Warning: &irxv1.Warning{
			Title: fmt.Sprintf("bench warning %d", len(issued)+1), Tlp: irxv1.Tlp_TLP_GREEN,
			Severity: irxv1.WarningSeverity_WARNING_SEVERITY_CRITICAL, AllPeers: true, ExpireTime: expire,
		}})
		if err != nil {
			return fmt.Errorf("IssueWarning: %w", err)
		}
		issued = append(issued, warningSample{id: resp.GetWarning().GetWarningId(), issued: time.Now(), progressAtIssue: progress})
	}
	caughtUp := time.Since(start)
	fmt.Fprintf(out, "B caught up on %d records in %v = %.0f records/s (from CreatePeer at B; %v polls of B)\n",
		*backlog, caughtUp.Round(time.Millisecond), float64(*backlog)/caughtUp.Seconds(), *poll)
	if len(issued) == 0 {
		return errors.New("B caught up before the first warning: raise -backlog or lower -every")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		missing := 0
		for _, w := range issued {
			if _, ok := seen[w.id]; !ok {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d warnings not at B a minute after B caught up", missing, len(issued))
		}
		time.Sleep(*poll)
	}
	stopPoll()
	<-polled
	var listed, stored []time.Duration
	var during int
	var fractions []float64
	for i := range issued {
		s := seen[issued[i].id]
		listed = append(listed, max(0, s.listed.Sub(issued[i].issued)))
		stored = append(stored, max(0, s.stored.Sub(issued[i].issued)))
		if s.progressWhenListed < uint64(*backlog) {
			during++
		}
		fractions = append(fractions, float64(s.progressWhenListed)/float64(*backlog))
	}
	fmt.Fprintf(out, "%d warnings issued while B caught up; %d listed at B before B had the whole backlog\n", len(issued), during)
	fmt.Fprintf(out, "IssueWarning returned at A -> listed at B: %s\n", durationPercentiles(listed))
	fmt.Fprintf(out, "IssueWarning returned at A -> stored at B (B's receive_time, same clock): %s\n", durationPercentiles(stored))
	slices.Sort(fractions)
	fmt.Fprintf(out, "B's catch-up when each warning was listed: min %.0f%%  median %.0f%%  max %.0f%% of %d records\n",
		100*fractions[0], 100*fractions[len(fractions)/2], 100*fractions[len(fractions)-1], *backlog)
	return nil
}

// durationPercentiles is "p50 ... p90 ... p99 ... max ..." of ds.
func durationPercentiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v (%d warnings)", pct(0.5), pct(0.9), pct(0.99), pct(1), len(s))
}
