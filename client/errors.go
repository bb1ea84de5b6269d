package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dollr/dollr"
)

// FieldError is one entry of a 422 body: {"loc": [...], "msg": ..., "type": ...}.
type FieldError = dollr.FieldError

// APIError is a non-2xx answer from the API. Dollr's bodies are either
// {"detail": "message"} (Detail is set) or, for 422, {"detail": [FieldError...]}
// (Fields is set).
type APIError struct {
	StatusCode int
	Method     string
	Path       string
	Detail     string
	Fields     []FieldError
	// RetryAfter is the server's Retry-After header (429, 503), zero if absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dollr: %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		for j, l := range f.Loc {
			if j > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, l)
		}
		b.WriteString(": ")
		b.WriteString(f.Msg)
	}
	return b.String()
}

// Temporary reports whether repeating the same request later may succeed:
// rate limiting and server errors.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// HasField reports whether a 422 error names the given body field, e.g.
// HasField("reference_id").
func (e *APIError) HasField(name string) bool {
	for _, f := range e.Fields {
		if len(f.Loc) > 0 && fmt.Sprint(f.Loc[len(f.Loc)-1]) == name {
			return true
		}
	}
	return false
}

// StatusCode returns the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports whether err is a 404 from the API (for the Status API:
// the execution never landed).
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// parseAPIError builds an *APIError from a non-2xx response body. It never
// fails: a body that is not Dollr's shape becomes the Detail text.
func parseAPIError(method, path string, status int, header http.Header, body []byte) *APIError {
	e := &APIError{StatusCode: status, Method: method, Path: path, RetryAfter: parseRetryAfter(header.Get("Retry-After"), time.Now())}
	var env struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Detail) > 0 {
		switch env.Detail[0] {
		case '"':
			if json.Unmarshal(env.Detail, &e.Detail) == nil {
				return e
			}
		case '[':
			if json.Unmarshal(env.Detail, &e.Fields) == nil {
				return e
			}
		}
		e.Detail = string(env.Detail)
		return e
	}
	e.Detail = string(bytes.TrimSpace(body))
	if len(e.Detail) > 512 {
		e.Detail = e.Detail[:512] + "…"
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > 86400 {
			n = 86400
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
