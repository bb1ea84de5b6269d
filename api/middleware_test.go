package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/backends"
)

// The access log and the request metrics name each request's route pattern,
// and no path secret reaches the log.
func TestAccessLogAndMetricsNameTheRoute(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	h, err := api.New(api.Config{Store: e.store, Tokens: e.tokens, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/status/collection/4f1c2a9e-0000-4000-8000-000000000000"},
		{"POST", "/v1/sandbox/3ds/pi_123_secret_abc"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.path, strings.NewReader("{}")))
	}
	out := logs.String()
	for _, want := range []string{`route="GET /v1/status/collection/{reference_id}"`, `route="POST /v1/sandbox/3ds/{client_secret}"`, "path=/v1/sandbox/3ds/xxxxx"} {
		if !strings.Contains(out, want) {
			t.Errorf("access log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret_abc") {
		t.Errorf("the 3-D Secure client secret reached the log:\n%s", out)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, f := range families {
		if f.GetName() != "dollr_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					routes = append(routes, l.GetValue())
				}
			}
		}
	}
	if strings.Join(routes, ",") != "GET /v1/status/collection/{reference_id},POST /v1/sandbox/3ds/{client_secret}" {
		t.Errorf("request metrics by route: %q", routes)
	}
}

// hungStore never answers a status read before its caller gives up, as a
// database that stopped answering (SIGSTOP, a partition) would.
type hungStore struct{ dollr.Store }

func (hungStore) Execution(ctx context.Context, merchantID int64, referenceID string) (*dollr.Execution, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A request that outlives RequestTimeout is answered 503 with Retry-After,
// instead of hanging as long as the database does.
func TestRequestDeadline(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	h, err := api.New(api.Config{Store: hungStore{e.store}, Tokens: e.tokens, RequestTimeout: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/status/collection/4f1c2a9e-0000-4000-8000-000000000000", nil)
	req.Header.Set("Authorization", "Bearer "+e.a.token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" || strings.TrimSpace(rec.Body.String()) != `{"detail":"Service Unavailable"}` {
		t.Fatalf("hung store: %d (Retry-After %q) %s, want 503", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
