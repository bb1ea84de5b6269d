package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
)

func init() {
	register("watch", command{
		Summary: "follow a collection's status until COMPLETED or FAILED: watch <reference_id>",
		Run:     runWatch,
	})
}

// Exit codes of watch and pay.
const (
	exitCompleted = 0
	exitFailed    = 1
	exitError     = 2
)

// defaultCredentialsPath is <DOLLR_DATA_DIR or ./dollr-data>/credentials.json.
func defaultCredentialsPath() string {
	return envOr("DOLLR_CREDENTIALS", filepath.Join(envOr("DOLLR_DATA_DIR", "./dollr-data"), "credentials.json"))
}

// watchFlags are the flags watch and pay share.
type watchFlags struct {
	credentials string
	jsonOut     bool
	timeout     time.Duration
	pollMax     time.Duration
}

func (w *watchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.credentials, "credentials", defaultCredentialsPath(), "credentials.json written by dollr serve (env DOLLR_CREDENTIALS)")
	fs.BoolVar(&w.jsonOut, "json", false, "print one JSON object per line instead of text")
	fs.DurationVar(&w.timeout, "timeout", 10*time.Minute, "give up (exit 2) after this long")
	fs.DurationVar(&w.pollMax, "max-poll-interval", 10*time.Second, "longest pause between Status API calls once polling")
}

func runWatch(ctx context.Context, args []string) int {
	fs := newFlagSet("watch", "dollr watch [flags] <reference_id>", `
Follows one collection until it is COMPLETED (exit 0) or FAILED (exit 1),
printing each status change with the time and the gateway's message. Exit 2
means an error or --timeout.

It follows Dollr's guide: with --session-id it gets a realtime key, subscribes
to the collection's public status row and waits up to 30 s, then polls
GET /v1/status/collection with back-off (2 s growing to --max-poll-interval,
honouring Retry-After); a realtime error switches to polling at once. The
Status API has no session id, so without --session-id watch polls only. The
final status always comes from the Status API.`)
	var wf watchFlags
	wf.register(fs)
	sessionID := fs.Int64("session-id", 0, "checkout session of the collection: enables realtime")
	sourceType := fs.String("source-type", string(dollr.SourceInvoice), "source type of the session: INVOICE or ORDER")
	args, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(args) != 1 {
		fmt.Fprintln(fs.Output(), "dollr watch: exactly one reference_id is required")
		fs.Usage()
		return exitError
	}
	st := dollr.SourceType(strings.ToUpper(*sourceType))
	if !st.Valid() {
		fmt.Fprintf(os.Stderr, "dollr watch: --source-type %q: want INVOICE or ORDER\n", *sourceType)
		return exitError
	}
	if *sessionID < 0 {
		fmt.Fprintf(os.Stderr, "dollr watch: --session-id %d: want a positive session id\n", *sessionID)
		return exitError
	}
	c, err := client.NewFromCredentialsFile(wf.credentials)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr watch: %v\n", err)
		return exitError
	}
	out := newStatusPrinter(os.Stdout, os.Stderr, wf.jsonOut)
	if *sessionID > 0 {
		// Realtime would wait its whole window for a row that never comes:
		// ask the Status API once first, so an unknown reference ends at once.
		if code := checkCollectionExists(ctx, c, args[0], wf, out); code >= 0 {
			return code
		}
	}
	return watchCollection(ctx, c, args[0], *sessionID, st, wf, out)
}

// checkCollectionExists asks the Status API about ref once. It returns
// exitError after reporting a 404 or another answer that retrying cannot
// change (401, 403, 422), and -1 to go on: also when the call fails in a way
// the wait's polling retries and reports (network errors, 5xx).
func checkCollectionExists(ctx context.Context, c *client.Client, ref string, wf watchFlags, out *statusPrinter) int {
	ctx, cancel := context.WithTimeout(ctx, min(wf.timeout, 30*time.Second))
	defer cancel()
	_, err := c.CollectionStatus(ctx, ref)
	var ae *client.APIError
	switch {
	case err == nil:
		return -1
	case client.IsNotFound(err):
		out.fail(fmt.Errorf("collection %s not found: %w", ref, err))
		return exitError
	case errors.As(err, &ae) && !ae.Temporary():
		out.fail(err)
		return exitError
	}
	return -1
}

// parseInterspersed parses flags that may come before or after positional
// arguments (dollr watch <ref> --json). It returns the positional arguments,
// and an exit code to return at once (0 for --help, 2 for a bad flag) or -1.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, int) {
	var positional []string
	for {
		if code := parse(fs, args); code >= 0 {
			return nil, code
		}
		if fs.NArg() == 0 {
			return positional, -1
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// watchCollection waits for ref with the SDK and reports through out.
func watchCollection(ctx context.Context, c *client.Client, ref string, sessionID int64, sourceType dollr.SourceType, wf watchFlags, out *statusPrinter) int {
	ctx, cancel := context.WithTimeout(ctx, wf.timeout)
	defer cancel()
	mode := "polling the Status API (no --session-id)"
	if sessionID > 0 {
		mode = "realtime, then the Status API"
	}
	out.timeout = wf.timeout
	out.info("watching collection %s: %s", ref, mode)
	out.startSpinner()
	final, err := c.WaitForCollection(ctx, ref, client.WaitOptions{
		SessionID:       sessionID,
		SourceType:      sourceType,
		MaxPollInterval: wf.pollMax,
		OnUpdate:        out.update,
		OnFallback:      out.fallback,
		OnRetry:         out.retry,
	})
	out.stopSpinner()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s: %w", wf.timeout, err)
		}
		out.fail(err)
		return exitError
	}
	out.final(final)
	if final.Status == dollr.StatusCompleted {
		return exitCompleted
	}
	return exitFailed
}

