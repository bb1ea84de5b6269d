package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr/internal/servetest"
	"github.com/dollr/dollr/pgtest"
)

// TestServeDatabaseOutage: while PostgreSQL is down the API answers 503 with
// Retry-After and Dollr's body (not a 500 and an error line per request),
// and once it is back the same calls succeed, with nothing lost.
func TestServeDatabaseOutage(t *testing.T) {
	cluster := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL, _, err := cluster.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in := installation{dataDir: t.TempDir(), databaseURL: dbURL}
	s := startServe(t, in)
	c := newClient(t, s.creds)
	ref, _ := c.startPayment("231770000010")
	c.waitStatus(ref, "COMPLETED")

	status := func() (int, string, string) {
		req, _ := http.NewRequest("GET", s.creds.BaseURL+"/v1/status/collection/"+ref, nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
	}
	if err := cluster.Down(); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		code, retryAfter, body := status()
		var detail struct{ Detail string }
		if code != http.StatusServiceUnavailable || retryAfter != "5" || json.Unmarshal([]byte(body), &detail) != nil || detail.Detail != "Service Unavailable" {
			t.Fatalf("during the outage: %d (Retry-After %q) %s, want 503 {\"detail\":\"Service Unavailable\"} with Retry-After 5", code, retryAfter, body)
		}
	}
	if err := cluster.Up(); err != nil {
		t.Fatal(err)
	}
	servetest.WaitFor(t, serveWait, func() error {
		if code, _, body := status(); code != http.StatusOK {
			return fmt.Errorf("after the outage: %d %s", code, body)
		}
		return nil
	})
	c.waitStatus(ref, "COMPLETED")
	// Twenty failed requests, at most a couple of lines about them.
	if n := countLines(s.Output(), "store unavailable"); n < 1 || n > 3 {
		t.Errorf("%d 'store unavailable' log lines for 20 requests in the outage, want 1-3", n)
	}
}

// countLines counts the lines of out that contain s.
func countLines(out, s string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
