package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/checkout"
	"github.com/dollr/dollr/internal/fdlimit"
	"github.com/dollr/dollr/internal/httplog"
	"github.com/dollr/dollr/nats"
	"github.com/dollr/dollr/realtime"
	"github.com/dollr/dollr/sandbox"
	"github.com/dollr/dollr/token"
)

func init() {
	register("serve", command{
		Summary: "run the API, the realtime server and the sandbox payment network",
		Run:     runServe,
	})
}

// serveConfig is everything `dollr serve` is configured with.
type serveConfig struct {
	DataDir          string
	DatabaseURL      string
	DatabaseWait     time.Duration
	DatabaseFromEnv  bool // DatabaseURL came from $DATABASE_URL, not the flag
	Addr             string
	PublicURL        string
	SandboxDelay     time.Duration
	SandboxLongDelay time.Duration
	SessionTTL       time.Duration
	AccessTokenTTL   time.Duration
	RealtimeKeyTTL   time.Duration
	JoinErrorDelay   time.Duration
	MaxSockets       int
	RequestTimeout   time.Duration
	ShutdownTimeout  time.Duration
	LogFormat        string
	LogLevel         string
	PprofAddr        string
	MetricsAddr      string
	TrustedProxies   string
	NATSURL          string
	// API rate limits (api.Config): requests a second and burst, per
	// merchant and per client address; a rate of 0 means no limit.
	APIRateLimit        float64
	APIRateBurst        int
	APIAddressRateLimit float64
	APIAddressRateBurst int
}

