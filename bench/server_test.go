package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr/client"
)

// testServer is a real `dollr serve` in its own process, as the tool meets
// it in production.
type testServer struct {
	bin   string
	creds *client.Credentials
	path  string // credentials.json
	cmd   *exec.Cmd
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildOut  []byte
)

// TestMain removes the binary built for the smoke runs.
func TestMain(m *testing.M) {
	if os.Getenv(floorEnv) == "1" {
		runFloorServer()
		return
	}
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}

// dollrBinary builds ../cmd/dollr once per test process, or returns
// $DOLLR_BENCH_BINARY when set: a build to compare against another, or one to
// profile after the test has ended.
func dollrBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("DOLLR_BENCH_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dollr-bench-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "dollr")
		cmd := exec.Command("go", "build", "-o", buildBin, "../cmd/dollr")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ../cmd/dollr: %v\n%s", buildErr, buildOut)
	}
	return buildBin
}

// startServer runs dollr serve on a free loopback port with a fresh data
// directory and a short sandbox delay; it is stopped when the test ends.
func startServer(t testing.TB) *testServer {
	t.Helper()
	return startServerBinary(t, dollrBinary(t))
}

// startServerBinary is startServer with a given dollr binary and any further
// serve flags (e.g. --database-url).
func startServerBinary(t testing.TB, bin string, serveFlags ...string) *testServer {
	t.Helper()
	dataDir := t.TempDir()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--sandbox-delay", "300ms", "--sandbox-long-delay", "10m", "--log-level", "warn"}, serveFlags...)
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dataDir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log:\n%s", b)
		}
	})
	s := &testServer{bin: bin, path: filepath.Join(dataDir, "credentials.json"), cmd: cmd}
	// credentials.json appears once the server listens; /healthz says it serves.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := client.LoadCredentials(s.path); err == nil {
			if resp, err := http.Get(c.BaseURL + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					s.creds = c
					return s
				}
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dollr serve exited:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("dollr serve did not become healthy within 60s")
		}
	}
}

// smokeOptions are small, fast options for a scenario against s.
func (s *testServer) smokeOptions(scenario string) Options {
	o := Defaults(scenario)
	o.Credentials = s.creds
	o.ServerPID = s.cmd.Process.Pid
	o.N = 20
	o.Rate = 60
	o.Duration = 10 * time.Second
	o.Drain = 30 * time.Second
	o.Timeout = 2 * time.Minute
	o.Concurrency = 8
	return o
}

// requireNothingLost is the one assertion every smoke run makes.
func requireNothingLost(t *testing.T, r *Result) {
	t.Helper()
	b, _ := json.MarshalIndent(r, "", "  ")
	if !r.OK || r.Lost != 0 || r.Expected == 0 || r.Delivered != r.Expected || r.ErrorsTotal != 0 || r.OutOfOrder != 0 {
		t.Fatalf("run lost something or failed:\n%s", b)
	}
	if r.Server == nil || r.Server.Samples < 2 {
		t.Fatalf("server usage was not sampled:\n%s", b)
	}
}

func runScenario(t *testing.T, o Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	r, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("%s: %v", o.Scenario, err)
	}
	return r
}
