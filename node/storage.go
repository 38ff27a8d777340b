package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/node/diskspace"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// A node's disks: the free-space guard, stalled writes, damaged files.
//
// A node that cannot write (a full disk, a write pebble holds back
// forever) must not stay leader: its heartbeats would keep the team from
// electing a healthy one while no write commits. So the node refuses
// client writes at once, naming the disk, reports NOT_SERVING, and hands
// its leadership away; the log refuses appends a little later (half the
// reserve). A write that stalls cannot be cancelled, and Raft's loop waits
// in it; after Storage.StallTimeout the node stops sending Raft's
// heartbeats and appends (durableTransport), so the others elect a leader
// among themselves. Stale reads go on.

// pollDisksEvery is how often the guard looks at free space: a disk fills
// at most a few tens of MiB in that time at the node's full ingest rate,
// well inside any sensible reserve.
const pollDisksEvery = 250 * time.Millisecond

func newDiskGuard(cfg Config) *diskspace.Guard {
	return diskspace.New(uint64(cfg.Storage.MinFreeBytes), nil,
		diskspace.Disk{Name: "raft log", Path: filepath.Join(cfg.DataDir, "raft")},
		diskspace.Disk{Name: "state machine", Path: filepath.Join(cfg.DataDir, "state")})
}

// storageProblem returns why this node refuses writes because of its
// disks, or nil.
func (n *Node) storageProblem() error {
	if n.disks != nil {
		if err := n.disks.Low(); err != nil {
			return err
		}
	}
	if n.logs != nil {
		if err := n.logs.Stalled(); err != nil {
			return err
		}
	}
	if n.state != nil {
		if err := n.state.Problem(n.cfg.Storage.StallTimeout); err != nil {
			return err
		}
	}
	return nil
}

// writeStalled returns why this node's writes are stuck (a Raft log
// append or a state machine write that has not finished in
// Storage.StallTimeout), or nil.
func (n *Node) writeStalled() error {
	if err := n.logs.Stalled(); err != nil {
		return err
	}
	return n.state.Stalled(n.cfg.Storage.StallTimeout)
}

// watchStorage polls free space and scrubs the state machine until ctx
// ends.
func (n *Node) watchStorage(ctx context.Context) {
	if n.cfg.Storage.ScrubInterval > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.scrub(ctx)
		}()
	}
	n.disks.Run(ctx, pollDisksEvery, nil)
}

// scrub checks every block of the state machine's files every
// ScrubInterval, paced to ScrubBytesPerSecond.
func (n *Node) scrub(ctx context.Context) {
	t := time.NewTicker(n.cfg.Storage.ScrubInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := n.state.Verify(ctx, n.cfg.Storage.ScrubBytesPerSecond)
		var cerr *fsm.CorruptionError
		switch {
		case errors.As(err, &cerr):
			n.log.Error("state machine scrub: a file is corrupt; this node refuses writes and reports NOT_SERVING; restart it to rebuild the state machine from the Raft log",
				"file", cerr.Path, "error", cerr.Err)
		case err != nil && ctx.Err() == nil:
			n.log.Warn("state machine scrub failed", "error", err)
		}
	}
}

// handOffLeadership transfers leadership to another voter when this node
// leads and its disks refuse writes. One transfer at a time, and none in a
// one-node team, which has no one to hand to.
func (n *Node) handOffLeadership(problem error) {
	if n.raft.State() != raft.Leader {
		return
	}
	if s, err := n.Standing(); err != nil || s.Voters < 2 {
		return
	}
	if !n.handingOff.CompareAndSwap(false, true) {
		return
	}
	n.log.Warn("handing leadership away: this node's disk refuses writes", "problem", problem.Error())
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.handingOff.Store(false)
		if err := n.raft.LeadershipTransfer().Error(); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
			n.log.Warn("leadership transfer failed", "error", err)
		}
	}()
}

// diskStatus reports the node's disks for GetClusterStatus.
func (n *Node) diskStatus() []*irxv1.DiskStatus {
	if n.disks == nil {
		return nil
	}
	problem := n.storageProblem()
	var serr *errdefs.StorageError
	errors.As(problem, &serr)
	var out []*irxv1.DiskStatus
	for _, s := range n.disks.Status() {
		d := &irxv1.DiskStatus{Disk: s.Name, Path: s.Path, FreeBytes: s.Free, TotalBytes: s.Total, ReserveBytes: n.disks.Reserve()}
		if s.Err != nil {
			d.Problem = "free space unknown: " + s.Err.Error()
		}
		if serr != nil && (serr.Disk == s.Name+" disk" || serr.Disk == s.Name) {
			d.Problem = serr.Error()
			d.Path = serr.Path
		}
		out = append(out, d)
	}
	return out
}

// storageClass turns a read's failure on this node's damaged state
// machine into the error saying so (UNAVAILABLE at the edge: other nodes
// hold good copies), instead of an internal error.
func (n *Node) storageClass(err error) error {
	if n.state == nil || err == nil {
		return err
	}
	if !pebble.IsCorruptionError(err) && n.state.Corrupted() == "" {
		return err
	}
	if problem := n.state.Problem(n.cfg.Storage.StallTimeout); problem != nil {
		return problem
	}
	return &errdefs.StorageError{Disk: "state machine", Path: filepath.Join(n.cfg.DataDir, "state"), Class: errdefs.ErrUnavailable,
		Reason: fmt.Sprintf("a file is corrupt (%v); restart the node to rebuild the state machine from the Raft log", err)}
}
