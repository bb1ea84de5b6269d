package checkout

// End-to-end tests in real headless Chromium (Debian's chromium package)
// against the real `dollr serve`. Run them alone with
//
//	go test -race -run Browser ./checkout/
//
// and set DOLLR_SCREENSHOTS=1 to refresh docs/screenshots/*.png.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
)

// Phone-sized viewport (CSS pixels) for every page.
const phoneWidth, phoneHeight = 390, 844

// observer is injected before any page script runs: it records CSP
// violations, which the page itself never sees.
const observer = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});`

type browser struct {
	t      *testing.T
	ctx    context.Context
	origin string

	mu       sync.Mutex
	requests []string // every URL the page requested, WebSockets included
	problems []string // uncaught exceptions and console errors
}

// newBrowser starts a fresh headless Chromium, stopped at cleanup.
func newBrowser(t *testing.T, origin string) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		requireCI(t, "chromium is not installed (apt-get install -y chromium)")
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// The machine's network is closed: keep Chromium from calling home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(phoneWidth, phoneHeight),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, origin: origin}
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: observer})
			return err
		}),
		chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait),
	)
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	sockets := chromedp.Events(ctx, network.WebSocketCreated)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			b.record(&b.requests, ev.Request.URL)
		}
	}()
	go func() {
		for ev, err := range sockets {
			if err != nil {
				return
			}
			b.record(&b.requests, ev.URL)
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.record(&b.problems, "exception: "+msg)
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.record(&b.problems, "console.error: "+strings.Join(parts, " "))
			}
		}
	}()
	return b
}

func (b *browser) record(list *[]string, s string) {
	b.mu.Lock()
	*list = append(*list, s)
	b.mu.Unlock()
}

// run runs actions with a deadline.
func (b *browser) run(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("chromium: %v\npage: %s", err, b.describe())
	}
}

// eval evaluates expr into out; errors (e.g. mid-navigation) are returned.
func eval[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// dataset returns the checkout element's data-* attributes.
func (b *browser) dataset() map[string]string {
	m, err := eval[map[string]string](b, `(function () {
		var el = document.getElementById("checkout") || document.querySelector("main");
		return el ? Object.assign({}, el.dataset) : {};
	})()`)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return m
}

func (b *browser) text(sel string) string {
	s, _ := eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
	return strings.TrimSpace(s)
}

func (b *browser) describe() string {
	url, _ := eval[string](b, `location.href`)
	d, _ := json.Marshal(b.dataset())
	errs := strings.TrimSpace(b.text("#pay-error") + " " + b.text("#challenge-error"))
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("url=%s data=%s errors=%q problems=%q", url, d, errs, b.problems)
}

// waitFor polls a JavaScript condition until it is true.
func (b *browser) waitFor(timeout time.Duration, what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := eval[bool](b, cond)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s (%s)\npage: %s", timeout, what, cond, b.describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) waitState(timeout time.Duration, state string) {
	b.t.Helper()
	b.waitFor(timeout, "data-state "+state, fmt.Sprintf(`(document.getElementById("checkout") || {dataset: {}}).dataset.state === %q`, state))
}

// screenshot saves a full-page PNG: into docs/screenshots when
// DOLLR_SCREENSHOTS is set, else into the test's temporary directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot %s is not a PNG", name)
	}
	dir := b.t.TempDir()
	if os.Getenv("DOLLR_SCREENSHOTS") != "" {
		dir = filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// checkClean fails on CSP violations, script errors and any request that
// left the page's origin.
func (b *browser) checkClean() {
	b.t.Helper()
	v, err := eval[[]string](b, `window.__cspViolations || []`)
	if err == nil && len(v) > 0 {
		b.t.Errorf("CSP violations: %q", v)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("page problem: %s", p)
	}
	wsOrigin := "ws" + strings.TrimPrefix(b.origin, "http")
	for _, u := range b.requests {
		if !strings.HasPrefix(u, b.origin+"/") && !strings.HasPrefix(u, wsOrigin+"/") && !strings.HasPrefix(u, "data:") {
			b.t.Errorf("request left the origin %s: %s", b.origin, u)
		}
	}
}

// payByPhone fills in the mobile-money form and pays.
func (b *browser) payByPhone(phone string) {
	b.t.Helper()
	b.waitState(10*time.Second, "form")
	b.run(10*time.Second,
		chromedp.WaitVisible("#phone"),
		chromedp.SendKeys("#phone", phone),
		chromedp.Click("#pay-button"),
	)
}

func TestBrowserMobileMoneyPaidLive(t *testing.T) {
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	success := s.URL + "/__test/merchant/thanks?order=42"
	s.proxy.extra.HandleFunc("/__test/merchant/thanks", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>Thanks</title><h1>Back at the shop</h1>")
	})
	link := s.hostedCheckout(map[string]any{"success_url": success, "cancel_url": s.URL + "/__test/merchant/cart"})

	b.run(15*time.Second, chromedp.Navigate(link))
	if got := b.text("#total"); got != "USD 12.50" {
		t.Fatalf("total %q", got)
	}
	b.screenshot("checkout-form.png")
	start := time.Now()
	b.payByPhone("+231 77 123 4567")
	b.waitState(10*time.Second, "watching")
	b.waitFor(10*time.Second, "the realtime subscription", `document.getElementById("checkout").dataset.realtime === "subscribed"`)
	b.waitState(20*time.Second, "paid")
	t.Logf("pay click to paid screen: %v (sandbox delay 1s)", time.Since(start).Round(time.Millisecond))

	d := b.dataset()
	// The status reached the page over realtime, without a reload and without polling.
	if !strings.Contains(d["history"], "COMPLETED:realtime") || d["polling"] != "false" {
		t.Fatalf("final status did not come over realtime: %v", d)
	}
	if n := s.proxy.count("status"); n != 1 {
		t.Errorf("page read the status endpoint %d times; want exactly 1 (confirming the realtime final status)", n)
	}
	if got := b.text("#result-detail"); got != "Thank you! USD 12.50 was paid to Sandbox merchant." {
		t.Errorf("result %q", got)
	}
	if got := b.text("#redirect-note"); !strings.Contains(got, "Taking you back to Sandbox merchant") {
		t.Errorf("redirect note %q", got)
	}
	b.screenshot("checkout-paid.png")
	b.checkClean()

	// Then the customer is sent to success_url.
	b.waitFor(15*time.Second, "the redirect to success_url", fmt.Sprintf(`location.href === %q`, success))
	if got := b.text("h1"); got != "Back at the shop" {
		t.Errorf("success page shows %q", got)
	}
}

func TestBrowserWaitingForApproval(t *testing.T) {
	// 02: the sandbox's slow approver keeps the payment waiting on the phone.
	s := startServer(t, serverOptions{sandboxLongDelay: time.Minute})
	b := newBrowser(t, s.URL)
	b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(nil)))
	b.payByPhone("231771234502")
	b.waitFor(10*time.Second, "the approval prompt",
		`document.getElementById("progress-title").textContent === "Waiting for approval on your phone" && document.getElementById("checkout").dataset.status === "PROCESSING"`)
	if got := b.text("#progress-detail"); !strings.Contains(got, "USD 12.50") {
		t.Errorf("detail %q", got)
	}
	b.screenshot("checkout-waiting.png")

	// A reload finds the payment in flight and follows it, never offering
	// to pay twice: a fresh realtime key, a new subscription.
	ref := b.dataset()["referenceId"]
	b.run(15*time.Second, chromedp.Reload())
	b.waitState(10*time.Second, "watching")
	b.waitFor(10*time.Second, "the resubscription", `document.getElementById("checkout").dataset.realtime === "subscribed"`)
	d := b.dataset()
	if d["referenceId"] != ref || b.text("#progress-title") != "Waiting for approval on your phone" {
		t.Fatalf("after reload: %v, title %q", d, b.text("#progress-title"))
	}
	if n := s.proxy.count("key"); n != 1 {
		t.Errorf("%d realtime key requests after the reload, want 1", n)
	}
	b.checkClean()
}

func TestBrowserMobileMoneyFailureShowsReason(t *testing.T) {
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(nil)))
	b.payByPhone("231771234501") // the sandbox's insufficient funds
	b.waitState(20*time.Second, "failed")
	want := "Payment failed: Insufficient funds in the payer's mobile money account"
	if got := b.text("#result-title") + ": " + b.text("#result-detail"); got != want {
		t.Fatalf("result %q, want %q", got, want)
	}
	if d := b.dataset(); !strings.Contains(d["history"], "FAILED:realtime") {
		t.Errorf("failure did not come over realtime: %v", d)
	}
	b.screenshot("checkout-failed.png")
	b.checkClean()

	// Trying again starts a new payment (new session, new reference_id).
	first := b.dataset()["referenceId"]
	b.run(10*time.Second, chromedp.Click("#retry-button"))
	b.waitState(5*time.Second, "form")
	if got := b.text("#last-failure"); !strings.Contains(got, "Insufficient funds") {
		t.Errorf("retry form shows %q", got)
	}
	b.run(10*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById("phone").value = ""`))
	b.payByPhone("231771234567")
	b.waitState(20*time.Second, "paid")
	if second := b.dataset()["referenceId"]; second == first || second == "" {
		t.Errorf("retry reused reference %s", first)
	}
}

