package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Smoke runs: each scenario, small and short, against a real dollr serve,
// asserting only that nothing was lost. Timings are measured, never asserted.

func TestSmokeCheckout(t *testing.T) {
	s := startServer(t)
	r := runScenario(t, s.smokeOptions("checkout"))
	requireNothingLost(t, r)
	if r.Expected != 20*statusesPerPayment || r.Latency == nil || r.Latency.Count != uint64(r.Delivered) {
		t.Fatalf("expected %d statuses with a latency each, got expected %d, latency %+v", 20*statusesPerPayment, r.Expected, r.Latency)
	}
	// Subscribing is inside the server's usage window, split into its phases.
	if r.SubscribeSeconds <= 0 || r.KeysCPUSeconds < 0 || r.JoinsCPUSeconds < 0 ||
		r.Server == nil || r.Server.CPUSeconds+0.002 < r.KeysCPUSeconds+r.JoinsCPUSeconds {
		t.Fatalf("subscribe phase: %.3fs, keys %.3f s + joins %.3f s of %+v", r.SubscribeSeconds, r.KeysCPUSeconds, r.JoinsCPUSeconds, r.Server)
	}
}

func TestSmokeChangesWithSubscribersPerRow(t *testing.T) {
	s := startServer(t)
	o := s.smokeOptions("changes")
	o.N, o.Subscribers, o.ChannelsPerConn = 10, 3, 5
	o.Rate, o.Duration = 200, time.Second
	r := runScenario(t, o)
	requireNothingLost(t, r)
	if r.Subscriptions != 30 || r.Connections != 6 {
		t.Fatalf("subscriptions/connections = %d/%d, want 30/6", r.Subscriptions, r.Connections)
	}
}

func TestSmokeIdle(t *testing.T) {
	s := startServer(t)
	o := s.smokeOptions("idle")
	o.N, o.Duration = 50, time.Second
	// A heartbeat interval shorter than the hold proves heartbeats are
	// answered: an unanswered one fails the socket at the next tick.
	o.Heartbeat = 200 * time.Millisecond
	r := runScenario(t, o)
	requireNothingLost(t, r)
	if r.Connections != 50 {
		t.Fatalf("connections = %d, want 50", r.Connections)
	}
}

func TestSmokePolling(t *testing.T) {
	s := startServer(t)
	o := s.smokeOptions("polling")
	o.PollInterval = 100 * time.Millisecond
	r := runScenario(t, o)
	requireNothingLost(t, r)
	p := r.Polling
	if p == nil || p.Requests == 0 || p.RequestErrors != 0 || p.DetectionDelay == nil || p.DetectionDelay.Count == 0 {
		t.Fatalf("polling result = %+v", p)
	}
}

// The no-watcher baseline only executes and verifies through the Status API.
func TestSmokeCheckoutBaseline(t *testing.T) {
	s := startServer(t)
	o := s.smokeOptions("checkout")
	o.Subscribe, o.Drain = false, 2*time.Second
	r := runScenario(t, o)
	requireNothingLost(t, r)
	if r.Expected != 20 || r.Connections != 0 {
		t.Fatalf("baseline: expected %d payments over %d sockets, want 20 over 0", r.Expected, r.Connections)
	}
}

// The count bound: MaxEvents of 30 status changes allows 10 payments of 50.
func TestCheckoutStopsAtMaxEvents(t *testing.T) {
	s := startServer(t)
	o := s.smokeOptions("checkout")
	o.N, o.MaxEvents, o.Rate = 50, 30, 300
	r := runScenario(t, o)
	requireNothingLost(t, r)
	if r.Expected != 30 || r.Subscriptions != 10 {
		t.Fatalf("expected %d statuses over %d payments, want 30 over 10", r.Expected, r.Subscriptions)
	}
}

// The time bound: at 10 executions a second for 300 ms, at most 4 of 100
// payments are executed (items due at 0, 100, 200 and 300 ms).
func TestCheckoutStopsAtDuration(t *testing.T) {
	s := startServer(t)
	o := s.smokeOptions("checkout")
	o.N, o.Rate, o.Duration = 100, 30, 300*time.Millisecond
	r := runScenario(t, o)
	requireNothingLost(t, r)
	if r.Expected > 4*statusesPerPayment {
		t.Fatalf("expected %d statuses: more executions than the time bound allows", r.Expected)
	}
}

// The CLI end to end: flags, --json, exit status.
func TestSmokeCLIJSON(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "bench", "idle", "--credentials", s.path, "-n", "10",
		"--duration", "500ms", "--server-pid", strconv.Itoa(s.cmd.Process.Pid), "--json", "--label", "sqlite")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dollr bench idle: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.Bytes())
	}
	requireNothingLost(t, &r)
	if r.Label != "sqlite" || r.Server.Source != "proc" || r.Command == "" {
		t.Fatalf("result = %+v", r)
	}
}

func TestCLIRefusesRemoteAndTooManyConnections(t *testing.T) {
	bin := dollrBinary(t)
	creds := t.TempDir() + "/credentials.json"
	writeFile(t, creds, `{"merchant_id":1,"client_id":"a","client_secret":"b","base_url":"http://192.0.2.1:8080","supabase_url":"http://192.0.2.1:8080","supabase_anon_key":"k"}`)
	for _, args := range [][]string{
		{"bench", "checkout", "--credentials", creds},
		{"bench", "idle", "--credentials", creds, "--base-url", "http://127.0.0.1:1", "-n", "9001"},
		{"bench", "nosuch", "--credentials", creds},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit 2\n%s", args, err, out)
		}
	}
}

// With MetricsURL (dollr bench --metrics-url, for a server started with
// --metrics-addr) the server's usage is read from there.
func TestMetricsURL(t *testing.T) {
	s := startServer(t)
	var scrapes atomic.Int64
	// Stands for the server's separate metrics listener.
	aside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scrapes.Add(1)
		resp, err := http.Get(s.creds.BaseURL + "/metrics")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
	defer aside.Close()
	o := s.smokeOptions("idle")
	o.N, o.Duration, o.ServerPID, o.MetricsURL = 10, 500*time.Millisecond, 0, aside.URL+"/metrics"
	r := runScenario(t, o)
	requireNothingLost(t, r)
	if r.Server == nil || r.Server.Source != "metrics" || scrapes.Load() == 0 {
		t.Fatalf("server usage %+v after %d scrapes of --metrics-url", r.Server, scrapes.Load())
	}
}
