package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/pgtest"
)

const serveWait = 60 * time.Second

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// TestMain shares one PostgreSQL cluster among the package's tests (each
// PostgreSQL subtest gets a fresh database) and removes the built binary.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// dollrBinary builds ./cmd/dollr once for the package's tests.
func dollrBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dollr-serve-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "dollr")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serverProc is one `dollr serve` process.
type serverProc struct {
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	creds credentials
}

// installation is where a server keeps its state: credentials.json (and the
// SQLite database) in dataDir, or PostgreSQL at databaseURL when set.
type installation struct {
	dataDir     string
	databaseURL string
}

// newInstallation makes an empty installation on backend b.
func newInstallation(t *testing.T, b backends.Backend) installation {
	t.Helper()
	in := installation{dataDir: filepath.Join(t.TempDir(), "data")}
	if b == backends.Postgres {
		in.databaseURL = b.NewDatabase(t).URL
	}
	return in
}

// openStore opens a store of the test's own on the installation's database,
// to check what the server wrote there.
func (in installation) openStore(t *testing.T) dollr.Store {
	t.Helper()
	if in.databaseURL != "" {
		return backends.Database{Backend: backends.Postgres, URL: in.databaseURL}.Open(t)
	}
	return backends.Database{Backend: backends.SQLite, URL: filepath.Join(in.dataDir, sqliteFile)}.Open(t)
}

