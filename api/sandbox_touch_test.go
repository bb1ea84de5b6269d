package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/backends"
)

func TestSandboxStatusTouch(t *testing.T) { backends.Each(t, testSandboxStatusTouch) }

func testSandboxStatusTouch(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	m := e.a
	inFlight := execBody(m) // the sandbox delays are an hour: it stays in flight
	e.must(http.MethodPost, "/v1/executions/collection", m.token, inFlight, nil)
	ref := inFlight["reference_id"].(string)

	var touched struct{ Touched int }
	e.must(http.MethodPost, "/v1/sandbox/status-touch", m.token,
		map[string]any{"reference_ids": []string{ref, ref}, "gateway_message": "bench-1"}, &touched)
	if touched.Touched != 2 {
		t.Fatalf("touched = %d, want 2", touched.Touched)
	}
	var st api.ExecutionResponse
	e.must(http.MethodGet, "/v1/status/collection/"+ref, m.token, nil, &st)
	if st.GatewayMessage == nil || *st.GatewayMessage != "bench-1" {
		t.Fatalf("status after the touch = %+v, want gateway_message bench-1", st)
	}

	// Several payments in one request, one of them twice.
	var refs []string
	for range 3 {
		src, _ := e.checkout(m.token, "231770000010", "INVOICE")
		body := with(execBody(m), "session_id", fmt.Sprint(e.session(m.token, src, "INVOICE")))
		e.must(http.MethodPost, "/v1/executions/collection", m.token, body, nil)
		refs = append(refs, body["reference_id"].(string))
	}
	e.must(http.MethodPost, "/v1/sandbox/status-touch", m.token,
		map[string]any{"reference_ids": []string{refs[0], refs[1], refs[0], refs[2]}, "gateway_message": "bench-2"}, &touched)
	if touched.Touched != 4 {
		t.Fatalf("touched = %d, want 4", touched.Touched)
	}
	for _, r := range refs {
		var st api.ExecutionResponse
		e.must(http.MethodGet, "/v1/status/collection/"+r, m.token, nil, &st)
		if st.GatewayMessage == nil || *st.GatewayMessage != "bench-2" {
			t.Fatalf("status of %s after the touch = %+v, want gateway_message bench-2", r, st)
		}
	}

	for _, c := range []struct {
		name string
		tok  string
		body any
		want int
	}{
		{"another merchant's payment", e.b.token, map[string]any{"reference_ids": []string{ref}, "gateway_message": "x"}, http.StatusNotFound},
		{"not a string", m.token, `{"reference_ids":[7],"gateway_message":"x"}`, http.StatusUnprocessableEntity},
		{"empty list", m.token, `{"reference_ids":[],"gateway_message":"x"}`, http.StatusUnprocessableEntity},
		{"no message", m.token, map[string]any{"reference_ids": []string{ref}}, http.StatusUnprocessableEntity},
		{"no token", "", map[string]any{"reference_ids": []string{ref}, "gateway_message": "x"}, http.StatusUnauthorized},
	} {
		if status, out, _ := e.do(http.MethodPost, "/v1/sandbox/status-touch", c.tok, c.body); status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, status, out, c.want)
		}
	}
	status, out, _ := e.do(http.MethodPost, "/v1/sandbox/status-touch", m.token, `{"reference_ids":[7],"gateway_message":"x"}`)
	if want := `"loc":["body","reference_ids",0]`; status != http.StatusUnprocessableEntity || !strings.Contains(string(out), want) {
		t.Errorf("non-string id: %d %s, want a 422 at %s", status, out, want)
	}
}
