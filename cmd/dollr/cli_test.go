package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/servetest"
	"github.com/dollr/dollr/sqlite"
)

// cliResult is one run of the dollr binary.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the dollr binary with args (DATABASE_URL cleared, then env
// added) and returns its exit code and output.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, servetest.Build(t), args...)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return cliResult{0, stdout.String(), stderr.String()}
	case errors.As(err, &ee):
		return cliResult{ee.ExitCode(), stdout.String(), stderr.String()}
	}
	t.Fatalf("dollr %s: %v", strings.Join(args, " "), err)
	return cliResult{}
}

// TestHelpStreams: --help of every command and subcommand goes to stdout with
// exit 0 (so `dollr serve --help | grep addr` works); a bad flag, a missing or
// unknown subcommand and `help bogus` go to stderr with exit 2, naming the
// word at fault.
func TestHelpStreams(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"help", "serve"}, {"help", "merchants"}, {"help", "merchants", "create"},
		{"serve", "--help"}, {"serve", "-h"}, {"pay", "--help"}, {"watch", "--help"}, {"bench", "--help"},
		{"migrate", "--help"}, {"merchants", "--help"}, {"merchants", "create", "--help"},
		{"slot", "--help"}, {"slot", "status", "--help"}, {"slot", "drop", "--help"},
	} {
		r := runCLI(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage") && !strings.Contains(r.stdout, "Commands:") || r.stderr != "" {
			t.Errorf("dollr %s: exit %d, want 0 with the usage on stdout only\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, nil, "serve", "--help"); !strings.Contains(r.stdout, "-addr") {
		t.Errorf("serve --help lacks --addr on stdout:\n%s", r.stdout)
	}

	for _, c := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"merchants", "create", "--nope"}, "-nope"},
		{[]string{"slot", "status", "--nope"}, "-nope"},
		{[]string{"watch", "--nope"}, "-nope"},
		{[]string{"help", "bogus"}, `unknown command "bogus"`},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"merchants", "list"}, `unknown subcommand "list"`},
		{[]string{"merchants"}, "subcommand is required"},
		{[]string{"slot", "vanish"}, `unknown subcommand "vanish"`},
		{[]string{"help", "slot", "vanish"}, `unknown subcommand "vanish"`},
	} {
		r := runCLI(t, nil, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "Usage") || r.stdout != "" {
			t.Errorf("dollr %s: exit %d, want 2 with %q and the usage on stderr only\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), r.code, c.want, r.stdout, r.stderr)
		}
	}
}

