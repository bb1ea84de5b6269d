package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServerUsage is what the server spent during a measured window.
type ServerUsage struct {
	Source         string  `json:"source"` // "proc" (local pid) or "metrics" (/metrics)
	CPUSeconds     float64 `json:"cpu_seconds"`
	PeakRSSBytes   uint64  `json:"peak_rss_bytes"`
	StartRSSBytes  uint64  `json:"start_rss_bytes"`
	EndRSSBytes    uint64  `json:"end_rss_bytes"`
	Samples        int     `json:"samples"`
	CPUUtilization float64 `json:"cpu_utilization"` // CPU seconds per wall second (1.0 = one core busy)
	// DeliveryLag is the server's own commit → socket write histogram over
	// the window, when it exports one.
	DeliveryLag *LagSummary `json:"delivery_lag,omitempty"`
	// ToolCPUSeconds is what this tool process spent in the same window.
	ToolCPUSeconds float64 `json:"tool_cpu_seconds"`
	// DBCPUSeconds is what a local database server's process tree (e.g.
	// PostgreSQL's postmaster and its backends) spent in the window; the
	// server's own CPU figure does not include it.
	DBCPUSeconds float64 `json:"db_cpu_seconds,omitempty"`
}

// usageSample is one reading of the server's counters.
type usageSample struct {
	at  time.Time
	cpu float64 // seconds, user+system, since process start
	rss uint64  // bytes
}

// Probe reads the server's CPU and RSS, from /proc when its pid is known
// (the server is local), otherwise from the process collector series that
// promhttp exports at /metrics.
type Probe struct {
	PID        int
	MetricsURL string
	Client     *http.Client
	// DBPID is a local database server's root process, or 0.
	DBPID int
}

func (p *Probe) source() string {
	if p.PID > 0 {
		return "proc"
	}
	return "metrics"
}

// CheckPID makes sure PID is the server whose /metrics the tool reads, by
// comparing the resident memory each reports: a wrong pid (in bash, `$!` after
// `rm ... && dollr serve ... &` is a subshell's) would otherwise yield a run
// that passes with near-zero server CPU. Without a readable /metrics (moved
// with --metrics-addr and no --metrics-url) there is nothing to compare.
func (p *Probe) CheckPID(ctx context.Context) error {
	if p.PID <= 0 {
		return nil
	}
	local, err := procSample(p.PID)
	if err != nil {
		return fmt.Errorf("--server-pid %d: %w", p.PID, err)
	}
	reported, err := p.metricsSample(ctx)
	if err != nil || reported.rss == 0 {
		return nil
	}
	if local.rss*2 < reported.rss || local.rss > reported.rss*2 {
		return fmt.Errorf("--server-pid %d is not the server behind %s: its resident memory is %.1f MiB, the server reports %.1f MiB "+
			"(in bash, $! after `a && b &` is a subshell's pid; start the server as its own command)",
			p.PID, p.MetricsURL, float64(local.rss)/(1<<20), float64(reported.rss)/(1<<20))
	}
	return nil
}

func (p *Probe) sample(ctx context.Context) (usageSample, error) {
	if p.PID > 0 {
		return procSample(p.PID)
	}
	return p.metricsSample(ctx)
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc/<pid>/stat.
const clockTicks = 100

// procStat reads a process's parent and CPU times (in clock ticks) from
// /proc/<pid>/stat: its own, and its waited-for children's.
func procStat(pid int) (ppid int, own, children uint64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) may hold spaces; the fields we need follow its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 22 {
		return 0, 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var v [5]uint64 // ppid, utime, stime, cutime, cstime: fields 4, 14-17
	for j, k := range []int{1, 11, 12, 13, 14} {
		if v[j], err = strconv.ParseUint(f[k], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
		}
	}
	return int(v[0]), v[1] + v[2], v[3] + v[4], nil
}

// treeCPU is the CPU seconds of root and all its live descendants, plus
// what root's exited children spent.
func treeCPU(root int) (float64, error) {
	_, own, children, err := procStat(root)
	if err != nil {
		return 0, err
	}
	total := own + children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	parent := map[int]int{}
	ticks := map[int]uint64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		if pp, t, _, err := procStat(pid); err == nil {
			parent[pid], ticks[pid] = pp, t
		}
	}
	for pid, t := range ticks {
		for p, hops := parent[pid], 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == root {
				total += t
				break
			}
		}
	}
	return float64(total) / clockTicks, nil
}

