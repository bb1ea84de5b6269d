//go:build unix

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

// Supported reports whether this system's locks are enforced.
const Supported = true

func lock(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrBusy
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return err
		}
	}
}
