// Package natstest runs a real NATS server with JetStream inside the test
// process, listening on a random loopback port, for tests of the nats
// package and of `dollr serve --nats-url`.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const readyTimeout = 30 * time.Second

// Server is one embedded NATS server; Restart keeps its port and its
// JetStream store directory, as a restarted production server would.
type Server struct {
	// URL is nats://127.0.0.1:<port>; it stays the same across restarts.
	URL      string
	StoreDir string

	t          testing.TB
	port       int
	maxPayload int32
	srv        *server.Server
}

// Option changes the server's options.
type Option func(*Server)

// MaxPayload sets the largest message the server accepts (max_payload, 1 MB
// by default), headers included.
func MaxPayload(n int32) Option { return func(s *Server) { s.maxPayload = n } }

// Start runs a NATS server with JetStream on 127.0.0.1 and a random port,
// storing under a new temporary directory, and stops it when t ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{StoreDir: t.TempDir(), t: t, port: server.RANDOM_PORT}
	for _, o := range opts {
		o(s)
	}
	s.start()
	s.port = s.srv.Addr().(*net.TCPAddr).Port
	s.URL = fmt.Sprintf("nats://127.0.0.1:%d", s.port)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: s.port, JetStream: true, StoreDir: s.StoreDir,
		NoLog: true, NoSigs: true, MaxPayload: s.maxPayload,
	})
	if err != nil {
		s.t.Fatalf("natstest: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		s.t.Fatalf("natstest: server not ready within %s", readyTimeout)
	}
	s.srv = srv
}

// Stop shuts the server down and waits until it has; stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart stops the server and starts it again on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}
