package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Result is one run's outcome. Latencies are from the status change's commit
// (the row's updated_at, which the server sets to the commit time) to the
// moment the tool read the frame off the socket; both clocks are this
// machine's.
type Result struct {
	Scenario  string    `json:"scenario"`
	Label     string    `json:"label,omitempty"`
	Command   string    `json:"command,omitempty"`
	Target    string    `json:"target"`
	StartedAt time.Time `json:"started_at"`
	Machine   Machine   `json:"machine"`
	Params    Params    `json:"params"`

	Connections   int `json:"connections"`
	Subscriptions int `json:"subscriptions"`

	// Expected and Delivered count deliveries (changes × subscribers) or
	// status changes seen (checkout, polling). idle delivers nothing: there
	// they count channels subscribed (Expected) and still subscribed at the
	// end (Delivered), and its table says so.
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	OutOfOrder int64 `json:"out_of_order"`

	Latency *Summary `json:"latency,omitempty"`

	TargetRate   float64 `json:"target_rate,omitempty"`
	AchievedRate float64 `json:"achieved_rate,omitempty"` // status changes committed per second
	DeliveryRate float64 `json:"deliveries_per_second,omitempty"`
	SetupSeconds float64 `json:"setup_seconds"`
	// SubscribeSeconds is the time checkout spent minting realtime keys and
	// subscribing, after setup: the server's usage includes it.
	SubscribeSeconds float64 `json:"subscribe_seconds,omitempty"`
	// KeysCPUSeconds and JoinsCPUSeconds split the server's CPU during
	// subscribing: minting the realtime keys, then connecting and joining.
	KeysCPUSeconds  float64 `json:"keys_server_cpu_seconds,omitempty"`
	JoinsCPUSeconds float64 `json:"joins_server_cpu_seconds,omitempty"`
	MeasuredSeconds float64 `json:"measured_seconds"`

	Server          *ServerUsage `json:"server,omitempty"`
	RSSPerConnBytes float64      `json:"rss_per_connection_bytes,omitempty"`

	Polling *PollingResult `json:"polling,omitempty"`

	Errors      []string `json:"errors,omitempty"`
	ErrorsTotal int      `json:"errors_total"`
	OK          bool     `json:"ok"`
}

// PollingResult is what the polling scenario adds.
type PollingResult struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	Requests        int64   `json:"requests"`
	RequestErrors   int64   `json:"request_errors"`
	RequestsPerSec  float64 `json:"requests_per_second"`
	// DetectionDelay is from a status change's commit to the end of the
	// first poll that returned it (needs the witness for commit times).
	DetectionDelay *Summary `json:"detection_delay,omitempty"`
	// Missed counts intermediate statuses no poll ever saw (the payment had
	// moved on before the next poll).
	Missed int64 `json:"missed_intermediate"`
	// Witness is the realtime latency the witness measured on the same
	// changes, for a ratio within one run.
	Witness *Summary `json:"witness_latency,omitempty"`
}

// Params echoes the options that shaped the run.
type Params struct {
	N               int     `json:"n"`
	Rate            float64 `json:"rate,omitempty"`
	Subscribers     int     `json:"subscribers_per_row,omitempty"`
	ChannelsPerConn int     `json:"channels_per_connection"`
	DurationSeconds float64 `json:"duration_seconds"`
	MaxEvents       int     `json:"max_events"`
	PollSeconds     float64 `json:"poll_interval_seconds,omitempty"`
}

