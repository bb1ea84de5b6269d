package dollr

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to one status code and one of Dollr's
// body shapes ({"detail": "..."} or the 422 list), so domain code never thinks
// about HTTP.
const (
	EINVALID      = "invalid"      // 422, detail is a list of FieldErrors
	ENOTFOUND     = "not_found"    // 404
	EUNAUTHORIZED = "unauthorized" // 401
	ECONFLICT     = "conflict"     // 422 on a field (Dollr never uses 409)
	EINTERNAL     = "internal"     // 500
	// EUNAVAILABLE: the store could not be reached or dropped the
	// connection; the same request may succeed later. 503 with Retry-After.
	EUNAVAILABLE = "unavailable"
)

// FieldError is one entry of a 422 body: {"loc": [...], "msg": ..., "type": ...}.
type FieldError struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// Error is the one error type the application returns to its callers.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError // set for EINVALID and ECONFLICT
}

func (e *Error) Error() string {
	if len(e.Fields) > 0 {
		return fmt.Sprintf("dollr: %s: %s %v", e.Code, e.Message, e.Fields)
	}
	return fmt.Sprintf("dollr: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a validation error on one field. loc is the full location,
// e.g. Invalid("value_error", "invalid uuid", "body", "reference_id").
func Invalid(typ, msg string, loc ...any) *Error {
	return &Error{Code: EINVALID, Message: msg, Fields: []FieldError{{Loc: loc, Msg: msg, Type: typ}}}
}

// NotFound returns an ENOTFOUND error with Dollr's "<what> not found" message.
func NotFound(what string) *Error {
	return &Error{Code: ENOTFOUND, Message: what + " not found"}
}

// ErrorCode returns the code of err, EINTERNAL for foreign errors and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// IsNotFound reports whether err is an ENOTFOUND error.
func IsNotFound(err error) bool { return ErrorCode(err) == ENOTFOUND }

// IsUnavailable reports whether err is an EUNAVAILABLE error.
func IsUnavailable(err error) bool { return ErrorCode(err) == EUNAVAILABLE }
