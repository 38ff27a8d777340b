package federation

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// Emergency warnings travel apart from the feed: the leader calls each
// recipient's DeliverWarning itself, as soon as the warning is committed,
// on a connection of its own, so a backlog of records on the feed (which
// the recipient pulls at its own pace) never stands in front of one. The
// recipient commits the warning in one small entry and answers; the
// leader then commits the delivery. An operator's acknowledgement at the
// recipient goes back the same way (AcknowledgePeerWarning). Both sides
// keep what is still to do in their replicated state, so a new leader
// picks it up; calls are retried with backoff until they succeed or the
// warning expires.

const (
	warningCallTimeout = 10 * time.Second
	warningRetryMin    = 250 * time.Millisecond
	warningRetryMax    = 30 * time.Second
	// warningPoll bounds how long a committed warning can wait for the
	// leader to notice it when no applied change wakes it.
	warningPoll = time.Second
)

// warningSender is the leader's loop over warnings to deliver and
// acknowledgements to pass back.
type warningSender struct {
	f     *Federation
	mu    sync.Mutex
	retry map[string]retryState // "<warning>\x00<peer>" -> when to try again
	// inflight: the jobs running now, by the same key. A pass starts what
	// is due and not running, and does not wait for it: a delivery waits
	// for the recipient's commit and then ours, and a warning committed
	// meanwhile must not wait behind it.
	inflight map[string]bool
	jobs     sync.WaitGroup
	sight    sightingSender
}

type retryState struct {
	next    time.Time
	backoff time.Duration
}

func (s *warningSender) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	// Sightings have a loop of their own: an unreachable member must not
	// hold warnings back.
	var sighting sync.WaitGroup
	sighting.Add(1)
	go func() {
		defer sighting.Done()
		s.sightLoop(ctx)
	}()
	defer sighting.Wait()
	defer s.jobs.Wait()
	// A pass reads every warning: it runs when they changed, when this
	// node comes to lead, and, while the last pass left work (a delivery
	// or an acknowledgement to retry), every warningPoll for what became
	// due; not after every applied entry (under one client, one per
	// write), and not at all while nothing is left to do.
	var seen uint64
	var passed time.Time
	wasLeader, left := false, false
	for ctx.Err() == nil {
		applied, rev := s.f.state.AppliedIndex(), s.f.state.WarningRevision()
		leading := s.f.node.IsLeader()
		if leading && (!wasLeader || rev != seen || left && time.Since(passed) >= warningPoll) {
			left = s.pass(ctx)
			seen, passed = rev, time.Now()
		}
		wasLeader = leading
		wait, done := context.WithTimeout(ctx, warningPoll)
		_ = s.f.state.WaitApplied(wait, applied+1)
		done()
	}
}

func (s *warningSender) sightLoop(ctx context.Context) {
	for ctx.Err() == nil {
		applied := s.f.state.AppliedIndex()
		if s.f.node.IsLeader() {
			s.sightings(ctx)
		} else {
			s.sight = sightingSender{} // a new term as leader sends everything again
		}
		wait, done := context.WithTimeout(ctx, warningPoll)
		_ = s.f.state.WaitApplied(wait, applied+1)
		done()
	}
}

// pass starts, once, what is due and not running yet: every pending
// delivery and every acknowledgement not yet passed back, each on its own
// goroutine. It reports whether any was left to do (running, waiting for
// its retry, or not read).
func (s *warningSender) pass(ctx context.Context) bool {
	now := time.Now()
	type job struct {
		key string
		run func(context.Context) error
	}
	var jobs []job
	err := s.f.state.EachWarning(func(w *irxv1.Warning) error {
		if w.GetExpireTime().AsTime().Before(now) {
			return nil
		}
		if w.GetOriginTeam() == s.f.team {
			for _, d := range w.GetDeliveries() {
				if d.GetState() == irxv1.WarningDeliveryState_WARNING_DELIVERY_STATE_PENDING {
					w, peer := proto.CloneOf(w), d.GetPeerTeamId()
					jobs = append(jobs, job{w.GetWarningId() + "\x00" + peer, func(ctx context.Context) error { return s.deliver(ctx, w, peer) }})
				}
			}
			return nil
		}
		if w.GetAcknowledgedBy() != "" && !w.GetAcknowledgementDelivered() {
			w := proto.CloneOf(w)
			jobs = append(jobs, job{w.GetWarningId() + "\x00ack", func(ctx context.Context) error { return s.acknowledge(ctx, w) }})
		}
		return nil
	})
	if err != nil {
		s.f.log.Warn("reading warnings", "error", err)
		return true
	}
	for _, j := range jobs {
		s.mu.Lock()
		r, running := s.retry[j.key], s.inflight[j.key]
		if running || now.Before(r.next) {
			s.mu.Unlock()
			continue
		}
		s.inflight[j.key] = true
		s.mu.Unlock()
		s.jobs.Add(1)
		go func() {
			defer s.jobs.Done()
			err := j.run(ctx)
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.inflight, j.key)
			if err == nil {
				delete(s.retry, j.key)
				return
			}
			r.backoff = min(max(2*r.backoff, warningRetryMin), warningRetryMax)
			r.next = time.Now().Add(r.backoff)
			s.retry[j.key] = r
			s.f.log.Warn("warning not passed on; will retry", "job", strings.ReplaceAll(j.key, "\x00", " "), "in", r.backoff, "error", err)
		}()
	}
	return len(jobs) > 0
}

