package httplog

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the networks whose X-Forwarded-For is believed: a
// request that comes from one of them is logged with the client address the
// proxies recorded, not the last proxy's.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of CIDRs or addresses,
// e.g. "127.0.0.1,10.0.0.0/8".
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var t TrustedProxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
			}
			t = append(t, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
		}
		t = append(t, p.Masked())
	}
	return t, nil
}

func (t TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address r came from: its peer, or, when the peer is a
// trusted proxy, the nearest address in X-Forwarded-For that is not one
// (reading from the right, since only the proxies' own entries can be
// believed; a client can put anything on the left).
func (t TrustedProxies) ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !t.trusts(peer) {
		return r.RemoteAddr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := ""
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: believe nothing left of it
		}
		client = a.Unmap().String()
		if !t.trusts(a) {
			break
		}
	}
	if client == "" {
		return r.RemoteAddr
	}
	return client
}

// RealRemote sets each request's RemoteAddr to ClientAddr, for the handlers'
// logs. Without trusted proxies it changes nothing.
func (t TrustedProxies) RealRemote(next http.Handler) http.Handler {
	if len(t) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr := t.ClientAddr(r); addr != r.RemoteAddr {
			r2 := *r
			r2.RemoteAddr = addr
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}
