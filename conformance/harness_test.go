package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dollr/dollr/internal/backends"
)

// waitTimeout bounds every wait for the server or a client. It is generous
// because the suite shares two cores with other work; a passing run waits far
// less.
const waitTimeout = 60 * time.Second

// ---- the dollr binary and its servers -------------------------------------

// credentials is <data-dir>/credentials.json as dollr serve writes it.
type credentials struct {
	MerchantID      int64  `json:"merchant_id"`
	ClientID        string `json:"client_id"`
	ClientSecret    string `json:"client_secret"`
	BaseURL         string `json:"base_url"`
	SupabaseURL     string `json:"supabase_url"`
	SupabaseAnonKey string `json:"supabase_anon_key"`
}

// buildDollr compiles ./cmd/dollr to bin, with the race detector when the
// suite itself runs under it, so races in the server show up here.
func buildDollr(bin string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/dollr")
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/dollr: %v\n%s", err, out)
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// freeAddr returns a loopback address whose port was free a moment ago. The
// server needs a fixed address because the restart scenario brings it back on
// the same port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// server is one `dollr serve` process over its own data directory (which
// holds credentials.json, and the SQLite database unless databaseURL is set).
// It can be stopped and started again on the same address and data.
type server struct {
	t       *testing.T
	bin     string
	backend backends.Backend
	dataDir string
	// databaseURL is the server's own fresh PostgreSQL database, empty on
	// SQLite.
	databaseURL string
	addr        string
	args        []string
	creds       credentials

	log  lockedBuffer // output of every run, shown when the test fails
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// startServer starts dollr serve on backend b with the suite's fast sandbox
// timings plus extra flags, and stops it when t ends. On PostgreSQL the
// server gets a fresh database of the package's cluster, dropped (with its
// replication slot) after the server has stopped.
func startServer(t *testing.T, bin string, b backends.Backend, extra ...string) *server {
	t.Helper()
	s := &server{t: t, bin: bin, backend: b, dataDir: t.TempDir(), addr: freeAddr(t)}
	if b == backends.Postgres {
		// Created before the server's cleanup is registered, so dropped after
		// it runs.
		s.databaseURL = b.NewDatabase(t).URL
	}
	s.args = append([]string{"serve",
		"--data-dir", s.dataDir,
		"--addr", s.addr,
		"--sandbox-delay", "1s",
		"--sandbox-long-delay", "6s",
		"--join-error-delay", "200ms",
	}, extra...)
	s.args = append(s.args, s.storeFlags()...)
	t.Cleanup(func() {
		s.stop()
		// A -race build reports races on stderr and keeps serving.
		if log := s.log.tail(1 << 30); strings.Contains(log, "WARNING: DATA RACE") {
			t.Errorf("the race detector reported a data race in dollr serve:\n%s", log[strings.Index(log, "WARNING: DATA RACE"):])
		}
		if t.Failed() {
			t.Logf("dollr %s output:\n%s", strings.Join(s.args, " "), s.log.tail(12000))
		}
	})
	s.start()
	return s
}

// start runs the server and waits until it accepts connections and has
// written its credentials.
func (s *server) start() {
	t := s.t
	t.Helper()
	cmd := s.command(s.args...)
	cmd.Stdout = &s.log
	cmd.Stderr = &s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dollr serve: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(waitTimeout)
	for {
		select {
		case <-done:
			t.Fatalf("dollr serve exited during start-up: %v\n%s", cmd.ProcessState, s.log.tail(8000))
		default:
		}
		// /healthz answers once the HTTP server runs, which is after
		// credentials.json has been written.
		if resp, err := healthClient.Get("http://" + s.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				c, err := readCredentials(s.dataDir)
				if err != nil {
					t.Fatalf("dollr serve is up but credentials.json is not readable: %v", err)
				}
				s.creds = c
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dollr serve not ready on %s after %s\n%s", s.addr, waitTimeout, s.log.tail(8000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to exit, killing it if it
// does not exit in time. It is a no-op when the server is not running.
func (s *server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("dollr serve did not exit within 30s of SIGTERM; killing it")
		cmd.Process.Kill()
		<-done
	}
}

var healthClient = &http.Client{Timeout: 2 * time.Second}

// storeFlags point a dollr command at the server's system of record.
func (s *server) storeFlags() []string {
	if s.databaseURL == "" {
		return nil
	}
	return []string{"--database-url", s.databaseURL}
}

// command prepares a dollr command. DATABASE_URL is cleared so the
// environment the suite runs in cannot switch the backend.
func (s *server) command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	return cmd
}

func readCredentials(dataDir string) (credentials, error) {
	var c credentials
	b, err := os.ReadFile(filepath.Join(dataDir, "credentials.json"))
	if err != nil {
		return c, err
	}
	err = json.Unmarshal(b, &c)
	return c, err
}

// createMerchant runs `dollr merchants create` against the server's data
// directory and returns the new merchant's credentials.
func (s *server) createMerchant(t *testing.T, name string) credentials {
	t.Helper()
	cmd := s.command(append([]string{"merchants", "create", "--name", name, "--data-dir", s.dataDir}, s.storeFlags()...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dollr merchants create: %v\n%s%s", err, out, stderr.Bytes())
	}
	var c credentials
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("dollr merchants create printed %q: %v", out, err)
	}
	if c.BaseURL == "" {
		c.BaseURL = s.creds.BaseURL
	}
	if c.SupabaseURL == "" {
		c.SupabaseURL = s.creds.SupabaseURL
	}
	if c.SupabaseAnonKey == "" {
		c.SupabaseAnonKey = s.creds.SupabaseAnonKey
	}
	return c
}

// ---- the Dollr Open API, driven over HTTP ----------------------------------

// api is a merchant's view of the Open API.
type api struct {
	creds credentials
	token string
}

func newAPI(t *testing.T, c credentials) *api {
	t.Helper()
	a := &api{creds: c}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	a.call(t, "POST", "/v1/jwt/client/obtain/token", map[string]any{"client_id": c.ClientID, "client_secret": c.ClientSecret}, &tok)
	if tok.AccessToken == "" {
		t.Fatal("token endpoint returned no access_token")
	}
	a.token = tok.AccessToken
	return a
}

// call sends a JSON request and decodes a 200 response into out; any other
// status fails the test.
func (a *api) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if status, raw := a.try(t, method, path, body, out); status != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, status, raw)
	}
}

