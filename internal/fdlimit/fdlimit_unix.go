//go:build unix

// Package fdlimit reads the process's limit on open descriptors, which bounds
// how many sockets the server can hold and the load tool can open.
package fdlimit

import "syscall"

// Open is the soft limit on open descriptors (RLIMIT_NOFILE); ok is false
// where it cannot be read.
func Open() (limit uint64, ok bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true // Cur is int64 on some BSDs
}
