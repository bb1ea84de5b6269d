package checkout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/sandbox"
	"github.com/dollr/dollr/sqlite"
	"github.com/dollr/dollr/token"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// handlerEnv is the checkout handler in front of a real SQLite store and the
// real API server, whose Collect it uses; sandbox jobs run only when the test
// says so, so every intermediate status can be observed.
type handlerEnv struct {
	t        *testing.T
	store    *sqlite.DB
	tokens   *token.Tokens
	api      *api.Server
	checkout *Handler
	srv      *httptest.Server
	clock    *clock
	bearer   string
	merchant *dollr.Merchant
}

const testSecret = "s3cret-for-tests"

func newHandlerEnv(t *testing.T) *handlerEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "dollr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	toks, err := token.Load(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now().UTC()}
	toks.Now = clk.Now
	a, err := api.New(api.Config{Store: db, Tokens: toks, Sandbox: &sandbox.Network{}, Now: clk.Now, BaseURL: "http://shop.test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Store: db, Tokens: toks, Collector: a, Sandbox: true, Now: clk.Now, BaseURL: "http://shop.test"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/checkout/", h)
	mux.Handle("/", a)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sum := sha256.Sum256([]byte(testSecret))
	m := &dollr.Merchant{Name: "Kofi's Kitchen", ClientID: "client-" + uuid.NewString()[:8], ClientSecretHash: hex.EncodeToString(sum[:])}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	e := &handlerEnv{t: t, store: db, tokens: toks, api: a, checkout: h, srv: srv, clock: clk, merchant: m}
	var tok api.ObtainTokenResponse
	e.do("POST", "/v1/jwt/client/obtain/token", map[string]string{"client_id": m.ClientID, "client_secret": testSecret}, http.StatusOK, &tok)
	e.bearer = tok.AccessToken
	return e
}

// secondServer is another server in front of the same store, as in a
// cluster: its own API and checkout handler (nothing shared in memory).
func (e *handlerEnv) secondServer(store dollr.Store) *handlerEnv {
	e.t.Helper()
	if store == nil {
		store = e.store
	}
	a, err := api.New(api.Config{Store: store, Tokens: e.tokens, Sandbox: &sandbox.Network{}, Now: e.clock.Now, BaseURL: "http://shop.test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		e.t.Fatal(err)
	}
	h, err := New(Config{Store: store, Tokens: e.tokens, Collector: a, Sandbox: true, Now: e.clock.Now, BaseURL: "http://shop.test"})
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/checkout/", h)
	mux.Handle("/", a)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	other := *e
	other.api, other.checkout, other.srv = a, h, srv
	return &other
}

// do sends a JSON request and decodes the answer, failing on another status.
func (e *handlerEnv) do(method, path string, body any, wantStatus int, out any) http.Header {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if e.bearer != "" && strings.HasPrefix(path, "/v1/") {
		req.Header.Set("Authorization", "Bearer "+e.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			if s, ok := out.(*string); ok {
				*s = string(b)
			} else {
				e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
	}
	return resp.Header
}

// hosted creates a HOSTED checkout through the API and returns its token.
func (e *handlerEnv) hosted(extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{
		"mode": "HOSTED", "source_kind": "INVOICE", "party_phone": "231771234567", "party_name": "Ama Mensah",
		"currency": "USD", "note": "Lunch order #42",
		"items": []map[string]any{{"name": "Jollof rice", "currency": "USD", "amount": 8.5}, {"name": "Ginger beer", "currency": "USD", "amount": 4}},
	}
	for k, v := range extra {
		body[k] = v
	}
	var resp struct {
		URL *string `json:"url"`
	}
	e.do("POST", "/v1/checkouts/create", body, http.StatusOK, &resp)
	if resp.URL == nil || !strings.HasPrefix(*resp.URL, "http://shop.test/checkout/hct_") {
		e.t.Fatalf("hosted url = %v", resp.URL)
	}
	return strings.TrimPrefix(*resp.URL, "http://shop.test/checkout/")
}

func (e *handlerEnv) get(path string) (*http.Response, string) {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// runJobs runs the sandbox jobs due now, one step each: the steps they
// schedule wait for the next call.
func (e *handlerEnv) runJobs() {
	e.t.Helper()
	r := &sandbox.Runner{Store: e.store, Now: e.clock.Now}
	jobs, err := e.store.ClaimJobs(context.Background(), e.clock.Now(), 10, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(jobs) == 0 {
		e.t.Fatal("no sandbox job is due")
	}
	for _, j := range jobs {
		if err := r.RunJob(context.Background(), j); err != nil {
			e.t.Fatal(err)
		}
	}
}

var scriptTag = regexp.MustCompile(`<script[^>]*>`)

func TestPageShowsTheCheckout(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	resp, body := e.get("/checkout/" + tok)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{"Kofi&#39;s Kitchen", "Jollof rice", "8.50 USD", "Ginger beer", "12.50 USD", "Lunch order #42", `data-state="form"`, "Sandbox"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self' ws://shop.test", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	// No inline script and nothing from another origin.
	for _, tag := range scriptTag.FindAllString(body, -1) {
		if !strings.Contains(tag, `src="/checkout/assets/`) {
			t.Errorf("script tag %s is inline or foreign", tag)
		}
	}
	if regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(body) {
		t.Error("page references another origin")
	}
	// Without JavaScript: a notice, and a form that posts to the page (so the
	// phone number never lands in the URL). One h1; one live region.
	for _, want := range []string{`<noscript><p id="nojs-pay" class="notice">JavaScript is required to pay.`,
		`<form id="pay-form" method="post" action="/checkout/` + tok + `" novalidate>`,
		`<div id="live" class="visually-hidden" role="status" aria-live="polite" aria-atomic="true"></div>`,
		`<html lang="en" class="no-js">`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if n := strings.Count(body, "<h1"); n != 1 {
		t.Errorf("%d h1 elements", n)
	}
	for _, asset := range []string{"realtime.js", "checkout.js", "checkout.css"} {
		r, b := e.get("/checkout/assets/" + asset)
		if r.StatusCode != http.StatusOK || len(b) < 100 {
			t.Errorf("asset %s: %d, %d bytes", asset, r.StatusCode, len(b))
		}
	}
}

func TestBadLinksShowAClearPage(t *testing.T) {
	e := newHandlerEnv(t)
	expiring := e.hosted(map[string]any{"expires_at": e.clock.Now().Add(time.Hour).Format(time.RFC3339)})
	e.clock.Add(2 * time.Hour)
	tests := []struct {
		name   string
		path   string
		status int
		title  string
	}{
		{"unknown token", "/checkout/hct_000000000000000000000000000000000000000000000000", 404, "Checkout link not found"},
		{"malformed token", "/checkout/%3Cscript%3E", 404, "Checkout link not found"},
		{"bare prefix", "/checkout/", 404, "Checkout link not found"},
		{"unknown sub-path", "/checkout/hct_x/nothing/here/at/all", 404, "Checkout link not found"},
		{"expired", "/checkout/" + expiring, 410, "This checkout link has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get(tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("content type %q", ct)
			}
			if !strings.Contains(body, tt.title) || strings.Contains(body, "goroutine") {
				t.Errorf("body does not explain %q:\n%s", tt.title, body)
			}
		})
	}
	// Paying through an expired link is refused too.
	var d detail
	e.do("POST", "/checkout/"+expiring+"/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_visa"}, http.StatusGone, &d)
	if !strings.Contains(d.Detail, "closed") {
		t.Errorf("detail %q", d.Detail)
	}
}

func TestPayMobileMoneyAndFollowIt(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	var pay PayResponse
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "+231 77 123 4567"}, http.StatusOK, &pay)
	if pay.Status.Status != dollr.StatusPending || pay.PayerAmount != 1250 || pay.PaymentMethod != "MTN_MOMO_LBR" || pay.SourceStatus != dollr.SourceProcessing {
		t.Fatalf("pay response %+v", pay)
	}
	if !validUUIDv4(pay.ReferenceID) {
		t.Fatalf("reference_id %q is not a UUID v4", pay.ReferenceID)
	}
	// The realtime key is the one the API would issue: scoped to this payment.
	claims, err := e.tokens.VerifyRealtime(pay.Realtime.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.SessionID != pay.SessionID || claims.ReferenceID != pay.ReferenceID || claims.SourceType != "INVOICE" {
		t.Fatalf("claims %+v for %+v", claims, pay)
	}
	if _, err := e.tokens.VerifyAnon(pay.Realtime.AnonKey); err != nil {
		t.Fatal(err)
	}
	if want := "payment-intent:" + itoa(pay.SessionID) + ":" + pay.ReferenceID; pay.Realtime.Channel != want || pay.Realtime.SupabaseURL != "http://shop.test" || pay.Realtime.ExpiresIn != 900 {
		t.Fatalf("realtime %+v", pay.Realtime)
	}

	// The merchant's own view agrees: the page's payment is a normal collection.
	var er api.ExecutionResponse
	e.do("GET", "/v1/status/collection/"+pay.ReferenceID, nil, http.StatusOK, &er)
	if er.Status != "PENDING" {
		t.Fatalf("merchant sees %+v", er)
	}

	// While it is in flight, paying again follows the same payment.
	var again PayResponse
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_visa"}, http.StatusOK, &again)
	if again.ReferenceID != pay.ReferenceID {
		t.Fatalf("second pay started %s while %s is in flight", again.ReferenceID, pay.ReferenceID)
	}
	resp, body := e.get("/checkout/" + tok)
	if resp.StatusCode != 200 || !strings.Contains(body, `data-state="watching"`) || !strings.Contains(body, pay.ReferenceID) {
		t.Fatalf("reloaded page does not follow the payment: %d", resp.StatusCode)
	}

	e.runJobs() // PENDING → PROCESSING
	var st Status
	e.do("GET", "/checkout/"+tok+"/status/"+pay.ReferenceID, nil, http.StatusOK, &st)
	if st.Status != dollr.StatusProcessing || st.GatewayMessage == nil || *st.GatewayMessage != sandbox.MsgAwaitingApproval {
		t.Fatalf("status %+v", st)
	}
	e.runJobs() // PROCESSING → COMPLETED
	hdr := e.do("GET", "/checkout/"+tok+"/status/"+pay.ReferenceID, nil, http.StatusOK, &st)
	if st.Status != dollr.StatusCompleted || st.SourceStatus != dollr.SourcePaid {
		t.Fatalf("status %+v", st)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("status is cacheable: %q", hdr.Get("Cache-Control"))
	}
	_, body = e.get("/checkout/" + tok)
	if !strings.Contains(body, `data-state="paid"`) {
		t.Fatal("paid source does not show the paid state")
	}
	var d detail
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_visa"}, http.StatusConflict, &d)

	// A fresh realtime key can be fetched for the page's own payment only.
	var rt Realtime
	e.do("POST", "/checkout/"+tok+"/key/"+pay.ReferenceID, nil, http.StatusOK, &rt)
	if c, err := e.tokens.VerifyRealtime(rt.AccessToken); err != nil || c.ReferenceID != pay.ReferenceID {
		t.Fatalf("renewed key: %+v, %v", c, err)
	}
}

func TestPayIsIdempotentOnReferenceID(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	ref := uuid.NewString()
	body := map[string]string{"method": "MOBILE_MONEY", "phone": "231771234567", "reference_id": ref}
	var first, second PayResponse
	e.do("POST", "/checkout/"+tok+"/pay", body, http.StatusOK, &first)
	e.do("POST", "/checkout/"+tok+"/pay", body, http.StatusOK, &second)
	if first.ReferenceID != ref || second.ReferenceID != ref || first.SessionID != second.SessionID {
		t.Fatalf("retry made another payment: %+v then %+v", first, second)
	}
	// Another source cannot claim this reference_id, nor read its status.
	other := e.hosted(nil)
	var d detail
	e.do("POST", "/checkout/"+other+"/pay", body, http.StatusUnprocessableEntity, &d)
	e.do("GET", "/checkout/"+other+"/status/"+ref, nil, http.StatusNotFound, &d)
	e.do("POST", "/checkout/"+other+"/key/"+ref, nil, http.StatusNotFound, &d)
	e.do("GET", "/checkout/"+tok+"/status/"+uuid.NewString(), nil, http.StatusNotFound, &d)
}

func TestFailedPaymentCanBeRetried(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	var pay PayResponse
	// 03: the sandbox's unregistered number fails in the execute response.
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234503"}, http.StatusOK, &pay)
	if pay.Status.Status != dollr.StatusFailed || pay.GatewayMessage == nil || *pay.GatewayMessage != sandbox.MsgInvalidAccount {
		t.Fatalf("pay %+v", pay)
	}
	_, body := e.get("/checkout/" + tok)
	if !strings.Contains(body, `data-state="form"`) || !strings.Contains(body, "Your last attempt failed: "+sandbox.MsgInvalidAccount) {
		t.Fatal("page after a failure does not offer a retry with the reason")
	}
	var retry PayResponse
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234567"}, http.StatusOK, &retry)
	if retry.ReferenceID == pay.ReferenceID || retry.SessionID == pay.SessionID || retry.Status.Status != dollr.StatusPending {
		t.Fatalf("retry %+v reuses %+v", retry, pay)
	}
}

func TestCardThreeDSecure(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(map[string]any{"source_kind": "ORDER"})
	var pay PayResponse
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_threeDSecureRequired"}, http.StatusOK, &pay)
	if !pay.RequiresAction || pay.ClientSecret == "" || pay.SourceType != dollr.SourceOrder {
		t.Fatalf("pay %+v", pay)
	}
	var st Status
	e.do("GET", "/checkout/"+tok+"/status/"+pay.ReferenceID, nil, http.StatusOK, &st)
	if st.ClientSecret != pay.ClientSecret {
		t.Fatal("status does not carry the client secret while 3-D Secure is pending")
	}
	// The page answers through the API's public sandbox endpoint.
	var er api.ExecutionResponse
	e.do("POST", "/v1/sandbox/3ds/"+pay.ClientSecret, map[string]string{"outcome": "succeed"}, http.StatusOK, &er)
	st = Status{}
	e.do("GET", "/checkout/"+tok+"/status/"+pay.ReferenceID, nil, http.StatusOK, &st)
	if st.Status != dollr.StatusCompleted || st.RequiresAction || st.ClientSecret != "" {
		t.Fatalf("status after 3DS %+v", st)
	}
}

func TestPayRejectsBadInput(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	var d detail
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "12"}, http.StatusUnprocessableEntity, &d)
	if !strings.Contains(d.Detail, "country code") {
		t.Errorf("detail %q", d.Detail)
	}
	e.do("POST", "/checkout/"+tok+"/pay", strings.Repeat("x", maxBody+1), http.StatusRequestEntityTooLarge, &d)
	e.do("POST", "/checkout/hct_nope0000/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_visa"}, http.StatusNotFound, &d)

	// What a cross-site form could send is refused before anything happens.
	resp, err := http.Post(e.srv.URL+"/checkout/"+tok+"/pay", "text/plain", strings.NewReader(`{"method":"CARD","payment_method_id":"pm_card_visa"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain pay: status %d", resp.StatusCode)
	}
	if _, err := e.store.LatestExecutionForSource(context.Background(), 1, 1); !dollr.IsNotFound(err) {
		t.Errorf("a refused pay created a payment: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestConcurrentPaysStartOnePayment(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	const n = 10
	refs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, _ := json.Marshal(map[string]string{"method": "MOBILE_MONEY", "phone": "231771234567"})
			resp, err := http.Post(e.srv.URL+"/checkout/"+tok+"/pay", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var pay PayResponse
			if err := json.NewDecoder(resp.Body).Decode(&pay); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("pay %d: %d %v", i, resp.StatusCode, err)
			}
			refs[i] = pay.ReferenceID
		})
	}
	wg.Wait()
	for i := range refs {
		if refs[i] != refs[0] {
			t.Fatalf("double click started two payments: %q", refs)
		}
	}
	e.checkout.payMu.Lock()
	left := len(e.checkout.payLocks)
	e.checkout.payMu.Unlock()
	if left != 0 {
		t.Errorf("%d pay locks left behind", left)
	}
}

// The pay form sent without JavaScript reaches the page's POST, which reads
// nothing, starts nothing and explains.
func TestPayFormWithoutJavaScript(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	resp, err := http.PostForm(e.srv.URL+"/checkout/"+tok, url.Values{"method": {"MOBILE_MONEY"}, "phone": {"231771234567"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"<h1 id=\"error-title\">JavaScript is required to pay</h1>", "Nothing was sent and nothing was charged.",
		`<a id="error-link" class="secondary" href="/checkout/` + tok + `">Back to the checkout</a>`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "231771234567") {
		t.Error("the page repeats the phone number")
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("no CSP")
	}
	if _, err := e.store.LatestExecutionForSource(context.Background(), 1, 1); !dollr.IsNotFound(err) {
		t.Errorf("the form post started a payment: %v", err)
	}
	resp, err = http.PostForm(e.srv.URL+"/checkout/hct_"+strings.Repeat("0", 48), url.Values{"phone": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown link: %d", resp.StatusCode)
	}
}

// Messages name the source's own kind, and amounts follow the currency.
func TestWordingFollowsTheSource(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(map[string]any{"source_kind": "ORDER", "currency": "RWF",
		"items": []map[string]any{{"name": "Isombe", "currency": "RWF", "amount": 12000}, {"name": "Fanta", "currency": "RWF", "amount": 500}}})
	_, body := e.get("/checkout/" + tok)
	for _, want := range []string{`<p class="total" id="total">12,500 RWF</p>`, "12,000 RWF", "500 RWF", "Pay 12,500 RWF",
		`data-kind="order"`, `data-currency="RWF"`, `data-currency-digits="0"`, `aria-label="Order summary"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// Pay by card, let the sandbox finish, then pay again: 409 names the order.
	var pay PayResponse
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_visa"}, http.StatusOK, &pay)
	for i := 0; ; i++ {
		var st Status
		e.do("GET", "/checkout/"+tok+"/status/"+pay.ReferenceID, nil, http.StatusOK, &st)
		if st.Status == dollr.StatusCompleted {
			break
		}
		if i == 5 || st.Status.Terminal() {
			t.Fatalf("card payment: %+v", st)
		}
		e.clock.Add(time.Minute)
		e.runJobs()
	}
	var d detail
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "CARD", "payment_method_id": "pm_card_visa"}, http.StatusConflict, &d)
	if d.Detail != "This order is already paid." {
		t.Errorf("409 detail %q", d.Detail)
	}
	if got := canceledPage(&dollr.Source{Type: dollr.SourceOrder}).Message; !strings.HasPrefix(got, "The merchant canceled this order,") {
		t.Errorf("canceled message %q", got)
	}
	if got := canceledPage(&dollr.Source{Type: dollr.SourceInvoice}).Message; !strings.HasPrefix(got, "The merchant canceled this invoice,") {
		t.Errorf("canceled message %q", got)
	}
}

// A 422 names the field it is about, so the page can mark it.
func TestPayErrorsNameTheField(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	for _, tt := range []struct {
		body  map[string]string
		field string
		msg   string
	}{
		{map[string]string{"method": "MOBILE_MONEY", "phone": "12"}, "phone", "Enter your mobile money number with its country code, e.g. 231 77 123 4567."},
		{map[string]string{"method": "MOBILE_MONEY", "phone": "14155550123"}, "phone", "Mobile money is available for Liberian (+231) and Rwandan (+250) numbers."},
		{map[string]string{"method": "MOBILE_MONEY", "phone": "231771234567", "network": "AIRTEL_RWA"}, "network", "This network does not serve +231 numbers."},
		{map[string]string{"method": "CARD"}, "payment_method_id", "Choose a card."},
		{map[string]string{"method": "CHEQUE"}, "method", "Choose mobile money or card."},
	} {
		var got errorBody
		e.do("POST", "/checkout/"+tok+"/pay", tt.body, http.StatusUnprocessableEntity, &got)
		if got.Field != tt.field || got.Detail != tt.msg {
			t.Errorf("%v: %+v, want field %q detail %q", tt.body, got, tt.field, tt.msg)
		}
	}
}

// TestPayAttemptsBounded: anyone with the link can press Pay, and each new
// payment may prompt a phone, so a source takes at most maxAttempts new
// payments per window; a retried request is not a new attempt.
func TestPayAttemptsBounded(t *testing.T) {
	e := newHandlerEnv(t)
	// Two servers on one store: the bound is the store's, not a process's.
	servers := []*handlerEnv{e, e.secondServer(nil)}
	tok := e.hosted(nil)
	var last PayResponse
	for i := range maxAttempts {
		if i > 0 {
			e.clock.Add(time.Minute)
		}
		// 03: the sandbox's unregistered number fails at once, so the
		// source is free for the next attempt.
		servers[i%2].do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234503"}, http.StatusOK, &last)
		if last.Status.Status != dollr.StatusFailed {
			t.Fatalf("attempt %d: %+v", i, last)
		}
	}
	// Retrying the last request (lost response) is not a new attempt.
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234503", "reference_id": last.ReferenceID}, http.StatusOK, nil)
	for _, srv := range servers {
		var refused errorBody
		h := srv.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234567"}, http.StatusTooManyRequests, &refused)
		// The first attempt leaves the window a minute from now.
		if h.Get("Retry-After") != "60" {
			t.Fatalf("Retry-After %q, want 60", h.Get("Retry-After"))
		}
		if refused.Detail != "Too many payment attempts for this invoice. Try again in 1 minute." {
			t.Fatalf("detail %q", refused.Detail)
		}
	}
	// Another source is not affected.
	e.do("POST", "/checkout/"+e.hosted(nil)+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234503"}, http.StatusOK, nil)
	// Once the first attempt has left the window, one more is allowed, then not.
	e.clock.Add(time.Minute)
	servers[1].do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234503"}, http.StatusOK, nil)
	e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234503"}, http.StatusTooManyRequests, nil)
}

// raceStore runs before once, just before the first read of a source's
// recent payments: after the pay handler's in-flight check, before it starts
// its own payment.
type raceStore struct {
	dollr.Store
	before func()
	once   sync.Once
}

func (s *raceStore) RecentExecutionTimes(ctx context.Context, merchantID, sourceID int64, n int) ([]time.Time, error) {
	s.once.Do(s.before)
	return s.Store.RecentExecutionTimes(ctx, merchantID, sourceID, n)
}

// Two servers, two payers pressing Pay on one link at the same moment: one
// payment starts, and both see it.
func TestPayRaceAcrossServers(t *testing.T) {
	e := newHandlerEnv(t)
	tok := e.hosted(nil)
	rs := &raceStore{Store: e.store}
	a := e.secondServer(rs)
	var first PayResponse
	rs.before = func() {
		e.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234567"}, http.StatusOK, &first)
	}
	var second PayResponse
	a.do("POST", "/checkout/"+tok+"/pay", map[string]string{"method": "MOBILE_MONEY", "phone": "231771234568"}, http.StatusOK, &second)
	if first.ReferenceID == "" || second.ReferenceID != first.ReferenceID {
		t.Fatalf("second payer got %q, want the payment in flight %q", second.ReferenceID, first.ReferenceID)
	}
	ctx := context.Background()
	ex, err := e.store.Execution(ctx, e.merchant.ID, first.ReferenceID)
	if err != nil {
		t.Fatal(err)
	}
	times, err := e.store.RecentExecutionTimes(ctx, e.merchant.ID, ex.SourceID, 10)
	if err != nil || len(times) != 1 {
		t.Fatalf("%d payments against the source (%v), want 1", len(times), err)
	}
}

func TestAttemptWait(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var recent []time.Time // newest first, one a minute from t0
	for i := range maxAttempts {
		recent = append([]time.Time{t0.Add(time.Duration(i) * time.Minute)}, recent...)
		if _, ok := attemptWait(recent[1:], t0.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	now := t0.Add(attemptWindow - 30*time.Second) // all ten still within the window
	if wait, ok := attemptWait(recent, now); ok || wait != 30*time.Second {
		t.Fatalf("attempt %d: ok %v, wait %v", maxAttempts, ok, wait)
	}
	if _, ok := attemptWait(recent, t0.Add(attemptWindow)); !ok {
		t.Fatal("refused after the oldest attempt left the window")
	}
}

func TestLoggedPathHidesToken(t *testing.T) {
	for in, want := range map[string]string{
		"/checkout/hct_3e84372b41d14902b0f0635329a10f42/pay": "/checkout/hct_3e84372b…/pay",
		"/checkout/hct_3e84372b41d14902b0f0635329a10f42":     "/checkout/hct_3e84372b…",
		"/checkout/static/app.js":                            "/checkout/static/app.js",
		"/elsewhere":                                         "/elsewhere",
	} {
		if got := loggedPath(httptest.NewRequest("GET", in, nil)); got != want {
			t.Errorf("loggedPath(%s) = %s, want %s", in, got, want)
		}
	}
}

// Every request leaves one access-log line, a refused Pay included, with the
// link's token cut short.
func TestAccessLog(t *testing.T) {
	e := newHandlerEnv(t)
	var logs bytes.Buffer
	h, err := New(Config{Store: e.store, Tokens: e.tokens, Collector: e.api, Sandbox: true, Now: e.clock.Now, BaseURL: "http://shop.test",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.hosted(nil)
	req := httptest.NewRequest("POST", "/checkout/"+tok+"/pay", strings.NewReader(`{"method":"MOBILE_MONEY","phone":"12"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := logs.String()
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(out, `msg="checkout request" method=POST`) || !strings.Contains(out, "status=422") {
		t.Fatalf("status %d; access log:\n%s", rec.Code, out)
	}
	if strings.Contains(out, tok) || !strings.Contains(out, tok[:12]+"…/pay") {
		t.Errorf("the link's token is not cut short in the log:\n%s", out)
	}
}
