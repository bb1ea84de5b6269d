package client

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestParseAPIError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		detail     string
		fields     int
		field      string
		wait       time.Duration
	}{
		{name: "detail string", status: 401, body: `{"detail":"Could not validate credentials"}`, detail: "Could not validate credentials"},
		{name: "422 list", status: 422, body: `{"detail":[{"loc":["body","reference_id"],"msg":"invalid uuid","type":"value_error"}]}`, fields: 1, field: "reference_id"},
		{name: "429 retry after", status: 429, body: `{"detail":"Too Many Requests"}`, retryAfter: "3", detail: "Too Many Requests", wait: 3 * time.Second},
		{name: "not json", status: 502, body: "<html>bad gateway</html>\n", detail: "<html>bad gateway</html>"},
		{name: "detail object", status: 400, body: `{"detail":{"x":1}}`, detail: `{"x":1}`},
		{name: "empty", status: 500, body: ``, detail: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			e := parseAPIError("GET", "/v1/x", tt.status, h, []byte(tt.body))
			if e.StatusCode != tt.status || e.Detail != tt.detail || len(e.Fields) != tt.fields || e.RetryAfter != tt.wait {
				t.Errorf("got %+v", e)
			}
			if tt.field != "" && !e.HasField(tt.field) {
				t.Errorf("HasField(%q) false for %+v", tt.field, e.Fields)
			}
			var wrapped error = fmt.Errorf("wrapped: %w", e)
			if StatusCode(wrapped) != tt.status {
				t.Errorf("StatusCode through wrapping = %d", StatusCode(wrapped))
			}
			if e.Error() == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Mon, 01 Jun 2026 12:00:10 GMT": 10 * time.Second,
		"Mon, 01 Jun 2026 11:00:00 GMT": 0,
		"999999999":                     86400 * time.Second,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNextPollInterval(t *testing.T) {
	d := 2 * time.Second
	var got []time.Duration
	for range 6 {
		got = append(got, d)
		d = nextPollInterval(d, 10*time.Second)
	}
	want := []time.Duration{2 * time.Second, 3 * time.Second, 4500 * time.Millisecond, 6750 * time.Millisecond, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("intervals %v, want %v", got, want)
	}
}

func TestIsFatal(t *testing.T) {
	for status, fatal := range map[int]bool{404: true, 422: true, 403: true, 429: false, 500: false, 503: false} {
		if got := isFatal(&APIError{StatusCode: status}); got != fatal {
			t.Errorf("isFatal(%d) = %v", status, got)
		}
	}
	if isFatal(errors.New("connection refused")) {
		t.Error("a network error is not fatal")
	}
}

func TestRealtimeURL(t *testing.T) {
	tests := []struct {
		in   string
		opts RealtimeOptions
		want string
		bad  bool
	}{
		{in: "http://127.0.0.1:8080", opts: RealtimeOptions{APIKey: "anon"}, want: "ws://127.0.0.1:8080/realtime/v1/websocket?apikey=anon&vsn=2.0.0"},
		{in: "https://abc.example/", opts: RealtimeOptions{APIKey: "a b", Vsn: "1.0.0"}, want: "wss://abc.example/realtime/v1/websocket?apikey=a+b&vsn=1.0.0"},
		{in: "http://h", opts: RealtimeOptions{APIKey: "k", Params: map[string][]string{"log_level": {"info"}}}, want: "ws://h/realtime/v1/websocket?apikey=k&log_level=info&vsn=2.0.0"},
		{in: "ftp://h", opts: RealtimeOptions{APIKey: "k"}, bad: true},
		{in: "http://h", bad: true},
		{in: "http://", opts: RealtimeOptions{APIKey: "k"}, bad: true},
	}
	for _, tt := range tests {
		got, err := RealtimeURL(tt.in, tt.opts)
		if tt.bad {
			if err == nil {
				t.Errorf("RealtimeURL(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("RealtimeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseAPIError: any error body yields an *APIError with its status.
func FuzzParseAPIError(f *testing.F) {
	f.Add(422, []byte(`{"detail":[{"loc":["body","currency"],"msg":"field required","type":"missing"}]}`), "")
	f.Add(401, []byte(`{"detail":"Not authenticated"}`), "3")
	f.Add(500, []byte(`not json`), "Mon, 01 Jun 2026 12:00:10 GMT")
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		e := parseAPIError("GET", "/v1/x", status, h, body)
		if e == nil || e.StatusCode != status || e.RetryAfter < 0 {
			t.Fatalf("parseAPIError = %+v", e)
		}
		_ = e.Error()
	})
}
