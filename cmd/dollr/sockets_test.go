//go:build unix

package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/dollr/dollr/internal/servetest"
)

// A flood of realtime sockets cannot take the descriptors the API needs:
// past the default bound (the open-files limit less its reserve) upgrades
// are refused with 429, and the Status API, the clients' fallback, answers.
func TestServeSocketFloodKeepsAPI(t *testing.T) {
	const openFiles = 600
	want := socketsWithin(openFiles, true) // 344
	s := servetest.Start(t, servetest.Options{OpenFiles: openFiles})
	c, err := readCredentials(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	wsURL := "ws" + strings.TrimPrefix(c.SupabaseURL, "http") + "/realtime/v1/websocket?vsn=2.0.0&apikey=" + url.QueryEscape(c.SupabaseAnonKey)
	var open []net.Conn
	t.Cleanup(func() {
		for _, nc := range open {
			nc.Close()
		}
	})
	// More sockets than the server has descriptors for.
	const attempts = openFiles + 50
	refused := 0
	for range attempts {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nc, _, _, err := ws.Dialer{}.Dial(ctx, wsURL)
		cancel()
		var status ws.StatusError
		switch {
		case err == nil:
			open = append(open, nc)
		case errors.As(err, &status) && int(status) == http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("socket %d: %v", len(open)+refused+1, err)
		}
	}
	if len(open) != want || refused != attempts-want {
		t.Fatalf("%d sockets open and %d refused, want %d and %d", len(open), refused, want, attempts-want)
	}
	// The API still accepts connections and answers at once.
	api := servetest.NewAPI(t, c.BaseURL)
	api.Login(c.ClientID, c.ClientSecret)
	api.Call("GET", "/v1/status/collection/4f1c2a9e-0000-4000-8000-000000000000", nil, http.StatusNotFound, nil)
	if out := s.Output(); !strings.Contains(out, "max_connections=344") {
		t.Errorf("the bound is not logged at start:\n%s", out)
	}
}

func TestSocketsWithin(t *testing.T) {
	for _, c := range []struct {
		openFiles uint64
		known     bool
		want      int
	}{
		{20000, true, 18000},
		{1024, true, 768},
		{300, true, 44},
		{100, true, 1},
		{0, false, 0},
	} {
		if got := socketsWithin(c.openFiles, c.known); got != c.want {
			t.Errorf("socketsWithin(%d, %v) = %d, want %d", c.openFiles, c.known, got, c.want)
		}
	}
}
