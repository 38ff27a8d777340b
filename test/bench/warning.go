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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		pollTO   = fs.Duration("poll-timeout", 5*time.Second, "give up a call to B after this long (counted)")
		size     = fs.Int("size", 1024, "encoded incident size in bytes")
		keep     = fs.Bool("keep", false, "keep the data directories")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd")
		gmp      = fs.Int("gomaxprocs", 0, gomaxprocsUsage)
		idleN    = fs.Int("idle-warnings", 20, "warnings issued after the catch-up, with B idle, for comparison")
		eachW    = fs.Bool("each", false, "print every warning issued during the catch-up")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	idleWarnings, each, pollTimeout := idleN, eachW, pollTO
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
		mu        sync.Mutex
		seen      = map[string]warningSample{} // by id, as B lists it
		current   uint64                       // B's received count at the last poll
		pollErr   error
		slowPolls int // calls to B given up after -poll-timeout
	)
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(*poll)
		defer tick.Stop()
		for {
			// A call B is slow to answer is given up and counted, so
			// that one does not stall the polls behind it.
			callCtx, cancel := context.WithTimeout(pollCtx, *pollTimeout)
			ws, werr := b.alerts.ListWarnings(callCtx, &irxv1.ListWarningsRequest{PageSize: 1000})
			now := time.Now()
			st, perr := b.peers.GetPeer(callCtx, &irxv1.GetPeerRequest{TeamId: "cert-a"})
			cancel()
			if status.Code(perr) == codes.NotFound {
				perr = nil // B has not peered yet: nothing received
			}
			mu.Lock()
			for _, err := range []*error{&werr, &perr} {
				if status.Code(*err) == codes.DeadlineExceeded && pollCtx.Err() == nil {
					slowPolls++
					*err = nil
				}
			}
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

	expire := timestamppb.New(time.Now().Add(time.Hour))
	var count int
	// issue issues a warning every -every while more() and returns them.
	issue := func(more func(progress uint64) (bool, error)) ([]warningSample, error) {
		var issued []warningSample
		for next := time.Now(); ; next = next.Add(*every) {
			mu.Lock()
			progress, perr := current, pollErr
			mu.Unlock()
			if perr != nil {
				return nil, fmt.Errorf("reading B: %w", perr)
			}
			if ok, err := more(progress); err != nil || !ok {
				return issued, err
			}
			time.Sleep(time.Until(next))
			count++
			resp, err := a.alerts.IssueWarning(ctx, &irxv1.IssueWarningRequest{Warning: &irxv1.Warning{
				Title: fmt.Sprintf("bench warning %d", count), Tlp: irxv1.Tlp_TLP_GREEN,
				Severity: irxv1.WarningSeverity_WARNING_SEVERITY_CRITICAL, AllPeers: true, ExpireTime: expire,
			}})
			if err != nil {
				return nil, fmt.Errorf("IssueWarning: %w", err)
			}
			issued = append(issued, warningSample{id: resp.GetWarning().GetWarningId(), issued: time.Now(), progressAtIssue: progress})
		}
	}
	// arrived waits until B lists every warning of ws and returns them
	// as B saw them.
	arrived := func(ws []warningSample) ([]warningSample, error) {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(*poll) {
			mu.Lock()
			var out []warningSample
			for _, w := range ws {
				if s, ok := seen[w.id]; ok {
					s.id, s.issued, s.progressAtIssue = w.id, w.issued, w.progressAtIssue
					out = append(out, s)
				}
			}
			mu.Unlock()
			if len(out) == len(ws) {
				return out, nil
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%d of %d warnings not at B after a minute", len(ws)-len(out), len(ws))
			}
		}
	}

	start := time.Now()
	if err := peer(ctx, b, a, true); err != nil {
		return err
	}
	issued, err := issue(func(progress uint64) (bool, error) {
		if time.Since(start) > 10*time.Minute {
			return false, fmt.Errorf("B received %d of %d records in 10 minutes", progress, *backlog)
		}
		return progress < uint64(*backlog), nil
	})
	if err != nil {
		return err
	}
	caughtUp := time.Since(start)
	fmt.Fprintf(out, "B caught up on %d records in %v = %.0f records/s (from CreatePeer at B; %v polls of B)\n",
		*backlog, caughtUp.Round(time.Millisecond), float64(*backlog)/caughtUp.Seconds(), *poll)
	if len(issued) == 0 {
		return errors.New("B caught up before the first warning: raise -backlog or lower -every")
	}
	during, err := arrived(issued)
	if err != nil {
		if ws, lerr := a.alerts.ListWarnings(ctx, &irxv1.ListWarningsRequest{PageSize: 3}); lerr == nil {
			for _, w := range ws.GetWarnings() {
				fmt.Fprintf(out, "A lists %s: deliveries %v\n", w.GetWarningId(), w.GetDeliveries())
			}
		}
		for i, n := range b.nodes {
			conn, derr := n.Dial()
			if derr != nil {
				continue
			}
			ws, lerr := irxv1.NewAlertServiceClient(conn).ListWarnings(ctx, &irxv1.ListWarningsRequest{PageSize: 1000})
			fmt.Fprintf(out, "B's node%d lists %d warnings (%v); the tool's poll error: %v\n", i+1, len(ws.GetWarnings()), lerr, pollErr)
			if len(ws.GetWarnings()) > 0 {
				fmt.Fprintf(out, "  first: %s received from %q\n", ws.GetWarnings()[0].GetWarningId(), ws.GetWarnings()[0].GetReceivedFrom())
			}
			conn.Close()
		}
		// What the nodes logged (warnings and above) says why.
		for name, t := range map[string]*fedTeam{"A": a, "B": b} {
			for i, n := range t.nodes {
				fmt.Fprintf(out, "%s's node%d, last log lines:\n  %s\n", name, i+1, lastLogLines(n, 4, "\n  "))
			}
		}
		return err
	}
	// The same with B idle, for comparison.
	n := 0
	idle, err := issue(func(uint64) (bool, error) { n++; return n <= *idleWarnings, nil })
	if err == nil {
		idle, err = arrived(idle)
	}
	if err != nil {
		return err
	}
	stopPoll()
	<-polled
	if *each {
		for _, w := range during {
			fmt.Fprintf(out, "  %s issued at +%v (B at %d), stored at B +%v, listed +%v (B at %d)\n", w.id,
				w.issued.Sub(start).Round(time.Millisecond), w.progressAtIssue, w.stored.Sub(w.issued).Round(time.Millisecond),
				w.listed.Sub(w.issued).Round(time.Millisecond), w.progressWhenListed)
		}
	}
	var beforeDone int
	var fractions []float64
	for _, w := range during {
		if w.progressWhenListed < uint64(*backlog) {
			beforeDone++
		}
		fractions = append(fractions, float64(w.progressWhenListed)/float64(*backlog))
	}
	fmt.Fprintf(out, "%d warnings issued while B caught up; %d listed at B before B had the whole backlog; %d calls of the tool's polls of B given up after %v\n",
		len(during), beforeDone, slowPolls, *pollTimeout)
	fmt.Fprintf(out, "during catch-up, IssueWarning returned at A -> listed at B: %s\n", latencies(during, false))
	fmt.Fprintf(out, "during catch-up, IssueWarning returned at A -> stored at B (B's receive_time, same clock): %s\n", latencies(during, true))
	fmt.Fprintf(out, "B idle, IssueWarning returned at A -> listed at B: %s\n", latencies(idle, false))
	fmt.Fprintf(out, "B idle, IssueWarning returned at A -> stored at B: %s\n", latencies(idle, true))
	slices.Sort(fractions)
	fmt.Fprintf(out, "B's catch-up when each warning was listed: min %.0f%%  median %.0f%%  max %.0f%% of %d records\n",
		100*fractions[0], 100*fractions[len(fractions)/2], 100*fractions[len(fractions)-1], *backlog)
	return nil
}

// latencies is "p50 ... p90 ... p99 ... max ..." of the times from each
// warning's IssueWarning return to B storing it, or to B listing it.
func latencies(ws []warningSample, stored bool) string {
	if len(ws) == 0 {
		return "none"
	}
	var s []time.Duration
	for _, w := range ws {
		at := w.listed
		if stored {
			at = w.stored
		}
		s = append(s, max(0, at.Sub(w.issued)))
	}
	slices.Sort(s)
	pct := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v (%d warnings)", pct(0.5), pct(0.9), pct(0.99), pct(1), len(s))
}
