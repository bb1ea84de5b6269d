package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The SDK's integration tests run against a real `dollr serve`, built once
// per test binary from ../cmd/dollr and started per test on a free port with
// its own data directory.

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// dollrBinary returns the path of a freshly built dollr binary.
func dollrBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "dollr-sdk-test-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "dollr")
		root, err := filepath.Abs("..")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(goTool(), "build", "-o", buildBin, "./cmd/dollr")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/dollr: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// testServer is one running `dollr serve`.
type testServer struct {
	DataDir string
	Creds   *Credentials
	cmd     *exec.Cmd
	log     *syncBuffer
}

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

// startServer runs dollr serve on 127.0.0.1:0 with fast sandbox timings
// (overridable by extra flags) and stops it when t ends.
func startServer(t testing.TB, extra ...string) *testServer {
	t.Helper()
	bin := dollrBinary(t)
	s := &testServer{DataDir: t.TempDir(), log: &syncBuffer{}}
	args := append([]string{"serve", "--data-dir", s.DataDir, "--addr", "127.0.0.1:0",
		"--sandbox-delay", "1s", "--sandbox-long-delay", "8s", "--join-error-delay", "100ms"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("dollr serve output:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("dollr serve exited during start-up:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dollr serve not ready after 60s:\n%s", s.log.String())
		}
		if c, err := LoadCredentials(filepath.Join(s.DataDir, "credentials.json")); err == nil {
			if resp, err := http.Get(c.BaseURL + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					s.Creds = c
					return s
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CredentialsPath is the server's credentials.json.
func (s *testServer) CredentialsPath() string { return filepath.Join(s.DataDir, "credentials.json") }

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
