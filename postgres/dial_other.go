//go:build !linux

package postgres

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available; the
// keepalives alone then detect a vanished peer while the connection is idle.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
