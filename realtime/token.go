package realtime

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"strings"
	"time"
)

// TokenError says why a JWT was refused. Its three renderings are the ones
// the real Realtime server uses in its three places (realtime-protocol.md §1.2,
// §5.3, §10.3).
type TokenError struct {
	Code    string // join error code, e.g. "InvalidJWTToken"
	Message string // the sentence a join error or a channel shutdown carries
	Upgrade string // the sentence of the refused upgrade's {"error": ...} body
}

func (e *TokenError) Error() string { return e.Code + ": " + e.Message }

// Reason renders the error as a join reply's reason: "<Code>: <message>".
func (e *TokenError) Reason() string { return e.Error() }

var (
	errTokenMalformed = &TokenError{Code: "MalformedJWT", Message: "The token provided is not a valid JWT",
		Upgrade: "The token provided is not a valid JWT"}
	errTokenSigner = &TokenError{Code: "JwtSignerError",
		Message: "Failed to generate JWT signer, check your JWT secret or JWKS configuration",
		Upgrade: "Failed to generate JWT signer, check your JWT secret or JWKS configuration"}
	errTokenSignature = &TokenError{Code: "JwtSignatureError", Message: "Failed to validate JWT signature",
		Upgrade: "Failed to validate JWT signature"}
	errTokenClaims = &TokenError{Code: "InvalidJWTToken", Message: "Fields `role` and `exp` are required in JWT",
		Upgrade: "Fields `role` and `exp` are required in JWT"}
	errTokenExpInvalid = &TokenError{Code: "InvalidJWTToken", Message: "Token expiration time is invalid",
		Upgrade: "The token provided is not a valid JWT"}
	errAPIKeyMissing = &TokenError{Code: "InvalidJWTToken", Message: "API key is missing", Upgrade: "API key is missing"}
)

func errTokenExpired(ago int64) *TokenError {
	return &TokenError{Code: "InvalidJWTToken", Message: fmt.Sprintf("Token has expired %d seconds ago", ago),
		Upgrade: "Token has expired"}
}

// Token is a verified JWT: its claims and its expiry.
type Token struct {
	Raw    string
	Claims map[string]any // numbers are json.Number
	Exp    time.Time
	Role   string
}

// maxTokenLen bounds what we decode; real tokens are a few hundred bytes.
const maxTokenLen = 16 << 10

// VerifyToken checks a JWT signed with HS256/384/512 under secret: a
// well-formed header and claims object, a valid signature, the claims `role`
// (a string) and `exp` (a number), and exp after now. It never panics.
func VerifyToken(secret []byte, raw string, now time.Time) (*Token, error) {
	if len(raw) > maxTokenLen {
		return nil, errTokenMalformed
	}
	h64, rest, ok1 := strings.Cut(raw, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return nil, errTokenMalformed
	}
	header, ok := decodeSegment(h64)
	if !ok {
		return nil, errTokenMalformed
	}
	claims, ok := decodeSegment(c64)
	if !ok {
		return nil, errTokenMalformed
	}
	var newHash func() hash.Hash
	switch alg, _ := header["alg"].(string); alg {
	case "HS256":
		newHash = sha256.New
	case "HS384":
		newHash = sha512.New384
	case "HS512":
		newHash = sha512.New
	default: // "none", asymmetric algorithms, missing: we hold no key for them
		return nil, errTokenSigner
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s64, "="))
	if err != nil {
		return nil, errTokenMalformed
	}
	mac := hmac.New(newHash, secret)
	mac.Write([]byte(raw[:len(h64)+1+len(c64)]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, errTokenSignature
	}
	t := &Token{Raw: raw, Claims: claims}
	expRaw, hasExp := claims["exp"]
	if hasExp {
		n, ok := expRaw.(json.Number)
		if !ok {
			return nil, errTokenExpInvalid
		}
		f, err := n.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			return nil, errTokenExpInvalid
		}
		sec := int64(math.Floor(f))
		t.Exp = time.Unix(sec, 0)
		// The real server accepts a token while exp > now, in whole seconds.
		if nowSec := now.Unix(); f <= float64(nowSec) {
			return nil, errTokenExpired(nowSec - sec)
		}
	}
	role, hasRole := claims["role"].(string)
	if !hasRole || !hasExp {
		return nil, errTokenClaims
	}
	t.Role = role
	return t, nil
}

// decodeSegment decodes one base64url JSON object segment, numbers as json.Number.
func decodeSegment(seg string) (map[string]any, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return nil, false
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := parseJSON(p, b)
	if err != nil {
		return nil, false
	}
	m, ok := toAny(v).(map[string]any)
	return m, ok
}
