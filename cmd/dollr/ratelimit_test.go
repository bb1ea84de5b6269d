package main

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/internal/servetest"
)

// TestServeRateLimit: with --api-rate-limit 1 --api-rate-burst 2 a merchant's
// first two requests pass and the next is refused with 429, Dollr's body and
// Retry-After: 1, counted in /metrics and logged. (It is the third unless a
// request took a second; the loop tolerates a slow machine rather than time it.)
func TestServeRateLimit(t *testing.T) {
	s := startServe(t, newInstallation(t, backends.SQLite), "--api-rate-limit", "1", "--api-rate-burst", "2")
	c := newClient(t, s.creds) // the token request is not a merchant's: not charged
	path := s.URL + "/v1/status/collection/" + uuid.NewString()
	var resp *http.Response
	var body string
	for n := 1; ; n++ {
		resp, body = getWithHeader(t, path, "Authorization", "Bearer "+c.Token)
		if resp.StatusCode == http.StatusTooManyRequests {
			if n <= 2 {
				t.Fatalf("request %d refused within the burst of 2", n)
			}
			break
		}
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("request %d: %d %s, want 404 (unknown collection) or 429", n, resp.StatusCode, body)
		}
		if n == 60 {
			t.Fatal("60 requests, none refused")
		}
	}
	if body != "{\"detail\":\"Too Many Requests\"}\n" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("429 %q with Retry-After %q; want Dollr's body and 1", body, resp.Header.Get("Retry-After"))
	}
	if m := metricsText(t, s.URL); !strings.Contains(m, `dollr_http_rate_limited_total{scope="merchant"} 1`) ||
		!strings.Contains(m, `dollr_http_rate_limited_total{scope="address"} 0`) {
		t.Errorf("/metrics:\n%s", grepLines(m, "dollr_http_rate_limited_total"))
	}
	servetest.WaitFor(t, serveWait, func() error {
		out := s.Output()
		for _, want := range []string{`msg="api: rate limits" merchant_rate=1 merchant_burst=2 address_rate=0`, `msg="rate limited" scope=merchant`, "status=429"} {
			if !strings.Contains(out, want) {
				return errors.New("the log lacks " + want)
			}
		}
		return nil
	})
}

// TestServeRateLimitFlags: a negative rate or burst, or a rate in the
// environment that is not a number, is refused before anything starts,
// naming the flag; --help explains the flags.
func TestServeRateLimitFlags(t *testing.T) {
	for _, c := range []struct {
		env   []string
		flags []string
		want  string
	}{
		{nil, []string{"--api-rate-limit", "-1"}, "--api-rate-limit -1: must be a number of requests a second, not negative (0 means no limit)"},
		{nil, []string{"--api-address-rate-limit", "-0.5"}, "--api-address-rate-limit -0.5: must be a number"},
		{nil, []string{"--api-rate-limit", "NaN"}, "--api-rate-limit NaN"},
		{nil, []string{"--api-rate-burst", "-1"}, "--api-rate-burst -1: must not be negative"},
		{nil, []string{"--api-address-rate-burst", "-3"}, "--api-address-rate-burst -3: must not be negative"},
		{[]string{"DOLLR_API_RATE_LIMIT=fast"}, nil, `--api-rate-limit: DOLLR_API_RATE_LIMIT="fast" is not a number`},
		{[]string{"DOLLR_API_ADDRESS_RATE_LIMIT=-2"}, nil, "--api-address-rate-limit -2: must be a number"},
		// A flag given overrides the environment: the error is the burst's.
		{[]string{"DOLLR_API_RATE_LIMIT=fast"}, []string{"--api-rate-limit", "1", "--api-rate-burst", "-1"}, "--api-rate-burst -1"},
	} {
		dataDir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, c.env, append([]string{"serve", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, c.flags...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v serve %s: exit %d, want 2 saying %q\nstderr:\n%s", c.env, strings.Join(c.flags, " "), r.code, c.want, r.stderr)
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve %s: the data directory was created before the flags were checked (%v)", strings.Join(c.flags, " "), err)
		}
	}
	r := runCLI(t, nil, "serve", "--help")
	for _, want := range []string{"-api-rate-limit", "-api-rate-burst", "-api-address-rate-limit", "-api-address-rate-burst", "Retry-After", "DOLLR_API_RATE_LIMIT", "0 means no limit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, r.stdout)
		}
	}
}

// The environment's rates are read as numbers, blanks around them allowed.
func TestServeConfigRateLimitEnv(t *testing.T) {
	t.Setenv("DOLLR_API_RATE_LIMIT", " 2.5 ")
	if v, err := envFloat("DOLLR_API_RATE_LIMIT"); v != 2.5 || err != nil {
		t.Fatalf("envFloat = %v, %v", v, err)
	}
	t.Setenv("DOLLR_API_RATE_LIMIT", "")
	if v, err := envFloat("DOLLR_API_RATE_LIMIT"); v != 0 || err != nil {
		t.Fatalf("envFloat unset = %v, %v", v, err)
	}
	ok := serveConfig{DataDir: "d", Addr: "127.0.0.1:0", SessionTTL: time.Minute, AccessTokenTTL: time.Hour, RealtimeKeyTTL: time.Minute,
		RequestTimeout: time.Second, APIRateLimit: 0.1, APIRateBurst: 1, APIAddressRateLimit: 100}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid rate limits refused: %v", err)
	}
}
