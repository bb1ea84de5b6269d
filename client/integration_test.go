package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/netproxy"
)

// Sandbox payer phones (docs/sandbox.md): the last two digits pick the outcome.
const (
	phoneCompletes = "231770000010"
	phoneFails     = "231770000001" // PROCESSING, then FAILED (insufficient funds)
	phoneSlow      = "231770000002" // completes after --sandbox-long-delay
)

// prepared is a collection ready to execute.
type prepared struct {
	checkout *CheckoutResponse
	session  *CheckoutSession
	account  *PaymentAccount
	request  CollectionRequest
}

// prepareMoMo creates a checkout, a session and a mobile-money account for phone.
func prepareMoMo(t *testing.T, ctx context.Context, c *Client, phone string) prepared {
	t.Helper()
	src, err := c.CreateCheckout(ctx, CheckoutRequest{
		Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice, PartyPhone: phone, PartyName: "SDK Payer",
		Currency: "USD", Items: []Item{{Name: "SDK test", Currency: "USD", Amount: 1250}},
	})
	if err != nil {
		t.Fatalf("CreateCheckout: %v", err)
	}
	sess, err := c.CreateCheckoutSession(ctx, CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		t.Fatalf("CreateCheckoutSession: %v", err)
	}
	acct, err := c.CreatePaymentAccount(ctx, dollr.OperationCollection, PaymentAccountRequest{
		AccountName: "SDK MoMo", Provider: dollr.ProviderPawapay, Method: "MTN_MOMO_LBR", PartyID: src.PartyID,
		CountryCode: "LR", InsensitiveAccountNumber: phone,
	})
	if err != nil {
		t.Fatalf("CreatePaymentAccount: %v", err)
	}
	return prepared{checkout: src, session: sess, account: acct, request: CollectionRequest{
		SessionID: sess.ID, PaymentAccountID: acct.ID, Currency: "USD", ReferenceID: uuid.NewString(),
	}}
}

// updates records WaitForCollection's callbacks.
type updates struct {
	mu        sync.Mutex
	list      []Update
	fallbacks []error
}

func (u *updates) options(o WaitOptions) WaitOptions {
	o.OnUpdate = func(up Update) { u.mu.Lock(); u.list = append(u.list, up); u.mu.Unlock() }
	o.OnFallback = func(err error) { u.mu.Lock(); u.fallbacks = append(u.fallbacks, err); u.mu.Unlock() }
	return o
}

func (u *updates) String() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var b strings.Builder
	for _, x := range u.list {
		fmt.Fprintf(&b, "[%s %s %q] ", x.Via, x.Status, x.GatewayMessage)
	}
	fmt.Fprintf(&b, "fallbacks %v", u.fallbacks)
	return b.String()
}

func (u *updates) check(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := 1; i < len(u.list); i++ {
		a, b := u.list[i-1], u.list[i]
		if a.Status == b.Status && a.GatewayMessage == b.GatewayMessage && a.RequiresAction == b.RequiresAction {
			t.Errorf("update %d repeats update %d: %s", i, i-1, u)
		}
		if statusRank(b.Status) < statusRank(a.Status) {
			t.Errorf("update %d goes backwards: %s", i, u)
		}
	}
}

func (u *updates) sawVia(via string, status dollr.ExecutionStatus) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, x := range u.list {
		if x.Via == via && x.Status == status {
			return true
		}
	}
	return false
}

