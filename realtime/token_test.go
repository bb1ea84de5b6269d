package realtime

import (
	"strings"
	"testing"
	"time"
)

func TestVerifyToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour).Unix()
	cases := []struct {
		name   string
		token  string
		reason string // "" means valid
	}{
		{name: "valid", token: signToken(testSecret, map[string]any{"role": "anon", "exp": exp, "session_id": 7})},
		{name: "fractional exp", token: signToken(testSecret, map[string]any{"role": "anon", "exp": float64(exp) + 0.5})},
		{name: "expired", token: signToken(testSecret, map[string]any{"role": "anon", "exp": now.Unix() - 42}), reason: "InvalidJWTToken: Token has expired 42 seconds ago"},
		{name: "expires now", token: signToken(testSecret, map[string]any{"role": "anon", "exp": now.Unix()}), reason: "InvalidJWTToken: Token has expired 0 seconds ago"},
		{name: "exp not a number", token: signToken(testSecret, map[string]any{"role": "anon", "exp": "soon"}), reason: "InvalidJWTToken: Token expiration time is invalid"},
		{name: "role not a string", token: signToken(testSecret, map[string]any{"role": 5, "exp": exp}), reason: "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
		{name: "missing role", token: signToken(testSecret, map[string]any{"exp": exp}), reason: "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
		{name: "missing exp", token: signToken(testSecret, map[string]any{"role": "anon"}), reason: "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
		{name: "other secret", token: signToken([]byte("x"), map[string]any{"role": "anon", "exp": exp}), reason: "JwtSignatureError: Failed to validate JWT signature"},
		{name: "alg none", token: signRaw(testSecret, `{"alg":"none"}`, map[string]any{"role": "anon", "exp": exp}), reason: "JwtSignerError: Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
		{name: "alg RS256", token: signRaw(testSecret, `{"alg":"RS256"}`, map[string]any{"role": "anon", "exp": exp}), reason: "JwtSignerError: Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
		{name: "two parts", token: "a.b", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "four parts", token: "a.b.c.d", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "header not json", token: "bm9wZQ.e30.", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "claims an array", token: signRaw(testSecret, `{"alg":"HS256"}`, nil)[:0] + "eyJhbGciOiJIUzI1NiJ9.W10.", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "empty", token: "", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "huge", token: strings.Repeat("a", 20000), reason: "MalformedJWT: The token provided is not a valid JWT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := VerifyToken(testSecret, tc.token, now)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if tok.Role != "anon" || tok.Exp.Unix() != exp || tok.Raw != tc.token {
					t.Errorf("token %+v", tok)
				}
				return
			}
			te, ok := err.(*TokenError)
			if !ok || te.Reason() != tc.reason {
				t.Fatalf("err = %v, want %q", err, tc.reason)
			}
		})
	}
}

func TestVerifyTokenBadSignatureEncoding(t *testing.T) {
	tok := anonKey()
	if _, err := VerifyToken(testSecret, tok+"!", time.Now()); err == nil {
		t.Error("want error")
	}
	if _, err := VerifyToken(testSecret, tok+"==", time.Now()); err != nil {
		t.Errorf("padding is tolerated: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	exp := time.Now().Add(time.Hour).Unix()
	f.Add(signToken(testSecret, map[string]any{"role": "anon", "exp": exp}))
	f.Add(signRaw(testSecret, `{"alg":"none"}`, map[string]any{"role": "anon", "exp": exp}))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjFlOTk5fQ.x")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := VerifyToken(testSecret, s, time.Now())
		if err == nil && (tok.Role == "" && tok.Claims["role"] != "" || tok.Exp.IsZero()) {
			t.Fatalf("accepted a token without role/exp: %q", s)
		}
		if err != nil {
			if _, ok := err.(*TokenError); !ok {
				t.Fatalf("error of type %T", err)
			}
		}
	})
}
