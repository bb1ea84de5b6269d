//go:build unix

package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// osUser is the unprivileged account the server runs as when the tests run as
// root: initdb and postgres refuse to run as root.
type osUser struct {
	name     string
	uid, gid uint32
}

// serverUser returns nil when the tests may run the server themselves, or the
// account to run it as: "postgres" (created by the Debian packages), else
// "nobody".
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("pgtest: running as root and no unprivileged user (postgres or nobody) to run PostgreSQL as")
}

func (u *osUser) chown(path string) error { return os.Chown(path, int(u.uid), int(u.gid)) }

// apply makes cmd run as u.
func (u *osUser) apply(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, NoSetGroups: true},
	}
}
