package client

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
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

// tcpProxy forwards connections to target until Cut, which drops every
// connection and refuses new ones: a realtime outage the test controls.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(out, in); out.Close() }()
		go func() { defer p.wg.Done(); io.Copy(in, out); in.Close() }()
	}
}

// Cut closes the listener and every proxied connection.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// testContext is a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