func TestEndpoints(t *testing.T) {
	srv := startServer(t)
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, 2*time.Minute)

	p := prepareMoMo(t, ctx, c, phoneCompletes)
	if p.checkout.SourceID <= 0 || p.checkout.PartyID <= 0 || p.checkout.SourceType != dollr.SourceInvoice ||
		p.checkout.TotalAmount != 1250 || p.checkout.Currency != "USD" || p.checkout.SourceNumber == "" {
		t.Errorf("checkout %+v", p.checkout)
	}
	if p.session.ID <= 0 || p.session.SourceID != p.checkout.SourceID || p.session.Status != dollr.SessionActive || p.session.ExpiresAt.IsZero() {
		t.Errorf("session %+v", p.session)
	}
	if p.account.ID <= 0 || !p.account.IsActive || p.account.CountryCode != "LR" || p.account.Method != "MTN_MOMO_LBR" {
		t.Errorf("account %+v", p.account)
	}

	ex, err := c.ExecuteCollection(ctx, p.request)
	if err != nil {
		t.Fatalf("ExecuteCollection: %v", err)
	}
	if ex.ReferenceID != p.request.ReferenceID || ex.Status.Terminal() || ex.PayerAmount != 1250 ||
		ex.OperationType != dollr.OperationCollection || ex.PayerCurrency != "USD" {
		t.Errorf("execution %+v", ex)
	}
	// The same reference_id again is the same attempt, not a second payment.
	again, err := c.ExecuteCollection(ctx, p.request)
	if err != nil || again.ReferenceID != ex.ReferenceID {
		t.Errorf("replayed execute: %+v, %v", again, err)
	}
	st, err := c.CollectionStatus(ctx, p.request.ReferenceID)
	if err != nil || st.ReferenceID != p.request.ReferenceID {
		t.Fatalf("CollectionStatus: %+v, %v", st, err)
	}
	key, err := c.CreateRealtimeKey(ctx, RealtimeKeyRequest{SessionID: p.session.ID, SourceType: dollr.SourceInvoice, ReferenceID: p.request.ReferenceID})
	if err != nil || key.AccessToken == "" || key.ExpiresIn <= 0 {
		t.Errorf("CreateRealtimeKey: %+v, %v", key, err)
	}
	final, err := c.WaitForCollection(ctx, p.request.ReferenceID, WaitOptions{RealtimeWindow: -1, PollInterval: 100 * time.Millisecond})
	if err != nil || final.Status != dollr.StatusCompleted {
		t.Fatalf("WaitForCollection: %+v, %v", final, err)
	}
	src, err := c.SourceStatus(ctx, dollr.SourceInvoice, p.checkout.SourceID)
	if err != nil || src.Status != dollr.SourcePaid || src.PaidAt == nil || src.TotalAmount != 1250 {
		t.Errorf("SourceStatus: %+v, %v", src, err)
	}

	hosted, err := c.CreateCheckout(ctx, CheckoutRequest{
		Mode: dollr.ModeHosted, SourceKind: dollr.SourceOrder, PartyPhone: phoneCompletes, Currency: "USD",
		Items: []Item{{Name: "Hosted", Currency: "USD", Amount: 500}}, SuccessURL: "https://shop.example/ok",
	})
	if err != nil || hosted.URL == "" || hosted.SourceType != dollr.SourceOrder || hosted.SuccessURL != "https://shop.example/ok" {
		t.Errorf("hosted checkout: %+v, %v", hosted, err)
	}
}

func TestCard3DS(t *testing.T) {
	srv := startServer(t)
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, 2*time.Minute)
	src, err := c.CreateCheckout(ctx, CheckoutRequest{Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice,
		PartyPhone: phoneCompletes, Currency: "USD", Items: []Item{{Name: "Card", Currency: "USD", Amount: 999}}})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.CreateCheckoutSession(ctx, CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := c.CreatePaymentAccount(ctx, "", PaymentAccountRequest{AccountName: "Card", Provider: dollr.ProviderStripe,
		Method: dollr.MethodCreditCard, PartyID: src.PartyID, PaymentMethodID: "pm_card_threeDSecure2Required"})
	if err != nil {
		t.Fatal(err)
	}
	ref := uuid.NewString()
	ex, err := c.ExecuteCollection(ctx, CollectionRequest{SessionID: sess.ID, PaymentAccountID: acct.ID, Currency: "USD", ReferenceID: ref})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.RequiresAction || ex.ClientSecret == "" || ex.Status != dollr.StatusProcessing {
		t.Fatalf("execution %+v, want PROCESSING requiring action with a client secret", ex)
	}
	if _, err := c.CompleteSandbox3DS(ctx, "pi_bogus_secret_bogus", Sandbox3DSSucceed); StatusCode(err) < 400 {
		t.Errorf("3DS with a bogus secret: %v", err)
	}
	if _, err := c.CompleteSandbox3DS(ctx, ex.ClientSecret, Sandbox3DSSucceed); err != nil {
		t.Fatalf("CompleteSandbox3DS: %v", err)
	}
	final, err := c.WaitForCollection(ctx, ref, WaitOptions{SessionID: sess.ID, PollInterval: 100 * time.Millisecond})
	if err != nil || final.Status != dollr.StatusCompleted || final.RequiresAction {
		t.Fatalf("final %+v, %v", final, err)
	}
}