func TestBrowserFailureReturnsToCancelURL(t *testing.T) {
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	cancelURL := s.URL + "/__test/merchant/cart"
	s.proxy.extra.HandleFunc("/__test/merchant/cart", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>Cart</title><h1>Your cart</h1>")
	})
	b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(map[string]any{"cancel_url": cancelURL})))
	b.payByPhone("231771234503") // unregistered number: fails in the execute response
	b.waitState(10*time.Second, "failed")
	if got := b.text("#result-title") + ": " + b.text("#result-detail"); got != "Payment failed: Invalid account: the mobile money number is not registered" {
		t.Errorf("result %q", got)
	}
	b.checkClean()
	b.waitFor(15*time.Second, "the redirect to cancel_url", fmt.Sprintf(`location.href === %q`, cancelURL))
}

func TestBrowserPollingWhenRealtimeIsCut(t *testing.T) {
	// 02 completes after the long delay, leaving time to cut realtime first.
	s := startServer(t, serverOptions{sandboxLongDelay: 8 * time.Second})
	b := newBrowser(t, s.URL)
	b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(nil)))
	b.payByPhone("231771234502")
	b.waitFor(10*time.Second, "the realtime subscription", `document.getElementById("checkout").dataset.realtime === "subscribed"`)
	b.waitFor(10*time.Second, "PROCESSING", `document.getElementById("checkout").dataset.status === "PROCESSING"`)
	s.proxy.Cut()
	b.waitFor(10*time.Second, "the fallback to polling", `document.getElementById("checkout").dataset.polling === "true"`)
	if d := b.dataset(); !strings.HasPrefix(d["pollReason"], "CHANNEL_ERROR") {
		t.Errorf("polling started for %q, want CHANNEL_ERROR", d["pollReason"])
	}
	b.waitState(30*time.Second, "paid")
	d := b.dataset()
	if !strings.Contains(d["history"], "COMPLETED:poll") {
		t.Fatalf("final status did not come from polling: %v", d)
	}
	if n := s.proxy.count("status"); n < 2 {
		t.Errorf("only %d status reads while polling", n)
	}
	b.screenshot("checkout-paid-by-polling.png")
	b.checkClean()
}

