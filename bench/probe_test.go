package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const sampleMetrics = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.2345678e+07
process_open_fds{x="y"} 3
dollr_realtime_delivery_lag_seconds_bucket{le="0.0005"} 10
dollr_realtime_delivery_lag_seconds_bucket{le="0.001"} 90
dollr_realtime_delivery_lag_seconds_bucket{le="0.005"} 99
dollr_realtime_delivery_lag_seconds_bucket{le="+Inf"} 100
dollr_realtime_delivery_lag_seconds_sum 0.1
dollr_realtime_delivery_lag_seconds_count 100
`

func TestParseMetrics(t *testing.T) {
	v, err := parseMetrics(strings.NewReader(sampleMetrics), "process_cpu_seconds_total", "process_resident_memory_bytes", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if v["process_cpu_seconds_total"] != 12.5 || v["process_resident_memory_bytes"] != 12345678 || len(v) != 2 {
		t.Fatalf("values = %v", v)
	}
}

func TestLagBetween(t *testing.T) {
	before, sumBefore, err := parseLag(strings.NewReader(strings.ReplaceAll(sampleMetrics, "} ", "} 0*")))
	if err == nil {
		t.Fatalf("a malformed count was accepted: %v", before)
	}
	after, sumAfter, err := parseLag(strings.NewReader(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	before, sumBefore = bucketCounts{}, 0
	s := lagBetween(before, after, sumBefore, sumAfter)
	if s.Count != 100 || s.P50AtMostMs != 1 || s.P99AtMostMs != 5 || s.MeanMs != 1 {
		t.Fatalf("summary = %+v", s)
	}
	if s.LastBucketMs != 5 || s.bound(s.P99AtMostMs) != "≤ 5 ms" {
		t.Fatalf("last bucket %g, p99 rendered %q", s.LastBucketMs, s.bound(s.P99AtMostMs))
	}
	// One sample past the last finite bucket in a hundred: p99 is only known
	// to exceed it, and says so.
	past := bucketCounts{0.0005: 10, 0.001: 90, 0.005: 98, math.Inf(1): 100}
	if s := lagBetween(bucketCounts{}, past, 0, 1); s.P99AtMostMs != -1 || s.bound(s.P99AtMostMs) != "> 5 ms" {
		t.Fatalf("p99 past the last bucket: %+v rendered %q", s, s.bound(s.P99AtMostMs))
	}
	if lagBetween(nil, nil, 0, 0) != nil {
		t.Fatal("a server without the histogram should give no summary")
	}
}

func TestProcSampleOfSelf(t *testing.T) {
	s, err := procSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss == 0 || s.cpu < 0 {
		t.Fatalf("sample = %+v", s)
	}
}

// The tree's CPU includes a child that burns CPU.
func TestTreeCPUCountsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Wait (bounded) until the child has used measurable CPU.
	var child uint64
	for deadline := time.Now().Add(30 * time.Second); child == 0; {
		var err error
		if _, child, _, err = procStat(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Skip("the child used no measurable CPU in 30s (machine too busy)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	own, err := procSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := treeCPU(os.Getpid()) // read last: CPU times only grow
	if err != nil {
		t.Fatal(err)
	}
	if want := own.cpu + float64(child)/clockTicks; tree < want-1e-9 {
		t.Fatalf("tree CPU %.2f s < own %.2f s + child %.2f s", tree, own.cpu, float64(child)/clockTicks)
	}
}

// CheckPID accepts the process that serves the metrics and refuses another
// (here: a shell, as `$!` names after `a && b &`).
func TestCheckPID(t *testing.T) {
	self, err := procSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "process_cpu_seconds_total 1\nprocess_resident_memory_bytes %d\n", self.rss)
	}))
	defer metrics.Close()
	shell := exec.Command("sh", "-c", "sleep 30")
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { shell.Process.Kill(); shell.Wait() }()
	ctx := context.Background()
	probe := func(pid int, url string) *Probe {
		return &Probe{PID: pid, MetricsURL: url, Client: metrics.Client()}
	}
	url := metrics.URL + "/metrics"
	if err := probe(os.Getpid(), url).CheckPID(ctx); err != nil {
		t.Errorf("the serving process refused: %v", err)
	}
	if err := probe(shell.Process.Pid, url).CheckPID(ctx); err == nil || !strings.Contains(err.Error(), "is not the server") {
		t.Errorf("a shell's pid accepted (err %v)", err)
	}
	if err := probe(shell.Process.Pid, metrics.URL+"/nowhere").CheckPID(ctx); err != nil {
		t.Errorf("without readable metrics there is nothing to compare, got %v", err)
	}
	if err := probe(0, url).CheckPID(ctx); err != nil {
		t.Errorf("no pid given: %v", err)
	}
}