func TestAPIErrors(t *testing.T) {
	srv := startServer(t)
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, time.Minute)

	_, err := c.CollectionStatus(ctx, uuid.NewString())
	var ae *APIError
	if !IsNotFound(err) || !errors.As(err, &ae) || ae.Detail == "" {
		t.Errorf("unknown reference: %v", err)
	}
	p := prepareMoMo(t, ctx, c, phoneCompletes)
	bad := p.request
	bad.ReferenceID = "not-a-uuid"
	_, err = c.ExecuteCollection(ctx, bad)
	if StatusCode(err) != 422 || !errors.As(err, &ae) || !ae.HasField("reference_id") {
		t.Errorf("bad reference_id: %v", err)
	}
	bad = p.request
	bad.SessionID = 999999
	_, err = c.ExecuteCollection(ctx, bad)
	if StatusCode(err) != 422 || !errors.As(err, &ae) || !ae.HasField("session_id") {
		t.Errorf("unknown session: %v", err)
	}

	wrong, err := New(Config{BaseURL: srv.Creds.BaseURL, ClientID: srv.Creds.ClientID, ClientSecret: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.CollectionStatus(ctx, uuid.NewString())
	if StatusCode(err) != 401 || !errors.As(err, &ae) || ae.Detail == "" {
		t.Errorf("wrong secret: %v", err)
	}
}

func TestTokenCache(t *testing.T) {
	srv := startServer(t, "--access-token-ttl", "60m")
	c, counter := newTestClient(t, srv)
	ctx := testContext(t, time.Minute)
	var mu sync.Mutex
	now := time.Now()
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	status := func() {
		t.Helper()
		if _, err := c.CollectionStatus(ctx, uuid.NewString()); !IsNotFound(err) {
			t.Fatalf("CollectionStatus: %v", err)
		}
	}

	status()
	status()
	if n := counter.tokens.Load(); n != 1 {
		t.Fatalf("%d token requests for two calls, want 1", n)
	}
	advance(54 * time.Minute) // 6 minutes left: still cached
	status()
	if n := counter.tokens.Load(); n != 1 {
		t.Fatalf("%d token requests with 6 minutes left, want 1", n)
	}
	advance(2 * time.Minute) // 4 minutes left: renewed, by concurrent callers, once
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(status)
	}
	wg.Wait()
	if n := counter.tokens.Load(); n != 2 {
		t.Fatalf("%d token requests after renewal by 16 concurrent callers, want 2", n)
	}

	// A token the server refuses is replaced once and the call retried.
	c.mu.Lock()
	c.token = "not-a-valid-token"
	c.mu.Unlock()
	status()
	if n := counter.tokens.Load(); n != 3 {
		t.Fatalf("%d token requests after a 401, want 3", n)
	}
}

func TestWaitForCollectionRealtime(t *testing.T) {
	srv := startServer(t, "--sandbox-delay", "4s")
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, 2*time.Minute)

	for _, tt := range []struct {
		phone string
		want  dollr.ExecutionStatus
	}{{phoneCompletes, dollr.StatusCompleted}, {phoneFails, dollr.StatusFailed}} {
		t.Run(string(tt.want), func(t *testing.T) {
			p := prepareMoMo(t, ctx, c, tt.phone)
			if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
				t.Fatal(err)
			}
			var u updates
			final, err := c.WaitForCollection(ctx, p.request.ReferenceID, u.options(WaitOptions{SessionID: p.session.ID, SourceType: dollr.SourceInvoice}))
			if err != nil {
				t.Fatalf("WaitForCollection: %v (%s)", err, &u)
			}
			if final.Status != tt.want || final.ReferenceID != p.request.ReferenceID || final.GatewayMessage == "" {
				t.Errorf("final %+v", final)
			}
			if !u.sawVia(ViaRealtime, tt.want) || len(u.fallbacks) > 0 {
				t.Errorf("want %s over realtime and no fallback; got %s", tt.want, &u)
			}
			u.check(t)
		})
	}
}

