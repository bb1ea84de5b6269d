package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/dollr/dollr/bench"
	"github.com/dollr/dollr/client"
)

func init() {
	register("bench", command{
		Summary: "load a running server and measure it: bench checkout|changes|idle|polling",
		Run:     runBench,
	})
}

func runBench(ctx context.Context, args []string) int {
	fs := newFlagSet("bench", "dollr bench <checkout|changes|idle|polling> [flags]", `
Drives a running dollr server through its public surfaces and reports
delivered/expected (everything must arrive), latency from commit to client
(p50/p95/p99/max), the achieved rate, and the server's CPU seconds and peak
RSS (from /proc with --server-pid, otherwise from /metrics).

Scenarios:
  checkout  -n payments through the API and sandbox, each watched by one
            realtime subscriber; executions paced to --rate status changes/s
            (3 per payment: PENDING, PROCESSING, COMPLETED). The server's
            CPU counts from the first realtime key: minting keys, joining
            and delivering (split in the result).
  changes   -n rows touched through POST /v1/sandbox/status-touch at --rate
            changes/s, --subscribers per row: capture → fan-out → socket alone.
  idle      -n subscribed sockets that receive nothing for --duration; server
            RSS per connection.
  polling   -n payments watched by clients polling the Status API every
            --poll-interval; detection delay (exact with --witness), requests
            served, server CPU.

Targets must be loopback unless --allow-remote. Sockets come from 127.0.0.2-9;
at most 9,000 per process. Exit 0 when nothing was lost, 1 when anything was
lost or failed, 2 when the run could not be carried out.`)
	credentials := fs.String("credentials", defaultCredentialsPath(), "credentials.json written by dollr serve (env DOLLR_CREDENTIALS)")
	baseURL := fs.String("base-url", "", "server to load (default: base_url from the credentials)")
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback target")
	jsonOut := fs.Bool("json", false, "print the result as JSON instead of a table")
	progress := fs.Bool("progress", false, "print progress to stderr even when it is not a terminal (then as plain lines: one per phase, at most one per 5 s)")
	label := fs.String("label", "", "name for this run in the result, e.g. the backend (sqlite, postgres)")
	serverPID := fs.Int("server-pid", 0, "pid of a local server: read its CPU and RSS from /proc instead of /metrics (checked against /metrics: the server itself, not a shell)")
	dbPID := fs.Int("db-pid", 0, "pid of a local database server (PostgreSQL's postmaster): report its process tree's CPU too")
	metricsURL := fs.String("metrics-url", "", "the server's Prometheus page (default <base-url>/metrics; set it for a server started with --metrics-addr)")

	// Every scenario's defaults are shown as checkout's; unset flags take the
	// chosen scenario's own defaults.
	d := bench.Defaults("checkout")
	n := fs.Int("n", 0, "payments (checkout, polling), rows (changes) or connections (idle); default 100, 1000 for changes and idle")
	rate := fs.Float64("rate", 0, "target status changes per second; default 300, 1000 for changes")
	subscribers := fs.Int("subscribers", d.Subscribers, "changes: subscribers per row")
	perConn := fs.Int("channels-per-conn", d.ChannelsPerConn, "channels sharing one socket (1: a socket per subscriber, like browsers)")
	pollInterval := fs.Duration("poll-interval", d.PollInterval, "polling: interval between Status API calls per client")
	subscribe := fs.Bool("subscribe", d.Subscribe, "checkout: watch each payment over realtime (false: a no-watcher baseline that waits the full --drain)")
	waitSnapshots := fs.Bool("wait-snapshots", d.WaitSnapshots, "changes: start touching once every channel has its row's snapshot (false: also measure changes racing the snapshot)")
	witness := fs.Bool("witness", d.Witness, "polling: learn commit times from a realtime witness (exact detection delay)")
	phone := fs.String("phone", d.Phone, "payer phone; its last two digits choose the sandbox outcome (changes uses ...02)")
	duration := fs.Duration("duration", 0, "cap on the measured phase (paced load, idle hold); default 60s, 10s for changes, 30s for idle")
	maxEvents := fs.Int("max-events", d.MaxEvents, "cap on status changes generated")
	drain := fs.Duration("drain", 0, "cap on the wait for outstanding deliveries after the load; default 90s, 30s for changes")
	timeout := fs.Duration("timeout", d.Timeout, "cap on the whole run, setup included")
	concurrency := fs.Int("concurrency", d.Concurrency, "parallel API calls during setup and executions")
	heartbeat := fs.Duration("heartbeat", d.Heartbeat, "Phoenix heartbeat interval on every socket")

	positional, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(positional) != 1 || !slices.Contains(bench.Scenarios, positional[0]) {
		fmt.Fprintf(fs.Output(), "dollr bench: name one scenario: %s\n", strings.Join(bench.Scenarios, ", "))
		fs.Usage()
		return 2
	}
	creds, err := client.LoadCredentials(*credentials)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr bench: %v\n", err)
		return 2
	}
	o := bench.Defaults(positional[0])
	o.Credentials, o.BaseURL, o.AllowRemote = creds, *baseURL, *allowRemote
	o.Label, o.ServerPID, o.DBPID, o.MetricsURL = *label, *serverPID, *dbPID, *metricsURL
	o.Subscribers, o.ChannelsPerConn, o.PollInterval, o.Witness, o.Phone = *subscribers, *perConn, *pollInterval, *witness, *phone
	o.Subscribe, o.WaitSnapshots = *subscribe, *waitSnapshots
	o.MaxEvents, o.Timeout, o.Concurrency, o.Heartbeat = *maxEvents, *timeout, *concurrency, *heartbeat
	if *n != 0 {
		o.N = *n
	}
	if *rate != 0 {
		o.Rate = *rate
	}
	if *duration != 0 {
		o.Duration = *duration
	}
	if *drain != 0 {
		o.Drain = *drain
	}
	if *progress || isTerminal(os.Stderr) {
		o.Progress = os.Stderr
	}

	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr bench: %v\n", err)
		return 2
	}
	res.Command = "dollr bench " + strings.Join(args, " ")
	if *jsonOut {
		err = res.WriteJSON(os.Stdout)
	} else {
		err = res.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr bench: %v\n", err)
		return 2
	}
	if !res.OK {
		return 1
	}
	return 0
}
