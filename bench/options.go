package bench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dollr/dollr/client"
)

// Scenarios lists the scenario names Run accepts.
var Scenarios = []string{"checkout", "changes", "idle", "polling"}

// Options configures one run. Zero values take the defaults of Defaults.
type Options struct {
	Scenario    string
	Credentials *client.Credentials
	// BaseURL overrides Credentials.BaseURL (and the realtime URL's host).
	BaseURL     string
	AllowRemote bool

	// N is the number of payments (checkout, polling), rows (changes) or
	// connections (idle).
	N int
	// Rate is the target of status changes per second (checkout, changes,
	// polling).
	Rate float64
	// Subscribers is K, the subscribers per row (changes).
	Subscribers int
	// ChannelsPerConn is how many channels share one socket (1: one socket
	// per subscriber, as browsers do).
	ChannelsPerConn int
	// PollInterval is how often each polling client asks (polling).
	PollInterval time.Duration
	// Subscribe watches each checkout payment over realtime. Without it the
	// run is a baseline: the same payments, nobody watching, and a fixed
	// Drain wait; its server CPU is what watching costs are measured against.
	Subscribe bool
	// Witness subscribes one realtime channel per polled payment, multiplexed
	// on few sockets, to learn each status change's commit time (polling).
	Witness bool
	// WaitSnapshots makes the changes scenario start touching only once every
	// channel has received its row's snapshot (steady state).
	WaitSnapshots bool
	// Phone is the payer's phone for checkout and polling payments; its last
	// two digits choose the sandbox outcome.
	Phone string

	// Duration caps the measured phase (paced load, or the idle hold).
	Duration time.Duration
	// MaxEvents caps the status changes generated (executions × 3 for
	// payments, touches for changes).
	MaxEvents int
	// Drain caps the wait for outstanding deliveries after the load stops.
	Drain time.Duration
	// Timeout caps the whole run, setup included.
	Timeout time.Duration
	// Concurrency is the number of parallel API calls during setup and
	// executions.
	Concurrency int
	// Heartbeat is the interval of Phoenix heartbeats on every socket.
	Heartbeat time.Duration

	// ServerPID lets the tool read the server's CPU and RSS from /proc;
	// otherwise they come from /metrics.
	ServerPID      int
	SampleInterval time.Duration
	// DBPID is a local database server's root process (PostgreSQL's
	// postmaster): its process tree's CPU is reported beside the server's.
	DBPID int
	// MetricsURL is the server's Prometheus page; empty means the target's
	// /metrics (a server started with --metrics-addr serves it elsewhere).
	MetricsURL string

	// Progress receives progress reports (nil: none): one line redrawn in
	// place when it is a terminal, plain lines without escape codes otherwise.
	Progress io.Writer
	// Label names the run in tables (e.g. the backend: sqlite, postgres).
	Label string
}

// Defaults returns the default options of a scenario.
func Defaults(scenario string) Options {
	o := Options{
		Scenario:        scenario,
		N:               100,
		Rate:            300,
		Subscribers:     1,
		ChannelsPerConn: 1,
		PollInterval:    2 * time.Second,
		Witness:         true,
		Subscribe:       true,
		WaitSnapshots:   true,
		Phone:           "231770000055",
		Duration:        60 * time.Second,
		MaxEvents:       10_000_000,
		Drain:           90 * time.Second,
		Timeout:         30 * time.Minute,
		Concurrency:     32,
		Heartbeat:       25 * time.Second,
		SampleInterval:  250 * time.Millisecond,
	}
	switch scenario {
	case "changes":
		o.N = 1000
		o.Rate = 1000
		o.Duration = 10 * time.Second
		o.Drain = 30 * time.Second
	case "idle":
		o.N = 1000
		o.Duration = 30 * time.Second
	}
	return o
}

// validate checks o. Its messages name the dollr bench flags that set each
// option, since that is where they reach a user (as "dollr bench: <message>").
func (o *Options) validate() error {
	known := false
	for _, s := range Scenarios {
		known = known || s == o.Scenario
	}
	switch {
	case !known:
		return fmt.Errorf("unknown scenario %q (want one of %s)", o.Scenario, strings.Join(Scenarios, ", "))
	case o.Credentials == nil:
		return fmt.Errorf("credentials are required")
	case o.N <= 0:
		return fmt.Errorf("-n must be positive")
	case o.Rate <= 0 && o.Scenario != "idle":
		return fmt.Errorf("--rate must be positive")
	case o.Subscribers <= 0:
		return fmt.Errorf("--subscribers must be positive")
	case o.ChannelsPerConn <= 0:
		return fmt.Errorf("--channels-per-conn must be positive")
	case o.Duration <= 0:
		return fmt.Errorf("--duration must be positive")
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout must be positive")
	case o.Drain < 0:
		return fmt.Errorf("--drain must not be negative")
	case o.MaxEvents <= 0:
		return fmt.Errorf("--max-events must be positive")
	case o.Concurrency <= 0:
		return fmt.Errorf("--concurrency must be positive")
	case o.PollInterval <= 0 && o.Scenario == "polling":
		return fmt.Errorf("--poll-interval must be positive")
	case len(o.Phone) < 8:
		return fmt.Errorf("--phone %q is too short", o.Phone)
	}
	return nil
}
