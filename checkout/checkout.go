// Package checkout serves the hosted checkout page: the URL that
// POST /v1/checkouts/create returns in HOSTED mode. The customer sees the
// merchant, items and total, pays by mobile money or card (with a sandbox
// 3-D Secure step), and watches the status live over the project's realtime
// server, falling back to polling as Dollr's realtime guide prescribes.
//
// The page never holds merchant credentials: the hosted token in its URL is
// the only capability, and the JSON endpoints under /checkout/<token>/ act on
// the merchant's behalf for that one source only.
package checkout

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/httplog"
	"github.com/dollr/dollr/token"
)

// Prefix is where the handler is mounted; every URL the page uses lives under it.
const Prefix = "/checkout"

// Defaults follow Dollr's realtime guide (dollr-api.md §6.3, §7.5).
const (
	DefaultRealtimeFallback = 30 * time.Second
	DefaultPollInterval     = 2 * time.Second
	DefaultPollMax          = 5 * time.Second
	DefaultSessionTTL       = 30 * time.Minute
	DefaultRealtimeKeyTTL   = 15 * time.Minute
	DefaultRedirectDelay    = 4 * time.Second
)

// Collector starts a collection exactly as POST /v1/executions/collection
// does (validation, amounts, sandbox plan, Store.CreateExecution), so the page
// and the API cannot drift apart. *api.Server implements it.
type Collector interface {
	Collect(ctx context.Context, merchantID int64, req api.CollectRequest) (e *dollr.Execution, created bool, err error)
}

