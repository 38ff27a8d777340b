//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package diskspace

import "golang.org/x/sys/unix"

func statFS(path string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	// Bavail, not Bfree: the blocks reserved for root are not ours to use
	// even when the node runs as root, or the host has none left for
	// itself.
	bsize := uint64(st.Bsize) //nolint:unconvert // its type differs between systems
	return uint64(st.Bavail) * bsize, uint64(st.Blocks) * bsize, nil
}