// statusPrinter writes watch's output: text lines (with a spinner on a
// terminal) or JSON lines. Its methods are safe for concurrent use.
type statusPrinter struct {
	w        io.Writer
	errW     io.Writer // text-mode errors
	jsonOut  bool
	terminal bool

	timeout time.Duration // --timeout, for the retry line

	mu       sync.Mutex
	retryErr string // the error of the current run of failed polls
	status   string
	since    time.Time
	spinner  chan struct{}
	wg       sync.WaitGroup
	drawn    bool // a spinner frame is on the current line
}

func newStatusPrinter(f *os.File, errW io.Writer, jsonOut bool) *statusPrinter {
	return &statusPrinter{w: f, errW: errW, jsonOut: jsonOut, terminal: !jsonOut && isTerminal(f)}
}

// isTerminal reports whether f is a character device (a TTY), so the spinner
// never ends up in a pipe or a file.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// line prints one line, first erasing a spinner frame. Called with mu held.
func (p *statusPrinter) line(s string) {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintln(p.w, s)
}

func (p *statusPrinter) json(v map[string]any) {
	v["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"error","error":%q}`, err.Error()))
	}
	p.line(string(b))
}

func (p *statusPrinter) info(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if p.jsonOut {
		p.json(map[string]any{"event": "info", "message": msg})
		return
	}
	p.line(msg)
}

func (p *statusPrinter) update(u client.Update) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.since = string(u.Status), u.At
	if p.jsonOut {
		p.json(map[string]any{"event": "status", "status": u.Status, "gateway_message": u.GatewayMessage,
			"requires_action": u.RequiresAction, "via": u.Via})
		return
	}
	msg := u.GatewayMessage
	if u.RequiresAction {
		msg = strings.TrimSpace(msg + " (3-D Secure required)")
	}
	if msg != "" {
		msg += "  "
	}
	p.line(fmt.Sprintf("%s  %-10s  %s[%s]", u.At.Local().Format("15:04:05"), u.Status, msg, u.Via))
}

func (p *statusPrinter) fallback(reason error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jsonOut {
		p.json(map[string]any{"event": "fallback", "reason": reason.Error()})
		return
	}
	p.line(fmt.Sprintf("%s  realtime: %v; polling the Status API", time.Now().Format("15:04:05"), reason))
}

// retry reports the first failure of a run of failed Status API calls, a
// different error within the run, and the recovery: one line per outage, not
// one per retry. Text goes to stderr, as errors do.
func (p *statusPrinter) retry(e client.RetryEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Err == nil {
		p.retryErr = ""
		if p.jsonOut {
			p.json(map[string]any{"event": "recovered", "failures": e.Failures})
			return
		}
		calls := "calls"
		if e.Failures == 1 {
			calls = "call"
		}
		p.errLine(fmt.Sprintf("%s  Status API answering again after %d failed %s", e.At.Local().Format("15:04:05"), e.Failures, calls))
		return
	}
	msg := e.Err.Error()
	if e.Failures > 1 && msg == p.retryErr {
		return
	}
	p.retryErr = msg
	if p.jsonOut {
		p.json(map[string]any{"event": "retry", "error": msg, "failures": e.Failures, "retry_in": e.RetryIn.String()})
		return
	}
	p.errLine(fmt.Sprintf("%s  Status API call failed: %v; retrying until it answers or --timeout (%s) ends",
		e.At.Local().Format("15:04:05"), e.Err, p.timeout))
}

// errLine prints one line on errW, first erasing a spinner frame on w.
// Called with mu held.
func (p *statusPrinter) errLine(s string) {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintln(p.errW, s)
}

func (p *statusPrinter) final(e *client.ExecutionResponse) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jsonOut {
		p.json(map[string]any{"event": "final", "execution": e})
		return
	}
	p.line(fmt.Sprintf("%s  %s: %s %s (confirmed by the Status API)", time.Now().Format("15:04:05"), e.Status, e.PayerAmount, e.PayerCurrency))
}

func (p *statusPrinter) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jsonOut {
		p.json(map[string]any{"event": "error", "error": err.Error()})
		return
	}
	p.errLine("error: " + err.Error())
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// startSpinner animates "waiting" under the last line while stdout is a terminal.
func (p *statusPrinter) startSpinner() {
	if !p.terminal {
		return
	}
	p.mu.Lock()
	p.spinner = make(chan struct{})
	p.since = time.Now()
	stop := p.spinner
	p.mu.Unlock()
	p.wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			p.mu.Lock()
			state := "waiting"
			if p.status != "" {
				state = p.status
			}
			fmt.Fprintf(p.w, "\r\033[K%s %s for %s", spinnerFrames[i%len(spinnerFrames)], state, time.Since(p.since).Truncate(time.Second))
			p.drawn = true
			p.mu.Unlock()
		}
	})
}

func (p *statusPrinter) stopSpinner() {
	p.mu.Lock()
	stop := p.spinner
	p.spinner = nil
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	p.wg.Wait()
	p.mu.Lock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
	p.mu.Unlock()
}
