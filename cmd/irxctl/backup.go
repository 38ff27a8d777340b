package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/irxfed/irx/node/backup"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

func backupCommand() *command {
	return &command{
		name:  "backup",
		usage: "backup -o FILE",
		short: "Copy the team's state to a file, for irxd --restore",
		long: `The node answering takes a Raft snapshot (or uses its newest one) and streams
it; the file holds the team id, the Raft index and term the copy is consistent
at, and a SHA-256 of the whole. irxctl writes it beside FILE under a temporary
name, reads it back to check the checksum, and only then renames it to FILE.
The call has no deadline (--timeout does not apply); interrupt to stop.

A backup holds every value the team keeps, the pseudonymisation secret
included: it is written readable by its owner only; keep it like the CA key.
Needs the cluster-admin role.`,
		connects: true,
		setup: func(fs *flag.FlagSet) action {
			out := fs.String("o", "", "the backup `FILE` to write (required)")
			return func(ctx context.Context, c *cli, _ []string) error {
				if *out == "" {
					return errors.New("backup: -o FILE is required: the file to write the backup to")
				}
				hdr, size, err := writeBackup(ctx, c, *out)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.stdout, "backup of team %s from node %s at Raft index %d (term %d): %d bytes of state, checksum verified, written to %s\n",
					hdr.GetTeamId(), hdr.GetNodeId(), hdr.GetRaftIndex(), hdr.GetRaftTerm(), size, *out)
				return err
			}
		},
	}
}

// writeBackup streams a backup into a temporary file beside path, checks
// the file as written, and renames it to path: path is either absent, as
// it was, or a complete, verified backup.
func writeBackup(ctx context.Context, c *cli, path string) (_ *irxv1.BackupHeader, _ int64, err error) {
	s, err := c.connect()
	if err != nil {
		return nil, 0, err
	}
	defer s.Close()
	stream, err := irxv1.NewBackupServiceClient(s.conn).Backup(ctx, &irxv1.BackupRequest{})
	if err != nil {
		return nil, 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, 0, fmt.Errorf("backup file: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.Remove(tmp.Name()))
		}
	}()
	// CreateTemp makes the file 0600; a backup holds the team's secret.
	written := int64(0)
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, errors.Join(err, tmp.Close())
		}
		written += int64(len(m.GetChunk()))
		if err := backup.WriteMessage(tmp, m); err != nil {
			return nil, 0, errors.Join(fmt.Errorf("backup file: %w", err), tmp.Close())
		}
	}
	if err := tmp.Sync(); err != nil {
		return nil, 0, errors.Join(fmt.Errorf("backup file: %w", err), tmp.Close())
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, 0, errors.Join(fmt.Errorf("backup file: %w", err), tmp.Close())
	}
	// Read back what is on disk: the checksum covers the file, not the
	// messages as they arrived.
	hdr, err := backup.Verify(tmp, "")
	if err != nil {
		return nil, 0, errors.Join(fmt.Errorf("the backup as written does not verify: %w", err), tmp.Close())
	}
	if err := tmp.Close(); err != nil {
		return nil, 0, fmt.Errorf("backup file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, 0, fmt.Errorf("backup file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, 0, fmt.Errorf("backup file: %w", err)
		}
	}
	return hdr, written, nil
}
