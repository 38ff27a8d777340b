package node

import (
	"context"
	"time"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// retentionClock advances the team's retention clock: while this node
// leads, it proposes a RetentionTickCommand every Retention.Tick, whose
// propose time is what every node measures the retention terms against
// (never its own clock), and proposes the next at once while the last
// stopped at its bound with more due. A team that holds no retention
// terms proposes nothing.
func (n *Node) retentionClock(stop <-chan struct{}) {
	ticker := time.NewTicker(n.cfg.Retention.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
		for n.IsLeader() && n.state.HasRetention() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := n.Propose(ctx, &irxv1.Command{Kind: &irxv1.Command_RetentionTick{RetentionTick: &irxv1.RetentionTickCommand{}}})
			cancel()
			if err != nil {
				n.log.Debug("retention tick not committed", "error", err)
				break
			}
			if res.Err != nil {
				n.log.Warn("retention tick refused", "error", res.Err)
				break
			}
			if !res.RetentionMore {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}
}