func runServe(ctx context.Context, args []string) int {
	fs := newFlagSet("serve", "dollr serve [flags]", `
Serves the Dollr Open API (/v1/...), the Supabase-compatible realtime server
(/realtime/v1/websocket), /healthz and /metrics, and runs the sandbox payment
network (docs/sandbox.md). On first start with an empty data directory it
creates a sandbox merchant and writes <data-dir>/credentials.json (0600); a
restart reuses it, updating only its URLs. SIGINT, SIGTERM and SIGHUP shut
down gracefully.`)
	var c serveConfig
	fs.StringVar(&c.DataDir, "data-dir", envOr("DOLLR_DATA_DIR", "./dollr-data"), "data directory: SQLite database and credentials.json (env DOLLR_DATA_DIR)")
	databaseURL := databaseURLFlag(fs, databaseURLUsage)
	fs.StringVar(&c.Addr, "addr", envOr("DOLLR_ADDR", "127.0.0.1:8080"), "listen address; port 0 picks a free port (env DOLLR_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", os.Getenv("DOLLR_PUBLIC_URL"), "public origin clients use, e.g. https://pay.example.com; set it behind a reverse proxy (env DOLLR_PUBLIC_URL; default http://<actual listen address>)")
	fs.DurationVar(&c.SandboxDelay, "sandbox-delay", sandbox.DefaultDelay, "sandbox: time from execute to a normal payment's final status")
	fs.DurationVar(&c.SandboxLongDelay, "sandbox-long-delay", sandbox.DefaultLongDelay, "sandbox: slow approval (phone ending 02), never-approved timeout (04) and 3-D Secure timeout")
	fs.DurationVar(&c.SessionTTL, "session-ttl", api.DefaultSessionTTL, "checkout session lifetime")
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", api.DefaultAccessTokenTTL, "merchant bearer token lifetime (reported in minutes)")
	fs.DurationVar(&c.RealtimeKeyTTL, "realtime-key-ttl", api.DefaultRealtimeKeyTTL, "realtime key lifetime (reported in seconds)")
	fs.DurationVar(&c.JoinErrorDelay, "join-error-delay", 5*time.Second, "realtime: delay before a refused channel join is answered (slows clients that retry forever)")
	fs.IntVar(&c.MaxSockets, "realtime-max-connections", 0, "realtime: most open sockets; past it upgrades get 429 \"Too many connected users\" (0: the open-files limit less a tenth, at least 256, kept for the API and the database)")
	fs.DurationVar(&c.DatabaseWait, "database-wait", 30*time.Second, "PostgreSQL: how long to keep trying at start while the database cannot be reached (0: fail at once)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", api.DefaultRequestTimeout, "API: the longest one request may take (a hung database); past it the answer is 503 with Retry-After")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown waits for requests to finish")
	fs.StringVar(&c.LogFormat, "log-format", envOr("DOLLR_LOG_FORMAT", "text"), "log format: text or json (env DOLLR_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("DOLLR_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env DOLLR_LOG_LEVEL)")
	fs.StringVar(&c.NATSURL, "nats-url", os.Getenv("DOLLR_NATS_URL"), "NATS JetStream URL, e.g. nats://127.0.0.1:4222: every server on the database delivers live realtime events (env DOLLR_NATS_URL; docs/nats.md)")
	fs.Lookup("nats-url").DefValue = nats.RedactURL(os.Getenv("DOLLR_NATS_URL"))
	apiRate, apiRateErr := envFloat("DOLLR_API_RATE_LIMIT")
	fs.Float64Var(&c.APIRateLimit, "api-rate-limit", apiRate, "API: requests a second each merchant may make, counted once its bearer token verifies; past the burst a request gets 429 {\"detail\":\"Too Many Requests\"} with Retry-After (whole seconds until it may retry). 0 means no limit: the default, since dollr bench drives one merchant at thousands a second (env DOLLR_API_RATE_LIMIT)")
	fs.IntVar(&c.APIRateBurst, "api-rate-burst", 0, "API: requests a merchant may make at once before --api-rate-limit holds it back (0: twice the rate, at least 1)")
	addressRate, addressRateErr := envFloat("DOLLR_API_ADDRESS_RATE_LIMIT")
	fs.Float64Var(&c.APIAddressRateLimit, "api-address-rate-limit", addressRate, "API: requests a second from one client address (an IPv6 client: its /64; with --trusted-proxies, the client X-Forwarded-For names), on every API route but /healthz and before authentication; past the burst, 429 with Retry-After. 0 means no limit, the default (env DOLLR_API_ADDRESS_RATE_LIMIT)")
	fs.IntVar(&c.APIAddressRateBurst, "api-address-rate-burst", 0, "API: requests one client address may make at once before --api-address-rate-limit holds it back (0: twice the rate, at least 1)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", os.Getenv("DOLLR_TRUSTED_PROXIES"), "reverse proxies whose X-Forwarded-For names the client in the logs, as addresses or CIDRs, e.g. 127.0.0.1,10.0.0.0/8 (env DOLLR_TRUSTED_PROXIES; default none)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", os.Getenv("DOLLR_METRICS_ADDR"), "serve /metrics on this address only, e.g. 127.0.0.1:9090, instead of beside the API (env DOLLR_METRICS_ADDR)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (off by default)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	c.DatabaseURL = *databaseURL
	// An unprefixed DATABASE_URL may belong to another program in the same
	// environment: say where the store came from.
	c.DatabaseFromEnv = c.DatabaseURL != "" && !flagGiven(fs, "database-url")
	// Every flag is checked before anything is opened, listened on or written.
	logger, err := newLogger(c.LogFormat, c.LogLevel)
	// A rate in the environment that is not a number is an error, unless
	// the flag given overrides it.
	for _, e := range []struct {
		flag string
		err  error
	}{{"api-rate-limit", apiRateErr}, {"api-address-rate-limit", addressRateErr}} {
		if err == nil && e.err != nil && !flagGiven(fs, e.flag) {
			err = fmt.Errorf("--%s: %w", e.flag, e.err)
		}
	}
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr serve: %v\n", err)
		return 2
	}
	if err := serve(ctx, c, logger); err != nil {
		logger.Error("dollr serve failed", "err", err)
		return 1
	}
	return 0
}

