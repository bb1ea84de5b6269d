package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/internal/servetest"
)

const serveWait = 60 * time.Second

// TestMain shares one PostgreSQL cluster among the package's tests (each
// PostgreSQL subtest gets a fresh database) and removes the built binary.
func TestMain(m *testing.M) { os.Exit(servetest.Main(m)) }

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
// --data-dir and --database-url.
func (in installation) command(t *testing.T, sub []string, flags ...string) *exec.Cmd {
	t.Helper()
	args := append(append(sub, flags...), "--data-dir", in.dataDir)
	if in.databaseURL != "" {
		args = append(args, "--database-url", in.databaseURL)
	}
	return servetest.Command(t, args...)
}

// serverProc is one `dollr serve` process and the credentials it wrote.
type serverProc struct {
	*servetest.Server
	creds credentials
}

// startServe runs dollr serve over the installation with fast sandbox
// timings (overridable by extra flags) and stops it when t ends.
func startServe(t *testing.T, in installation, extra ...string) *serverProc {
	t.Helper()
	s := servetest.Start(t, servetest.Options{DataDir: in.dataDir, DatabaseURL: in.databaseURL,
		Flags: append([]string{"--sandbox-delay", "300ms", "--sandbox-long-delay", "2s"}, extra...)})
	c, err := readCredentials(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return &serverProc{Server: s, creds: c}
}

// apiClient calls the API as one merchant.
type apiClient struct {
	t *testing.T
	*servetest.API
}

func newClient(t *testing.T, c credentials) apiClient {
	t.Helper()
	cl := apiClient{t, servetest.NewAPI(t, c.BaseURL)}
	if expiresIn := cl.Login(c.ClientID, c.ClientSecret); expiresIn != 60 {
		t.Fatalf("expires_in %d", expiresIn)
	}
	return cl
}

// startPayment runs checkout → session → account → execute for phone.
func (c apiClient) startPayment(phone string) (ref string, status string) {
	c.t.Helper()
	var src struct {
		SourceID int64 `json:"source_id"`
		PartyID  int64 `json:"party_id"`
	}
	c.Call("POST", "/v1/checkouts/create", map[string]any{"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": phone,
		"currency": "USD", "items": []map[string]any{{"name": "Rice", "currency": "USD", "amount": 12.5}}}, 200, &src)
	var sess struct {
		ID int64 `json:"id"`
	}
	c.Call("POST", "/v1/sessions/checkout", map[string]any{"source_id": src.SourceID, "source_type": "INVOICE"}, 200, &sess)
	var acct struct {
		ID int64 `json:"id"`
	}
	c.Call("POST", "/v1/payment-accounts/create?operation_type=COLLECTION", map[string]any{"account_name": "MoMo", "provider": "PAWAPAY",
		"method": "MTN_MOMO_LBR", "party_id": src.PartyID, "insensitive_account_number": phone}, 200, &acct)
	ref = uuid.NewString()
	var ex struct {
		Status string `json:"status"`
	}
	c.Call("POST", "/v1/executions/collection", map[string]any{"session_id": fmt.Sprint(sess.ID), "payment_account_id": fmt.Sprint(acct.ID),
		"currency": "USD", "reference_id": ref}, 200, &ex)
	return ref, ex.Status
}

func (c apiClient) waitStatus(ref, want string) {
	c.t.Helper()
	servetest.WaitFor(c.t, serveWait, func() error {
		var ex struct {
			Status string `json:"status"`
		}
		c.Call("GET", "/v1/status/collection/"+ref, nil, 200, &ex)
		if ex.Status != want {
			return fmt.Errorf("payment %s still %s, want %s", ref, ex.Status, want)
		}
		return nil
	})
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
	// The welcome text follows the listener, so /healthz may answer first.
	servetest.WaitFor(t, 20*time.Second, func() error {
		if out := p.Output(); !strings.Contains(out, "credentials.json") || !strings.Contains(out, "curl") {
			return fmt.Errorf("start-up output lacks the credentials path or a first call:\n%s", out)
		}
		return nil
	})
	// The secret stays in the file; the log names the store in use.
	out := p.Output()
	if strings.Contains(out, c.ClientSecret) {
		t.Fatalf("start-up output shows the client secret:\n%s", out)
	}
	wantStore := "store=sqlite database=" + filepath.Join(dataDir, sqliteFile)
	if b == backends.Postgres {
		wantStore = "store=postgres database=postgres@127.0.0.1:" // pgtest's URL, no password in it anyway
	}
	if !strings.Contains(out, wantStore) || !strings.Contains(out, "sandbox_delay=300ms") {
		t.Fatalf("start-up log lacks %q or readable delays:\n%s", wantStore, out)
	}
	cl := newClient(t, c)
	ref, status := cl.startPayment("231770000010")
	if status != "PENDING" {
		t.Fatalf("execute status %s", status)
	}
	cl.waitStatus(ref, "COMPLETED")

	// A second merchant, made by another process on the same data dir.
	stdout, err := in.command(t, []string{"merchants", "create"}, "--name", "Second").Output()
	if err != nil {
		t.Fatalf("merchants create: %v", err)
	}
	var second credentials
	if err := json.Unmarshal(stdout, &second); err != nil || second.MerchantID == c.MerchantID || second.BaseURL != c.BaseURL || second.SupabaseAnonKey != c.SupabaseAnonKey {
		t.Fatalf("second merchant %s (%v)", stdout, err)
	}
	other := newClient(t, second)
	other.Call("GET", "/v1/status/collection/"+ref, nil, 404, nil)

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

	// A path ServeMux would redirect gets the API's JSON 404 instead.
	resp, err = http.Get(c.BaseURL + "/v1//status/source")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.TrimSpace(string(body)) != `{"detail":"Not Found"}` {
		t.Fatalf("GET /v1//status/source: %d %s, want the JSON 404", resp.StatusCode, body)
	}

	if code := p.Stop(); code != 0 {
		t.Fatalf("graceful stop exit code %d\n%s", code, p.Output())
	}
	if !strings.Contains(p.Output(), "stopped") {
		t.Fatalf("no clean stop logged:\n%s", p.Output())
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
	p.Kill()

	p2 := startServe(t, in)
	if p2.creds.ClientSecret != p.creds.ClientSecret || p2.creds.MerchantID != p.creds.MerchantID || p2.creds.SupabaseAnonKey != p.creds.SupabaseAnonKey {
		t.Fatalf("restart changed credentials: %+v vs %+v", p2.creds, p.creds)
	}
	if strings.Contains(p2.Output(), "curl") {
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
	cl2 := apiClient{t, servetest.NewAPI(t, p2.creds.BaseURL)}
	cl2.Token = cl1.Token
	cl2.waitStatus(ref, "PROCESSING")
	p1.Kill()
	cl2.waitStatus(ref, "COMPLETED")
}

func TestHelp(t *testing.T) {
	bin := servetest.Build(t)
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

// TestServeSIGHUPStopsGracefully: a closed terminal's SIGHUP stops the server
// as SIGTERM does (exit 0, "shutting down"), not abruptly.
func TestServeSIGHUPStopsGracefully(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	if code := s.StopWith(syscall.SIGHUP); code != 0 {
		t.Fatalf("exit %d after SIGHUP, want 0\n%s", code, s.Output())
	}
	if !strings.Contains(s.Output(), "shutting down") {
		t.Errorf("no graceful shutdown logged:\n%s", s.Output())
	}
}

// TestServeWarnsProxyWithoutPublicURL: requests through a reverse proxy while
// --public-url is unset are warned about, once.
func TestServeWarnsProxyWithoutPublicURL(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	for range 3 {
		getWithHeader(t, s.URL+"/healthz", "X-Forwarded-Proto", "https")
	}
	servetest.WaitFor(t, serveWait, func() error {
		if n := strings.Count(s.Output(), "--public-url is not set"); n != 1 {
			return fmt.Errorf("%d proxy warnings, want 1", n)
		}
		return nil
	})
}

// TestHostedPageUsesInstallationAnonKey: the hosted page's realtime settings
// carry the anon key of credentials.json, not one signed per answer.
func TestHostedPageUsesInstallationAnonKey(t *testing.T) {
	s := startServe(t, newInstallation(t, backends.SQLite))
	c := newClient(t, s.creds)
	var link struct {
		URL string `json:"url"`
	}
	c.Call("POST", "/v1/checkouts/create", map[string]any{"mode": "HOSTED", "source_kind": "INVOICE", "party_phone": "231770000010",
		"currency": "USD", "items": []map[string]any{{"name": "Rice", "currency": "USD", "amount": 12.5}}}, 200, &link)
	path := strings.TrimPrefix(link.URL, s.creds.BaseURL)
	var pay struct {
		Realtime struct {
			AnonKey string `json:"anon_key"`
		} `json:"realtime"`
	}
	servetest.NewAPI(t, s.creds.BaseURL).Call("POST", path+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231770000010"}, 200, &pay)
	if pay.Realtime.AnonKey != s.creds.SupabaseAnonKey {
		t.Fatalf("hosted page anon key %q, want credentials.json's %q", pay.Realtime.AnonKey, s.creds.SupabaseAnonKey)
	}
}

// TestServeMetricsAddr: with --metrics-addr, /metrics moves off the public
// listener onto its own.
func TestServeMetricsAddr(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Flags: []string{"--metrics-addr", "127.0.0.1:0"}})
	m := regexp.MustCompile(`msg="metrics serving" addr=(\S+)`).FindStringSubmatch(s.Output())
	if m == nil {
		t.Fatalf("the metrics address is not logged:\n%s", s.Output())
	}
	if resp, err := http.Get(s.URL + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	if text := metricsText(t, "http://"+m[1]); !strings.Contains(text, "dollr_build_info{") {
		t.Errorf("/metrics on --metrics-addr lacks dollr_build_info")
	}
}

// TestServeTrustedProxies: behind a trusted proxy the access log names the
// client from X-Forwarded-For; otherwise the header is ignored.
func TestServeTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--trusted-proxies", "127.0.0.0/8"}, `remote=203\.0\.113\.7( |$)`},
		{nil, `remote=127\.0\.0\.1:\d+( |$)`},
	} {
		s := servetest.Start(t, servetest.Options{Flags: c.flags})
		getWithHeader(t, s.URL+"/v1/status/collection/x", "X-Forwarded-For", "203.0.113.7")
		servetest.WaitFor(t, serveWait, func() error {
			for _, l := range strings.Split(s.Output(), "\n") {
				if strings.Contains(l, "path=/v1/status/collection/x") && regexp.MustCompile(c.want).MatchString(l) {
					return nil
				}
			}
			return fmt.Errorf("no access-log line with %q", c.want)
		})
	}
}

// TestServeJSONLogsOnly: with --log-format json every line the server writes
// is a JSON object (the welcome text is for people reading text logs).
func TestServeJSONLogsOnly(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Flags: []string{"--log-format", "json"}})
	if code := s.Stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(s.Output()), "\n")
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("not a JSON log line: %q", l)
		}
	}
	if len(lines) < 3 {
		t.Errorf("only %d lines logged", len(lines))
	}
}

// getWithHeader sends a GET carrying one extra header and returns the
// response with its body read.
func getWithHeader(t *testing.T, url, name, value string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(name, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
