package natstest

import (
	"strings"
	"testing"

	"github.com/dollr/dollr/internal/netproxy"
)

// Proxy puts a network the test can cut or partition between NATS clients
// and a server.
type Proxy struct{ *netproxy.Proxy }

// StartProxy forwards to natsURL's host and port until t ends.
func StartProxy(t testing.TB, natsURL string) *Proxy {
	t.Helper()
	return &Proxy{netproxy.Start(t, strings.TrimPrefix(natsURL, "nats://"))}
}

// URL is the proxy's nats:// URL, for clients.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }
