// Package api serves the Dollr Open API for collections (paths, fields, types
// and error bodies as in Dollr's public reference), the Status API, realtime
// keys and the sandbox's 3-D Secure endpoint. See docs/api.md.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/ratelog"
	"github.com/dollr/dollr/sandbox"
	"github.com/dollr/dollr/token"
)

// Defaults for Config.
const (
	DefaultSessionTTL     = 30 * time.Minute
	DefaultAccessTokenTTL = 60 * time.Minute
	DefaultRealtimeKeyTTL = 15 * time.Minute
	// MaxBodyBytes caps every request body (413 beyond).
	MaxBodyBytes = 1 << 20
)

// Config wires the API.
type Config struct {
	Store  dollr.Store   // required
	Tokens *token.Tokens // required
	// Sandbox decides payment outcomes; nil means a zero-delay sandbox.
	Sandbox *sandbox.Network
	Now     func() time.Time // time.Now if nil

	SessionTTL     time.Duration // checkout session lifetime (default 30m)
	AccessTokenTTL time.Duration // bearer token lifetime, reported in minutes (default 60m)
	RealtimeKeyTTL time.Duration // realtime key lifetime, reported in seconds (default 15m)

	// BaseURL is the public origin, e.g. http://127.0.0.1:8080; hosted
	// checkout URLs are BaseURL + "/checkout/" + token.
	BaseURL string
	Logger  *slog.Logger // slog.Default() if nil
	// Metrics, if set, receives the HTTP request metrics.
	Metrics prometheus.Registerer
	// RequestTimeout bounds one request's work (its store calls see the
	// deadline): past it the answer is 503 with Retry-After rather than a
	// request left hanging on a hung database. Default 10s.
	RequestTimeout time.Duration

	// MerchantRateLimit is the requests a second each merchant may make,
	// counted after its bearer token verifies; past it the answer is 429
	// with Retry-After. 0, the default, means no limit. MerchantRateBurst is
	// how many may come at once (default max(1, ceil(2×rate))).
	MerchantRateLimit float64
	MerchantRateBurst int
	// AddressRateLimit and AddressRateBurst are the same per client address
	// (the host of RemoteAddr), checked before anything else on every route
	// but GET /healthz. 0 means no limit.
	AddressRateLimit float64
	AddressRateBurst int
}

// DefaultRequestTimeout bounds one API request (Config.RequestTimeout).
const DefaultRequestTimeout = 10 * time.Second

// Server is the API's http.Handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	handler  http.Handler
	log      *slog.Logger
	metrics  *httpMetrics
	sessions *sessionSources // for realtime keys (sessioncache.go)
	// unavailableLog keeps a store outage from logging once per request.
	unavailableLog ratelog.Limiter
	// Rate limits (ratelimit.go); nil when off. Their logs likewise.
	merchantLimit                     *rateLimiter[int64]
	addressLimit                      *rateLimiter[string]
	merchantLimitLog, addressLimitLog ratelog.Limiter
}

// New returns the API handler.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Tokens == nil {
		return nil, errors.New("api: Store and Tokens are required")
	}
	if cfg.Sandbox == nil {
		cfg.Sandbox = &sandbox.Network{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RealtimeKeyTTL <= 0 {
		cfg.RealtimeKeyTTL = DefaultRealtimeKeyTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	for _, l := range []struct {
		name  string
		rate  float64
		burst *int
	}{
		{"MerchantRate", cfg.MerchantRateLimit, &cfg.MerchantRateBurst},
		{"AddressRate", cfg.AddressRateLimit, &cfg.AddressRateBurst},
	} {
		// !(rate >= 0) refuses NaN too.
		if !(l.rate >= 0) || math.IsInf(l.rate, 0) || *l.burst < 0 {
			return nil, fmt.Errorf("api: %sLimit %v, %sBurst %d: want a finite rate and a burst, neither negative", l.name, l.rate, l.name, *l.burst)
		}
		*l.burst = RateBurst(l.rate, *l.burst)
	}
	if cfg.MerchantRateLimit > 0 || cfg.AddressRateLimit > 0 {
		cfg.Logger.Info("api: rate limits", "merchant_rate", cfg.MerchantRateLimit, "merchant_burst", cfg.MerchantRateBurst,
			"address_rate", cfg.AddressRateLimit, "address_burst", cfg.AddressRateBurst)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, sessions: newSessionSources(sessionSourcesLimit)}
	if cfg.MerchantRateLimit > 0 {
		s.merchantLimit = newRateLimiter[int64](cfg.MerchantRateLimit, cfg.MerchantRateBurst, cfg.Now, maxRateKeys)
	}
	if cfg.AddressRateLimit > 0 {
		s.addressLimit = newRateLimiter[string](cfg.AddressRateLimit, cfg.AddressRateBurst, cfg.Now, maxRateKeys)
	}
	if cfg.Metrics != nil {
		m, err := newHTTPMetrics(cfg.Metrics)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	s.routes()
	s.handler = s.withRequestID(s.withLogging(s.withRecover(CanonicalPaths(s.mux))))
	return s, nil
}

func (s *Server) routes() {
	// Health checks are never rate limited: a load balancer must not take a
	// busy server out of service.
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	// Every other route, the 404/405 answer included, is limited per client
	// address first. The check sits inside the mux so that the access log
	// and metrics still name the route of a refused request.
	handle := func(pattern string, h http.HandlerFunc) { s.mux.Handle(pattern, s.limitAddress(h)) }
	handle("POST /v1/jwt/client/obtain/token", s.handleObtainToken)
	handle("POST /v1/checkouts/create", s.authed(s.handleCreateCheckout))
	handle("POST /v1/sessions/checkout", s.authed(s.handleCreateSession))
	handle("POST /v1/payment-accounts/create", s.authed(s.handleCreatePaymentAccount))
	handle("POST /v1/executions/collection", s.authed(s.handleExecuteCollection))
	handle("GET /v1/status/collection/{reference_id}", s.authed(s.handleCollectionStatus))
	handle("GET /v1/status/source", s.authed(s.handleSourceStatus))
	handle("POST /v1/realtime-keys/collection", s.authed(s.handleRealtimeKey))
	handle("POST /v1/sandbox/3ds/{client_secret}", s.handleSandbox3DS)
	handle("POST /v1/sandbox/status-touch", s.authed(s.handleSandboxStatusTouch))
	handle("/", s.handleNoRoute)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := s.cfg.Store.Head(r.Context()); err != nil {
		s.log.Error("healthz: store", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleNoRoute answers FastAPI-style: 405 when the path exists with another
// method, 404 otherwise.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	writeDetail(w, http.StatusNotFound, "Not Found")
}

// CanonicalPaths answers a request whose path is not canonical (an empty
// segment as in "//", a "." or ".." segment, or no leading "/") with the
// JSON 404 {"detail":"Not Found"}, where http.ServeMux would answer 307 with
// an HTML body redirecting to the cleaned path. FastAPI does not clean paths
// either: such a path matches no route. The Server applies it to its own
// mux; a program that mounts the Server on another ServeMux should wrap that
// mux too, since the outer mux redirects before the Server sees the request.
// The canonical path, nearly every request, costs two substring scans.
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux leaves CONNECT and "OPTIONS *" uncleaned, and so do we.
		if r.Method != http.MethodConnect && r.RequestURI != "*" && !isCanonicalPath(r.URL.EscapedPath()) {
			writeDetail(w, http.StatusNotFound, "Not Found")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isCanonicalPath reports whether ServeMux would route p as it is (its
// cleanPath(p) == p) rather than redirect.
func isCanonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return true
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np == p
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
