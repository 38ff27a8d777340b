package federation

import (
	"context"
	"errors"
	"time"

	"github.com/irxfed/irx/errdefs"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// The bounds of a stretch of a redisclosure keep it to what one feed
// entry should carry: its replacements are computed together and, in the
// ledger, acknowledged together.
const (
	stretchIncidents = 256
	stretchVersions  = 1024
	stretchBytes     = 4 << 20
)

// redisclosePoll is how often the leader looks for redisclosures to
// advance when it has none under way.
const redisclosePoll = 250 * time.Millisecond

// runRedisclosures advances, while this node leads, every redisclosure
// under way (a peer's policy changed, so what it holds is disclosed again):
// it proposes one RediscloseCommand per stretch of what the peer holds,
// until the last. The progress is replicated state, so a new leader
// carries on where the old one stopped; a stretch proposed twice applies
// once.
func (f *Federation) runRedisclosures(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	for ctx.Err() == nil {
		advanced := false
		if f.node.IsLeader() {
			advanced = f.advanceRedisclosures(ctx)
		}
		if advanced {
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(redisclosePoll):
		}
	}
}

// advanceRedisclosures proposes the next stretch of every redisclosure
// under way and reports whether any was committed.
func (f *Federation) advanceRedisclosures(ctx context.Context) bool {
	pending, err := f.state.Redisclosures()
	if err != nil {
		f.log.Error("read redisclosures", "error", err)
		return false
	}
	advanced := false
	for peer, progress := range pending {
		through, last, err := f.state.NextStretch(peer, progress.GetAfterIncidentId(), stretchIncidents, stretchVersions, stretchBytes)
		if err != nil {
			f.log.Error("next stretch of a redisclosure", "peer", peer, "error", err)
			continue
		}
		cmd := &irxv1.RediscloseCommand{
			PeerTeamId: peer, PolicyVersion: progress.GetPolicyVersion(),
			AfterIncidentId: progress.GetAfterIncidentId(), ThroughIncidentId: through, Last: last,
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = f.commit(pctx, &irxv1.Command{Kind: &irxv1.Command_Redisclose{Redisclose: cmd}})
		cancel()
		switch {
		case err == nil:
			advanced = true
			if last {
				f.log.Info("redisclosed what the peer holds under its policy", "peer", peer, "policy_version", progress.GetPolicyVersion())
			}
		case errors.Is(err, errdefs.ErrConflict):
			advanced = true // another proposal moved it; read it again
		case ctx.Err() == nil:
			f.log.Warn("propose a stretch of a redisclosure; retrying", "peer", peer, "error", err)
		}
	}
	return advanced
}
