package httplog

import (
	"net/http/httptest"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer, xff, want string
	}{
		{"no proxy in the way", "203.0.113.7:5000", "", "203.0.113.7:5000"},
		{"untrusted peer: its header is ignored", "198.51.100.2:5000", "203.0.113.7", "198.51.100.2:5000"},
		{"trusted proxy", "127.0.0.1:5000", "203.0.113.7", "203.0.113.7"},
		{"a chain of trusted proxies", "127.0.0.1:5000", "203.0.113.7, 10.1.2.3", "203.0.113.7"},
		{"a client's forged entry on the left is not believed", "127.0.0.1:5000", "1.1.1.1, 203.0.113.7", "203.0.113.7"},
		{"trusted proxy without the header", "127.0.0.1:5000", "", "127.0.0.1:5000"},
		{"garbage right of the client", "127.0.0.1:5000", "203.0.113.7, nonsense", "127.0.0.1:5000"},
		{"only proxies", "127.0.0.1:5000", "10.0.0.1", "10.0.0.1"},
		{"IPv4-mapped peer", "[::ffff:127.0.0.1]:5000", "203.0.113.7", "203.0.113.7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := trusted.ClientAddr(r); got != c.want {
			t.Errorf("%s: ClientAddr = %q, want %q", c.name, got, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "1.2.3"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted", bad)
		}
	}
}