// TestHelpRedactsDatabaseURL: --help shows $DATABASE_URL as its default
// without the password.
func TestHelpRedactsDatabaseURL(t *testing.T) {
	for _, env := range []string{
		"DATABASE_URL=postgres://u:s3cretpw@db.example:5432/dollr?sslmode=disable",
		"DATABASE_URL=host=db.example user=u password=s3cretpw dbname=dollr",
	} {
		for _, args := range [][]string{{"serve", "--help"}, {"migrate", "--help"}, {"slot", "status", "--help"}, {"merchants", "create", "--help"}} {
			r := runCLI(t, []string{env}, args...)
			if r.code != 0 || strings.Contains(r.stdout+r.stderr, "s3cretpw") || !strings.Contains(r.stdout, "xxxxx") {
				t.Errorf("%s dollr %s: exit %d; the password must be shown as xxxxx\n%s%s", env, strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
		}
	}
}

// TestServeEnvironment: DOLLR_PUBLIC_URL, DOLLR_LOG_FORMAT and DOLLR_LOG_LEVEL
// feed their flags (a bad value from the environment is refused by name).
func TestServeEnvironment(t *testing.T) {
	for env, flag := range map[string]string{
		"DOLLR_PUBLIC_URL=ftp://pay.example.com": "--public-url",
		"DOLLR_LOG_FORMAT=xml":                   "--log-format",
		"DOLLR_LOG_LEVEL=loud":                   "--log-level",
	} {
		r := runCLI(t, []string{env}, "serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--addr", "127.0.0.1:0")
		if r.code != 2 || !strings.Contains(r.stderr, flag) {
			t.Errorf("%s: exit %d, want 2 naming %s\n%s%s", env, r.code, flag, r.stdout, r.stderr)
		}
	}
}

// TestNATSPasswordNeverShown: neither --help nor a failed connection shows
// the password in $DOLLR_NATS_URL.
func TestNATSPasswordNeverShown(t *testing.T) {
	env := []string{"DOLLR_NATS_URL=nats://u:s3cretpw@127.0.0.1:1"}
	r := runCLI(t, env, "serve", "--help")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, "s3cretpw") || !strings.Contains(r.stdout, "nats://u:xxxxx@127.0.0.1:1") {
		t.Errorf("serve --help: exit %d; the NATS password must be shown as xxxxx\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Port 1 refuses the connection: serve fails, naming the URL without the password.
	r = runCLI(t, env, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0")
	if r.code != 1 || strings.Contains(r.stdout+r.stderr, "s3cretpw") || !strings.Contains(r.stdout+r.stderr, "u:xxxxx@127.0.0.1:1") {
		t.Errorf("serve with an unreachable NATS: exit %d, want 1 naming the URL without its password\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestRedactDatabaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"postgres://u:pw@host/db":     "postgres://u:xxxxx@host/db",
		"postgresql://u@host:5432/db": "postgresql://u@host:5432/db",
		"postgres://u:pw@host/db?password=pw2&x=1":     "postgres://u:xxxxx@host/db?password=xxxxx&x=1",
		"postgres://u:p%zzw@host/db":                   "postgres://u:xxxxx@host/db", // url.Parse refuses it
		"host=h user=u password=pw dbname=d":           "host=h user=u password=xxxxx dbname=d",
		"host=h password='p w\\'x' dbname=d":           "host=h password=xxxxx dbname=d",
		"host=/var/run/postgresql dbname=d":            "host=/var/run/postgresql dbname=d",
		"postgres:///db?host=/var/run/postgresql":      "postgres:///db?host=/var/run/postgresql",
		"postgres://u:pw@h1:5432,h2:5433/db?sslmode=x": "postgres://u:xxxxx@h1:5432,h2:5433/db?sslmode=x",
	} {
		if got := redactDatabaseURL(in); got != want {
			t.Errorf("redactDatabaseURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStoreDescribe(t *testing.T) {
	dir := t.TempDir()
	if kind, where := (storeConfig{DataDir: dir}).describe(); kind != "sqlite" || where != filepath.Join(dir, sqliteFile) {
		t.Errorf("sqlite: %s %s", kind, where)
	}
	for url, want := range map[string]string{
		"postgres://dollr:s3cret@db.example:5433/pay":     "dollr@db.example:5433/pay",
		"host=db.example user=u password=s3cret dbname=d": "u@db.example:5432/d",
	} {
		kind, where := (storeConfig{DataDir: dir, DatabaseURL: url}).describe()
		if kind != "postgres" || where != want {
			t.Errorf("describe(%q) = %s %s, want postgres %s", url, kind, where, want)
		}
	}
}

// TestServeValidatesFlagsFirst: a bad flag value is refused, naming the
// flag, with exit 2 and before the data directory is created or anything
// is written.
func TestServeValidatesFlagsFirst(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--pprof-addr", "0.0.0.0:6060"}, "--pprof-addr"},
		{[]string{"--session-ttl", "0"}, "--session-ttl"},
		{[]string{"--session-ttl", "-1s"}, "--session-ttl"},
		{[]string{"--access-token-ttl", "0"}, "--access-token-ttl"},
		{[]string{"--access-token-ttl", "30s"}, "--access-token-ttl"},
		{[]string{"--access-token-ttl", "100000h"}, "--access-token-ttl"},
		{[]string{"--realtime-key-ttl", "25h"}, "--realtime-key-ttl"},
		{[]string{"--session-ttl", "8760h"}, "--session-ttl"},
		{[]string{"--realtime-key-ttl", "-1s"}, "--realtime-key-ttl"},
		{[]string{"--sandbox-delay", "-5s"}, "--sandbox-delay"},
		{[]string{"--sandbox-long-delay", "-1m"}, "--sandbox-long-delay"},
		{[]string{"--join-error-delay", "-1s"}, "--join-error-delay"},
		{[]string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout"},
		{[]string{"--realtime-max-connections", "-1"}, "--realtime-max-connections"},
		{[]string{"--request-timeout", "0"}, "--request-timeout"},
		{[]string{"--metrics-addr", "nonsense"}, "--metrics-addr"},
		{[]string{"--trusted-proxies", "proxy.internal"}, "--trusted-proxies"},
		{[]string{"--public-url", "pay.example.com"}, "--public-url"},
		{[]string{"--public-url", "https://pay.example.com/shop"}, "--public-url"},
		{[]string{"--public-url", "https://u:pw@pay.example.com"}, "--public-url"},
		{[]string{"--public-url", "https://pay.example.com/?a=1"}, "--public-url"},
		{[]string{"--addr", "nonsense"}, "--addr"},
		{[]string{"--log-format", "xml"}, "--log-format"},
	} {
		dataDir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, nil, append([]string{"serve", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, c.flags...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("serve %s: exit %d, want 2 naming %s\nstdout:\n%s\nstderr:\n%s", strings.Join(c.flags, " "), r.code, c.want, r.stdout, r.stderr)
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve %s: the data directory was created before the flags were checked (%v)", strings.Join(c.flags, " "), err)
		}
	}
}

func TestServeConfigValidate(t *testing.T) {
	ok := serveConfig{DataDir: "d", Addr: "127.0.0.1:0", SessionTTL: time.Minute, AccessTokenTTL: time.Hour, RealtimeKeyTTL: time.Minute, RequestTimeout: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	zero := ok // 0 delays mean "at once"
	zero.SandboxDelay, zero.SandboxLongDelay, zero.JoinErrorDelay, zero.ShutdownTimeout = 0, 0, 0, 0
	zero.PprofAddr, zero.PublicURL = "localhost:0", "https://pay.example.com"
	if err := zero.validate(); err != nil {
		t.Fatalf("zero delays refused: %v", err)
	}
	bad := ok
	bad.RealtimeKeyTTL = 500 * time.Millisecond
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "--realtime-key-ttl") {
		t.Fatalf("realtime key TTL under a second: %v", err)
	}
}

// TestMerchantsCreateNeedsStore: merchants create on a data directory
// without a store is refused, and creates nothing.
func TestMerchantsCreateNeedsStore(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	typo := filepath.Join(t.TempDir(), "typo")
	if code := run(t.Context(), []string{"merchants", "create", "--name", "X", "--data-dir", typo}, io.Discard); code == 0 {
		t.Fatal("merchants create on a missing data directory exited 0")
	}
	if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("merchants create made the data directory: %v", err)
	}
	empty := t.TempDir() // exists, but holds no store
	if code := run(t.Context(), []string{"merchants", "create", "--name", "X", "--data-dir", empty}, io.Discard); code == 0 {
		t.Fatal("merchants create on a data directory without a store exited 0")
	}
	if _, err := os.Stat(filepath.Join(empty, sqliteFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("merchants create made a store: %v", err)
	}

	// With the store there (as the first `dollr serve` leaves it), it works.
	db, err := sqlite.Open(t.Context(), filepath.Join(empty, sqliteFile))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code := run(t.Context(), []string{"merchants", "create", "--name", "X", "--data-dir", empty}, io.Discard); code != 0 {
		t.Fatalf("merchants create on an existing store exited %d", code)
	}
}

// TestEnsureCredentialsStale: credentials.json whose client the store does
// not know (another store in the same data directory) is replaced by a new
// sandbox merchant, with a warning, and the old file is kept aside; a
// matching file is kept.
func TestEnsureCredentialsStale(t *testing.T) {
	ctx := t.Context()
	dataDir := t.TempDir()
	open := func(name string) dollr.Store {
		db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const url = "http://127.0.0.1:1"

	first := open("first.db")
	c1, created, err := ensureCredentials(ctx, first, dataDir, url, "anon", log)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	if again, created, err := ensureCredentials(ctx, first, dataDir, url, "anon", log); err != nil || created || again != c1 {
		t.Fatalf("restart on the same store: %+v created %v, %v; want the same credentials", again, created, err)
	}
	if logs.Len() != 0 {
		t.Fatalf("a matching file logged:\n%s", logs.String())
	}

	// The same data directory over a store that never saw c1's client.
	second := open("second.db")
	c2, created, err := ensureCredentials(ctx, second, dataDir, url, "anon", log)
	if err != nil || !created || c2.ClientID == c1.ClientID {
		t.Fatalf("stale file: %+v created %v, %v; want a new merchant", c2, created, err)
	}
	if m, err := second.MerchantByClientID(ctx, c2.ClientID); err != nil || m.ID != c2.MerchantID || !m.SecretMatches(c2.ClientSecret) {
		t.Fatalf("new credentials not in the store: %+v, %v", m, err)
	}
	if onDisk, err := readCredentials(dataDir); err != nil || onDisk != c2 {
		t.Fatalf("credentials.json = %+v, %v; want the new merchant's", onDisk, err)
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, credentialsFile+".stale")); err != nil || !strings.Contains(string(b), c1.ClientID) {
		t.Fatalf("old file not kept as credentials.json.stale: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "does not belong to this store") || !strings.Contains(out, c1.ClientID) || !strings.Contains(out, "wrote new credentials") {
		t.Fatalf("no clear warning logged:\n%s", out)
	}
	if strings.Contains(out, c1.ClientSecret) || strings.Contains(out, c2.ClientSecret) {
		t.Fatalf("a client secret was logged:\n%s", out)
	}

	// A file whose secret does not match the store's is stale too.
	c2.ClientSecret = "dollr_cs_wrong"
	if err := writeCredentials(dataDir, c2); err != nil {
		t.Fatal(err)
	}
	if c3, created, err := ensureCredentials(ctx, second, dataDir, url, "anon", log); err != nil || !created || c3.ClientID == c2.ClientID {
		t.Fatalf("wrong secret: %+v created %v, %v; want a new merchant", c3, created, err)
	}
	// Moving aside again never overwrites the first stale file: c1's secret
	// exists nowhere else.
	if b, err := os.ReadFile(filepath.Join(dataDir, credentialsFile+".stale")); err != nil || !strings.Contains(string(b), c1.ClientID) {
		t.Fatalf("the first stale file was overwritten: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, credentialsFile+".stale.2")); err != nil || !strings.Contains(string(b), c2.ClientID) {
		t.Fatalf("the second stale file is not credentials.json.stale.2: %v", err)
	}
}

// TestPayValidatesLocally: bad --method, --source-kind or --card values are
// refused before any request reaches the server.
func TestPayValidatesLocally(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, `{"detail":"not in this test"}`, http.StatusTeapot)
	}))
	defer srv.Close()
	creds := writeTestCredentials(t, srv.URL)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--method", "BOGUS"}, "--method"},
		{[]string{"--source-kind", "RECEIPT"}, "--source-kind"},
		{[]string{"--card", "visa"}, "--card"},
		{[]string{"--card", "pm_card_visa", "--method", "MTN_MOMO_LBR"}, "--method"},
	} {
		r := runCLI(t, nil, append([]string{"pay", "--credentials", creds}, c.flags...)...)
		if r.code != exitError || !strings.Contains(r.stderr, c.want) {
			t.Errorf("pay %s: exit %d, want 2 naming %s\nstdout:\n%s\nstderr:\n%s", strings.Join(c.flags, " "), r.code, c.want, r.stdout, r.stderr)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}

// TestWatchUnreachable: with nothing listening at base_url, watch says so on
// the first failure, once for the whole outage, and the timeout error names
// the refused connection.
func TestWatchUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	creds := writeTestCredentials(t, url)
	ref := "00000000-0000-4000-8000-000000000000"

	r := runCLI(t, nil, "watch", ref, "--credentials", creds, "--timeout", "3s", "--max-poll-interval", "100ms")
	if r.code != exitError || !strings.Contains(r.stderr, "timed out after 3s") {
		t.Fatalf("exit %d, want 2 after the timeout\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var retryLines, errorLines int
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		switch {
		case strings.HasPrefix(l, "error: "):
			errorLines++
			if !strings.Contains(l, "connection refused") {
				t.Errorf("the final error does not name the last failure: %s", l)
			}
		case strings.Contains(l, "Status API call failed") && strings.Contains(l, "connection refused"):
			retryLines++
		}
	}
	if retryLines != 1 || errorLines != 1 {
		t.Fatalf("want one line for the outage and one final error, got %d and %d:\n%s", retryLines, errorLines, r.stderr)
	}

	// The same as JSON lines: one retry event, then the error.
	r = runCLI(t, nil, "watch", ref, "--credentials", creds, "--timeout", "1s", "--max-poll-interval", "100ms", "--json")
	events := sdkJSONLines(t, r.stdout)
	var retries int
	for _, e := range events {
		if e["event"] == "retry" {
			retries++
		}
	}
	last := events[len(events)-1]
	if r.code != exitError || retries != 1 || last["event"] != "error" || !strings.Contains(last["error"].(string), "connection refused") {
		t.Fatalf("exit %d, %d retry events\n%s", r.code, retries, r.stdout)
	}
}

func TestWatchCommand(t *testing.T) {
	if got := watchCommand("r", 7, dollr.SourceInvoice); got != "dollr watch r --session-id 7" {
		t.Errorf("INVOICE: %s", got)
	}
	if got := watchCommand("r", 7, dollr.SourceOrder); got != "dollr watch r --session-id 7 --source-type ORDER" {
		t.Errorf("ORDER: %s", got)
	}
}

// writeTestCredentials writes a credentials.json for a server at url.
func writeTestCredentials(t *testing.T, url string) string {
	t.Helper()
	b, err := json.Marshal(credentials{MerchantID: 1, ClientID: "dollr_ci_test", ClientSecret: "dollr_cs_test", BaseURL: url, SupabaseURL: url, SupabaseAnonKey: "a.b.c"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "credentials.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVersion: dollr version names the build, and a server exports it.
func TestVersion(t *testing.T) {
	r := runCLI(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "dollr ") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("dollr version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s := servetest.Start(t, servetest.Options{})
	if m := metricsText(t, s.URL); !strings.Contains(m, "dollr_build_info{") {
		t.Errorf("/metrics lacks dollr_build_info")
	}
}

// TestServeSaysDatabaseURLCameFromEnvironment: a DATABASE_URL inherited from
// the environment is named as such in the log, since it may be another
// program's.
func TestServeSaysDatabaseURLCameFromEnvironment(t *testing.T) {
	r := runCLI(t, []string{"DATABASE_URL=postgres://u@127.0.0.1:1/elsewhere"}, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--database-wait", "0")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, `from="the DATABASE_URL environment variable"`) {
		t.Fatalf("exit %d, want 1 with the store's origin logged\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--database-wait", "0", "--database-url", "postgres://u@127.0.0.1:1/elsewhere")
	if r.code != 1 || strings.Contains(r.stdout+r.stderr, "environment variable") {
		t.Fatalf("with the flag: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
