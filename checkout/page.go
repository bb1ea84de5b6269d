package checkout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/sandbox"
)

// Page states the server renders; checkout.js moves between them.
const (
	stateForm     = "form"     // choose a method and pay
	stateWatching = "watching" // a payment is in flight: follow it
	statePaid     = "paid"     // the source is paid
)

type pageData struct {
	Merchant     string
	Source       *dollr.Source
	Kind         string // "Invoice" or "Order"
	KindLower    string // "invoice" or "order", for sentences
	PageURL      string // this page's path, the no-JavaScript form's action
	Initial      string // the merchant's first letter, for the logo mark
	Items        []dollr.Item
	State        string
	ReferenceID  string // the execution being watched (stateWatching, statePaid)
	LastFailure  string // why the previous attempt failed, shown above the form
	SuccessURL   string
	CancelURL    string
	Sandbox      bool
	Networks     []momoNetwork
	TestCards    []testCard
	TestPhones   []testPhone
	AssetVersion string
	Settings     pageSettings
}

// pageSettings reach checkout.js through data-* attributes (inline scripts
// are forbidden by the CSP).
type pageSettings struct {
	Token           string
	CurrencyDigits  int // the source currency's minor-unit digits, for checkout.js's amounts
	FallbackMillis  int64
	PollMillis      int64
	PollMaxMillis   int64
	RedirectMillis  int64
	PaymentCurrency string
	// AwaitingApproval is the gateway message of a mobile-money payment that
	// waits for the customer's approval on the phone (PROCESSING in Dollr's
	// model), so the page can say so instead of "processing".
	AwaitingApproval string
}

type momoNetwork struct {
	Method  string
	Label   string
	Country string
}

type testCard struct {
	ID, Label string
}

type testPhone struct {
	Number, Label string
}