func TestBrowserPollingAfterSilentRealtime(t *testing.T) {
	// The WebSocket connects at TCP level but never answers: no error ever
	// arrives, so only the guide's "no final status after N seconds" rule
	// can save the page. The proxy shortens the page's 30 s window to 3 s.
	s := startServer(t, serverOptions{})
	s.proxy.silent.Store(true)
	shorten := func(html string) string {
		return strings.Replace(html, `data-fallback-ms="30000"`, `data-fallback-ms="3000"`, 1)
	}
	s.proxy.rewrite.Store(&shorten)
	b := newBrowser(t, s.URL)
	b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(nil)))
	if d := b.dataset(); d["fallbackMs"] != "3000" {
		t.Fatalf("fallback window not shortened: %v", d)
	}
	b.payByPhone("231771234567")
	b.waitState(30*time.Second, "paid")
	d := b.dataset()
	if !strings.HasPrefix(d["pollReason"], "no final status after 3 s") || !strings.Contains(d["history"], "COMPLETED:poll") {
		t.Fatalf("page did not fall back after its window: %v", d)
	}
	b.checkClean()
}

func TestBrowserCardThreeDSecure(t *testing.T) {
	s := startServer(t, serverOptions{})
	for _, tt := range []struct {
		name, button, state, detail, shot string
	}{
		{"approve", "#challenge-approve", "paid", "Paid: Thank you! USD 12.50 was paid to Sandbox merchant.", "checkout-paid-card.png"},
		{"fail", "#challenge-fail", "failed", "Payment failed: 3-D Secure authentication failed", "checkout-failed-3ds.png"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, s.URL)
			b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(map[string]any{"source_kind": "ORDER"})))
			b.waitState(10*time.Second, "form")
			b.run(10*time.Second,
				chromedp.Click(`input[name=method][value=CARD]`),
				chromedp.WaitVisible("#card-fields"),
				chromedp.Click(`input[value=pm_card_threeDSecureRequired]`),
				chromedp.Click("#pay-button"),
			)
			b.waitState(10*time.Second, "challenge")
			if tt.name == "approve" {
				b.screenshot("checkout-3ds.png")
			}
			b.run(10*time.Second, chromedp.Click(tt.button))
			b.waitState(20*time.Second, tt.state)
			if got := b.text("#result-title") + ": " + b.text("#result-detail"); got != tt.detail {
				t.Errorf("result %q, want %q", got, tt.detail)
			}
			b.screenshot(tt.shot)
			b.checkClean()
		})
	}
}

