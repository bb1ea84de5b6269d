// Package dirlock keeps a data directory's store from being replaced under a
// process that has it open: every process that opens the SQLite store holds a
// shared lock on <dir>/dollr.lock (several servers may share a directory),
// and `dollr restore` needs it exclusively. The operating system drops a
// dead process's lock, so a crash never leaves the directory locked.
package dirlock

import (
	"errors"
	"os"
	"path/filepath"
)

// FileName is the lock file inside the data directory. It is never removed:
// removing a lock file races with a process about to lock it.
const FileName = "dollr.lock"

// ErrBusy: another process holds the lock in a conflicting mode.
var ErrBusy = errors.New("the data directory is locked by another process")

// Lock is a held lock.
type Lock struct{ f *os.File }

// Shared takes dir's lock shared, without waiting: ErrBusy while a restore
// holds it.
func Shared(dir string) (*Lock, error) { return take(dir, false) }

// Exclusive takes dir's lock exclusively, without waiting: ErrBusy while any
// process holds it.
func Exclusive(dir string) (*Lock, error) { return take(dir, true) }

func take(dir string, exclusive bool) (*Lock, error) {
	// Read-only and world-readable: a lock needs neither write access nor
	// secrecy, and a file first made by another user (a root cron job's
	// backup) must not keep the server's user from locking it.
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lock(f, exclusive); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops its lock
	l.f = nil
	return err
}