// validate checks the flags that newLogger does not, naming the flag at fault.
func (c *serveConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q: %w", c.Addr, err)
	}
	if c.PublicURL != "" {
		// An origin only: the hosted page's links are absolute paths, and
		// the URL is printed and written to credentials.json.
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return fmt.Errorf("--public-url %q: want an http or https origin, such as https://pay.example.com", c.PublicURL)
		}
	}
	const notNegative = "must not be negative (0 means at once)"
	for _, d := range []struct {
		flag     string
		v, least time.Duration
		rule     string
	}{
		{"--session-ttl", c.SessionTTL, 1, "must be positive"},
		{"--access-token-ttl", c.AccessTokenTTL, time.Minute, "must be at least 1m (expires_in is reported in whole minutes)"},
		{"--realtime-key-ttl", c.RealtimeKeyTTL, time.Second, "must be at least 1s (expires_in is reported in whole seconds)"},
		{"--sandbox-delay", c.SandboxDelay, 0, notNegative},
		{"--sandbox-long-delay", c.SandboxLongDelay, 0, notNegative},
		{"--join-error-delay", c.JoinErrorDelay, 0, notNegative},
		{"--shutdown-timeout", c.ShutdownTimeout, 0, notNegative},
		{"--database-wait", c.DatabaseWait, 0, notNegative},
		{"--request-timeout", c.RequestTimeout, time.Second, "must be at least 1s"},
	} {
		if d.v < d.least {
			return fmt.Errorf("%s %s: %s", d.flag, d.v, d.rule)
		}
	}
	// Credentials that outlive these would outlive any reason to keep them:
	// a leaked bearer token or realtime key stays useful until it expires.
	for _, d := range []struct {
		flag    string
		v, most time.Duration
	}{
		{"--access-token-ttl", c.AccessTokenTTL, 24 * time.Hour},
		{"--realtime-key-ttl", c.RealtimeKeyTTL, 24 * time.Hour},
		{"--session-ttl", c.SessionTTL, 7 * 24 * time.Hour},
	} {
		if d.v > d.most {
			return fmt.Errorf("%s %s: must be at most %s", d.flag, d.v, d.most)
		}
	}
	if _, err := httplog.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: %w", c.MetricsAddr, err)
		}
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--api-rate-limit", c.APIRateLimit}, {"--api-address-rate-limit", c.APIAddressRateLimit}} {
		if !(r.v >= 0) || math.IsInf(r.v, 0) { // !(v >= 0): NaN too
			return fmt.Errorf("%s %v: must be a number of requests a second, not negative (0 means no limit)", r.flag, r.v)
		}
	}
	for _, b := range []struct {
		flag string
		v    int
	}{{"--api-rate-burst", c.APIRateBurst}, {"--api-address-rate-burst", c.APIAddressRateBurst}} {
		if b.v < 0 {
			return fmt.Errorf("%s %d: must not be negative (0 means twice the rate, at least 1)", b.flag, b.v)
		}
	}
	if c.MaxSockets < 0 {
		return fmt.Errorf("--realtime-max-connections %d: must not be negative (0 means from the open-files limit)", c.MaxSockets)
	}
	if c.PprofAddr != "" {
		if err := checkPprofAddr(c.PprofAddr); err != nil {
			return err
		}
	}
	return nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func serve(ctx context.Context, c serveConfig, log *slog.Logger) error {
	// Listen first: an address in use fails before the store is opened or
	// created and before credentials.json is written.
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	var pprofLn net.Listener
	if c.PprofAddr != "" {
		if pprofLn, err = listenPprof(c.PprofAddr); err != nil {
			return err
		}
		defer pprofLn.Close()
	}
	var metricsLn net.Listener
	if c.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", c.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metricsLn.Close()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	sc := storeConfig{DataDir: c.DataDir, DatabaseURL: c.DatabaseURL, Wait: c.DatabaseWait, Metrics: reg}
	storeKind, storeWhere := sc.describe()
	if c.DatabaseFromEnv {
		log.Info("opening store", "store", storeKind, "database", storeWhere, "from", "the DATABASE_URL environment variable")
	} else {
		log.Info("opening store", "store", storeKind, "database", storeWhere)
	}
	store, err := openStore(ctx, sc, log.With("component", "store"))
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	tokens, err := token.Load(ctx, store)
	if err != nil {
		return err
	}
	anon, err := anonKey(ctx, store, tokens)
	if err != nil {
		return err
	}

	addr := ln.Addr().String()
	baseURL := strings.TrimRight(c.PublicURL, "/")
	if baseURL == "" {
		baseURL = "http://" + addr
	}
	creds, created, err := ensureCredentials(ctx, store, c.DataDir, baseURL, anon, log)
	if err != nil {
		return err
	}

	network := &sandbox.Network{Delay: c.SandboxDelay, LongDelay: c.SandboxLongDelay}
	apiHandler, err := api.New(api.Config{
		Store: store, Tokens: tokens, Sandbox: network,
		SessionTTL: c.SessionTTL, AccessTokenTTL: c.AccessTokenTTL, RealtimeKeyTTL: c.RealtimeKeyTTL,
		BaseURL: baseURL, Logger: log, Metrics: reg, RequestTimeout: c.RequestTimeout,
		MerchantRateLimit: c.APIRateLimit, MerchantRateBurst: c.APIRateBurst,
		AddressRateLimit: c.APIAddressRateLimit, AddressRateBurst: c.APIAddressRateBurst,
	})
	if err != nil {
		return err
	}
	hosted, err := checkout.New(checkout.Config{
		Store: store, Tokens: tokens, Collector: apiHandler, Sandbox: true, AnonKey: anon,
		BaseURL: baseURL, Logger: log.With("component", "checkout"),
		SessionTTL: c.SessionTTL, RealtimeKeyTTL: c.RealtimeKeyTTL,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", apiHandler)
	mux.Handle(checkout.Prefix+"/", hosted)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if metricsLn == nil {
		mux.Handle("GET /metrics", metrics)
	}

	// Background work stops with runCtx, after the HTTP server has drained.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	var wg sync.WaitGroup
	runner := &sandbox.Runner{Store: store, Logger: log, Registerer: reg}
	wg.Go(func() {
		if err := runner.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("sandbox runner stopped", "err", err)
		}
	})
	if pprofLn != nil {
		servePprofOn(runCtx, pprofLn, log)
	}
	if metricsLn != nil {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metrics)
		serveAside(runCtx, metricsLn, mm, "metrics", log)
	}
	var bus *nats.Bus
	if c.NATSURL != "" {
		if bus, err = connectBus(ctx, store, c.NATSURL, log, reg); err != nil {
			stopRun()
			wg.Wait()
			return err
		}
		// Deferred after the store's Close, so it runs before it; every path
		// out of here has stopped the feeds (wg.Wait) by then.
		defer bus.Close()
	}
	closeRealtime, err := mountRealtime(runCtx, &wg, mux, store, bus, tokens, c, log, reg)
	if err != nil {
		stopRun()
		wg.Wait()
		return err
	}

	var handler http.Handler = api.CanonicalPaths(mux)          // the JSON 404, not ServeMux's redirect, for // and dot segments
	trusted, _ := httplog.ParseTrustedProxies(c.TrustedProxies) // checked by validate
	// Outside every handler, so that the logs and the API's per-address
	// rate limit see the client, not the proxy.
	handler = trusted.RealRemote(handler)
	if c.PublicURL == "" {
		handler = warnProxyWithoutPublicURL(handler, baseURL, log)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// addr must stay the first attribute: tests read it off this line.
	// Durations are strings so that JSON logs show 3s, not 3000000000.
	log.Info("dollr serving", "addr", addr, "base_url", baseURL, "store", storeKind, "database", storeWhere,
		"credentials", credentialsPath(c.DataDir), "merchant_id", creds.MerchantID,
		"sandbox_delay", c.SandboxDelay.String(), "sandbox_long_delay", c.SandboxLongDelay.String(),
		"version", readBuildInfo().String())
	if c.LogFormat == "text" {
		// Plain lines for a person; with JSON logs they would break a
		// log pipeline, and the serving line above carries the same facts.
		printWelcome(c.DataDir, creds, created)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	// Stop accepting and drain HTTP requests while realtime sockets are told
	// to go away (Shutdown does not track upgraded connections); then the
	// runner and the change feed stop, and the store closes last.
	var stopping sync.WaitGroup
	stopping.Go(func() {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("graceful shutdown incomplete", "err", err)
		}
	})
	if err := closeRealtime(shutdownCtx); err != nil {
		log.Warn("realtime sockets closed forcibly", "err", err)
	}
	stopping.Wait()
	stopRun()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// ensureCredentials returns the data directory's credentials, creating the
// sandbox merchant and the file on first start. On later starts it keeps the
// file and only updates URLs and the anon key when they changed. A file whose
// client the store does not know (the store was deleted or replaced, or the
// data directory was last used with another --database-url) would only earn
// 401s: it is moved aside to credentials.json.stale (.stale.2, ... if that
// exists: the secret is nowhere else, so no old file is overwritten), with a warning, and a
// new sandbox merchant is created and written in its place. created reports
// that a new merchant was made.
func ensureCredentials(ctx context.Context, store dollr.Store, dataDir, baseURL, anon string, log *slog.Logger) (c credentials, created bool, err error) {
	c, err = readCredentials(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return newSandboxMerchant(ctx, store, dataDir, baseURL, anon)
	case err != nil:
		return c, false, err
	}
	m, err := store.MerchantByClientID(ctx, c.ClientID)
	stale := ""
	switch {
	case dollr.IsNotFound(err):
		stale = "the store has no merchant with its client_id " + c.ClientID
	case err != nil:
		return c, false, fmt.Errorf("checking %s against the store: %w", credentialsFile, err)
	case !m.SecretMatches(c.ClientSecret):
		stale = "its client_secret does not match the store's for client_id " + c.ClientID
	}
	if stale != "" {
		path, old := credentialsPath(dataDir), staleName(credentialsPath(dataDir))
		log.Warn("credentials.json does not belong to this store: creating a new sandbox merchant and rewriting the file",
			"reason", stale, "credentials", path, "old_merchant_id", c.MerchantID, "old_file_kept_as", old,
			"likely_cause", "the store was deleted or replaced, or this --data-dir was last used with another store (--database-url)")
		if err := os.Rename(path, old); err != nil {
			return c, false, err
		}
		c, created, err = newSandboxMerchant(ctx, store, dataDir, baseURL, anon)
		if err == nil {
			log.Warn("wrote new credentials; clients holding the old ones get 401 until they read the file again",
				"credentials", path, "merchant_id", c.MerchantID, "client_id", c.ClientID)
		}
		return c, created, err
	}
	if c.MerchantID != m.ID || c.BaseURL != baseURL || c.SupabaseURL != baseURL || c.SupabaseAnonKey != anon {
		c.MerchantID, c.BaseURL, c.SupabaseURL, c.SupabaseAnonKey = m.ID, baseURL, baseURL, anon
		if err := writeCredentials(dataDir, c); err != nil {
			return c, false, err
		}
	}
	return c, false, nil
}

// newSandboxMerchant creates the sandbox merchant and writes credentials.json.
func newSandboxMerchant(ctx context.Context, store dollr.Store, dataDir, baseURL, anon string) (credentials, bool, error) {
	c, err := createMerchant(ctx, store, "Sandbox merchant", baseURL, anon)
	if err != nil {
		return c, false, err
	}
	return c, true, writeCredentials(dataDir, c)
}

// credentialsPath is the absolute path of the data directory's credentials.json.
func credentialsPath(dataDir string) string {
	path := filepath.Join(dataDir, credentialsFile)
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// printWelcome tells the user where the credentials are. The client secret
// stays in the file (0600): stdout often ends up in journald or container
// logs. The first-call hint sends the file itself as the token request's
// body, which the API reads client_id and client_secret from.
func printWelcome(dataDir string, c credentials, created bool) {
	path := credentialsPath(dataDir)
	fmt.Printf("dollr: serving %s (sandbox)\n", c.BaseURL)
	fmt.Printf("dollr: credentials of merchant %d (client_id %s) in %s\n", c.MerchantID, c.ClientID, path)
	if created {
		fmt.Printf("dollr: first call, get a bearer token:\n  curl -s -X POST %s/v1/jwt/client/obtain/token -H 'Content-Type: application/json' -d @%s\n",
			c.BaseURL, shellQuote(path))
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@,=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// mountRealtime serves the realtime server at /realtime/v1/websocket (and the
// real server's /socket/websocket) and feeds it the store's change feed from
// the current head, or with a bus, the bus's batches (while the store's feed
// is published to the bus). It returns the function that closes realtime sockets.
func mountRealtime(ctx context.Context, wg *sync.WaitGroup, mux *http.ServeMux, store dollr.Store, bus *nats.Bus, tokens *token.Tokens, c serveConfig, log *slog.Logger, reg prometheus.Registerer) (func(context.Context) error, error) {
	joinDelay := c.JoinErrorDelay
	if joinDelay == 0 {
		joinDelay = -1 // the realtime server reads 0 as its 5s default
	}
	maxSockets := c.MaxSockets
	if maxSockets == 0 {
		maxSockets = socketsWithin(fdlimit.Open())
	}
	if maxSockets > 0 {
		log.Info("realtime: sockets bounded", "max_connections", maxSockets)
	}
	rt := realtime.New(realtime.Config{
		Secret:         tokens.RealtimeSecret(),
		Tables:         []realtime.Table{publicStatusTable},
		Policy:         realtime.PolicyFunc(rowPolicy),
		Snapshot:       statusSnapshotter{store: store},
		JoinErrorDelay: joinDelay,
		MaxConnections: maxSockets,
		Registerer:     reg,
		Logger:         log.With("component", "realtime"),
	})
	// Start from the head before serving: every change committed after a
	// client can subscribe is published (the snapshot covers what came before).
	head, err := store.Head(ctx)
	if err != nil {
		return nil, err
	}
	publish := func(batch []dollr.Change) error { rt.Publish(batch); return nil }
	if bus == nil {
		wg.Go(func() { follow(ctx, store, head, publish, log.With("feed", "store")) })
	} else {
		// PostgreSQL: only the server holding the replication slot gets
		// batches; from 0 it republishes what the slot has not acknowledged,
		// which a previous capturer may not have published. SQLite's feed
		// would replay its whole window from 0.
		captureFrom := head
		if c.DatabaseURL != "" {
			captureFrom = 0
		}
		wg.Go(func() {
			follow(ctx, bus.CaptureFeed(store), captureFrom, func(batch []dollr.Change) error { return bus.Publish(ctx, batch) }, log.With("feed", "store"))
		})
		wg.Go(func() { follow(ctx, bus, head, publish, log.With("feed", "nats")) })
	}
	mux.Handle("/realtime/v1/websocket", rt)
	mux.Handle("/socket/websocket", rt)
	return rt.Close, nil
}

// follow hands a change feed's batches to handle until ctx ends, resuming
// after the last batch handled if the feed or handle fails.
func follow(ctx context.Context, feed dollr.ChangeFeed, after uint64, handle func([]dollr.Change) error, log *slog.Logger) {
	for {
		err := feed.Follow(ctx, after, func(batch []dollr.Change) error {
			if err := handle(batch); err != nil {
				return err
			}
			if n := len(batch); n > 0 {
				after = batch[n-1].Seq
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		log.Error("change feed stopped; resuming", "after", after, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// natsStoreIDSetting keeps the installation's NATS subject token: servers
// sharing a database share it, other installations on the same NATS do not.
const natsStoreIDSetting = "nats_store_id"

// connectBus connects to NATS for this installation's changes.
func connectBus(ctx context.Context, store dollr.Store, url string, log *slog.Logger, reg prometheus.Registerer) (*nats.Bus, error) {
	id, err := store.Setting(ctx, natsStoreIDSetting, uuid.NewString())
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return nats.Connect(ctx, nats.Config{URL: url, StoreID: id, Name: "dollr serve " + host,
		Logger: log.With("component", "nats"), Registerer: reg})
}

// envFloat reads a number from the environment variable key; 0 when unset.
func envFloat(key string) (float64, error) {
	v := os.Getenv(key)
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a number", key, v)
	}
	return f, nil
}

// socketsWithin is the default bound on realtime sockets for an open-files
// limit: each socket holds one descriptor, and a tenth of the limit (at least
// 256) stays free for API connections, the database and logs, so a flood of
// sockets cannot stop the Status API that clients fall back to. 0 (no bound)
// when the limit is unknown.
func socketsWithin(openFiles uint64, known bool) int {
	if !known {
		return 0
	}
	reserve := max(openFiles/10, 256)
	if openFiles <= reserve {
		return 1
	}
	return int(min(openFiles-reserve, 1<<30))
}

// warnProxyWithoutPublicURL logs once when a request arrives through a
// reverse proxy (X-Forwarded-* headers) while --public-url is unset: the
// links and realtime URLs dollr hands out then name its own listen address,
// which the proxy's clients cannot reach.
func warnProxyWithoutPublicURL(next http.Handler, baseURL string, log *slog.Logger) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if proto, host := r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"); proto != "" || host != "" {
			once.Do(func() {
				log.Warn("requests arrive through a proxy but --public-url is not set: hosted checkout links and realtime URLs name "+baseURL+"; set --public-url (or DOLLR_PUBLIC_URL) to the origin clients use",
					"x_forwarded_proto", proto, "x_forwarded_host", host)
			})
		}
		next.ServeHTTP(w, r)
	})
}

// staleName is the first of path.stale, path.stale.2, path.stale.3, ... that
// does not exist.
func staleName(path string) string {
	name := path + ".stale"
	for n := 2; ; n++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.stale.%d", path, n)
	}
}

// flagGiven reports whether the command line set the flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