// Machine describes where the tool ran (the server ran on the same machine
// when the target is loopback).
type Machine struct {
	Cores     int    `json:"cores"`
	MemoryMiB int64  `json:"memory_mib"`
	CPU       string `json:"cpu,omitempty"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	// LoadAvg is the 1-minute load average when the run started: the machine
	// is shared, and a busy one explains a slow run.
	LoadAvg float64 `json:"load_avg_1m"`
}

// ThisMachine reads cores, memory and CPU model.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemoryMiB = kb / 1024
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAvg, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// errorLog collects a run's errors, keeping the first few verbatim.
type errorLog struct {
	mu    sync.Mutex
	first []string
	total int
}

const keptErrors = 20

func (e *errorLog) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total++
	if len(e.first) < keptErrors {
		e.first = append(e.first, fmt.Sprintf(format, args...))
	}
}

func (e *errorLog) snapshot() ([]string, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.first...), e.total
}

// WriteJSON prints r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints r as an aligned two-column table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	title := r.Scenario
	if r.Label != "" {
		title += " (" + r.Label + ")"
	}
	row("scenario", "%s", title)
	if r.Command != "" {
		row("command", "%s", r.Command)
	}
	row("target", "%s", r.Target)
	row("machine", "%d cores, %d MiB, %s (load %.1f at start)", r.Machine.Cores, r.Machine.MemoryMiB, r.Machine.CPU, r.Machine.LoadAvg)
	row("date", "%s", r.StartedAt.UTC().Format(time.RFC3339))
	row("connections / subscriptions", "%d / %d", r.Connections, r.Subscriptions)
	if r.Scenario == "idle" {
		// No event is expected on an idle channel (one would be an error):
		// the counts are channels, not deliveries.
		verdict := "none dropped"
		if r.Lost > 0 {
			verdict = fmt.Sprintf("DROPPED %d", r.Lost)
		}
		row("channels alive / subscribed", "%d / %d (%s)", r.Delivered, r.Expected, verdict)
	} else {
		verdict := "nothing lost"
		if r.Lost > 0 {
			verdict = fmt.Sprintf("LOST %d", r.Lost)
		}
		row("delivered / expected", "%d / %d (%s)", r.Delivered, r.Expected, verdict)
	}
	if r.Duplicates > 0 || r.OutOfOrder > 0 {
		row("duplicates / out of order", "%d / %d", r.Duplicates, r.OutOfOrder)
	}
	if r.Latency != nil && r.Latency.Count > 0 {
		l := r.Latency
		row("latency commit→client", "p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  max %.3f ms  (n=%d)", l.P50ms, l.P95ms, l.P99ms, l.MaxMs, l.Count)
	}
	if r.TargetRate > 0 || r.AchievedRate > 0 {
		row("status changes/s", "target %s, achieved %.1f", formatRate(r.TargetRate), r.AchievedRate)
	}
	if r.DeliveryRate > 0 {
		row("deliveries/s", "%.1f", r.DeliveryRate)
	}
	if p := r.Polling; p != nil {
		row("poll requests", "%d every %.1fs (%.1f/s, %d errors)", p.Requests, p.IntervalSeconds, p.RequestsPerSec, p.RequestErrors)
		if d := p.DetectionDelay; d != nil && d.Count > 0 {
			row("detection delay commit→poll", "p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms  (n=%d)", d.P50ms, d.P95ms, d.P99ms, d.MaxMs, d.Count)
		}
		if d := p.Witness; d != nil && d.Count > 0 {
			row("same changes over realtime", "p50 %.3f ms  p99 %.3f ms", d.P50ms, d.P99ms)
		}
		row("intermediate statuses missed", "%d", p.Missed)
	}
	if r.SubscribeSeconds > 0 {
		row("setup / subscribe / measured", "%.1fs / %.1fs / %.1fs (server usage covers subscribe and measured)", r.SetupSeconds, r.SubscribeSeconds, r.MeasuredSeconds)
		row("server CPU subscribing", "%.2f s minting realtime keys, %.2f s connecting and joining", r.KeysCPUSeconds, r.JoinsCPUSeconds)
	} else {
		row("setup / measured", "%.1fs / %.1fs", r.SetupSeconds, r.MeasuredSeconds)
	}
	if s := r.Server; s != nil {
		row("server CPU", "%.2f s (%.2f cores) from %s", s.CPUSeconds, s.CPUUtilization, s.Source)
		row("server RSS", "peak %.1f MiB (start %.1f, end %.1f)", mib(s.PeakRSSBytes), mib(s.StartRSSBytes), mib(s.EndRSSBytes))
		if l := s.DeliveryLag; l != nil && l.Count > 0 {
			row("server commit→socket write", "p50 %s  p99 %s  mean %.3f ms  (its /metrics histogram, n=%d)", l.bound(l.P50AtMostMs), l.bound(l.P99AtMostMs), l.MeanMs, l.Count)
		}
		if s.DBCPUSeconds > 0 {
			row("database CPU", "%.2f s (its process tree)", s.DBCPUSeconds)
		}
		row("tool CPU", "%.2f s", s.ToolCPUSeconds)
	}
	if r.RSSPerConnBytes != 0 {
		row("server RSS per connection", "%.1f KiB", r.RSSPerConnBytes/1024)
	}
	if r.ErrorsTotal > 0 {
		row("errors", "%d, first: %s", r.ErrorsTotal, r.Errors[0])
	}
	row("result", "%s", map[bool]string{true: "OK", false: "FAILED"}[r.OK])
	return tw.Flush()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// formatRate prints a target rate as it was given: 300, 0.5, 2.25.
func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }
