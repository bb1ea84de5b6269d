package servetest

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts are generous: the tests share two cores with other work, and a
// -race build is slower; a passing run waits far less.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Options say where a server keeps its state and how it runs.
type Options struct {
	// DataDir holds credentials.json (and the SQLite database); empty means
	// a new temporary directory. Another server on the same DataDir (and
	// DatabaseURL) is the same installation restarted.
	DataDir string
	// DatabaseURL, when set, is the PostgreSQL database (--database-url);
	// empty means SQLite in DataDir.
	DatabaseURL string
	// Flags are passed to dollr serve after --data-dir, --addr and
	// --database-url; a repeated flag overrides an earlier one. They must
	// keep the log at level info: Start reads the listen address off the
	// "dollr serving" line.
	Flags []string
	// OpenFiles, when set, is the server's limit on open descriptors (set
	// with the shell's ulimit before it starts; Unix only).
	OpenFiles int
}

// Server is one running `dollr serve` process.
type Server struct {
	// URL is where the server listens, http://127.0.0.1:<port>. With
	// --public-url the credentials name that URL instead.
	URL         string
	DataDir     string
	DatabaseURL string

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited
	output *output
}

// Start runs dollr serve on 127.0.0.1:0 and returns once it answers
// /healthz. The server is stopped (SIGTERM) when t ends; its output is
// logged if t failed, and a data race it reports fails t.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	s := Launch(t, opt)
	s.WaitServing()
	return s
}

// Launch starts dollr serve as Start does but returns at once, before the
// server listens (its Output can be watched meanwhile); WaitServing waits
// for it.
func Launch(t testing.TB, opt Options) *Server {
	t.Helper()
	if opt.DataDir == "" {
		opt.DataDir = t.TempDir()
	}
	args := []string{"serve", "--data-dir", opt.DataDir, "--addr", "127.0.0.1:0"}
	if opt.DatabaseURL != "" {
		args = append(args, "--database-url", opt.DatabaseURL)
	}
	cmd := Command(t, append(args, opt.Flags...)...)
	if opt.OpenFiles > 0 {
		// sh sets the limit, then becomes the server: the same process.
		script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, opt.OpenFiles)
		cmd.Args = append([]string{"sh", "-c", script}, cmd.Args...)
		cmd.Path = "/bin/sh"
	}
	s := &Server{
		DataDir: opt.DataDir, DatabaseURL: opt.DatabaseURL,
		t: t, cmd: cmd, exited: make(chan struct{}), output: newOutput(),
	}
	// One writer for both streams: exec then copies them in one goroutine.
	s.cmd.Stdout, s.cmd.Stderr = s.output, s.output
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start dollr serve: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.Stop()
		out := s.Output()
		// A -race build reports a race on stderr and keeps serving.
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in dollr serve (see its output)")
		}
		if t.Failed() {
			t.Logf("dollr serve output:\n%s", out)
		}
	})
	return s
}

// WaitServing returns once the server launched by Launch answers /healthz,
// and fails the test if it exits or takes longer than the start-up timeout.
func (s *Server) WaitServing() {
	t := s.t
	t.Helper()
	select {
	case addr := <-s.output.addr:
		s.URL = "http://" + addr
	case <-s.exited:
		t.Fatalf("dollr serve exited during start-up (exit code %d):\n%s", s.cmd.ProcessState.ExitCode(), s.Output())
	case <-time.After(startTimeout):
		t.Fatalf("dollr serve did not log its address within %s:\n%s", startTimeout, s.Output())
	}
	deadline := time.Now().Add(startTimeout)
	for !s.healthy() {
		select {
		case <-s.exited:
			t.Fatalf("dollr serve exited during start-up (exit code %d):\n%s", s.cmd.ProcessState.ExitCode(), s.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dollr serve on %s not healthy after %s:\n%s", s.URL, startTimeout, s.Output())
		}
	}
}

var healthClient = &http.Client{Timeout: 5 * time.Second}

func (s *Server) healthy() bool {
	resp, err := healthClient.Get(s.URL + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// CredentialsPath is the server's credentials.json, written before it
// serves.
func (s *Server) CredentialsPath() string { return filepath.Join(s.DataDir, "credentials.json") }

// Output is everything the server wrote to stdout and stderr so far.
func (s *Server) Output() string { return s.output.String() }

// Stop sends SIGTERM, waits for the server to exit (killing it after 30s)
// and returns its exit code. Once the server has exited it only returns the
// code.
func (s *Server) Stop() int { return s.signal(syscall.SIGTERM) }

// StopWith sends sig, waits for the server to exit (killing it after 30s)
// and returns its exit code.
func (s *Server) StopWith(sig syscall.Signal) int { return s.signal(sig) }

// Kill stops the server at once with SIGKILL, as a crash would, and returns
// its exit code (-1).
func (s *Server) Kill() int { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) int {
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.t.Logf("dollr serve did not exit within %s of %v; killing it", stopTimeout, sig)
		s.cmd.Process.Kill()
		<-s.exited
	}
	return s.cmd.ProcessState.ExitCode()
}

// servingLine matches the "dollr serving" log line in the text and the JSON
// log format alike, capturing the listen address.
var servingLine = regexp.MustCompile(`"?msg"?[=:]"dollr serving"[ ,]"?addr"?[=:]"?([^\s",]+)`)

// output collects the server's output and hands the listen address of the
// first "dollr serving" line to addr.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int // bytes of buf already searched for the serving line
	addr    chan string
	found   bool
}

func newOutput() *output { return &output{addr: make(chan string, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if o.found {
		return len(p), nil
	}
	// Only whole lines: a write may end mid-line.
	rest := o.buf.Bytes()[o.scanned:]
	end := bytes.LastIndexByte(rest, '\n')
	if end < 0 {
		return len(p), nil
	}
	if m := servingLine.FindSubmatch(rest[:end]); m != nil {
		o.found = true
		o.addr <- string(m[1])
	}
	o.scanned += end + 1
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
