package api

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr/internal/httplog"
)

// RequestIDHeader carries the request id, echoed on every response.
const RequestIDHeader = "X-Request-Id"

type ctxKey int

const requestInfoKey ctxKey = iota

// requestInfo is filled as the request travels, for the access log.
type requestInfo struct {
	id         string
	merchantID int64
}

func infoFrom(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// RequestID returns the id of the request ctx belongs to ("" outside a request).
func RequestID(ctx context.Context) string { return infoFrom(ctx).id }

// validRequestID accepts a caller's id only if it is short and printable, so
// it cannot forge log lines.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = randomHex(8)
		}
		w.Header().Set(RequestIDHeader, id)
		ri := &requestInfo{id: id}
		// The request's deadline (RequestTimeout) is set here too: the one
		// copy of the request that withLogging and the mux share, so the mux's
		// route pattern and path values stay visible to the log.
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), requestInfoKey, ri), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) withLogging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &httplog.Recorder{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		elapsed := time.Since(start)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		ri := infoFrom(r.Context())
		attrs := []any{
			"request_id", ri.id, "method", r.Method, "path", loggedPath(r), "route", route,
			"status", sw.Code(), "bytes", sw.Bytes, "duration_ms", float64(elapsed.Microseconds()) / 1000,
			"remote", r.RemoteAddr,
		}
		if ri.merchantID != 0 {
			attrs = append(attrs, "merchant_id", ri.merchantID)
		}
		s.log.InfoContext(r.Context(), "http request", attrs...)
		if s.metrics != nil {
			s.metrics.observe(r.Method, route, sw.Code(), elapsed)
		}
	})
}

// loggedPath is r's path without the secret some routes carry in it (the
// sandbox 3-D Secure route's client_secret).
func loggedPath(r *http.Request) string {
	if secret := r.PathValue("client_secret"); secret != "" {
		return strings.Replace(r.URL.Path, secret, "xxxxx", 1)
	}
	return r.URL.Path
}

// withRecover turns a panic into 500 {"detail":"Internal Server Error"}: a
// last resort, since every parser returns errors.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic", "request_id", RequestID(r.Context()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw, ok := w.(*httplog.Recorder); !ok || sw.Status == 0 {
				writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// authed requires a valid merchant bearer token.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, merchantID int64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeDetail(w, http.StatusUnauthorized, "Not authenticated")
			return
		}
		id, err := s.tokens().VerifyAccess(tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeDetail(w, http.StatusUnauthorized, "Could not validate credentials")
			return
		}
		infoFrom(r.Context()).merchantID = id
		// Only a verified token is charged: a stranger cannot spend a
		// merchant's allowance by sending requests in its name.
		if !s.limitMerchant(w, r, id) {
			return
		}
		h(w, r, id)
	}
}

type httpMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dollr_http_requests_total",
			Help: "HTTP requests served by the Open API, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dollr_http_request_duration_seconds",
			Help:    "Open API request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dollr_http_rate_limited_total",
			Help: "Open API requests refused with 429 by a rate limit, by scope: merchant or (client) address.",
		}, []string{"scope"}),
	}
	// Both scopes show from the start, at 0, so a rate() over them is
	// defined before the first refusal.
	m.rateLimited.WithLabelValues(scopeMerchant)
	m.rateLimited.WithLabelValues(scopeAddress)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.rateLimited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
	default:
		method = "OTHER" // the method is caller input; keep label cardinality bounded
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
