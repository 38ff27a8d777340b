//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package node

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on f without waiting and reports whether
// another open file holds it. A flock belongs to the open file, so a second
// node in the same process is refused too (fcntl locks, pebble's, are the
// process's and would not be).
func tryLock(f *os.File) (heldElsewhere bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
