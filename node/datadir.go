package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// dataDirLockFile is the file whose lock marks a data directory in use; it
// holds the process id of the irxd that holds it.
const dataDirLockFile = "irxd.lock"

// DataDirInUseError is returned by Start when another process runs a node
// on the same data directory. Two nodes on one directory would corrupt it;
// pebble's own locks would refuse the second too, but only with the
// system's "resource temporarily unavailable".
type DataDirInUseError struct {
	Dir string
	// PID is the process holding the directory, 0 if it has not written
	// it yet.
	PID int
}

func (e *DataDirInUseError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data directory %s is in use by another irxd (pid %d): stop it, or give this node another data directory", e.Dir, e.PID)
	}
	return fmt.Sprintf("data directory %s is in use by another irxd (it holds the lock on %s and has not written its pid yet)", e.Dir, filepath.Join(e.Dir, dataDirLockFile))
}

// lockDataDir takes the data directory for this process, before anything in
// it is read or written, and records the process id for the message a
// second irxd gives. The lock goes with the process: a node that crashed
// leaves none behind.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, dataDirLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory: lock %s: %w", path, err)
	}
	if held {
		f.Close()
		inUse := &DataDirInUseError{Dir: dir}
		if data, err := os.ReadFile(path); err == nil {
			inUse.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		return nil, inUse
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory: write %s: %w", path, err)
	}
	return f, nil
}
