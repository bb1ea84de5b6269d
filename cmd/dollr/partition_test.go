package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr/client"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/internal/netproxy"
	"github.com/dollr/dollr/internal/servetest"
	"github.com/dollr/dollr/nats/natstest"
)

// TestServeNATSPartition cuts the capturing server off from NATS without a
// reset (packets dropped, as a broken link or a firewall does), while it still
// reaches PostgreSQL. Realtime must not stall for every server: the cut-off
// server gives the replication slot up and leaves it alone until NATS answers
// again, so the other server takes over and its subscribers see the payment
// live. After the partition heals, the first server's subscribers catch up,
// and one that joined in the partition, from the snapshot, sees nothing older.
func TestServeNATSPartition(t *testing.T) {
	ns := natstest.Start(t)
	px := natstest.StartProxy(t, ns.URL)
	first := newInstallation(t, backends.Postgres)
	second := installation{dataDir: filepath.Join(t.TempDir(), "data"), databaseURL: first.databaseURL}
	// The payment waits 30 s for its approval: longer than B takes to take
	// over, so a page can join A in the partition while it is PROCESSING.
	a := startServe(t, first, "--nats-url", px.URL(), "--sandbox-long-delay", "30s")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca, err := client.New(client.Config{BaseURL: a.creds.BaseURL, ClientID: a.creds.ClientID, ClientSecret: a.creds.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	// A captures: it started alone, and its first transaction is published.
	warm := preparePayment(t, ctx, ca, "231770000010")
	warm.execute(t, ctx, ca)
	servetest.WaitFor(t, serveWait, func() error {
		if v := metric(t, a.URL, "dollr_nats_capturing"); v != 1 {
			return fmt.Errorf("server A: dollr_nats_capturing %v", v)
		}
		return nil
	})
	b := startServe(t, second, "--nats-url", ns.URL, "--sandbox-long-delay", "30s")
	cb, err := client.New(client.Config{BaseURL: b.creds.BaseURL, ClientID: b.creds.ClientID, ClientSecret: b.creds.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	p := preparePayment(t, ctx, cb, "231770000002") // PROCESSING until --sandbox-long-delay, then COMPLETED
	onA := subscribe(t, ctx, a, p.key, p.sessionID, p.ref)
	onB := subscribe(t, ctx, b, p.key, p.sessionID, p.ref)

	px.Partition()
	start := time.Now()
	p.execute(t, ctx, cb)
	want := []string{"PENDING", "PROCESSING", "COMPLETED"}
	if got := onB.wait(t, 2); !equalStrings(got, want[:2]) {
		t.Fatalf("realtime on server B during the partition: statuses %v, want %v", got, want[:2])
	}
	t.Logf("server B's subscriber saw the payment go PROCESSING %s after the partition began", time.Since(start).Round(time.Millisecond))
	if v := metric(t, b.URL, "dollr_nats_capturing"); v != 1 {
		t.Errorf("server B: dollr_nats_capturing %v after taking over", v)
	}
	// A's failed publish timed out (10 s); it then probes NATS before it
	// would take the slot again, and says so when the probe times out.
	servetest.WaitFor(t, serveWait, func() error {
		if !strings.Contains(a.Output(), "NATS does not answer") {
			return fmt.Errorf("server A has not said it leaves the change feed")
		}
		return nil
	})
	// A page that subscribes on A now gets the current status from the
	// database (the snapshot, PROCESSING); the older changes A reads from
	// NATS after the heal must not follow it and take the page back to
	// PENDING. On the page's socket they would come before the COMPLETED
	// that follows, so its statuses must be exactly the rest of want.
	late := subscribe(t, ctx, a, p.key, p.sessionID, p.ref)
	snap := late.wait(t, 1)[0]
	from := slices.Index(want, snap)
	if from < 1 { // COMPLETED is possible on a machine slow enough for the approval to come first
		t.Fatalf("a subscriber joining server A in the partition got the snapshot %s, want PROCESSING or COMPLETED", snap)
	}
	px.Heal()
	healed := time.Now()
	if got := onA.wait(t, 2); !equalStrings(got, want[:2]) {
		t.Errorf("realtime on server A after the partition healed: statuses %v, want %v", got, want[:2])
	}
	t.Logf("server A's subscriber caught up %s after the partition healed", time.Since(healed).Round(time.Millisecond))
	for name, sub := range map[string]*statusRecorder{"A": onA, "B": onB} {
		if got := sub.wait(t, len(want)); !equalStrings(got, want) {
			t.Errorf("realtime on server %s: statuses %v, want %v", name, got, want)
		}
	}
	if got := late.wait(t, len(want)-from); !equalStrings(got, want[from:]) {
		t.Errorf("the subscriber that joined server A in the partition: statuses %v, want %v", got, want[from:])
	}
	servetest.WaitFor(t, serveWait, func() error {
		if !strings.Contains(a.Output(), "NATS answers again") {
			return fmt.Errorf("server A has not said NATS answers again")
		}
		return nil
	})
}

// TestServeDatabasePartition drops every packet between dollr and PostgreSQL
// (no reset, so every connection still looks open) while a payment is in
// flight and watched. The API answers 503 with Retry-After within its request
// timeout instead of hanging; once the network heals, the payment completes,
// its subscriber sees it live and the API answers again: nothing is lost.
func TestServeDatabasePartition(t *testing.T) {
	in := newInstallation(t, backends.Postgres)
	u, err := url.Parse(in.databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	px := netproxy.Start(t, u.Host)
	u.Host = px.Addr()
	in.databaseURL = u.String()
	const requestTimeout = 2 * time.Second
	s := startServe(t, in, "--request-timeout", requestTimeout.String(), "--sandbox-long-delay", "3s")
	api := newClient(t, s.creds)
	sdk, err := client.New(client.Config{BaseURL: s.creds.BaseURL, ClientID: s.creds.ClientID, ClientSecret: s.creds.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := preparePayment(t, ctx, sdk, "231770000002") // PROCESSING for --sandbox-long-delay, then COMPLETED
	sub := subscribe(t, ctx, s, p.key, p.sessionID, p.ref)
	p.execute(t, ctx, sdk)
	want := []string{"PENDING", "PROCESSING", "COMPLETED"}
	if got := sub.wait(t, 2); !equalStrings(got, want[:2]) {
		t.Fatalf("realtime before the partition: statuses %v, want %v", got, want[:2])
	}

	px.Partition()
	// Two Status API calls in the partition: each is answered, 503 with
	// Retry-After, within the request timeout (plus room for a loaded
	// machine). They hold the partition past the payment's completion time.
	for range 2 {
		start := time.Now()
		resp, body := getWithHeader(t, s.creds.BaseURL+"/v1/status/collection/"+p.ref, "Authorization", "Bearer "+api.Token)
		took := time.Since(start)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"Service Unavailable"`) {
			t.Fatalf("Status API in the partition: %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if took > requestTimeout+10*time.Second {
			t.Errorf("Status API in the partition answered after %s (request timeout %s)", took, requestTimeout)
		}
		t.Logf("Status API in the partition: 503 after %s", took.Round(time.Millisecond))
	}
	px.Heal()
	healed := time.Now()
	api.waitStatus(p.ref, "COMPLETED")
	t.Logf("Status API: COMPLETED %s after the partition healed", time.Since(healed).Round(time.Millisecond))
	if got := sub.wait(t, 3); !equalStrings(got, want) {
		t.Errorf("realtime after the partition: statuses %v, want %v", got, want)
	}
	t.Logf("realtime: COMPLETED %s after the partition healed", time.Since(healed).Round(time.Millisecond))
}
