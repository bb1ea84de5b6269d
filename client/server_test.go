package client

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr/internal/servetest"
)

// The SDK's integration tests run against a real `dollr serve`: built once
// per test binary and started per test on its own port and data directory
// (internal/servetest).

func TestMain(m *testing.M) { os.Exit(servetest.Main(m)) }

// testServer is one running `dollr serve` and its merchant's credentials.
type testServer struct {
	*servetest.Server
	Creds *Credentials
}

// startServer runs dollr serve with fast sandbox timings (overridable by
// extra flags) and stops it when t ends.
func startServer(t testing.TB, extra ...string) *testServer {
	t.Helper()
	s := servetest.Start(t, servetest.Options{Flags: append([]string{
		"--sandbox-delay", "1s", "--sandbox-long-delay", "8s", "--join-error-delay", "100ms"}, extra...)})
	c, err := LoadCredentials(s.CredentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, Creds: c}
}

// countingTransport counts token requests, so tests can see the cache work.
type countingTransport struct {
	tokens atomic.Int64
	base   http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwt/client/obtain/token") {
		c.tokens.Add(1)
	}
	return c.base.RoundTrip(r)
}

// newTestClient returns a client for s whose token requests are counted.
func newTestClient(t *testing.T, s *testServer) (*Client, *countingTransport) {
	t.Helper()
	ct := &countingTransport{base: http.DefaultTransport}
	c, err := New(Config{
		BaseURL: s.Creds.BaseURL, ClientID: s.Creds.ClientID, ClientSecret: s.Creds.ClientSecret,
		SupabaseURL: s.Creds.SupabaseURL, SupabaseAnonKey: s.Creds.SupabaseAnonKey,
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: ct},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, ct
}

// testContext is a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