func (a *api) try(t *testing.T, method, path string, body, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(a.creds.BaseURL, "/")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// payment is a checkout ready to execute: source, session and a mobile-money
// payment account for phone, plus the reference_id the execution will use.
type payment struct {
	phone            string
	sourceID         int64
	sessionID        int64
	paymentAccountID int64
	referenceID      string
}

// Sandbox phones (docs/sandbox.md): the last two digits choose the outcome.
const (
	phoneCompletes = "231770000010"
	phoneFails     = "231770000001" // insufficient funds: PROCESSING, then FAILED
	phoneSlow      = "231770000002" // approved only after --sandbox-long-delay
)

func (a *api) preparePayment(t *testing.T, phone string) payment {
	t.Helper()
	p := payment{phone: phone, referenceID: uuid.NewString()}
	var src struct {
		SourceID   int64  `json:"source_id"`
		SourceType string `json:"source_type"`
		PartyID    int64  `json:"party_id"`
	}
	a.call(t, "POST", "/v1/checkouts/create", map[string]any{
		"mode":        "DIRECT",
		"source_kind": "INVOICE",
		"party_phone": phone,
		"party_name":  "Conformance Payer",
		"currency":    "USD",
		"items":       []map[string]any{{"name": "Realtime test", "currency": "USD", "amount": 12.5}},
	}, &src)
	p.sourceID = src.SourceID
	var sess struct {
		ID int64 `json:"id"`
	}
	a.call(t, "POST", "/v1/sessions/checkout", map[string]any{"source_id": src.SourceID, "source_type": "INVOICE"}, &sess)
	p.sessionID = sess.ID
	var acct struct {
		ID int64 `json:"id"`
	}
	a.call(t, "POST", "/v1/payment-accounts/create?operation_type=COLLECTION", map[string]any{
		"account_name":               "Conformance MoMo",
		"provider":                   "PAWAPAY",
		"method":                     "MTN_MOMO_LBR",
		"party_id":                   src.PartyID,
		"country_code":               "LR",
		"insensitive_account_number": phone,
	}, &acct)
	p.paymentAccountID = acct.ID
	return p
}

// execute starts the collection and returns the status the API answered.
func (a *api) execute(t *testing.T, p payment) string {
	t.Helper()
	var ex struct {
		Status string `json:"status"`
	}
	a.call(t, "POST", "/v1/executions/collection", map[string]any{
		"session_id":         fmt.Sprint(p.sessionID),
		"payment_account_id": fmt.Sprint(p.paymentAccountID),
		"currency":           "USD",
		"reference_id":       p.referenceID,
	}, &ex)
	return ex.Status
}

// realtimeKey is RealtimeTokenResponse.
type realtimeKey struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func (a *api) realtimeKey(t *testing.T, sessionID int64, referenceID string) realtimeKey {
	t.Helper()
	var k realtimeKey
	a.call(t, "POST", "/v1/realtime-keys/collection", map[string]any{
		"session_id":   sessionID,
		"source_type":  "INVOICE",
		"reference_id": referenceID,
	}, &k)
	if k.AccessToken == "" {
		t.Fatal("realtime key endpoint returned no access_token")
	}
	return k
}

// waitStatus polls the Status API until the collection reaches want.
func (a *api) waitStatus(t *testing.T, referenceID, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for time.Now().Before(deadline) {
		var ex struct {
			Status string `json:"status"`
		}
		if status, _ := a.try(t, "GET", "/v1/status/collection/"+referenceID, nil, &ex); status == http.StatusOK {
			last = ex.Status
			if last == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("collection %s still %q after %s, want %s", referenceID, last, waitTimeout, want)
}

// ---- the real supabase-js client in Node -----------------------------------

// record is one JSON line a Node script reported (see harness.mjs).
type record struct {
	MS        int    `json:"ms"`
	Kind      string `json:"kind"` // ready, status, change, system, frame, fallback, fatal
	Status    string `json:"status"`
	Error     string `json:"error"`
	EventType string `json:"eventType"`
	// CommitTimestamp is the payload's commit_timestamp.
	CommitTimestamp string         `json:"commit_timestamp"`
	New             map[string]any `json:"new"`
	Old             map[string]any `json:"old"`
	Probe           string         `json:"probe"`
	Binding         int            `json:"binding"`
	Dir             string         `json:"dir"`
	Socket          int            `json:"socket"`
	Data            string         `json:"data"`
	Message         string         `json:"message"`
	Payload         map[string]any `json:"payload"`
	line            string
}

// newStatus is payload.new.status of a change record.
func (r record) newStatus() string {
	s, _ := r.New["status"].(string)
	return s
}

// jsClient is one Node process running snippet.mjs or probe.mjs.
type jsClient struct {
	t      *testing.T
	name   string
	vsn    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr lockedBuffer

	mu      sync.Mutex
	records []record
	changed chan struct{} // closed and replaced whenever records grows or the process exits
	exited  bool
}

// startJS starts a Node script with the given realtime protocol version and
// waits until supabase-js is loaded. The process is ended when t ends.
func startJS(t *testing.T, script, vsn string) *jsClient {
	t.Helper()
	c := &jsClient{t: t, name: script, vsn: vsn, changed: make(chan struct{})}
	cmd := exec.Command(nodeBin, script)
	cmd.Env = append(os.Environ(), "DOLLR_REALTIME_VSN="+vsn, "DOLLR_TRACE_FRAMES=1")
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	c.cmd = cmd
	readerDone, waitDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			var r record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				r = record{Kind: "garbage", Data: line}
			}
			r.line = line
			c.mu.Lock()
			c.records = append(c.records, r)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	go func() {
		defer close(waitDone)
		<-readerDone
		cmd.Wait()
		c.mu.Lock()
		c.exited = true
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}()
	t.Cleanup(func() {
		c.stdin.Close() // the script exits when its stdin closes
		select {
		case <-waitDone:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-waitDone
		}
		if t.Failed() || os.Getenv("DOLLR_CONFORMANCE_DUMP") != "" {
			t.Logf("%s", c.dump())
		}
	})
	c.waitFor("ready", func(rs []record) bool { return indexOf(rs, 0, isKind("ready")) >= 0 })
	return c
}

// configure hands the script its run configuration (see harness.mjs).
func (c *jsClient) configure(cfg map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("configure %s: %v", c.name, err)
	}
}

// subscribe configures snippet.mjs to follow payment p with key.
func (c *jsClient) subscribe(creds credentials, key realtimeKey, sessionID int64, referenceID string) {
	c.t.Helper()
	c.configure(map[string]any{
		"SUPABASE_URL":      creds.SupabaseURL,
		"SUPABASE_ANON_KEY": creds.SupabaseAnonKey,
		"realtimeKey":       key,
		"sessionId":         sessionID,
		"referenceId":       referenceID,
	})
}

func (c *jsClient) snapshot() []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]record(nil), c.records...)
}

