package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/irxfed/irx/errdefs"
	"github.com/irxfed/irx/node/backup"
	"github.com/irxfed/irx/node/fsm"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// Backup streams a backup of this node's state machine to send: a Raft
// snapshot taken now (or the newest one when nothing was applied since),
// so the copy is the one a new member would install, consistent at the
// snapshot's index and term. Any member answers, from its own state.
//
// The snapshot is read from the snapshot store a chunk at a time as send
// accepts them, so memory stays bounded and a slow reader holds the
// stream back; the store keeps the file open for as long as it is read,
// even if a newer snapshot replaces it meanwhile.
func (n *Node) Backup(ctx context.Context, send func(*irxv1.BackupResponse) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	meta, rc, err := n.openSnapshot()
	if err != nil {
		return err
	}
	defer rc.Close()
	hdr := backup.Header(n.cfg.TeamID, n.cfg.NodeID, meta.Index, meta.Term, uint64(meta.Size), time.Now())
	n.log.Info("backup started", "raft_index", meta.Index, "raft_term", meta.Term, "bytes", meta.Size)
	if err := backup.Encode(hdr, rc, send); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func (n *Node) openSnapshot() (*raft.SnapshotMeta, io.ReadCloser, error) {
	f := n.raft.Snapshot()
	err := f.Error()
	if err == nil {
		return f.Open()
	}
	if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, nil, errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("backup: take a snapshot: %v; retry", err))
	}
	metas, err := n.snapshots.List()
	if err != nil {
		return nil, nil, fmt.Errorf("backup: snapshot store: %w", err)
	}
	if len(metas) == 0 {
		return nil, nil, errdefs.New(errdefs.ErrUnavailable, "backup: this node has applied nothing yet; retry")
	}
	return n.snapshots.Open(metas[0].ID)
}

// ErrDataDirInUse refuses to restore into a data directory that holds a
// node's storage.
var ErrDataDirInUse = errdefs.New(errdefs.ErrFailedPrecondition, "the data directory is not empty")

// CheckRestore checks, writing nothing, that cfg may start a new team from
// the backup file at path: the file is a complete, undamaged backup of
// cfg's team, the node starts alone (no join, no static members), and its
// data directory holds no storage. It returns the backup's header.
func CheckRestore(cfg Config, path string) (*irxv1.BackupHeader, error) {
	if cfg.Join || len(cfg.Members) > 0 {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, "a restore starts the new team's first node alone: drop join and members; the other nodes join it afterwards")
	}
	if err := emptyDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backup file: %w", err)
	}
	defer f.Close()
	hdr, err := backup.Verify(f, cfg.TeamID)
	if err != nil {
		return nil, fmt.Errorf("backup file %s: %w", path, err)
	}
	return hdr, nil
}

// emptyDataDir refuses a data directory with anything in it but the
// development PKI (which a team may keep there, and a restore keeps).
func emptyDataDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "pki" {
			names = append(names, e.Name())
		}
	}
	if len(names) > 0 {
		slices.Sort(names)
		return fmt.Errorf("%w: %s holds %v; a restore starts a new team and never overwrites a node's storage: give it an empty directory", ErrDataDirInUse, dir, names)
	}
	return nil
}

// seedFromBackup makes the backup at n.cfg.Restore this node's first Raft
// snapshot, consistent at the backup's index and term, with a
// configuration of this node alone, and records the backup's term as the
// current one. Raft then starts from the snapshot like a member that
// installed it: the state machine restores it, the new team's log
// continues after the backup's index, and this node elects itself.
func (n *Node) seedFromBackup(store raft.SnapshotStore, addr raft.ServerAddress) (err error) {
	f, err := os.Open(n.cfg.Restore)
	if err != nil {
		return fmt.Errorf("backup file: %w", err)
	}
	defer f.Close()
	d, err := backup.NewFileDecoder(f, n.cfg.TeamID)
	if err != nil {
		return fmt.Errorf("backup file %s: %w", n.cfg.Restore, err)
	}
	hdr := d.Header()
	conf := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.cfg.NodeID), Address: addr, Suffrage: raft.Voter}}}
	sink, err := store.Create(raft.SnapshotVersionMax, hdr.GetRaftIndex(), hdr.GetRaftTerm(), conf, hdr.GetRaftIndex(), n.transport)
	if err != nil {
		return fmt.Errorf("restore: snapshot store: %w", err)
	}
	var g [8]byte
	_, _ = rand.Read(g[:]) // crypto/rand.Read does not fail
	mark, err := fsm.RestoredSnapshot(sink, d, binary.BigEndian.Uint64(g[:])|1)
	if err == nil {
		// The snapshot stream ends before the backup's trailer: read to
		// the end so the checksum is checked again, on these bytes.
		_, err = io.Copy(io.Discard, d)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("restore from %s: %w", n.cfg.Restore, err), sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("restore: snapshot store: %w", err)
	}
	if err := n.logs.SetUint64([]byte("CurrentTerm"), hdr.GetRaftTerm()); err != nil {
		return fmt.Errorf("restore: raft term: %w", err)
	}
	n.log.Info("restoring a team from a backup", "file", n.cfg.Restore, "backup_node", hdr.GetNodeId(),
		"raft_index", hdr.GetRaftIndex(), "raft_term", hdr.GetRaftTerm(), "generation", mark.GetGeneration(),
		"feed_sequence", mark.GetFeedSequence(), "last_ticket", mark.GetLastTicket())
	return nil
}
