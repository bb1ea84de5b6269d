package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/internal/servetest"
	"github.com/dollr/dollr/nats/natstest"
)

// TestServeNATSFanOut runs two `dollr serve` on one PostgreSQL database with
// one NATS server: only the first captures changes from the replication
// slot, yet a realtime subscriber on either server sees the payment go
// PENDING → PROCESSING → COMPLETED live.
func TestServeNATSFanOut(t *testing.T) {
	ns := natstest.Start(t)
	first := newInstallation(t, backends.Postgres)
	second := installation{dataDir: filepath.Join(t.TempDir(), "data"), databaseURL: first.databaseURL}
	a := startServe(t, first, "--nats-url", ns.URL, "--sandbox-long-delay", "5s")
	b := startServe(t, second, "--nats-url", ns.URL, "--sandbox-long-delay", "5s")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(client.Config{BaseURL: a.creds.BaseURL, ClientID: a.creds.ClientID, ClientSecret: a.creds.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	p := preparePayment(t, ctx, c, "231770000010") // completes after --sandbox-delay
	onA := subscribe(t, ctx, a, p.key, p.sessionID, p.ref)
	onB := subscribe(t, ctx, b, p.key, p.sessionID, p.ref)
	p.execute(t, ctx, c)
	want := []string{"PENDING", "PROCESSING", "COMPLETED"}
	for name, sub := range map[string]*statusRecorder{"A (first)": onA, "B (second)": onB} {
		if got := sub.wait(t, len(want)); !equalStrings(got, want) {
			t.Errorf("realtime on server %s: statuses %v, want %v", name, got, want)
		}
	}
	// The capturer published the three transactions; both servers read them.
	servetest.WaitFor(t, serveWait, func() error {
		published := metric(t, a.URL, `dollr_nats_batches_published_total{result="stored"}`) +
			metric(t, b.URL, `dollr_nats_batches_published_total{result="stored"}`)
		if published < 3 {
			return fmt.Errorf("%v batches published, want at least 3", published)
		}
		for _, s := range []*serverProc{a, b} {
			if n := metric(t, s.URL, "dollr_nats_batches_received_total"); n < 3 {
				return fmt.Errorf("%s received %v batches, want at least 3", s.URL, n)
			}
		}
		return nil
	})

	// Failover: the capturer dies with a payment in flight; the second
	// server takes over the slot and its subscriber sees the payment finish.
	slow := preparePayment(t, ctx, c, "231770000002") // PROCESSING until --sandbox-long-delay
	onB = subscribe(t, ctx, b, slow.key, slow.sessionID, slow.ref)
	slow.execute(t, ctx, c)
	if got := onB.wait(t, 2); !equalStrings(got, want[:2]) {
		t.Fatalf("realtime on server B: statuses %v, want %v", got, want[:2])
	}
	a.Kill()
	if got := onB.wait(t, 3); !equalStrings(got, want) {
		t.Errorf("realtime on server B after A was killed: statuses %v, want %v", got, want)
	}
}

// payment is a collection ready to execute, with a realtime key for it.
type payment struct {
	sessionID, accountID int64
	ref, key             string
}

func preparePayment(t *testing.T, ctx context.Context, c *client.Client, phone string) payment {
	t.Helper()
	src, err := c.CreateCheckout(ctx, client.CheckoutRequest{Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice,
		PartyPhone: phone, Currency: "USD", Items: []client.Item{{Name: "Rice", Currency: "USD", Amount: 1250}}})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.CreateCheckoutSession(ctx, client.CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := c.CreatePaymentAccount(ctx, dollr.OperationCollection, client.PaymentAccountRequest{AccountName: "MoMo",
		Provider: dollr.ProviderPawapay, Method: "MTN_MOMO_LBR", PartyID: src.PartyID, CountryCode: "LR", InsensitiveAccountNumber: phone})
	if err != nil {
		t.Fatal(err)
	}
	p := payment{sessionID: sess.ID, accountID: acct.ID, ref: uuid.NewString()}
	key, err := c.CreateRealtimeKey(ctx, client.RealtimeKeyRequest{SessionID: sess.ID, SourceType: src.SourceType, ReferenceID: p.ref})
	if err != nil {
		t.Fatal(err)
	}
	p.key = key.AccessToken
	return p
}

func (p payment) execute(t *testing.T, ctx context.Context, c *client.Client) {
	t.Helper()
	if _, err := c.ExecuteCollection(ctx, client.CollectionRequest{SessionID: p.sessionID, PaymentAccountID: p.accountID,
		Currency: "USD", ReferenceID: p.ref}); err != nil {
		t.Fatal(err)
	}
}

// statusRecorder records the statuses of one payment's realtime events.
type statusRecorder struct {
	mu       sync.Mutex
	statuses []string
	changed  chan struct{}
}

func (r *statusRecorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.statuses...)
}

// wait returns the statuses once there are n, or fails after serveWait.
func (r *statusRecorder) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.NewTimer(serveWait)
	defer deadline.Stop()
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("after %s, realtime statuses %v", serveWait, r.snapshot())
		}
	}
}

// subscribe joins the payment's channel on server s as the hosted checkout
// page does, and records its events' statuses.
func subscribe(t *testing.T, ctx context.Context, s *serverProc, accessToken string, sessionID int64, ref string) *statusRecorder {
	t.Helper()
	conn, err := client.DialRealtime(ctx, s.URL, client.RealtimeOptions{APIKey: s.creds.SupabaseAnonKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &statusRecorder{changed: make(chan struct{}, 1)}
	joined := make(chan error, 1)
	_, err = conn.Join(fmt.Sprintf("payment-intent:%d:%s", sessionID, ref), client.ChannelOptions{
		AccessToken: accessToken,
		PostgresChanges: []client.PostgresChangesFilter{{Event: "*", Schema: dollr.PublicSchema, Table: dollr.PublicStatusTable,
			Filter: "reference_id=eq." + ref}},
		OnStatus: func(st client.ChannelStatus, err error) {
			if st != client.ChannelSubscribed && err == nil {
				err = fmt.Errorf("channel %s", st)
			}
			select {
			case joined <- err:
			default:
			}
		},
		OnChange: func(ev *client.PostgresChange) {
			r.mu.Lock()
			st := fmt.Sprint(ev.Record["status"])
			if n := len(r.statuses); n == 0 || r.statuses[n-1] != st { // a provider message repeats the status
				r.statuses = append(r.statuses, st)
			}
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-joined:
		if err != nil {
			t.Fatalf("join on %s: %v", s.URL, err)
		}
	case <-ctx.Done():
		t.Fatalf("join on %s: %v", s.URL, ctx.Err())
	}
	return r
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// metric reads one sample of the server's /metrics (0 if absent).
func metric(t *testing.T, baseURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestServeNATSFlag(t *testing.T) {
	out, err := exec.Command(servetest.Build(t), "serve", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-nats-url") || !strings.Contains(string(out), "DOLLR_NATS_URL") {
		t.Fatalf("dollr serve --help does not explain --nats-url: %v\n%s", err, out)
	}
	// An unreachable NATS server is a start-up error, not a silent
	// single-node mode.
	cmd := servetest.Command(t, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--nats-url", "nats://127.0.0.1:1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "nats") {
		t.Fatalf("dollr serve with an unreachable NATS: %v\n%s", err, out)
	}
}
