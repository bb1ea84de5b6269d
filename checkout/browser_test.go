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
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
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
	return attachTab(t, ctx, origin)
}

// newTab opens another tab in the same browser (same profile, so the same
// sessionStorage rules as a person's second tab), closed at cleanup.
func (b *browser) newTab() *browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	return attachTab(b.t, ctx, b.origin)
}

// attachTab sets up a tab: phone viewport, CSP observer, and the recorders
// of requests and page problems.
func attachTab(t *testing.T, ctx context.Context, origin string) *browser {
	t.Helper()
	b := &browser{t: t, ctx: ctx, origin: origin}
	err := chromedp.Do(ctx,
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

// payByCard3DS pays by the sandbox card that asks for 3-D Secure and waits
// for the challenge.
func (b *browser) payByCard3DS() {
	b.t.Helper()
	b.waitState(10*time.Second, "form")
	b.run(10*time.Second,
		chromedp.Click(`input[name=method][value=CARD]`),
		chromedp.WaitVisible("#card-fields"),
		chromedp.Click(`input[value=pm_card_threeDSecureRequired]`),
		chromedp.Click("#pay-button"),
	)
	b.waitState(10*time.Second, "challenge")
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
	if got := b.text("#total"); got != "12.50 USD" {
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
	if got := b.text("#result-detail"); got != "Thank you! 12.50 USD was paid to Sandbox merchant." {
		t.Errorf("result %q", got)
	}
	if got := b.text("#redirect-note"); !strings.Contains(got, "Taking you back to Sandbox merchant") {
		t.Errorf("redirect note %q", got)
	}
	// Announced through the live region, and focused.
	if got := b.text("#live"); !strings.HasPrefix(got, "Paid. Thank you! 12.50 USD was paid to Sandbox merchant. Taking you back") {
		t.Errorf("live region %q", got)
	}
	if id, _ := eval[string](b, `document.activeElement.id`); id != "result-title" {
		t.Errorf("focus on #%s, want #result-title", id)
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
	if id, _ := eval[string](b, `document.activeElement.id`); id != "progress-title" {
		t.Errorf("after Pay the focus is on #%s, want #progress-title", id)
	}
	if got := b.text("#progress-detail"); !strings.Contains(got, "12.50 USD") {
		t.Errorf("detail %q", got)
	}
	b.screenshot("checkout-waiting.png")

	// A reload finds the payment in flight and follows it, never offering
	// to pay twice: a fresh realtime key, a new subscription.
	ref := b.dataset()["referenceId"]
	b.run(15*time.Second, chromedp.Reload())
	b.waitState(10*time.Second, "watching")
	b.waitFor(10*time.Second, "the resubscription", `document.getElementById("checkout").dataset.realtime === "subscribed"`)
	// This tab's own payment: resumed as it was, not shown as another tab's.
	b.waitFor(10*time.Second, "the resumed approval prompt", `document.getElementById("progress-title").textContent === "Waiting for approval on your phone"`)
	d := b.dataset()
	if d["referenceId"] != ref || d["elsewhere"] != "false" {
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

// A failure never sends the payer away: the page offers "Try again" and a
// separate link back to the merchant's cancel_url, and waits for a choice.
func TestBrowserFailureLetsThePayerChoose(t *testing.T) {
	s := startServer(t, serverOptions{})
	// A short redirect delay, so that "no redirect" is checked well past it.
	const redirectMs = 300
	shorten := func(html string) string {
		return strings.Replace(html, `data-redirect-ms="4000"`, fmt.Sprintf(`data-redirect-ms="%d"`, redirectMs), 1)
	}
	s.proxy.rewrite.Store(&shorten)
	b := newBrowser(t, s.URL)
	cancelURL := s.URL + "/__test/merchant/cart"
	s.proxy.extra.HandleFunc("/__test/merchant/cart", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>Cart</title><h1>Your cart</h1>")
	})
	link := s.hostedCheckout(map[string]any{"cancel_url": cancelURL})
	b.run(15*time.Second, chromedp.Navigate(link))
	if d := b.dataset(); d["redirectMs"] != fmt.Sprint(redirectMs) {
		t.Fatalf("redirect delay not shortened: %v", d)
	}
	b.payByPhone("231771234503") // unregistered number: fails in the execute response
	b.waitState(10*time.Second, "failed")
	if got := b.text("#result-title") + ": " + b.text("#result-detail"); got != "Payment failed: Invalid account: the mobile money number is not registered" {
		t.Errorf("result %q", got)
	}
	// The final state is announced and focused.
	b.waitFor(5*time.Second, "the focus on the result heading", `document.activeElement && document.activeElement.id === "result-title"`)
	if got := b.text("#live"); !strings.HasPrefix(got, "Payment failed. Invalid account") {
		t.Errorf("live region %q", got)
	}
	// Both ways on are offered; nothing counts down.
	visible := `(function (id) { var el = document.getElementById(id); return !!el && !el.hidden && el.getClientRects().length > 0; })`
	for _, id := range []string{"retry-button", "return-link"} {
		if ok, _ := eval[bool](b, visible+`("`+id+`")`); !ok {
			t.Errorf("#%s is not shown", id)
		}
	}
	if ok, _ := eval[bool](b, visible+`("redirect-note")`); ok {
		t.Errorf("a redirect note is shown: %q", b.text("#redirect-note"))
	}
	if href, _ := eval[string](b, `document.getElementById("return-link").href`); href != cancelURL || b.text("#return-link") != "Return to Sandbox merchant" {
		t.Errorf("return link %q %q", href, b.text("#return-link"))
	}
	// Still on the failed screen at five times the redirect delay.
	b.run(5*time.Second, chromedp.Evaluate[chromedp.Void](`window.__failedSeenAt = performance.now()`))
	b.waitFor(10*time.Second, "five redirect delays to pass",
		fmt.Sprintf(`performance.now() - window.__failedSeenAt > %d`, 5*redirectMs))
	if got, _ := eval[string](b, `location.href`); got != link || b.dataset()["state"] != "failed" {
		t.Fatalf("the page left the failed screen on its own: %s %v", got, b.dataset())
	}
	b.checkClean()

	// The payer chooses to go back.
	b.run(10*time.Second, chromedp.Click("#return-link"))
	b.waitFor(15*time.Second, "the merchant's cart", fmt.Sprintf(`location.href === %q`, cancelURL))
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
		{"approve", "#challenge-approve", "paid", "Paid: Thank you! 12.50 USD was paid to Sandbox merchant.", "checkout-paid-card.png"},
		{"fail", "#challenge-fail", "failed", "Payment failed: 3-D Secure authentication failed", "checkout-failed-3ds.png"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, s.URL)
			b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(map[string]any{"source_kind": "ORDER"})))
			b.payByCard3DS()
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

// cssColor parses a computed "rgb(r, g, b)" or "rgba(r, g, b, a)" colour.
func cssColor(t *testing.T, s string) [3]float64 {
	t.Helper()
	var c [3]float64
	inner := strings.TrimSuffix(s[strings.IndexByte(s, '(')+1:], ")")
	parts := strings.Split(inner, ",")
	if len(parts) < 3 {
		t.Fatalf("colour %q", s)
	}
	for i := range c {
		if _, err := fmt.Sscan(strings.TrimSpace(parts[i]), &c[i]); err != nil {
			t.Fatalf("colour %q: %v", s, err)
		}
	}
	return c
}

// contrastRatio is WCAG 2's contrast ratio of two opaque colours.
func contrastRatio(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			v /= 255
			if v <= 0.03928 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// fieldState is how a form field presents itself to assistive technology.
type fieldState struct {
	Invalid     string `json:"invalid"`
	DescribedBy string `json:"describedBy"`
	Focused     bool   `json:"focused"`
}

func (b *browser) field(id string) fieldState {
	b.t.Helper()
	f, err := eval[fieldState](b, fmt.Sprintf(`(function (el) {
		return {invalid: el.getAttribute("aria-invalid") || "", describedBy: el.getAttribute("aria-describedby") || "",
			focused: document.activeElement === el};
	})(document.getElementById(%q))`, id))
	if err != nil {
		b.t.Fatalf("field %s: %v", id, err)
	}
	return f
}

// TestBrowserAccessibility checks what a screen-reader or keyboard user
// relies on: one h1, a live region present from the start whose text
// changes in place, invalid fields marked, described and focused, the focus
// on the status heading after Pay, and field borders that can be seen.
func TestBrowserAccessibility(t *testing.T) {
	s := startServer(t, serverOptions{sandboxLongDelay: time.Minute})
	b := newBrowser(t, s.URL)
	b.run(15*time.Second, chromedp.Navigate(s.hostedCheckout(nil)))
	b.waitState(10*time.Second, "form")

	type pageFacts struct {
		H1           []string `json:"h1"`
		Live         string   `json:"live"`
		LiveText     string   `json:"liveText"`
		LiveRendered bool     `json:"liveRendered"`
		Border       string   `json:"border"`
		SelectBorder string   `json:"selectBorder"`
		Background   string   `json:"background"`
		PanelBg      string   `json:"panelBg"`
	}
	facts, err := eval[pageFacts](b, `(function () {
		var live = document.getElementById("live");
		window.__live = live;
		var css = function (id, p) { return getComputedStyle(document.getElementById(id))[p]; };
		return {
			h1: Array.prototype.map.call(document.querySelectorAll("h1"), function (h) { return h.textContent.trim(); }),
			live: live ? live.getAttribute("role") + " " + live.getAttribute("aria-live") : "",
			liveText: live ? live.textContent : "?",
			liveRendered: !!live && !live.closest("[hidden]") && getComputedStyle(live).display !== "none" && getComputedStyle(live).visibility !== "hidden",
			border: css("phone", "borderTopColor"),
			selectBorder: css("network", "borderTopColor"),
			background: css("phone", "backgroundColor"),
			panelBg: css("pay-panel", "backgroundColor")
		};
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	if len(facts.H1) != 1 || facts.H1[0] != "Pay Sandbox merchant" {
		t.Errorf("h1 elements %q, want one", facts.H1)
	}
	if facts.Live != "status polite" || facts.LiveText != "" || !facts.LiveRendered {
		t.Errorf("live region at load: %+v", facts)
	}
	for _, border := range []string{facts.Border, facts.SelectBorder} {
		for _, bg := range []string{facts.Background, facts.PanelBg} {
			if r := contrastRatio(cssColor(t, border), cssColor(t, bg)); r < 3 {
				t.Errorf("field border %s on %s: contrast %.2f:1, want at least 3:1 (WCAG 1.4.11)", border, bg, r)
			}
		}
	}

	// An empty number, checked in the page.
	b.run(10*time.Second, chromedp.Click("#pay-button"))
	b.waitFor(5*time.Second, "the empty-number error", `document.getElementById("pay-error").textContent === "Enter your mobile money number."`)
	if f := b.field("phone"); f != (fieldState{"true", "pay-error", true}) {
		t.Errorf("phone after an empty submit: %+v", f)
	}

	// A number the server refuses (422 with its field): the focus goes back
	// from the Pay button to the phone.
	b.run(10*time.Second, chromedp.SendKeys("#phone", "12"))
	if f := b.field("phone"); f.Invalid != "" {
		t.Errorf("typing did not clear aria-invalid: %+v", f)
	}
	b.run(10*time.Second, chromedp.Click("#pay-button"))
	b.waitFor(10*time.Second, "the server's phone error",
		`document.getElementById("pay-error").textContent === "Enter your mobile money number with its country code, e.g. 231 77 123 4567."`)
	if f := b.field("phone"); f != (fieldState{"true", "pay-error", true}) {
		t.Errorf("phone after a 422: %+v", f)
	}

	// A network of another country: the network is the invalid field.
	b.run(10*time.Second,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("phone").value = ""`),
		chromedp.SendKeys("#phone", "231771234502"),
		chromedp.SetValue("#network", "AIRTEL_RWA"),
		chromedp.Click("#pay-button"))
	b.waitFor(10*time.Second, "the network error", `document.getElementById("pay-error").textContent === "This network does not serve +231 numbers."`)
	if f := b.field("network"); f != (fieldState{"true", "pay-error", true}) {
		t.Errorf("network after a 422: %+v", f)
	}
	if f := b.field("phone"); f.Invalid != "" || f.DescribedBy != "" {
		t.Errorf("phone still marked invalid: %+v", f)
	}

	// Pay: the focus moves to the status heading, and the status is written
	// into the live region that was there from the start.
	b.run(10*time.Second, chromedp.SetValue("#network", ""), chromedp.Click("#pay-button"))
	b.waitFor(10*time.Second, "the approval prompt in the live region",
		`document.getElementById("live").textContent.indexOf("Waiting for approval on your phone.") === 0`)
	b.waitFor(5*time.Second, "the focus on the status heading", `document.activeElement.id === "progress-title"`)
	if same, _ := eval[bool](b, `document.getElementById("live") === window.__live`); !same {
		t.Error("the live region was replaced, not updated in place")
	}
	if f := b.field("network"); f.Invalid != "" {
		t.Errorf("network still marked invalid: %+v", f)
	}
	b.checkClean()
}

// TestBrowserLongTextWraps: a merchant name, note, item name and URLs that
// are one long word each never widen the page on a 360 px phone.
func TestBrowserLongTextWraps(t *testing.T) {
	s := startServer(t, serverOptions{})
	longName := "Sandbox" + strings.Repeat("M", 300)
	rename := func(html string) string { return strings.ReplaceAll(html, "Sandbox merchant", longName) }
	s.proxy.rewrite.Store(&rename)
	b := newBrowser(t, s.URL)
	b.run(10*time.Second, chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait))
	link := s.hostedCheckout(map[string]any{
		"note":       "See https://shop.example/" + strings.Repeat("W", 1900),
		"cancel_url": s.URL + "/__test/merchant/" + strings.Repeat("c", 500),
		"items": []map[string]any{
			{"name": "https://example.com/" + strings.Repeat("x", 600), "currency": "USD", "amount": 12345678.5},
			{"name": strings.Repeat("Jollof", 100), "currency": "USD", "amount": 4},
		},
	})
	b.run(15*time.Second, chromedp.Navigate(link))
	b.waitState(10*time.Second, "form")
	if got := b.text(".merchant-name"); !strings.Contains(got, longName) {
		t.Fatalf("merchant name not replaced: %q", got)
	}
	fits := func(when string) {
		t.Helper()
		type layout struct {
			ScrollWidth int      `json:"scrollWidth"`
			Width       int      `json:"width"`
			Wide        []string `json:"wide"`
			Badge       float64  `json:"badge"`
		}
		l, err := eval[layout](b, `(function () {
			var wide = [];
			Array.prototype.forEach.call(document.querySelectorAll("main *"), function (el) {
				var r = el.getBoundingClientRect();
				if (r.width > 0 && r.right > innerWidth + 0.5) wide.push(el.tagName + (el.id ? "#" + el.id : "") + "." + el.className + " " + Math.round(r.right));
			});
			var badge = document.querySelector(".badge");
			return {scrollWidth: document.documentElement.scrollWidth, width: innerWidth, wide: wide.slice(0, 10),
				badge: badge ? badge.getBoundingClientRect().width : 0};
		})()`)
		if err != nil {
			t.Fatal(err)
		}
		if l.Width != 360 || l.ScrollWidth > l.Width || len(l.Wide) > 0 {
			t.Errorf("%s: page %d px wide in a %d px viewport; too wide: %q", when, l.ScrollWidth, l.Width, l.Wide)
		}
		if l.Badge < 50 {
			t.Errorf("%s: the sandbox badge was squeezed to %.0f px", when, l.Badge)
		}
	}
	fits("form")
	b.payByPhone("231771234503") // fails at once: the failed screen names the merchant
	b.waitState(10*time.Second, "failed")
	fits("failed screen")
	b.run(10*time.Second, chromedp.Click("#retry-button"))
	b.waitState(5*time.Second, "form")
	fits("retry form")
	b.checkClean()
}

// TestBrowserSecondTab: tabs opened on one link never take over each
// other's payment silently, and a tab that learns the source is paid shows
// the paid screen.
func TestBrowserSecondTab(t *testing.T) {
	s := startServer(t, serverOptions{})
	a := newBrowser(t, s.URL)
	bt := a.newTab()
	c := a.newTab()
	link := s.hostedCheckout(nil)
	for _, tab := range []*browser{a, bt, c} {
		tab.run(15*time.Second, chromedp.Navigate(link))
		tab.waitState(10*time.Second, "form")
	}

	// Tab A pays by a card that asks for 3-D Secure.
	a.payByCard3DS()
	refA := a.dataset()["referenceId"]

	// Tab B chose mobile money: it is told a payment is in progress, and is
	// not thrown into A's card challenge.
	bt.payByPhone("231771234567")
	bt.waitFor(10*time.Second, "the payment-in-progress notice",
		`document.getElementById("checkout").dataset.elsewhere === "true" && document.getElementById("progress-title").textContent === "A payment for this invoice is already in progress"`)
	d := bt.dataset()
	if d["state"] != "watching" || d["referenceId"] != refA {
		t.Fatalf("tab B: %v", d)
	}
	if got := bt.text("#progress-detail"); !strings.HasPrefix(got, "A card payment waits for 3-D Secure confirmation in another tab or window.") {
		t.Errorf("tab B detail %q", got)
	}
	if hidden, _ := eval[bool](bt, `document.getElementById("challenge-panel").hidden && !document.getElementById("continue-here").hidden`); !hidden {
		t.Error("tab B shows the challenge, or no way to continue the card payment there")
	}
	if id, _ := eval[string](bt, `document.activeElement.id`); id != "progress-title" {
		t.Errorf("tab B focus on #%s", id)
	}

	// A fails the challenge: B, which only watched, gets its form back.
	a.run(10*time.Second, chromedp.Click("#challenge-fail"))
	a.waitState(20*time.Second, "failed")
	bt.waitState(20*time.Second, "form")
	if got := bt.text("#last-failure"); got != "The payment started in another tab or window failed: 3-D Secure authentication failed. You can pay now." {
		t.Errorf("tab B notice %q", got)
	}
	if id, _ := eval[string](bt, `document.activeElement.id`); id != "last-failure" {
		t.Errorf("tab B focus on #%s", id)
	}

	// B pays its own way now.
	bt.run(10*time.Second, chromedp.Click("#pay-button")) // the number is still in the field
	bt.waitState(20*time.Second, "paid")
	if d := bt.dataset(); d["elsewhere"] != "false" || d["referenceId"] == refA {
		t.Errorf("tab B paid %v", d)
	}

	// Tab C, opened before any of this, taps Pay: the paid screen, not a form error.
	c.payByPhone("231771234567")
	c.waitState(10*time.Second, "paid")
	if got := c.text("#result-title") + ": " + c.text("#result-detail"); got != "Paid: This invoice has been paid. Thank you!" {
		t.Errorf("tab C shows %q", got)
	}
	if got := c.text("#pay-error"); got != "" {
		t.Errorf("tab C form error %q", got)
	}
	if id, _ := eval[string](c, `document.activeElement.id`); id != "result-title" {
		t.Errorf("tab C focus on #%s", id)
	}

	// A tab loaded while another tab's card payment waits for 3-D Secure
	// shows it as such; the payer may take it over (the other tab may be
	// closed), and both tabs see it paid.
	link2 := s.hostedCheckout(nil)
	a.run(15*time.Second, chromedp.Navigate(link2))
	a.waitState(10*time.Second, "form")
	a.payByCard3DS()
	bt.run(15*time.Second, chromedp.Navigate(link2))
	bt.waitFor(10*time.Second, "the payment-in-progress notice on load",
		`document.getElementById("checkout").dataset.elsewhere === "true" && !document.getElementById("continue-here").hidden`)
	bt.run(10*time.Second, chromedp.Click("#continue-here"))
	bt.waitState(5*time.Second, "challenge")
	if id, _ := eval[string](bt, `document.activeElement.id`); id != "challenge-title" {
		t.Errorf("tab B focus on #%s after taking over", id)
	}
	bt.run(10*time.Second, chromedp.Click("#challenge-approve"))
	bt.waitState(20*time.Second, "paid")
	a.waitState(20*time.Second, "paid")

	for _, tab := range []*browser{a, bt, c} {
		tab.checkClean()
	}
}

// TestBrowserWithoutJavaScript: the form posts (the phone never reaches the
// URL) to a page that says JavaScript is required; a payment in flight
// shows no endless spinner but a way to reload.
func TestBrowserWithoutJavaScript(t *testing.T) {
	s := startServer(t, serverOptions{sandboxLongDelay: time.Minute})
	b := newBrowser(t, s.URL)
	b.run(10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	link := s.hostedCheckout(nil)
	b.run(15*time.Second, chromedp.Navigate(link))
	visible := func(sel string) bool {
		ok, _ := eval[bool](b, fmt.Sprintf(`(function (el) { return !!el && el.getClientRects().length > 0; })(document.querySelector(%q))`, sel))
		return ok
	}
	if ran, _ := eval[string](b, `document.getElementById("checkout").dataset.state + " " + document.documentElement.className`); ran != "form no-js" {
		t.Fatalf("scripts ran: %q", ran)
	}
	if !visible("#nojs-pay") || !strings.HasPrefix(b.text("#nojs-pay"), "JavaScript is required to pay.") {
		t.Errorf("no visible <noscript> notice: %q", b.text("#nojs-pay"))
	}
	b.run(10*time.Second, chromedp.SendKeys("#phone", "231771234567"), chromedp.Click("#pay-button"))
	b.waitFor(10*time.Second, "the JavaScript-required page", `!!document.getElementById("error-title") && document.getElementById("error-title").textContent === "JavaScript is required to pay"`)
	if got, _ := eval[string](b, `location.href`); got != link {
		t.Errorf("after submitting, the URL is %s, want %s (no phone number in it)", got, link)
	}
	if href, _ := eval[string](b, `document.getElementById("error-link").href`); href != link {
		t.Errorf("way back %q", href)
	}
	if n := s.proxy.count("pay"); n != 0 {
		t.Errorf("%d pay requests without JavaScript", n)
	}

	// A payment in flight (started by another tab): no spinner, a reload link.
	resp, err := http.Post(link+"/pay", "application/json", strings.NewReader(`{"method":"MOBILE_MONEY","phone":"231771234502"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pay: %d", resp.StatusCode)
	}
	b.run(15*time.Second, chromedp.Navigate(link))
	b.waitFor(10*time.Second, "the watching page", `document.getElementById("checkout").dataset.state === "watching"`)
	if visible(".spinner") || visible(".steps") {
		t.Error("a spinner or progress steps are shown without JavaScript")
	}
	if got := b.text("#progress-title"); got != "A payment for this invoice is in progress" {
		t.Errorf("title %q", got)
	}
	if !visible("#nojs-watch a") || !strings.HasPrefix(b.text("#nojs-watch"), "JavaScript is required to follow this payment live.") {
		t.Errorf("no reload notice: %q", b.text("#nojs-watch"))
	}
	b.checkClean()
}
