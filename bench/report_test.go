package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr/client"
)

// What a user of dollr bench reads: validation errors, the result table and
// the progress lines. None of it needs a server.

// Validation errors reach the user as "dollr bench: <message>": they name the
// flag and carry no prefix of their own.
func TestValidateNamesTheFlag(t *testing.T) {
	valid := func(scenario string) Options {
		o := Defaults(scenario)
		o.Credentials = &client.Credentials{}
		return o
	}
	for _, scenario := range Scenarios {
		o := valid(scenario)
		if err := o.validate(); err != nil {
			t.Fatalf("%s defaults: %v", scenario, err)
		}
	}
	tests := []struct {
		scenario string
		mutate   func(*Options)
		want     string
	}{
		{"checkout", func(o *Options) { o.Scenario = "nosuch" }, `unknown scenario "nosuch" (want one of checkout, changes, idle, polling)`},
		{"checkout", func(o *Options) { o.N = -1 }, "-n must be positive"},
		{"checkout", func(o *Options) { o.Rate = -1 }, "--rate must be positive"},
		{"changes", func(o *Options) { o.Subscribers = 0 }, "--subscribers must be positive"},
		{"idle", func(o *Options) { o.ChannelsPerConn = -2 }, "--channels-per-conn must be positive"},
		{"idle", func(o *Options) { o.Duration = -time.Second }, "--duration must be positive"},
		{"checkout", func(o *Options) { o.Timeout = 0 }, "--timeout must be positive"},
		{"checkout", func(o *Options) { o.Drain = -time.Second }, "--drain must not be negative"},
		{"checkout", func(o *Options) { o.MaxEvents = 0 }, "--max-events must be positive"},
		{"checkout", func(o *Options) { o.Concurrency = 0 }, "--concurrency must be positive"},
		{"polling", func(o *Options) { o.PollInterval = 0 }, "--poll-interval must be positive"},
		{"checkout", func(o *Options) { o.Phone = "123" }, `--phone "123" is too short`},
	}
	for _, tt := range tests {
		o := valid(tt.scenario)
		tt.mutate(&o)
		err := o.validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: validate() = %v, want %q", tt.scenario, err, tt.want)
		}
	}
	// A fractional rate is a valid target.
	o := valid("checkout")
	o.Rate = 0.5
	if err := o.validate(); err != nil {
		t.Errorf("--rate 0.5: %v", err)
	}
	// Errors found before any connection carry no "bench:" prefix either.
	if _, err := CheckTarget("http://192.0.2.1:8080", false); err == nil || strings.HasPrefix(err.Error(), "bench") {
		t.Errorf("CheckTarget(remote) = %v, want an error without a prefix", err)
	}
}

func TestTableShowsTheTargetRateAsGiven(t *testing.T) {
	for _, tt := range []struct {
		rate float64
		want string
	}{
		{0.5, "target 0.5, achieved 0.4"},
		{300, "target 300, achieved 0.4"},
		{2.25, "target 2.25, achieved 0.4"},
		{1000, "target 1000, achieved 0.4"},
	} {
		r := &Result{Scenario: "checkout", TargetRate: tt.rate, AchievedRate: 0.4, Expected: 3, Delivered: 3, OK: true}
		var buf bytes.Buffer
		if err := r.WriteTable(&buf); err != nil {
			t.Fatal(err)
		}
		if tableRow(buf.String(), "status changes/s") != tt.want {
			t.Errorf("rate %v: table lacks %q:\n%s", tt.rate, tt.want, buf.String())
		}
	}
}

// idle delivers nothing: its table counts channels, not deliveries, while
// its JSON keeps the fields every scenario has.
func TestIdleTableCountsChannels(t *testing.T) {
	r := &Result{Scenario: "idle", Connections: 20, Subscriptions: 20, Expected: 20, Delivered: 20, OK: true}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if tableRow(out, "channels alive / subscribed") != "20 / 20 (none dropped)" || strings.Contains(out, "delivered") {
		t.Errorf("idle table:\n%s", out)
	}
	r.Delivered, r.Lost, r.OK = 18, 2, false
	buf.Reset()
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if tableRow(buf.String(), "channels alive / subscribed") != "18 / 20 (DROPPED 2)" {
		t.Errorf("idle table with dropped channels:\n%s", buf.String())
	}

	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"expected", "delivered", "lost", "connections", "subscriptions", "ok"} {
		if _, ok := m[k]; !ok {
			t.Errorf("idle JSON lacks %q: %s", k, buf.Bytes())
		}
	}

	// Other scenarios keep "delivered / expected".
	r = &Result{Scenario: "changes", Expected: 10, Delivered: 10, OK: true}
	buf.Reset()
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if tableRow(buf.String(), "delivered / expected") != "10 / 10 (nothing lost)" {
		t.Errorf("changes table:\n%s", buf.String())
	}
}

// tableRow returns the value of the table row named key ("" if none).
func tableRow(table, key string) string {
	for line := range strings.Lines(table) {
		if rest, ok := strings.CutPrefix(line, key+"  "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// Into a file or a pipe, progress is plain lines: no carriage returns, no
// escape codes, one line per phase change and at most one per interval.
func TestProgressPlainLinesWhenNotATerminal(t *testing.T) {
	var w syncBuffer
	var n atomic.Int64
	p := startProgress(&w, "idle", false, 5*time.Millisecond, time.Hour)
	p.set("setup", func() string { return "realtime keys 1/2" })
	w.waitFor(t, "idle: setup realtime keys 1/2\n")
	p.set("holding", func() string { return fmt.Sprintf("sockets %d", n.Load()) })
	w.waitFor(t, "idle: holding sockets 0\n")
	n.Store(2) // a change within the interval: only the final line shows it
	p.stop()

	out := w.String()
	if strings.ContainsAny(out, "\r\x1b") {
		t.Fatalf("escape codes in plain progress: %q", out)
	}
	want := "idle: setup realtime keys 1/2\nidle: holding sockets 0\nidle: holding sockets 2\n"
	if out != want {
		t.Errorf("progress = %q, want %q", out, want)
	}
}

// syncBuffer is a bytes.Buffer the progress goroutine and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, suffix string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if strings.HasSuffix(b.String(), suffix) {
			return
		}
	}
	t.Fatalf("progress = %q, want it to end with %q", b.String(), suffix)
}

func TestProgressRedrawsOnATerminal(t *testing.T) {
	var buf syncBuffer
	p := startProgress(&buf, "checkout", true, 5*time.Millisecond, time.Hour)
	p.set("running", func() string { return "executed 1/2" })
	buf.waitFor(t, "\r\x1b[Kcheckout: running executed 1/2") // redrawn in place
	p.stop()
	out := buf.String()
	if !strings.Contains(out, "\r\x1b[Kcheckout: running executed 1/2") || !strings.HasSuffix(out, "\n") {
		t.Errorf("terminal progress = %q", out)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "progress")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) || isTerminal(nil) {
		t.Error("a file, a buffer or nil taken for a terminal")
	}
}
