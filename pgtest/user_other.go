//go:build !unix

package pgtest

import "os/exec"

// osUser exists only where tests can run as root (unix); elsewhere the
// server always runs as the current user.
type osUser struct{}

func serverUser() (*osUser, error) { return nil, nil }

func (u *osUser) chown(string) error { return nil }

func (u *osUser) apply(*exec.Cmd) {}
