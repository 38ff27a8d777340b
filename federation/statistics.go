package federation

import (
	"context"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// runStatistics has the leader propose, every StatisticsInterval, that the
// team's statistics be published. The state machine appends a feed entry
// only when they changed since the last, so a quiet team adds none, and a
// busy one at most one per interval; each peer's stream then sends them
// if its policy discloses the statistical class.
func (f *Federation) runStatistics(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	tick := time.NewTicker(f.cfg.StatisticsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !f.node.IsLeader() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := f.commit(pctx, &irxv1.Command{Kind: &irxv1.Command_PublishStatistics{PublishStatistics: &irxv1.PublishStatisticsCommand{}}})
		cancel()
		if err != nil && ctx.Err() == nil {
			f.log.Warn("publish the team's statistics; retrying at the next interval", "error", err)
		}
	}
}