// waitFor waits until cond holds for the records so far and returns them. It
// fails the test at the deadline, when the script reports a fatal error, or
// when it exits first.
func (c *jsClient) waitFor(what string, cond func([]record) bool) []record {
	c.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		rs := append([]record(nil), c.records...)
		exited, changed := c.exited, c.changed
		c.mu.Unlock()
		if i := indexOf(rs, 0, isKind("fatal")); i >= 0 {
			c.t.Fatalf("%s (vsn %s) crashed while waiting for %s: %s", c.name, c.vsn, what, rs[i].Message)
		}
		if cond(rs) {
			return rs
		}
		if exited {
			c.t.Fatalf("%s (vsn %s) exited before %s\nstderr: %s", c.name, c.vsn, what, c.stderr.tail(4000))
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s (vsn %s): no %s within %s", c.name, c.vsn, what, waitTimeout)
		}
	}
}

// waitSubscribed waits for the subscribe callback's first status and fails
// at once if it is not SUBSCRIBED.
func (c *jsClient) waitSubscribed() []record {
	c.t.Helper()
	rs := c.waitFor("SUBSCRIBED", has(isKind("status")))
	if first := rs[indexOf(rs, 0, isKind("status"))]; first.Status != "SUBSCRIBED" {
		c.t.Fatalf("%s (vsn %s): subscribe callback fired %s (%s), want SUBSCRIBED", c.name, c.vsn, first.Status, first.Error)
	}
	return rs
}

// dump renders everything the client reported, for a failing test's log.
func (c *jsClient) dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (vsn %s) reported:\n", c.name, c.vsn)
	for _, r := range c.snapshot() {
		line := r.line
		if len(line) > 1500 {
			line = line[:1500] + "…"
		}
		b.WriteString("  " + line + "\n")
	}
	if s := c.stderr.tail(2000); s != "" {
		fmt.Fprintf(&b, "  stderr: %s\n", s)
	}
	return b.String()
}

// ---- record queries ---------------------------------------------------------

type match func(record) bool

func isKind(kind string) match { return func(r record) bool { return r.Kind == kind } }

func isStatus(status string) match {
	return func(r record) bool { return r.Kind == "status" && r.Status == status }
}

func isChangeTo(status string) match {
	return func(r record) bool { return r.Kind == "change" && r.newStatus() == status }
}

func inProbe(probe string, m match) match {
	return func(r record) bool { return r.Probe == probe && m(r) }
}

func onBinding(binding int, m match) match {
	return func(r record) bool { return r.Binding == binding && m(r) }
}

// indexOf returns the index of the first record at or after from that
// matches, or -1.
func indexOf(rs []record, from int, m match) int {
	for i := from; i < len(rs); i++ {
		if m(rs[i]) {
			return i
		}
	}
	return -1
}

