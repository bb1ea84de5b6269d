package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dollr/dollr"
)

// httpError is an HTTP-level refusal that is not a domain error (413).
type httpError struct {
	status int
	detail string
}

func (e *httpError) Error() string { return e.detail }

var (
	errBodyTooLarge = &httpError{http.StatusRequestEntityTooLarge, "Request body too large"}
	// errBodyEncoding is FastAPI's answer to a JSON body it cannot decode
	// (bytes that are not UTF-8), as opposed to malformed JSON (422).
	errBodyEncoding = &httpError{http.StatusBadRequest, "There was an error parsing the body"}
)

// writeError is the one place errors become responses: each dollr.Error code
// maps to a status and one of Dollr's body shapes.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if errors.As(err, &he) {
		writeDetail(w, he.status, he.detail)
		return
	}
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		s.log.DebugContext(r.Context(), "request abandoned by the client", "request_id", RequestID(r.Context()), "err", err)
		writeUnavailable(w)
		return
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil:
		// The request outlived its deadline (RequestTimeout, set in withRequestID): the store is
		// slow or hung. Worth a retry later, as when it is down.
		s.logOutage(r, "request deadline exceeded", err)
		writeUnavailable(w)
		return
	case dollr.IsUnavailable(err):
		s.logOutage(r, "store unavailable", err)
		writeUnavailable(w)
		return
	}
	var de *dollr.Error
	if !errors.As(err, &de) {
		s.log.ErrorContext(r.Context(), "internal error", "request_id", RequestID(r.Context()), "err", err)
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	switch de.Code {
	case dollr.EINVALID, dollr.ECONFLICT:
		fields := de.Fields
		if len(fields) == 0 {
			fields = []dollr.FieldError{{Loc: []any{"body"}, Msg: de.Message, Type: "value_error"}}
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": valueErrorPrefix(fields)})
	case dollr.ENOTFOUND:
		writeDetail(w, http.StatusNotFound, capitalize(de.Message))
	case dollr.EUNAUTHORIZED:
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeDetail(w, http.StatusUnauthorized, de.Message)
	default:
		s.log.ErrorContext(r.Context(), "internal error", "request_id", RequestID(r.Context()), "err", err)
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
	}
}

// unavailableRetryAfter is the Retry-After of a 503: long enough for a
// database restart, short enough for a checkout page that is polling.
const unavailableRetryAfter = "5"

// writeUnavailable answers 503 {"detail":"Service Unavailable"} with
// Retry-After, which Dollr's clients honour (dollr-api.md §9.4).
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", unavailableRetryAfter)
	writeDetail(w, http.StatusServiceUnavailable, "Service Unavailable")
}

// logOutage logs a failure that every request repeats while the store is
// down, at most once a second.
func (s *Server) logOutage(r *http.Request, msg string, err error) {
	if ok, suppressed := s.unavailableLog.Allow(time.Now()); ok {
		s.log.WarnContext(r.Context(), msg, "request_id", RequestID(r.Context()), "err", err, "suppressed", suppressed)
	}
}

func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]string{"detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// valueErrorPrefix gives every value_error pydantic's "Value error, " prefix
// (the stores word theirs without it), copying fields only if one changes.
func valueErrorPrefix(fields []dollr.FieldError) []dollr.FieldError {
	const prefix = "Value error, "
	var out []dollr.FieldError
	for i, f := range fields {
		if f.Type != "value_error" || strings.HasPrefix(f.Msg, prefix) {
			continue
		}
		if out == nil {
			out = slices.Clone(fields)
		}
		out[i].Msg = prefix + f.Msg
	}
	if out == nil {
		return fields
	}
	return out
}

// capitalize makes "execution not found" Dollr's "Execution not found".
func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
