// Package servetest runs the real `dollr serve` binary for tests: built once
// per test binary from cmd/dollr (with -race when the tests run with it),
// started per test on 127.0.0.1:0 over its own data directory (and, if asked,
// a PostgreSQL database), and stopped when the test ends.
//
//	func TestMain(m *testing.M) { os.Exit(servetest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		s := servetest.Start(t, servetest.Options{Flags: []string{"--sandbox-delay", "1s"}})
//		api := servetest.NewAPI(t, s.URL) ...
//	}
//
// Main also runs pgtest.Main, so a test may give a server pgtest.NewDatabase(t)
// as its Options.DatabaseURL.
package servetest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dollr/dollr/pgtest"
)

// BinEnv names an environment variable that, when set, is the dollr binary
// to run instead of building one.
const BinEnv = "DOLLR_BIN"

var build struct {
	mu     sync.Mutex
	inMain bool
	done   bool
	dir    string // removed by Main
	bin    string
	err    error
}

// Main runs the package's tests (through pgtest.Main, which stops the shared
// PostgreSQL cluster if a test started it) and then removes the binary Build
// made. Call it from TestMain.
func Main(m *testing.M) int {
	build.mu.Lock()
	build.inMain = true
	build.mu.Unlock()
	code := pgtest.Main(m)
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}

// Build returns the dollr binary: $DOLLR_BIN, or cmd/dollr built once per
// test binary. It fails the test if TestMain does not call Main, which
// removes the build.
func Build(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(BinEnv); bin != "" {
		return bin
	}
	build.mu.Lock()
	defer build.mu.Unlock()
	if !build.inMain {
		t.Fatal("servetest: Build needs TestMain to call servetest.Main, which removes the binary")
	}
	if !build.done {
		build.done = true
		build.dir, build.bin, build.err = buildDollr()
	}
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

func buildDollr() (dir, bin string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "dollr-servetest-")
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "dollr")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool(), append(args, "./cmd/dollr")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, "", fmt.Errorf("go build ./cmd/dollr: %v\n%s", err, out)
	}
	return dir, bin, nil
}

// moduleRoot is the nearest directory above the test's working directory
// (its package directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("servetest: no go.mod above the working directory")
		}
		dir = parent
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// Command returns the dollr command with args. DATABASE_URL is cleared from
// its environment so the environment the tests run in cannot switch the
// backend: a test names its database with --database-url.
func Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Build(t), args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	return cmd
}
