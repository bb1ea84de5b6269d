package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/token"
)

// limited is an API server with rate limits over the env's store, on a clock
// of its own, whose log and metrics the test reads.
type limited struct {
	t     *testing.T
	h     *api.Server
	clock *api.FakeClock
	logs  *syncBuffer
	reg   *prometheus.Registry
}

// syncBuffer is a log destination safe for the handler's writes.
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

func newLimited(t *testing.T, e *env, cfg api.Config) *limited {
	t.Helper()
	l := &limited{t: t, clock: api.NewFakeClock(time.Now()), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	cfg.Store, cfg.Tokens, cfg.Now, cfg.Metrics = e.store, e.tokens, l.clock.Now, l.reg
	cfg.Logger = slog.New(slog.NewTextHandler(l.logs, nil))
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.h = h
	return l
}

// do serves one request from remote (RemoteAddr), with a bearer token if
// tok is set.
func (l *limited) do(method, path, tok, remote string) *httptest.ResponseRecorder {
	l.t.Helper()
	var body *strings.Reader
	if method == http.MethodPost {
		body = strings.NewReader("{}")
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = remote
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, req)
	return rec
}

// want checks a response's status; a 429 must be Dollr's body with
// Retry-After retryAfter.
func (l *limited) want(rec *httptest.ResponseRecorder, status int, retryAfter string) {
	l.t.Helper()
	if rec.Code != status {
		l.t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if status != http.StatusTooManyRequests {
		return
	}
	if body := rec.Body.String(); body != "{\"detail\":\"Too Many Requests\"}\n" {
		l.t.Fatalf("429 body %q", body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		l.t.Fatalf("429 content type %q", ct)
	}
	if got := rec.Header().Get("Retry-After"); got != retryAfter {
		l.t.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
}

// refused reads dollr_http_rate_limited_total{scope}.
func (l *limited) refused(scope string) float64 {
	l.t.Helper()
	families, err := l.reg.Gather()
	if err != nil {
		l.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "dollr_http_rate_limited_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "scope" && lp.GetValue() == scope {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	l.t.Fatalf("no dollr_http_rate_limited_total{scope=%q}", scope)
	return 0
}

// statusPath is the Status API path of a collection e.a started.
func statusPath(e *env) string {
	e.t.Helper()
	status, res, out := e.execute(e.a.token, execBody(e.a))
	if status != http.StatusOK {
		e.t.Fatalf("execute: %d %s", status, out)
	}
	return "/v1/status/collection/" + res.ReferenceID
}

// A merchant gets its burst, then 429 {"detail":"Too Many Requests"} with
// Retry-After rounded up to whole seconds, until its bucket refills; other
// merchants are unaffected and requests that fail authentication are not
// charged to the merchant they name.
func TestMerchantRateLimit(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	path := statusPath(e)
	l := newLimited(t, e, api.Config{MerchantRateLimit: 0.5, MerchantRateBurst: 3})
	const remote = "192.0.2.1:1234"

	other, _ := token.New(bytes.Repeat([]byte{9}, 32), bytes.Repeat([]byte{9}, 32))
	forged, _ := other.IssueAccess(e.a.id, time.Hour) // names merchant A, signed by another secret
	for range 10 {
		l.want(l.do("GET", path, forged, remote), http.StatusUnauthorized, "")
		l.want(l.do("GET", path, "", remote), http.StatusUnauthorized, "")
	}
	for range 3 {
		l.want(l.do("GET", path, e.a.token, remote), http.StatusOK, "")
	}
	l.want(l.do("GET", path, e.a.token, remote), http.StatusTooManyRequests, "2") // a token every 2 s
	// Another merchant, from the same address, has a bucket of its own (and
	// gets its own 404: the collection is A's).
	l.want(l.do("GET", path, e.b.token, remote), http.StatusNotFound, "")

	l.clock.Advance(500 * time.Millisecond)
	l.want(l.do("GET", path, e.a.token, remote), http.StatusTooManyRequests, "2") // 1.5 s rounds up
	l.clock.Advance(time.Second)
	l.want(l.do("GET", path, e.a.token, remote), http.StatusTooManyRequests, "1") // 0.5 s rounds up
	l.clock.Advance(500 * time.Millisecond)
	l.want(l.do("GET", path, e.a.token, remote), http.StatusOK, "")
	l.want(l.do("GET", path, e.a.token, "198.51.100.9:1"), http.StatusTooManyRequests, "2") // any address

	// A flood of refusals is logged, but not once each.
	for range 50 {
		l.want(l.do("POST", "/v1/executions/collection", e.a.token, remote), http.StatusTooManyRequests, "2")
	}
	if got := l.refused("merchant"); got != 54 {
		t.Errorf("dollr_http_rate_limited_total{scope=merchant} = %v, want 54", got)
	}
	if got := l.refused("address"); got != 0 {
		t.Errorf("dollr_http_rate_limited_total{scope=address} = %v, want 0", got)
	}
	logs := l.logs.String()
	if n := strings.Count(logs, fmt.Sprintf(`msg="rate limited" scope=merchant merchant_id=%d retry_after=`, e.a.id)); n < 1 || n >= 54 {
		t.Errorf("%d rate-limited warnings for 54 refusals; want some, not one each:\n%s", n, logs)
	}
	// The access log shows each refusal with its route and merchant.
	for _, route := range []string{"GET /v1/status/collection/{reference_id}", "POST /v1/executions/collection"} {
		re := regexp.MustCompile(`msg="http request" .*route="` + regexp.QuoteMeta(route) + `" status=429 .*merchant_id=` + fmt.Sprint(e.a.id))
		if !re.MatchString(logs) {
			t.Errorf("access log lacks a 429 on %s for merchant %d:\n%s", route, e.a.id, logs)
		}
	}
}

// Per client address: keyed by RemoteAddr's host whatever the port, before
// authentication, on every route but /healthz.
func TestAddressRateLimit(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	path := statusPath(e)
	l := newLimited(t, e, api.Config{AddressRateLimit: 1, AddressRateBurst: 2})

	for _, c := range []struct{ first, again string }{
		{"192.0.2.1:1000", "192.0.2.1:2000"},
		{"192.0.2.2:1000", "192.0.2.2:1000"}, // another address has its own bucket
		{"[2001:db8::1]:443", "[2001:db8::1]:444"},
		{"203.0.113.7", "203.0.113.7"}, // as --trusted-proxies sets RemoteAddr, without a port
	} {
		l.want(l.do("GET", path, e.a.token, c.first), http.StatusOK, "")
		l.want(l.do("GET", path, e.a.token, c.again), http.StatusOK, "")
		l.want(l.do("GET", path, e.a.token, c.again), http.StatusTooManyRequests, "1")
	}
	// Every route, authenticated or not, known or not, answers 429 first.
	const spent = "192.0.2.1:3000"
	l.want(l.do("GET", path, "", spent), http.StatusTooManyRequests, "1")
	l.want(l.do("POST", "/v1/jwt/client/obtain/token", "", spent), http.StatusTooManyRequests, "1")
	l.want(l.do("GET", "/nowhere", "", spent), http.StatusTooManyRequests, "1")
	l.want(l.do("POST", "/v1/sandbox/3ds/pi_1_secret_x", "", spent), http.StatusTooManyRequests, "1")
	// Health checks never are.
	for range 20 {
		l.want(l.do("GET", "/healthz", "", spent), http.StatusOK, "")
	}
	l.clock.Advance(time.Second)
	l.want(l.do("GET", path, e.a.token, spent), http.StatusOK, "")
	l.want(l.do("GET", path, e.a.token, spent), http.StatusTooManyRequests, "1")

	if got := l.refused("address"); got != 9 {
		t.Errorf("dollr_http_rate_limited_total{scope=address} = %v, want 9", got)
	}
	if got := l.refused("merchant"); got != 0 {
		t.Errorf("dollr_http_rate_limited_total{scope=merchant} = %v, want 0", got)
	}
	if logs := l.logs.String(); !strings.Contains(logs, `msg="rate limited" scope=address remote=192.0.2.1 retry_after=1`) {
		t.Errorf("no rate-limited warning naming the address:\n%s", logs)
	}
}

// The address is checked before the merchant: a request refused for its
// address does not spend the merchant's allowance.
func TestRateLimitAddressBeforeMerchant(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	path := statusPath(e)
	l := newLimited(t, e, api.Config{AddressRateLimit: 1, AddressRateBurst: 2, MerchantRateLimit: 1, MerchantRateBurst: 3})
	l.want(l.do("GET", path, e.a.token, "192.0.2.1:1"), http.StatusOK, "")
	l.want(l.do("GET", path, e.a.token, "192.0.2.1:1"), http.StatusOK, "")
	for range 5 {
		l.want(l.do("GET", path, e.a.token, "192.0.2.1:1"), http.StatusTooManyRequests, "1")
	}
	l.want(l.do("GET", path, e.a.token, "192.0.2.2:1"), http.StatusOK, "") // the merchant's third
	l.want(l.do("GET", path, e.a.token, "192.0.2.3:1"), http.StatusTooManyRequests, "1")
	if a, m := l.refused("address"), l.refused("merchant"); a != 5 || m != 1 {
		t.Errorf("refused by address %v, by merchant %v; want 5 and 1", a, m)
	}
}

// Without limits (the default) nothing is refused, however fast one merchant
// at one address goes; the metric is there, at 0.
func TestNoRateLimitByDefault(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	path := statusPath(e)
	l := newLimited(t, e, api.Config{})
	for range 100 {
		l.want(l.do("GET", path, e.a.token, "192.0.2.1:1"), http.StatusOK, "")
	}
	if a, m := l.refused("address"), l.refused("merchant"); a != 0 || m != 0 {
		t.Errorf("refused by address %v, by merchant %v; want none", a, m)
	}
}

// Config is checked: a negative, infinite or NaN rate, or a negative burst,
// is an error, not a silent "no limit".
func TestRateLimitConfig(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	for _, cfg := range []api.Config{
		{MerchantRateLimit: -1}, {AddressRateLimit: -0.5}, {MerchantRateLimit: math.NaN()},
		{AddressRateLimit: math.Inf(1)}, {MerchantRateLimit: 1, MerchantRateBurst: -1}, {AddressRateBurst: -2},
	} {
		cfg.Store, cfg.Tokens = e.store, e.tokens
		if _, err := api.New(cfg); err == nil || !strings.Contains(err.Error(), "RateLimit") {
			t.Errorf("api.New(rates %v/%d, %v/%d) = %v, want an error naming the field",
				cfg.MerchantRateLimit, cfg.MerchantRateBurst, cfg.AddressRateLimit, cfg.AddressRateBurst, err)
		}
	}
}