// networks lists the mobile-money methods the page offers, by country then name.
var networks = func() []momoNetwork {
	labels := map[string]string{
		"MTN_MOMO_LBR":     "MTN Mobile Money (Liberia)",
		"ORANGE_MONEY_LBR": "Orange Money (Liberia)",
		"AIRTEL_RWA":       "Airtel Money (Rwanda)",
		"MTN_MOMO_RWA":     "MTN MoMo (Rwanda)",
		"ORANGE_MONEY_RWA": "Orange Money (Rwanda)",
	}
	var out []momoNetwork
	for m, c := range dollr.MobileMoneyMethods {
		l := labels[m]
		if l == "" {
			l = m
		}
		out = append(out, momoNetwork{Method: m, Label: l, Country: c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Country != out[j].Country {
			return out[i].Country < out[j].Country
		}
		return out[i].Label < out[j].Label
	})
	return out
}()

// Sandbox outcomes the page advertises; they follow docs/sandbox.md.
var (
	sandboxCards = []testCard{
		{ID: "pm_card_visa", Label: "Visa •••• 4242 — approved"},
		{ID: "pm_card_threeDSecureRequired", Label: "Visa •••• 3155 — asks for 3-D Secure"},
		{ID: "pm_card_chargeDeclined", Label: "Visa •••• 0002 — declined"},
	}
	sandboxPhones = []testPhone{
		{Number: "231771234567", Label: "approves"},
		{Number: "231771234501", Label: "fails (ends in 01)"},
	}
)

type errorPage struct {
	Title    string
	Message  string
	LinkURL  string // optional way on, e.g. back to the checkout
	LinkText string
}

var (
	errNotFoundPage = errorPage{
		Title:   "Checkout link not found",
		Message: "This payment link is not valid. Check the link you were sent, or ask the merchant for a new one.",
	}
	errExpiredPage = errorPage{
		Title:   "This checkout link has expired",
		Message: "The payment window for this link has closed. Ask the merchant for a new payment link.",
	}
)

// canceledPage is the page for a canceled source, named by its own kind.
func canceledPage(src *dollr.Source) errorPage {
	return errorPage{
		Title:   "This payment was canceled",
		Message: "The merchant canceled this " + kindOf(src) + ", so it can no longer be paid. Contact the merchant if you believe this is a mistake.",
	}
}

// kindOf names a source in sentences: "invoice" or "order".
func kindOf(src *dollr.Source) string {
	if src.Type == dollr.SourceOrder {
		return "order"
	}
	return "invoice"
}

// noScriptPage answers the pay form when it is sent without JavaScript: the
// form posts here (so the phone number never lands in the URL), nothing is
// read and nothing is charged.
func noScriptPage(src *dollr.Source) errorPage {
	return errorPage{
		Title: "JavaScript is required to pay",
		Message: "This checkout needs JavaScript to take your payment and show its progress. Nothing was sent and nothing was charged. " +
			"Turn on JavaScript in your browser, or open the payment link in another browser, then pay again.",
		LinkURL:  pagePath(src),
		LinkText: "Back to the checkout",
	}
}

// pagePath is the path of src's hosted page.
func pagePath(src *dollr.Source) string { return Prefix + "/" + src.HostedToken }

// serveNoScript answers POST /checkout/<token>: the pay form submitted by a
// browser that runs no JavaScript.
func (h *Handler) serveNoScript(w http.ResponseWriter, r *http.Request) {
	src, ok := h.sourceForPage(w, r)
	if !ok {
		return
	}
	h.renderError(w, r, http.StatusOK, noScriptPage(src))
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src, ok := h.sourceForPage(w, r)
	if !ok {
		return
	}
	merchant, err := h.cfg.Store.Merchant(ctx, src.MerchantID)
	if err != nil {
		h.internalPage(w, r, err)
		return
	}
	latest, err := h.cfg.Store.LatestExecutionForSource(ctx, src.MerchantID, src.ID)
	if err != nil && !dollr.IsNotFound(err) {
		h.internalPage(w, r, err)
		return
	}

	d := h.pageData(merchant, src)
	switch {
	case src.Status == dollr.SourcePaid:
		d.State = statePaid
		if latest != nil {
			d.ReferenceID = latest.ReferenceID
		}
	case src.Status == dollr.SourceCanceled:
		h.renderError(w, r, http.StatusGone, canceledPage(src))
		return
	case latest != nil && !latest.Status.Terminal():
		// A payment is in flight (another tab, or a reload): follow it even
		// if the link has expired since, never start a second one.
		d.State = stateWatching
		d.ReferenceID = latest.ReferenceID
	case h.expired(src):
		h.renderError(w, r, http.StatusGone, errExpiredPage)
		return
	default:
		d.State = stateForm
		if latest != nil && latest.Status == dollr.StatusFailed {
			d.LastFailure = failureReason(latest.GatewayMessage)
		}
	}
	h.render(w, r, http.StatusOK, "page.html", d)
}

func (h *Handler) pageData(m *dollr.Merchant, src *dollr.Source) pageData {
	kind := kindOf(src)
	d := pageData{
		Merchant:     m.Name,
		Source:       src,
		Kind:         strings.ToUpper(kind[:1]) + kind[1:],
		KindLower:    kind,
		PageURL:      pagePath(src),
		Initial:      initial(m.Name),
		Items:        src.Items,
		SuccessURL:   safeRedirect(src.SuccessURL),
		CancelURL:    safeRedirect(src.CancelURL),
		Sandbox:      h.cfg.Sandbox,
		Networks:     networks,
		AssetVersion: h.assetHash,
		Settings: pageSettings{
			Token:            src.HostedToken,
			CurrencyDigits:   minorUnits(src.Currency),
			FallbackMillis:   h.cfg.RealtimeFallback.Milliseconds(),
			PollMillis:       h.cfg.PollInterval.Milliseconds(),
			PollMaxMillis:    h.cfg.PollMax.Milliseconds(),
			RedirectMillis:   h.cfg.RedirectDelay.Milliseconds(),
			PaymentCurrency:  src.Currency,
			AwaitingApproval: sandbox.MsgAwaitingApproval,
		},
	}
	if h.cfg.Sandbox {
		d.TestCards = sandboxCards
		d.TestPhones = sandboxPhones
	}
	return d
}

// sourceForPage loads the source behind the URL's token, or renders the
// not-found page.
func (h *Handler) sourceForPage(w http.ResponseWriter, r *http.Request) (*dollr.Source, bool) {
	src, err := h.source(r.Context(), r.PathValue("token"))
	if dollr.IsNotFound(err) {
		h.renderError(w, r, http.StatusNotFound, errNotFoundPage)
		return nil, false
	} else if err != nil {
		h.internalPage(w, r, err)
		return nil, false
	}
	return src, true
}

// source returns the hosted source for token, ENOTFOUND for anything that is
// not a live hosted link.
func (h *Handler) source(ctx context.Context, token string) (*dollr.Source, error) {
	if !validToken(token) {
		return nil, dollr.NotFound("checkout link")
	}
	src, err := h.cfg.Store.SourceByHostedToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if src.Mode != dollr.ModeHosted || src.HostedToken != token {
		return nil, dollr.NotFound("checkout link")
	}
	return src, nil
}

// validToken rejects what cannot be a hosted token before it reaches the
// store: URL-safe characters, bounded length.
func validToken(t string) bool {
	if len(t) < 8 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (h *Handler) expired(src *dollr.Source) bool {
	return src.ExpiresAt != nil && !h.cfg.Now().Before(*src.ExpiresAt)
}

// safeRedirect keeps only absolute http(s) URLs, so a merchant-supplied
// success_url can never become a javascript: link.
func safeRedirect(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.String()
}

// failureReason turns a gateway message into a sentence for the customer.
func failureReason(gatewayMessage string) string {
	if gatewayMessage == "" {
		return "The payment was not approved."
	}
	return sentence(gatewayMessage)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		h.log.Error("checkout: render", "template", name, "err", err)
		http.Error(w, "Something went wrong. Please try again.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, p errorPage) {
	h.render(w, r, status, "error.html", struct {
		errorPage
		Status       int
		AssetVersion string
	}{p, status, h.assetHash})
}

// msgUnavailable is what a payer reads while the store cannot be reached.
const msgUnavailable = "We cannot reach our payment records right now. Please try again in a moment."

func (h *Handler) internalPage(w http.ResponseWriter, r *http.Request, err error) {
	if dollr.IsUnavailable(err) {
		h.log.Warn("checkout: store unavailable", "path", loggedPath(r), "err", err)
		w.Header().Set("Retry-After", "5")
		h.renderError(w, r, http.StatusServiceUnavailable, errorPage{Title: "Please try again in a moment", Message: msgUnavailable})
		return
	}
	h.log.Error("checkout: page", "path", loggedPath(r), "err", err)
	h.renderError(w, r, http.StatusInternalServerError, errorPage{
		Title:   "Something went wrong",
		Message: "We could not load this checkout. Please try again in a moment.",
	})
}

// assetsHash fingerprints the embedded assets for cache-busting URLs.
func assetsHash(fsys fs.FS) (string, error) {
	sum := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum.Write([]byte(p))
		sum.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil))[:12], nil
}

// initial returns the first letter of a name, upper-cased.
func initial(name string) string {
	for _, r := range strings.TrimSpace(name) {
		return strings.ToUpper(string(r))
	}
	return "·"
}
