package bench

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"

	"github.com/dollr/dollr/internal/fdlimit"
)

// MaxConnsPerProcess bounds the sockets one tool process opens. Open files
// are capped at 20,000 per process on the machines this runs on, and the
// server under test holds one descriptor per client socket too, so a single
// client and server pair stays under ~9,000 connections.
const MaxConnsPerProcess = 9000

// fdReserve is descriptors kept free for HTTP connections, /proc and logs.
const fdReserve = 500

// CheckTarget refuses a base URL whose host is not a loopback address unless
// allowRemote is set: the tool generates enough load to hurt a shared server.
// A host name other than localhost is refused too, because resolving it could
// point anywhere.
func CheckTarget(baseURL string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("base URL %q has no host", baseURL)
	}
	if allowRemote || isLoopbackHost(u.Hostname()) {
		return u, nil
	}
	return nil, fmt.Errorf("refusing non-loopback target %q (pass --allow-remote to load a remote server)", u.Hostname())
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// CheckConns refuses a run that would open more than MaxConnsPerProcess
// realtime sockets, or more descriptors (sockets, extra for HTTP, plus a
// reserve) than the process's open-files limit allows.
func CheckConns(sockets, extra int) error {
	if sockets > MaxConnsPerProcess {
		return fmt.Errorf("%d connections exceed %d per process (open files are capped at 20,000 per process for the tool and for the server); run several tool processes against a server sized for it", sockets, MaxConnsPerProcess)
	}
	need := sockets + extra + fdReserve
	if limit, ok := fdlimit.Open(); ok && uint64(need) > limit {
		return fmt.Errorf("%d connections need about %d open files, but the limit is %d (raise it with ulimit -n)", sockets, need, limit)
	}
	return nil
}

// SourceAddrs are the loopback addresses client sockets are spread over, so
// no single (source, destination) pair runs short of ephemeral ports and the
// server sees many peers, as it would in production.
var SourceAddrs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"}

// Dialer opens TCP connections round-robin from SourceAddrs when the target
// is an IPv4 loopback address, and from the default address otherwise (a
// 127.0.0.x source cannot reach another host, nor ::1).
type Dialer struct {
	next  atomic.Uint64
	addrs []*net.TCPAddr
}

// NewDialer returns a Dialer for connections to target (the base URL's host).
func NewDialer(target *url.URL) *Dialer {
	d := &Dialer{}
	ip := net.ParseIP(target.Hostname())
	if target.Hostname() == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if ip != nil && ip.IsLoopback() && ip.To4() != nil {
		for _, a := range SourceAddrs {
			d.addrs = append(d.addrs, &net.TCPAddr{IP: net.ParseIP(a)})
		}
	}
	return d
}

// LocalAddr returns the source address of the next connection (nil: default).
func (d *Dialer) LocalAddr() *net.TCPAddr {
	if len(d.addrs) == 0 {
		return nil
	}
	return d.addrs[(d.next.Add(1)-1)%uint64(len(d.addrs))]
}

// DialContext dials addr from the next source address.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{}
	if la := d.LocalAddr(); la != nil {
		nd.LocalAddr = la
		if network == "tcp" {
			network = "tcp4" // the source is IPv4; never try ::1 from it
		}
	}
	return nd.DialContext(ctx, network, addr)
}