func count(rs []record, m match) int {
	n := 0
	for _, r := range rs {
		if m(r) {
			n++
		}
	}
	return n
}

// has returns a wait condition: some record matches.
func has(m match) func([]record) bool {
	return func(rs []record) bool { return indexOf(rs, 0, m) >= 0 }
}

// inOrder returns a wait condition: records matching each of ms appear in
// that order.
func inOrder(ms ...match) func([]record) bool {
	return func(rs []record) bool {
		i := 0
		for _, m := range ms {
			j := indexOf(rs, i, m)
			if j < 0 {
				return false
			}
			i = j + 1
		}
		return true
	}
}

// frame is a Phoenix message decoded from either wire format.
type frame struct {
	JoinRef *string
	Ref     *string
	Topic   string
	Event   string
	Payload map[string]any
}

// parseFrame decodes a traced text frame: a vsn 2.0.0 array
// [join_ref, ref, topic, event, payload] or a vsn 1.0.0 object.
func parseFrame(data string) (frame, bool) {
	var f frame
	if strings.HasPrefix(data, "[") {
		var parts []json.RawMessage
		if json.Unmarshal([]byte(data), &parts) != nil || len(parts) < 5 {
			return f, false
		}
		json.Unmarshal(parts[0], &f.JoinRef)
		json.Unmarshal(parts[1], &f.Ref)
		json.Unmarshal(parts[2], &f.Topic)
		json.Unmarshal(parts[3], &f.Event)
		json.Unmarshal(parts[4], &f.Payload)
		return f, true
	}
	var m struct {
		JoinRef *string        `json:"join_ref"`
		Ref     *string        `json:"ref"`
		Topic   string         `json:"topic"`
		Event   string         `json:"event"`
		Payload map[string]any `json:"payload"`
	}
	if json.Unmarshal([]byte(data), &m) != nil {
		return f, false
	}
	return frame{m.JoinRef, m.Ref, m.Topic, m.Event, m.Payload}, true
}

// frameMatch matches traced frames in one direction ("in" or "out").
func frameMatch(dir string, m func(frame) bool) match {
	return func(r record) bool {
		if r.Kind != "frame" || r.Dir != dir {
			return false
		}
		f, ok := parseFrame(r.Data)
		return ok && m(f)
	}
}

// jwtExpiry reads the exp claim of a JWT without verifying it.
func jwtExpiry(t *testing.T, token string) time.Time {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("realtime key is not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("realtime key payload: %v", err)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Exp == 0 {
		t.Fatalf("realtime key has no exp claim: %s", raw)
	}
	return time.Unix(claims.Exp, 0)
}

// ---- small utilities --------------------------------------------------------

// lockedBuffer collects a process's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail returns the last n bytes written.
func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}

// runConcurrently runs each function as a subtest of t, all at once, and
// returns when they have all finished. The subtests are not t.Parallel, so
// they do not queue behind go test's -parallel limit (2 on a 2-core machine):
// they mostly wait on timers, not CPU.
func runConcurrently(t *testing.T, tests map[string]func(t *testing.T)) {
	var wg sync.WaitGroup
	for name, fn := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, fn)
		}()
	}
	wg.Wait()
}

// slot is one row of pg_replication_slots.
type slot struct {
	name   string
	active bool
}

// replicationSlots lists the replication slots of the server's PostgreSQL
// database.
func (s *server) replicationSlots(t *testing.T) []slot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.databaseURL)
	if err != nil {
		t.Fatalf("connect to the server's database: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT slot_name, active FROM pg_replication_slots WHERE database = current_database() ORDER BY slot_name`)
	if err != nil {
		t.Fatalf("list replication slots: %v", err)
	}
	var out []slot
	for rows.Next() {
		var sl slot
		if err := rows.Scan(&sl.name, &sl.active); err != nil {
			t.Fatalf("list replication slots: %v", err)
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("list replication slots: %v", err)
	}
	return out
}