func TestWaitForCollectionRealtimeOutage(t *testing.T) {
	srv := startServer(t)
	ctx := testContext(t, 2*time.Minute)
	// Realtime goes through a proxy the test cuts once the subscription is up.
	proxy := netproxy.Start(t, strings.TrimPrefix(srv.Creds.SupabaseURL, "http://"))
	c, _ := newTestClient(t, srv)
	c.cfg.SupabaseURL = "http://" + proxy.Addr()
	p := prepareMoMo(t, ctx, c, phoneSlow)
	if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
		t.Fatal(err)
	}
	var u updates
	opts := u.options(WaitOptions{SessionID: p.session.ID, PollInterval: 200 * time.Millisecond, MaxPollInterval: time.Second})
	record := opts.OnUpdate
	opts.OnUpdate = func(up Update) {
		record(up)
		proxy.SetCut(true) // the first update comes after SUBSCRIBED
	}
	final, err := c.WaitForCollection(ctx, p.request.ReferenceID, opts)
	if err != nil || final.Status != dollr.StatusCompleted {
		t.Fatalf("final %+v, %v (%s)", final, err, &u)
	}
	u.mu.Lock()
	fallbacks := u.fallbacks
	u.mu.Unlock()
	if len(fallbacks) != 1 || !strings.Contains(fallbacks[0].Error(), string(ChannelError)) {
		t.Errorf("fallbacks %v, want one CHANNEL_ERROR", fallbacks)
	}
	if !u.sawVia(ViaStatusAPI, dollr.StatusCompleted) {
		t.Errorf("the final status did not come from polling: %s", &u)
	}
	u.check(t)
}

func TestWaitForCollectionKeyRefused(t *testing.T) {
	srv := startServer(t)
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, time.Minute)
	p := prepareMoMo(t, ctx, c, phoneCompletes)
	if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
		t.Fatal(err)
	}
	var u updates
	// The session's source is an INVOICE: a key for ORDER is refused.
	final, err := c.WaitForCollection(ctx, p.request.ReferenceID, u.options(WaitOptions{
		SessionID: p.session.ID, SourceType: dollr.SourceOrder, PollInterval: 100 * time.Millisecond}))
	if err != nil || final.Status != dollr.StatusCompleted {
		t.Fatalf("final %+v, %v (%s)", final, err, &u)
	}
	if len(u.fallbacks) != 1 || StatusCode(u.fallbacks[0]) != 422 {
		t.Errorf("fallbacks %v, want one refused realtime key", u.fallbacks)
	}
	u.check(t)
}

func TestWaitForCollectionEnds(t *testing.T) {
	srv := startServer(t)
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, time.Minute)

	_, err := c.WaitForCollection(ctx, uuid.NewString(), WaitOptions{})
	if !IsNotFound(err) {
		t.Errorf("unknown reference: %v, want not found", err)
	}

	p := prepareMoMo(t, ctx, c, phoneSlow)
	if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = c.WaitForCollection(short, p.request.ReferenceID, WaitOptions{SessionID: p.session.ID})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
}

// TestRealtimeConnManyChannels joins two collections' channels on one socket
// to the real server and sees each get only its own rows.
func TestRealtimeConnManyChannels(t *testing.T) {
	srv := startServer(t)
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, time.Minute)
	conn, err := DialRealtime(ctx, srv.Creds.SupabaseURL, RealtimeOptions{APIKey: srv.Creds.SupabaseAnonKey})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type got struct {
		ref string
		ev  *PostgresChange
	}
	events := make(chan got, 64)
	var refs []string
	for range 2 {
		p := prepareMoMo(t, ctx, c, phoneCompletes)
		ref := p.request.ReferenceID
		refs = append(refs, ref)
		key, err := c.CreateRealtimeKey(ctx, RealtimeKeyRequest{SessionID: p.session.ID, SourceType: dollr.SourceInvoice, ReferenceID: ref})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		opts := rec.options(key.AccessToken, PostgresChangesFilter{Event: "*", Schema: "public", Table: dollr.PublicStatusTable, Filter: "reference_id=eq." + ref})
		opts.OnChange = func(ev *PostgresChange) { events <- got{ref, ev} }
		if _, err := conn.Join(fmt.Sprintf("payment-intent:%d:%s", p.session.ID, ref), opts); err != nil {
			t.Fatal(err)
		}
		if s := rec.status(t); s.s != ChannelSubscribed {
			t.Fatalf("join: %s %v", s.s, s.err)
		}
		if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
			t.Fatal(err)
		}
	}
	completed := map[string]bool{}
	for len(completed) < 2 {
		select {
		case g := <-events:
			if g.ev.Record["reference_id"] != g.ref {
				t.Fatalf("channel for %s got a row of %v", g.ref, g.ev.Record["reference_id"])
			}
			if g.ev.Record["status"] == string(dollr.StatusCompleted) {
				completed[g.ref] = true
			}
		case <-ctx.Done():
			t.Fatalf("completed %v of %v", completed, refs)
		}
	}
}