func TestBrowserBadLinks(t *testing.T) {
	s := startServer(t, serverOptions{})
	b := newBrowser(t, s.URL)
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(s.URL+"/checkout/hct_"+strings.Repeat("0", 48)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusNotFound {
		t.Errorf("status %d", resp.Status)
	}
	if got := b.text("#error-title"); got != "Checkout link not found" {
		t.Errorf("title %q", got)
	}
	b.screenshot("checkout-not-found.png")
	b.checkClean()
}

// TestBrowserSupabaseJSSnippet runs the guide's snippet, as documented, with
// the real @supabase/supabase-js in Chromium against the realtime server.
func TestBrowserSupabaseJSSnippet(t *testing.T) {
	bundle, err := filepath.Abs(filepath.Join("..", "conformance", "node_modules", "@supabase", "supabase-js", "dist", "umd", "supabase.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bundle); err != nil {
		requireCI(t, "supabase-js is not installed: run npm ci in conformance/ (%v)", err)
	}
	s := startServer(t, serverOptions{})
	s.proxy.extra.HandleFunc("/__test/supabase.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, bundle)
	})
	s.proxy.extra.HandleFunc("/__test/snippet.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, snippetPage)
	})
	b := newBrowser(t, s.URL)

	// The merchant's server side: source, session, payment account, the
	// reference_id persisted first, then a realtime key for it.
	var src struct {
		SourceID int64 `json:"source_id"`
		PartyID  int64 `json:"party_id"`
	}
	s.call("POST", "/v1/checkouts/create", map[string]any{
		"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": "231771234567", "currency": "USD",
		"items": []map[string]any{{"name": "Jollof rice", "currency": "USD", "amount": 12.5}},
	}, &src)
	var sess struct {
		ID int64 `json:"id"`
	}
	s.call("POST", "/v1/sessions/checkout", map[string]any{"source_id": src.SourceID, "source_type": "INVOICE"}, &sess)
	var acct struct {
		ID int64 `json:"id"`
	}
	s.call("POST", "/v1/payment-accounts/create?operation_type=COLLECTION", map[string]any{
		"account_name": "Ama Mensah", "provider": "PAWAPAY", "method": "MTN_MOMO_LBR", "party_id": src.PartyID,
		"country_code": "LR", "insensitive_account_number": "231771234567",
	}, &acct)
	ref := uuid.NewString()
	var key struct {
		AccessToken string `json:"access_token"`
	}
	s.call("POST", "/v1/realtime-keys/collection", map[string]any{"session_id": sess.ID, "source_type": "INVOICE", "reference_id": ref}, &key)

	frag := fmt.Sprintf("url=%s&anon=%s&key=%s&session=%d&ref=%s", s.creds.SupabaseURL, s.creds.SupabaseAnonKey, key.AccessToken, sess.ID, ref)
	b.run(15*time.Second, chromedp.Navigate(s.URL+"/__test/snippet.html#"+frag))
	b.waitFor(15*time.Second, "SUBSCRIBED from supabase-js", `(window.__statuses || []).indexOf("SUBSCRIBED") >= 0`)

	s.call("POST", "/v1/executions/collection", map[string]any{
		"session_id": fmt.Sprint(sess.ID), "payment_account_id": fmt.Sprint(acct.ID), "currency": "USD", "reference_id": ref,
	}, nil)
	b.waitFor(20*time.Second, "COMPLETED in payload.new",
		`(window.__rows || []).some(function (r) { return r.status === "COMPLETED"; })`)
	rows, err := eval[[]map[string]any](b, `window.__rows`)
	if err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	if last["reference_id"] != ref || last["status"] != "COMPLETED" || last["payer_amount"] != 12.5 || last["session_id"] != float64(sess.ID) {
		t.Errorf("last payload.new %v", last)
	}
	statuses, _ := eval[[]string](b, `window.__statuses`)
	for _, st := range statuses {
		if st != "SUBSCRIBED" {
			t.Errorf("supabase-js reported %s (all: %v)", st, statuses)
		}
	}
	b.checkClean()
}

