package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/backends"
)

// success_url and cancel_url are pydantic HttpUrl fields: an absolute http(s)
// URL, or a 422 naming the field, as FastAPI would answer. The hosted page
// drops anything else anyway; refusing it at creation tells the merchant.
func TestCheckoutRedirectURLs(t *testing.T) {
	e := newEnv(t, backends.SQLite, options{})
	hosted := map[string]any{"mode": "HOSTED", "source_kind": "INVOICE", "party_phone": "231770000010", "currency": "USD",
		"items": []map[string]any{{"name": "A", "currency": "USD", "amount": 1}}}
	type problem struct{ typ, msg string }
	scheme := problem{"url_scheme", "URL scheme should be 'http' or 'https'"}
	for _, field := range []string{"success_url", "cancel_url"} {
		for _, tt := range []struct {
			value any
			want  problem
		}{
			{"javascript:alert(6)//http://x", scheme},
			{"JavaScript:alert(1)", scheme},
			{"data:text/html,<script>alert(1)</script>", scheme},
			{"ftp://shop.example/file", scheme},
			{"mailto:shop@example.com", scheme},
			{"", problem{"url_parsing", "Input should be a valid URL, input is empty"}},
			{"shop.example/thanks", problem{"url_parsing", "Input should be a valid URL, relative URL without a base"}},
			{"/thanks", problem{"url_parsing", "Input should be a valid URL, relative URL without a base"}},
			{"//shop.example/thanks", problem{"url_parsing", "Input should be a valid URL, relative URL without a base"}},
			{"https://", problem{"url_parsing", "Input should be a valid URL, empty host"}},
			{"https://exa mple.com/", problem{"url_parsing", "Input should be a valid URL, invalid domain character"}},
			{"https://shop.example/" + strings.Repeat("a", 2084), problem{"url_too_long", "URL should have at most 2083 characters"}},
			{42, problem{"url_type", "URL input should be a string or URL"}},
		} {
			t.Run(fmt.Sprintf("%s=%.40v", field, tt.value), func(t *testing.T) {
				status, out, hdr := e.do(http.MethodPost, "/v1/checkouts/create", e.a.token, with(hosted, field, tt.value))
				if status != http.StatusUnprocessableEntity || hdr.Get("Content-Type") != "application/json" {
					t.Fatalf("status %d %q: %s", status, hdr.Get("Content-Type"), out)
				}
				d := fieldErrors(t, out)
				if len(d) != 1 || fmt.Sprint(d[0]["loc"]) != fmt.Sprint([]any{"body", field}) ||
					d[0]["type"] != tt.want.typ || d[0]["msg"] != tt.want.msg {
					t.Fatalf("detail %v, want loc [body %s] type %q msg %q", d, field, tt.want.typ, tt.want.msg)
				}
			})
		}
	}

	// Both fields wrong: one 422 names both, as pydantic reports every problem.
	status, out, _ := e.do(http.MethodPost, "/v1/checkouts/create", e.a.token,
		with(hosted, "success_url", "javascript:alert(1)", "cancel_url", "ftp://x/"))
	if d := fieldErrors(t, out); status != http.StatusUnprocessableEntity || len(d) != 2 {
		t.Fatalf("two bad URLs: %d %s", status, out)
	}

	// http(s) URLs are stored as sent; null and absent are no URL.
	for _, tt := range []struct{ success, cancel any }{
		{"https://shop.example/thanks?order=42#top", "http://127.0.0.1:8080/cart"},
		{"HTTPS://Shop.Example/ok", nil},
		{" https://shop.example/padded ", "https://shop.example/cart"},
		{nil, deleteKey},
	} {
		var r api.CreateCheckoutSourceLinkResponse
		e.must(http.MethodPost, "/v1/checkouts/create", e.a.token, with(hosted, "success_url", tt.success, "cancel_url", tt.cancel), &r)
		for _, c := range []struct {
			got  *string
			sent any
		}{{r.SuccessURL, tt.success}, {r.CancelURL, tt.cancel}} {
			want, isString := c.sent.(string)
			want = strings.TrimSpace(want)
			if (c.got == nil) == isString || (isString && *c.got != want) {
				t.Errorf("sent %v, stored %v", c.sent, c.got)
			}
		}
	}
}
