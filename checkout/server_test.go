package checkout

// The harness the browser tests run against: the real `dollr serve` binary
// (built from ../cmd/dollr, or $DOLLR_BIN), behind a front proxy this test
// controls. The browser only ever talks to the proxy, so the proxy is the
// page's origin; it forwards everything to the server, counts what the page
// asks for, can cut or silence the realtime WebSocket, and serves the
// test-only pages under /__test/ (the stock supabase-js bundle among them).

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr/client"
	"github.com/dollr/dollr/internal/servetest"
)

// requireCI fails under CI and skips locally when a tool is missing.
func requireCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func TestMain(m *testing.M) { os.Exit(servetest.Main(m)) }

type dollrServer struct {
	t       *testing.T
	URL     string // the proxy: the origin the browser and the tests use
	backend string // the dollr server itself
	proxy   *frontProxy
	creds   *client.Credentials
	api     *servetest.API // calls the backend as the merchant
}

type serverOptions struct {
	sandboxDelay     time.Duration
	sandboxLongDelay time.Duration
}

// startServer runs `dollr serve` on a fresh data directory behind a proxy.
func startServer(t *testing.T, opt serverOptions) *dollrServer {
	t.Helper()
	if opt.sandboxDelay == 0 {
		opt.sandboxDelay = time.Second
	}
	if opt.sandboxLongDelay == 0 {
		opt.sandboxLongDelay = time.Minute
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // if the server never starts
	publicURL := "http://" + ln.Addr().String()
	srv := servetest.Start(t, servetest.Options{Flags: []string{"--public-url", publicURL,
		"--sandbox-delay", opt.sandboxDelay.String(), "--sandbox-long-delay", opt.sandboxLongDelay.String(),
		"--log-format", "json"}})
	s := &dollrServer{t: t, URL: publicURL, backend: srv.URL}

	backend, _ := url.Parse(s.backend)
	s.proxy = newFrontProxy(backend)
	front := &http.Server{Handler: s.proxy, ReadHeaderTimeout: 10 * time.Second}
	go front.Serve(ln)
	t.Cleanup(func() {
		s.proxy.Cut() // hijacked sockets are not closed by Close
		front.Close()
	})

	if s.creds, err = client.LoadCredentials(srv.CredentialsPath()); err != nil {
		t.Fatal(err)
	}
	s.api = servetest.NewAPI(t, s.backend)
	s.api.Login(s.creds.ClientID, s.creds.ClientSecret)

	// The page must be mounted; say exactly what is missing if it is not.
	resp, err := http.Get(s.URL + "/checkout/assets/realtime.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		requireCI(t, "dollr serve does not serve /checkout/ (status %d): mount checkout.New in cmd/dollr/serve.go (docs/checkout.md)", resp.StatusCode)
	}
	return s
}

// call sends a JSON request with the merchant's bearer token; it fails the
// test unless the status is 200.
func (s *dollrServer) call(method, path string, body, out any) {
	s.t.Helper()
	s.api.Call(method, path, body, http.StatusOK, out)
}

// hostedCheckout creates a HOSTED invoice and returns the URL the merchant
// would redirect its customer to.
func (s *dollrServer) hostedCheckout(extra map[string]any) string {
	s.t.Helper()
	body := map[string]any{
		"mode": "HOSTED", "source_kind": "INVOICE", "party_phone": "231771234567", "party_name": "Ama Mensah",
		"currency": "USD", "note": "Lunch order #42",
		"items": []map[string]any{
			{"name": "Jollof rice", "currency": "USD", "amount": 8.5},
			{"name": "Ginger beer", "currency": "USD", "amount": 4},
		},
	}
	for k, v := range extra {
		body[k] = v
	}
	var resp struct {
		URL string `json:"url"`
	}
	s.call("POST", "/v1/checkouts/create", body, &resp)
	if !strings.HasPrefix(resp.URL, s.URL+"/checkout/hct_") {
		s.t.Fatalf("hosted url %q is not on %s", resp.URL, s.URL)
	}
	return resp.URL
}

// frontProxy forwards to the dollr server. WebSocket upgrades are tunnelled
// by hand so the test can cut them (close every tunnel and refuse new ones)
// or silence them (accept the TCP connection and never answer).
type frontProxy struct {
	backend *url.URL
	rp      *httputil.ReverseProxy
	cut     atomic.Bool
	silent  atomic.Bool
	// rewrite, if set, edits checkout page HTML on its way to the browser.
	rewrite atomic.Pointer[func(string) string]
	extra   *http.ServeMux // /__test/ pages

	mu      sync.Mutex
	tunnels map[net.Conn]struct{}
	counts  map[string]int
}

func newFrontProxy(backend *url.URL) *frontProxy {
	p := &frontProxy{
		backend: backend,
		rp:      httputil.NewSingleHostReverseProxy(backend),
		extra:   http.NewServeMux(),
		tunnels: map[net.Conn]struct{}{},
		counts:  map[string]int{},
	}
	p.rp.ModifyResponse = func(resp *http.Response) error {
		fn := p.rewrite.Load()
		if fn == nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = []byte((*fn)(string(b)))
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	return p
}

// kind classifies a request for the counters.
func kind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/realtime/"):
		return "websocket"
	case strings.Contains(p, "/status/") && strings.HasPrefix(p, "/checkout/"):
		return "status"
	case strings.HasSuffix(p, "/pay"):
		return "pay"
	case strings.Contains(p, "/key/"):
		return "key"
	}
	return "other"
}

func (p *frontProxy) count(k string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[k]
}

func (p *frontProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/__test/") {
		p.extra.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.counts[kind(r)]++
	p.mu.Unlock()
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		p.tunnel(w, r)
		return
	}
	p.rp.ServeHTTP(w, r)
}

func (p *frontProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	if p.cut.Load() {
		http.Error(w, "realtime is cut by the test", http.StatusServiceUnavailable)
		return
	}
	client, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if !p.track(client) {
		return
	}
	if p.silent.Load() {
		// Hold the socket open and say nothing: the page must not wait forever.
		return
	}
	server, err := net.Dial("tcp", p.backend.Host)
	if err != nil || !p.track(server) {
		p.untrack(client)
		return
	}
	if err := r.Write(server); err != nil {
		p.untrack(client)
		p.untrack(server)
		return
	}
	go func() {
		io.Copy(server, buf) // buffered bytes first, then the connection
		p.untrack(server)
		p.untrack(client)
	}()
	go func() {
		io.Copy(client, server)
		p.untrack(client)
		p.untrack(server)
	}()
}

// track registers a tunnel connection; false (and closed) once cut.
func (p *frontProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut.Load() {
		c.Close()
		return false
	}
	p.tunnels[c] = struct{}{}
	return true
}

func (p *frontProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.tunnels, c)
	p.mu.Unlock()
	c.Close()
}

// Cut closes every WebSocket tunnel and refuses new ones.
func (p *frontProxy) Cut() {
	p.mu.Lock()
	p.cut.Store(true)
	conns := make([]net.Conn, 0, len(p.tunnels))
	for c := range p.tunnels {
		conns = append(conns, c)
	}
	p.tunnels = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	servetest.WaitFor(t, timeout, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}