// Config wires the handler. Store, Tokens and Collector are required.
type Config struct {
	Store dollr.Store
	// Tokens issues the page's anon key and realtime keys, the same keys
	// POST /v1/realtime-keys/collection returns.
	Tokens    *token.Tokens
	Collector Collector // the API server: *api.Server
	// AnonKey is the installation's anon key, the one in credentials.json;
	// empty means a fresh one signed by Tokens for each answer.
	AnonKey string

	// Sandbox shows the sandbox badge, test numbers and test cards, and the
	// 3-D Secure challenge (answered through POST /v1/sandbox/3ds/{client_secret}).
	Sandbox bool
	Now     func() time.Time // default time.Now
	// BaseURL is the public origin of `dollr serve`, e.g. https://pay.example.com.
	BaseURL string
	// SupabaseURL is where the page's realtime client connects; default BaseURL.
	SupabaseURL string
	Logger      *slog.Logger

	SessionTTL       time.Duration // checkout session lifetime; default 30 min
	RealtimeKeyTTL   time.Duration // realtime key lifetime; default 15 min
	RealtimeFallback time.Duration // poll after this long without a final status; default 30 s
	PollInterval     time.Duration // first poll interval; default 2 s, growing to PollMax
	PollMax          time.Duration // default 5 s
	RedirectDelay    time.Duration // time on the paid screen before success_url (a failure never redirects); default 4 s
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Handler serves /checkout/.
type Handler struct {
	cfg       Config
	mux       *http.ServeMux
	tmpl      *template.Template
	static    http.Handler
	assetHash string
	log       *slog.Logger

	// payLocks serialises pay attempts per source in this process, so a double
	// click cannot start two collections for one invoice. Across servers the
	// store refuses a second one in flight (see pay).
	payMu    sync.Mutex
	payLocks map[int64]*sourceLock
}

// New returns the checkout handler, to be mounted at Prefix + "/".
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Tokens == nil || cfg.Collector == nil {
		return nil, errors.New("checkout: Store, Tokens and Collector are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.SupabaseURL == "" {
		cfg.SupabaseURL = cfg.BaseURL
	}
	cfg.SupabaseURL = strings.TrimRight(cfg.SupabaseURL, "/")
	if cfg.SupabaseURL != "" {
		if _, err := realtimeOrigin(cfg.SupabaseURL); err != nil {
			return nil, fmt.Errorf("checkout: supabase URL: %w", err)
		}
	}
	setDefault(&cfg.SessionTTL, DefaultSessionTTL)
	setDefault(&cfg.RealtimeKeyTTL, DefaultRealtimeKeyTTL)
	setDefault(&cfg.RealtimeFallback, DefaultRealtimeFallback)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.PollMax, DefaultPollMax)
	setDefault(&cfg.RedirectDelay, DefaultRedirectDelay)

	tmpl, err := template.New("").Funcs(template.FuncMap{
		"money": formatMoney,
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("checkout: templates: %w", err)
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	hash, err := assetsHash(static)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:       cfg,
		mux:       http.NewServeMux(),
		tmpl:      tmpl,
		static:    http.StripPrefix(Prefix+"/assets/", http.FileServerFS(static)),
		assetHash: hash,
		log:       cfg.Logger,
		payLocks:  map[int64]*sourceLock{},
	}
	h.mux.HandleFunc("GET "+Prefix+"/assets/{name}", h.serveAsset)
	h.mux.HandleFunc("GET "+Prefix+"/{token}", h.servePage)
	h.mux.HandleFunc("POST "+Prefix+"/{token}", h.serveNoScript)
	h.mux.HandleFunc("POST "+Prefix+"/{token}/pay", h.servePay)
	h.mux.HandleFunc("GET "+Prefix+"/{token}/status/{reference_id}", h.serveStatus)
	h.mux.HandleFunc("POST "+Prefix+"/{token}/key/{reference_id}", h.serveKey)
	h.mux.HandleFunc(Prefix+"/", h.serveNotFound)
	return h, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// ServeHTTP applies the security headers every response carries, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", h.csp())
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer") // the hosted token is in the URL
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	start := time.Now()
	sw := &httplog.Recorder{ResponseWriter: w}
	w = sw
	// One line per request, as the API logs its own: a payer's failed Pay
	// leaves a trace. Deferred first, so it runs after the recovery below.
	defer func() {
		h.log.Info("checkout request", "method", r.Method, "path", loggedPath(r), "status", sw.Code(),
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
	}()
	defer func() {
		// A bug must never show a stack trace to a paying customer.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("checkout: panic", "path", loggedPath(r), "panic", fmt.Sprint(v))
			h.renderError(w, r, http.StatusInternalServerError, errorPage{
				Title:   "Something went wrong",
				Message: "We could not load this checkout. Please try again in a moment.",
			})
		}
	}()
	h.mux.ServeHTTP(w, r)
}

// csp allows nothing but this origin: scripts, styles and images from here,
// XHR and the realtime WebSocket to here (and to SupabaseURL when it is
// configured elsewhere), no frames, no inline code.
func (h *Handler) csp() string {
	connect := "'self'"
	if o, err := realtimeOrigin(h.cfg.SupabaseURL); err == nil && o != "" {
		connect += " " + o
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src " + connect + "; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

// realtimeOrigin returns the ws(s) origin of an http(s) Supabase URL. Browsers
// before CSP level 3 do not let 'self' cover WebSocket schemes, so the
// policy names it outright.
func realtimeOrigin(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		return "ws://" + u.Host, nil
	case "https":
		return "wss://" + u.Host, nil
	}
	return "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	// Asset URLs carry ?v=<content hash>, so a cached copy is never stale.
	if r.URL.Query().Get("v") == h.assetHash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	h.static.ServeHTTP(w, r)
}

func (h *Handler) serveNotFound(w http.ResponseWriter, r *http.Request) {
	h.renderError(w, r, http.StatusNotFound, errNotFoundPage)
}

// lockSource takes the per-source pay lock and returns its release. Entries
// live only while someone holds or waits for them, so the map stays small.
func (h *Handler) lockSource(id int64) func() {
	h.payMu.Lock()
	l, ok := h.payLocks[id]
	if !ok {
		l = &sourceLock{}
		h.payLocks[id] = l
	}
	l.users++
	h.payMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		h.payMu.Lock()
		if l.users--; l.users == 0 {
			delete(h.payLocks, id)
		}
		h.payMu.Unlock()
	}
}

type sourceLock struct {
	mu    sync.Mutex
	users int // holders and waiters, guarded by Handler.payMu
}

// writeJSON writes v with the given status. API responses are never cached:
// they carry payment state and realtime keys.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// detail is Dollr's error body shape.
type detail struct {
	Detail string `json:"detail"`
}

func writeDetail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, detail{Detail: msg})
}

// loggedPath is r's path with the link's token cut to its first characters:
// the token is the payer's capability, and logs travel further than the server.
func loggedPath(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix+"/")
	if !ok {
		return r.URL.Path
	}
	tok, tail, _ := strings.Cut(rest, "/")
	if len(tok) > 12 {
		tok = tok[:12] + "…"
	}
	if tail != "" {
		tail = "/" + tail
	}
	return Prefix + "/" + tok + tail
}
