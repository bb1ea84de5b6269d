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
	cluster, dbURL := ownDatabase(t)
	in := installation{dataDir: t.TempDir(), databaseURL: dbURL}
	s := startServe(t, in)
	c := newClient(t, s.creds)
	ref, _ := c.startPayment("231770000010")
	c.waitStatus(ref, "COMPLETED")

	status := func() (int, string, string) {
		resp, body := getWithHeader(t, s.creds.BaseURL+"/v1/status/collection/"+ref, "Authorization", "Bearer "+c.Token)
		return resp.StatusCode, resp.Header.Get("Retry-After"), body
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
	// Capture came back by itself, said so, and the metrics show it.
	servetest.WaitFor(t, serveWait, func() error {
		if !strings.Contains(s.Output(), "change capture resumed") {
			return fmt.Errorf("no 'change capture resumed' logged")
		}
		m := metricsText(t, s.URL)
		if !strings.Contains(m, "\ndollr_capture_streaming 1\n") || strings.Contains(m, "\ndollr_capture_interruptions_total 0\n") {
			return fmt.Errorf("capture metrics do not show the stream back after an interruption:\n%s", grepLines(m, "dollr_capture_"))
		}
		return nil
	})
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

// metricsText is the server's /metrics page.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeWaitsForDatabase: started while PostgreSQL is down, serve keeps
// trying (saying so) and serves once the database is up; with
// --database-wait 0 it exits at once, naming the database.
func TestServeWaitsForDatabase(t *testing.T) {
	cluster, dbURL := ownDatabase(t)
	if err := cluster.Down(); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--database-url", dbURL, "--database-wait", "0")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "cannot reach PostgreSQL at") {
		t.Fatalf("--database-wait 0 with the database down: exit %d, want 1 naming the database\n%s%s", r.code, r.stdout, r.stderr)
	}

	s := servetest.Launch(t, servetest.Options{DatabaseURL: dbURL})
	servetest.WaitFor(t, serveWait, func() error {
		if !strings.Contains(s.Output(), "waiting for PostgreSQL") {
			return fmt.Errorf("not waiting yet")
		}
		return nil
	})
	if err := cluster.Up(); err != nil {
		t.Fatal(err)
	}
	s.WaitServing()
}

// ownDatabase is a cluster of the test's own (so it can be taken down) and
// an empty database on it.
func ownDatabase(t *testing.T) (*pgtest.Cluster, string) {
	t.Helper()
	cluster := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL, _, err := cluster.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cluster, dbURL
}