// command runs a dollr subcommand on the installation: its flags first, then
// --data-dir and --database-url. DATABASE_URL is cleared so the environment
// the tests run in cannot switch the backend.
func (in installation) command(t *testing.T, sub []string, flags ...string) *exec.Cmd {
	t.Helper()
	args := append(append(sub, flags...), "--data-dir", in.dataDir)
	if in.databaseURL != "" {
		args = append(args, "--database-url", in.databaseURL)
	}
	cmd := exec.Command(dollrBinary(t), args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	return cmd
}

// startServe runs dollr serve on port 0 over the installation and waits
// until its credentials name the actual address and /healthz answers.
func startServe(t *testing.T, in installation, extra ...string) *serverProc {
	t.Helper()
	dataDir := in.dataDir
	before, _ := readCredentials(dataDir)
	args := append([]string{"--addr", "127.0.0.1:0", "--sandbox-delay", "300ms", "--sandbox-long-delay", "2s"}, extra...)
	p := &serverProc{cmd: in.command(t, []string{"serve"}, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("dollr serve output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(serveWait)
	for {
		select {
		case <-p.done:
			t.Fatalf("dollr serve exited: %v\n%s", p.cmd.ProcessState, p.out.String())
		default:
		}
		// A restart rewrites base_url with the new port; wait for that.
		if c, err := readCredentials(dataDir); err == nil && c.BaseURL != "" && c.BaseURL != before.BaseURL {
			if resp, err := http.Get(c.BaseURL + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					p.creds = c
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dollr serve not ready after %s\n%s", serveWait, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *serverProc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// client calls the API as one merchant.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func newClient(t *testing.T, c credentials) *apiClient {
	cl := &apiClient{t: t, base: c.BaseURL}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	cl.call("POST", "/v1/jwt/client/obtain/token", map[string]any{"client_id": c.ClientID, "client_secret": c.ClientSecret}, 200, &tok)
	if tok.ExpiresIn != 60 {
		t.Fatalf("expires_in %d", tok.ExpiresIn)
	}
	cl.token = tok.AccessToken
	return cl
}

func (c *apiClient) call(method, path string, body any, wantStatus int, v any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, out, wantStatus)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
}

// startPayment runs checkout → session → account → execute for phone.
func (c *apiClient) startPayment(phone string) (ref string, status string) {
	c.t.Helper()
	var src struct {
		SourceID int64 `json:"source_id"`
		PartyID  int64 `json:"party_id"`
	}
	c.call("POST", "/v1/checkouts/create", map[string]any{"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": phone,
		"currency": "USD", "items": []map[string]any{{"name": "Rice", "currency": "USD", "amount": 12.5}}}, 200, &src)
	var sess struct {
		ID int64 `json:"id"`
	}
	c.call("POST", "/v1/sessions/checkout", map[string]any{"source_id": src.SourceID, "source_type": "INVOICE"}, 200, &sess)
	var acct struct {
		ID int64 `json:"id"`
	}
	c.call("POST", "/v1/payment-accounts/create?operation_type=COLLECTION", map[string]any{"account_name": "MoMo", "provider": "PAWAPAY",
		"method": "MTN_MOMO_LBR", "party_id": src.PartyID, "insensitive_account_number": phone}, 200, &acct)
	ref = uuid.NewString()
	var ex struct {
		Status string `json:"status"`
	}
	c.call("POST", "/v1/executions/collection", map[string]any{"session_id": fmt.Sprint(sess.ID), "payment_account_id": fmt.Sprint(acct.ID),
		"currency": "USD", "reference_id": ref}, 200, &ex)
	return ref, ex.Status
}

func (c *apiClient) waitStatus(ref, want string) {
	c.t.Helper()
	deadline := time.Now().Add(serveWait)
	for {
		var ex struct {
			Status string `json:"status"`
		}
		c.call("GET", "/v1/status/collection/"+ref, nil, 200, &ex)
		if ex.Status == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("payment %s still %s, want %s", ref, ex.Status, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeCompletesMobileMoney is the README path: a fresh data dir (and,
// on PostgreSQL, an empty database), port 0, a COMPLETED mobile-money payment
// over HTTP; then a second merchant created while the server runs cannot see
// the first one's payment; then a graceful stop.
func TestServeCompletesMobileMoney(t *testing.T) { backends.Each(t, testServeCompletesMobileMoney) }

func testServeCompletesMobileMoney(t *testing.T, b backends.Backend) {
	in := newInstallation(t, b)
	dataDir := in.dataDir
	p := startServe(t, in)
	c := p.creds
	if c.MerchantID == 0 || c.ClientID == "" || c.ClientSecret == "" || c.SupabaseURL != c.BaseURL || strings.HasSuffix(c.BaseURL, ":0") || strings.Count(c.SupabaseAnonKey, ".") != 2 {
		t.Fatalf("credentials %+v", c)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, credentialsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials.json mode: %v %v", fi.Mode(), err)
	}
	if out := p.out.String(); !strings.Contains(out, "credentials.json") || !strings.Contains(out, "curl") {
		t.Fatalf("start-up output lacks the credentials path or a first call:\n%s", out)
	}
	cl := newClient(t, c)
	ref, status := cl.startPayment("231770000010")
	if status != "PENDING" {
		t.Fatalf("execute status %s", status)
	}
	cl.waitStatus(ref, "COMPLETED")

	// A second merchant, made by another process on the same data dir.
	out, err := in.command(t, []string{"merchants", "create"}, "--name", "Second").Output()
	if err != nil {
		t.Fatalf("merchants create: %v", err)
	}
	var second credentials
	if err := json.Unmarshal(out, &second); err != nil || second.MerchantID == c.MerchantID || second.BaseURL != c.BaseURL || second.SupabaseAnonKey != c.SupabaseAnonKey {
		t.Fatalf("second merchant %s (%v)", out, err)
	}
	other := newClient(t, second)
	other.call("GET", "/v1/status/collection/"+ref, nil, 404, nil)

	// Both merchants and the payment live in the chosen backend, and only there.
	st := in.openStore(t)
	for _, id := range []int64{c.MerchantID, second.MerchantID} {
		if _, err := st.Merchant(t.Context(), id); err != nil {
			t.Fatalf("merchant %d not in the %s store: %v", id, b.Name, err)
		}
	}
	if e, err := st.Execution(t.Context(), c.MerchantID, ref); err != nil || e.Status != dollr.StatusCompleted {
		t.Fatalf("payment in the %s store: %+v, %v", b.Name, e, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, sqliteFile)); (err == nil) != (b == backends.SQLite) {
		t.Fatalf("SQLite file in the data dir on %s: %v", b.Name, err)
	}

	// Metrics carry the request counters.
	resp, err := http.Get(c.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `dollr_http_requests_total{code="200",method="POST",route="POST /v1/executions/collection"}`) {
		t.Fatalf("metrics lack request counters")
	}

	p.stop(syscall.SIGTERM)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("graceful stop exit code %d\n%s", code, p.out.String())
	}
	if !strings.Contains(p.out.String(), "stopped") {
		t.Fatalf("no clean stop logged:\n%s", p.out.String())
	}
}

// TestServeRestartMidProcessing kills the server (SIGKILL) while a payment is
// PROCESSING; a new server on the same data dir finishes it and reuses the
// credentials, with the new address written into credentials.json.
func TestServeRestartMidProcessing(t *testing.T) { backends.Each(t, testServeRestartMidProcessing) }

func testServeRestartMidProcessing(t *testing.T, b backends.Backend) {
	in := newInstallation(t, b)
	p := startServe(t, in, "--sandbox-long-delay", "5s")
	cl := newClient(t, p.creds)
	ref, _ := cl.startPayment("231770000002") // PROCESSING until --sandbox-long-delay
	cl.waitStatus(ref, "PROCESSING")
	p.stop(syscall.SIGKILL)

	p2 := startServe(t, in)
	if p2.creds.ClientSecret != p.creds.ClientSecret || p2.creds.MerchantID != p.creds.MerchantID || p2.creds.SupabaseAnonKey != p.creds.SupabaseAnonKey {
		t.Fatalf("restart changed credentials: %+v vs %+v", p2.creds, p.creds)
	}
	if strings.Contains(p2.out.String(), "curl") {
		t.Fatalf("restart printed the first-call secret again")
	}
	cl2 := newClient(t, p2.creds)
	cl2.waitStatus(ref, "COMPLETED")
}

// TestServeTwoServersOneDatabase runs two `dollr serve` processes on one
// PostgreSQL database (each with its own data dir, as on two machines): a
// merchant's token from one works on the other, a payment started on the
// first is visible on the second, and after the first is killed mid-PROCESSING
// the second finishes the payment.
func TestServeTwoServersOneDatabase(t *testing.T) {
	first := newInstallation(t, backends.Postgres)
	second := installation{dataDir: filepath.Join(t.TempDir(), "data"), databaseURL: first.databaseURL}
	p1 := startServe(t, first, "--sandbox-long-delay", "5s")
	p2 := startServe(t, second, "--sandbox-long-delay", "5s")
	cl1 := newClient(t, p1.creds)
	ref, _ := cl1.startPayment("231770000002") // PROCESSING until --sandbox-long-delay
	cl2 := &apiClient{t: t, base: p2.creds.BaseURL, token: cl1.token}
	cl2.waitStatus(ref, "PROCESSING")
	p1.stop(syscall.SIGKILL)
	cl2.waitStatus(ref, "COMPLETED")
}

func TestHelp(t *testing.T) {
	bin := dollrBinary(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "serve") || !strings.Contains(string(out), "merchants") {
		t.Fatalf("dollr --help: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "serve", "--help").CombinedOutput()
	for _, flag := range []string{"-data-dir", "-addr", "-sandbox-delay", "-sandbox-long-delay", "-session-ttl", "-realtime-key-ttl", "-join-error-delay", "-public-url"} {
		if err != nil || !strings.Contains(string(out), flag) {
			t.Fatalf("dollr serve --help lacks %s: %v\n%s", flag, err, out)
		}
	}
	if err := exec.Command(bin, "nonsense").Run(); err == nil {
		t.Fatal("unknown command exited 0")
	}
	if err := exec.Command(bin, "merchants", "create").Run(); err == nil {
		t.Fatal("merchants create without --name exited 0")
	}
}