// snippetPage is the realtime guide's supabase-js snippet (dollr-api.md
// §7.3), unchanged but for where its inputs come from.
const snippetPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>supabase-js snippet</title>
<script src="/__test/supabase.js"></script>
</head><body>
<script type="module">
const p = new URLSearchParams(location.hash.slice(1));
const SUPABASE_URL = p.get("url");
const SUPABASE_ANON_KEY = p.get("anon");
const realtimeKey = { access_token: p.get("key") };
const sessionId = p.get("session");
const referenceId = p.get("ref");
window.__statuses = [];
window.__rows = [];
const fallbackToPolling = () => { window.__fallback = true; };

const supabase = window.supabase.createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
  auth: { autoRefreshToken: false, persistSession: false },
  accessToken: async () => realtimeKey.access_token,
});
supabase.realtime.setAuth(realtimeKey.access_token);

supabase
  .channel(` + "`payment-intent:${sessionId}:${referenceId}`" + `)
  .on("postgres_changes", {
    event: "*",
    schema: "public",
    table: "checkout_payment_intent_public_status",
    filter: ` + "`reference_id=eq.${referenceId}`" + `,
  }, (payload) => {
    const row = payload.new;
    window.__rows.push(row);
  })
  .subscribe((status) => {
    window.__statuses.push(status);
    if (status === "CHANNEL_ERROR") fallbackToPolling();
  });
</script>
</body></html>`