// TestWaitForCollectionRenewsKey: realtime keys shorter than the payment are
// renewed and pushed as access_token, so the channel outlives them.
func TestWaitForCollectionRenewsKey(t *testing.T) {
	srv := startServer(t, "--realtime-key-ttl", "6s", "--sandbox-delay", "10s")
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, 2*time.Minute)
	p := prepareMoMo(t, ctx, c, phoneCompletes)
	if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
		t.Fatal(err)
	}
	var u updates
	final, err := c.WaitForCollection(ctx, p.request.ReferenceID, u.options(WaitOptions{SessionID: p.session.ID}))
	if err != nil || final.Status != dollr.StatusCompleted {
		t.Fatalf("final %+v, %v (%s)", final, err, &u)
	}
	if !u.sawVia(ViaRealtime, dollr.StatusCompleted) || len(u.fallbacks) > 0 {
		t.Errorf("want COMPLETED over realtime after two key renewals, no fallback; got %s", &u)
	}
}

// staleFinalTransport answers the first Status API call that would say
// COMPLETED with PROCESSING, as a read racing the commit's visibility can.
type staleFinalTransport struct {
	base  http.RoundTripper
	stale atomic.Bool
}

func (s *staleFinalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	if err != nil || !strings.Contains(r.URL.Path, "/v1/status/collection/") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if bytes.Contains(body, []byte(`"status":"COMPLETED"`)) && s.stale.CompareAndSwap(false, true) {
		body = bytes.Replace(body, []byte(`"status":"COMPLETED"`), []byte(`"status":"PROCESSING"`), 1)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// TestWaitForCollectionUnconfirmedFinal: realtime says COMPLETED, the Status
// API does not agree yet; the wait polls until it does instead of waiting on a
// channel that has nothing more to send.
func TestWaitForCollectionUnconfirmedFinal(t *testing.T) {
	srv := startServer(t, "--sandbox-delay", "4s") // COMPLETED well after SUBSCRIBED
	ctx := testContext(t, 2*time.Minute)
	c, _ := newTestClient(t, srv)
	transport := &staleFinalTransport{base: http.DefaultTransport}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: transport}
	p := prepareMoMo(t, ctx, c, phoneCompletes)
	if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
		t.Fatal(err)
	}
	var u updates
	opts := u.options(WaitOptions{SessionID: p.session.ID, RealtimeWindow: 90 * time.Second,
		PollInterval: 100 * time.Millisecond, MaxPollInterval: 200 * time.Millisecond})
	final, err := c.WaitForCollection(ctx, p.request.ReferenceID, opts)
	if err != nil || final.Status != dollr.StatusCompleted {
		t.Fatalf("final %+v, %v (%s)", final, err, &u)
	}
	if !transport.stale.Load() {
		t.Fatal("no Status API answer was made stale; the test proves nothing")
	}
	u.mu.Lock()
	fallbacks := u.fallbacks
	u.mu.Unlock()
	if len(fallbacks) != 1 || !strings.Contains(fallbacks[0].Error(), "the Status API still says PROCESSING") {
		t.Errorf("fallbacks %v, want one naming the unconfirmed final status", fallbacks)
	}
	if !u.sawVia(ViaRealtime, dollr.StatusCompleted) {
		t.Errorf("want COMPLETED over realtime first (then confirmed by polling): %s", &u)
	}
}