// deliver hands a warning to one recipient and commits the delivery.
func (s *warningSender) deliver(ctx context.Context, w *irxv1.Warning, peerID string) error {
	peer, err := s.f.state.Peer(peerID)
	if err != nil {
		return err
	}
	if peer.GetDisabled() {
		return status.Errorf(codes.FailedPrecondition, "peer %s is disabled", peerID)
	}
	sent := proto.CloneOf(w)
	sent.Deliveries, sent.IssuedBy = nil, ""
	if _, err := s.f.callPeer(ctx, peer, warningCallTimeout, func(ctx context.Context, c irxv1.FederationServiceClient) error {
		_, err := c.DeliverWarning(ctx, &irxv1.DeliverWarningRequest{Warning: sent})
		return err
	}); err != nil {
		return err
	}
	_, err = s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_RecordWarningDelivery{RecordWarningDelivery: &irxv1.RecordWarningDeliveryCommand{
		WarningId: w.GetWarningId(), PeerTeamId: peerID,
	}}})
	return err
}

// acknowledge passes our operator's acknowledgement back to the issuer.
func (s *warningSender) acknowledge(ctx context.Context, w *irxv1.Warning) error {
	peer, err := s.f.state.Peer(w.GetOriginTeam())
	if err != nil {
		return err
	}
	if _, err := s.f.callPeer(ctx, peer, warningCallTimeout, func(ctx context.Context, c irxv1.FederationServiceClient) error {
		_, err := c.AcknowledgePeerWarning(ctx, &irxv1.AcknowledgePeerWarningRequest{
			WarningId: w.GetWarningId(), AcknowledgedBy: w.GetAcknowledgedBy(), AcknowledgeTime: w.GetAcknowledgeTime(),
		})
		return err
	}); err != nil {
		return err
	}
	_, err = s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_MarkWarningAcknowledgementDelivered{
		MarkWarningAcknowledgementDelivered: &irxv1.MarkWarningAcknowledgementDeliveredCommand{WarningId: w.GetWarningId()},
	}})
	return err
}

// DeliverWarning implements irx.v1.FederationService: a peer delivers one
// of its own warnings. What it sends is checked like a record's text.
func (s *federationService) DeliverWarning(ctx context.Context, req *irxv1.DeliverWarningRequest) (*irxv1.DeliverWarningResponse, error) {
	from := caller(ctx)
	w := req.GetWarning()
	switch {
	case w == nil:
		return nil, status.Error(codes.InvalidArgument, "warning is required")
	case w.GetOriginTeam() != from || !strings.HasPrefix(w.GetWarningId(), from+":w"):
		return nil, status.Errorf(codes.PermissionDenied, "%s delivers warning %q of %q: a team delivers only its own warnings", from, w.GetWarningId(), w.GetOriginTeam())
	}
	if err := record.ValidateWarning(w, "warning", time.Time{}); err != nil {
		return nil, err
	}
	if _, err := s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_ReceiveWarning{ReceiveWarning: &irxv1.ReceiveWarningCommand{
		PeerTeamId: from, Warning: w,
	}}}); err != nil {
		return nil, err
	}
	return &irxv1.DeliverWarningResponse{}, nil
}

// AcknowledgePeerWarning implements irx.v1.FederationService: a recipient
// of one of our warnings says its operator acknowledged it. Only a
// recipient the warning names can.
func (s *federationService) AcknowledgePeerWarning(ctx context.Context, req *irxv1.AcknowledgePeerWarningRequest) (*irxv1.AcknowledgePeerWarningResponse, error) {
	from := caller(ctx)
	if !strings.HasPrefix(req.GetWarningId(), s.f.team+":w") {
		return nil, status.Errorf(codes.NotFound, "warning %q is not one of %s's", req.GetWarningId(), s.f.team)
	}
	if _, err := s.f.commit(ctx, &irxv1.Command{Kind: &irxv1.Command_RecordWarningDelivery{RecordWarningDelivery: &irxv1.RecordWarningDeliveryCommand{
		WarningId: req.GetWarningId(), PeerTeamId: from, Acknowledged: true,
		AcknowledgedBy: req.GetAcknowledgedBy(), AcknowledgeTime: req.GetAcknowledgeTime(),
	}}}); err != nil {
		return nil, err
	}
	return &irxv1.AcknowledgePeerWarningResponse{}, nil
}