func procSample(pid int) (usageSample, error) {
	s := usageSample{at: time.Now()}
	_, ticks, _, err := procStat(pid)
	if err != nil {
		return s, err
	}
	s.cpu = float64(ticks) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("bad VmRSS %q", rest)
			}
			s.rss = kb * 1024
			return s, nil
		}
	}
	return s, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func (p *Probe) metricsSample(ctx context.Context) (usageSample, error) {
	s := usageSample{at: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL, nil)
	if err != nil {
		return s, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", p.MetricsURL, resp.Status)
	}
	vals, err := parseMetrics(io.LimitReader(resp.Body, 16<<20), "process_cpu_seconds_total", "process_resident_memory_bytes")
	if err != nil {
		return s, err
	}
	cpu, ok1 := vals["process_cpu_seconds_total"]
	rss, ok2 := vals["process_resident_memory_bytes"]
	if !ok1 || !ok2 {
		return s, fmt.Errorf("%s lacks process_cpu_seconds_total or process_resident_memory_bytes (is the process collector registered?)", p.MetricsURL)
	}
	s.cpu, s.rss = cpu, uint64(rss)
	return s, nil
}

// parseMetrics reads the Prometheus text format and returns the values of the
// named unlabelled series.
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok || !want[name] {
			continue
		}
		val, _, _ := strings.Cut(strings.TrimSpace(rest), " ") // drop an optional timestamp
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", name, err)
		}
		out[name] = v
	}
	return out, sc.Err()
}

// Sampler samples a Probe periodically between Start and Stop to find the
// window's CPU seconds and peak RSS.
type Sampler struct {
	probe    *Probe
	interval time.Duration

	lagBefore    bucketCounts
	lagSumBefore float64
	toolBefore   float64
	dbBefore     float64

	mu      sync.Mutex
	first   usageSample
	last    usageSample
	peak    uint64
	samples int
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

// StartSampler takes a first sample now and keeps sampling every interval
// until Stop or ctx ends.
func StartSampler(ctx context.Context, probe *Probe, interval time.Duration) (*Sampler, error) {
	first, err := probe.sample(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{probe: probe, interval: interval, first: first, last: first, peak: first.rss, samples: 1, cancel: cancel, done: make(chan struct{})}
	if probe.MetricsURL != "" && probe.Client != nil {
		s.lagBefore, s.lagSumBefore, _ = scrapeLag(ctx, probe.Client, probe.MetricsURL)
	}
	s.toolBefore = selfCPU()
	if probe.DBPID > 0 {
		if s.dbBefore, err = treeCPU(probe.DBPID); err != nil {
			cancel()
			return nil, err
		}
	}
	go s.loop(ctx)
	return s, nil
}

func (s *Sampler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u, err := s.probe.sample(ctx)
		s.add(u, err)
	}
}

func (s *Sampler) add(u usageSample, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil && !isCtxErr(err) {
			s.err = err
		}
		return
	}
	s.last = u
	s.peak = max(s.peak, u.rss)
	s.samples++
}

// Mark takes a sample now and returns the server CPU seconds since the
// window began, to split a window into phases.
func (s *Sampler) Mark(ctx context.Context) (float64, error) {
	u, err := s.probe.sample(ctx)
	s.add(u, err)
	if err != nil {
		return 0, err
	}
	return u.cpu - s.first.cpu, nil
}

// Current returns the latest sample's RSS (for progress lines).
func (s *Sampler) Current() (rss uint64, cpu float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.rss, s.last.cpu - s.first.cpu
}

// Stop takes a final sample and returns the window's usage.
func (s *Sampler) Stop(ctx context.Context) (ServerUsage, error) {
	s.cancel()
	<-s.done
	u, err := s.probe.sample(ctx)
	s.add(u, err)
	tool := selfCPU() - s.toolBefore
	var db float64
	if s.probe.DBPID > 0 {
		if v, err := treeCPU(s.probe.DBPID); err == nil {
			db = v - s.dbBefore
		}
	}
	var lag *LagSummary
	if s.lagBefore != nil {
		if after, sum, err := scrapeLag(ctx, s.probe.Client, s.probe.MetricsURL); err == nil {
			lag = lagBetween(s.lagBefore, after, s.lagSumBefore, sum)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wall := s.last.at.Sub(s.first.at).Seconds()
	out := ServerUsage{
		Source:         s.probe.source(),
		CPUSeconds:     round3(s.last.cpu - s.first.cpu),
		PeakRSSBytes:   s.peak,
		StartRSSBytes:  s.first.rss,
		EndRSSBytes:    s.last.rss,
		Samples:        s.samples,
		DeliveryLag:    lag,
		ToolCPUSeconds: round3(tool),
		DBCPUSeconds:   round3(db),
	}
	if wall > 0 {
		out.CPUUtilization = round3(out.CPUSeconds / wall)
	}
	return out, s.err
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func isCtxErr(err error) bool {
	return err == context.Canceled || err == context.DeadlineExceeded || strings.Contains(err.Error(), "context canceled")
}
