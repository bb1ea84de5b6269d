// Package token issues and verifies the installation's HS256 JWTs: merchant
// bearer tokens (signed with the API secret), and the anon key and realtime
// keys (signed with the realtime secret, the one the realtime server checks).
// Both secrets are generated on first start and kept in the store, so they
// never leave the server.
package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dollr/dollr"
)

// Setting keys under which the secrets are persisted.
const (
	APISecretSetting      = "api_jwt_secret"
	RealtimeSecretSetting = "realtime_jwt_secret"
)

// Claim values.
const (
	Issuer       = "dollr"
	TypeAccess   = "access"
	TypeRealtime = "realtime"
	RoleAnon     = "anon"
	// RoleAuthenticated is Supabase's role for a signed-in user; realtime keys carry it.
	RoleAuthenticated = "authenticated"

	// AnonKeyLifetime is long because the anon key is configuration, like Supabase's.
	AnonKeyLifetime = 10 * 365 * 24 * time.Hour
)

// ErrInvalid is returned (wrapped) for any token that fails verification.
var ErrInvalid = errors.New("invalid token")

// Tokens signs and verifies with the two per-installation secrets.
type Tokens struct {
	apiSecret      []byte
	realtimeSecret []byte
	// Now is the clock for issuing and for expiry checks; time.Now if nil.
	Now func() time.Time

	// verified remembers bearer tokens that passed VerifyAccess: a merchant
	// presents one token on every request for its whole lifetime, and parsing
	// it (base64, JSON, HMAC) was about a fifth of a Status API request's CPU.
	mu       sync.Mutex
	verified map[string]verifiedAccess
}

// verifiedAccess is a bearer token that passed verification: whose it is, and
// the last instant it is still accepted (its expiry plus the leeway).
type verifiedAccess struct {
	merchantID int64
	until      time.Time
}

// Bounds of the verified-token cache: enough for every merchant of an
// installation; past it the cache starts over rather than tracking age.
const (
	maxVerified = 4096
	leeway      = 5 * time.Second
)

// New returns Tokens for the given secrets. Both must be at least 32 bytes.
func New(apiSecret, realtimeSecret []byte) (*Tokens, error) {
	if len(apiSecret) < 32 || len(realtimeSecret) < 32 {
		return nil, errors.New("token: secrets must be at least 32 bytes")
	}
	return &Tokens{apiSecret: apiSecret, realtimeSecret: realtimeSecret}, nil
}

// Load reads both secrets from the store, generating and storing random
// 32-byte secrets on first use. Concurrent first starts agree on one value
// because Store.Setting keeps the first stored value.
func Load(ctx context.Context, store dollr.Store) (*Tokens, error) {
	api, err := loadSecret(ctx, store, APISecretSetting)
	if err != nil {
		return nil, err
	}
	rt, err := loadSecret(ctx, store, RealtimeSecretSetting)
	if err != nil {
		return nil, err
	}
	return New(api, rt)
}

func loadSecret(ctx context.Context, store dollr.Store, key string) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	v, err := store.Setting(ctx, key, hex.EncodeToString(b))
	if err != nil {
		return nil, fmt.Errorf("token: load %s: %w", key, err)
	}
	secret, err := hex.DecodeString(v)
	if err != nil || len(secret) < 32 {
		return nil, fmt.Errorf("token: stored %s is not a 32-byte hex secret", key)
	}
	return secret, nil
}

// RealtimeSecret returns the secret the realtime server verifies keys with.
func (t *Tokens) RealtimeSecret() []byte { return t.realtimeSecret }

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func sign(claims jwt.Claims, secret []byte) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// AccessClaims are a merchant bearer token's claims.
type AccessClaims struct {
	Type string `json:"typ"`
	jwt.RegisteredClaims
}

// IssueAccess returns a merchant bearer token valid for ttl.
func (t *Tokens) IssueAccess(merchantID int64, ttl time.Duration) (string, error) {
	now := t.now()
	return sign(AccessClaims{
		Type: TypeAccess,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   strconv.FormatInt(merchantID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}, t.apiSecret)
}

// VerifyAccess checks a bearer token and returns its merchant ID. A token
// seen before is looked up, not parsed again; its expiry is still checked.
func (t *Tokens) VerifyAccess(s string) (merchantID int64, err error) {
	now := t.now()
	t.mu.Lock()
	v, ok := t.verified[s]
	t.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.merchantID, nil
	}
	var c AccessClaims
	if err := t.parse(s, &c, t.apiSecret); err != nil {
		return 0, err
	}
	if c.Type != TypeAccess {
		return 0, fmt.Errorf("%w: typ %q is not %q", ErrInvalid, c.Type, TypeAccess)
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: bad subject", ErrInvalid)
	}
	t.mu.Lock()
	if t.verified == nil || len(t.verified) >= maxVerified {
		t.verified = make(map[string]verifiedAccess)
	}
	t.verified[strings.Clone(s)] = verifiedAccess{merchantID: id, until: c.ExpiresAt.Add(leeway)}
	t.mu.Unlock()
	return id, nil
}

// AnonClaims are the anon key's claims (Supabase's shape: role, iss, iat, exp).
type AnonClaims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// AnonKey returns a new anon key (the supabase_anon_key a client connects with).
func (t *Tokens) AnonKey() (string, error) {
	now := t.now()
	return sign(AnonClaims{
		Role: RoleAnon,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(AnonKeyLifetime)),
		},
	}, t.realtimeSecret)
}

// RealtimeClaims are a realtime key's claims: who may watch which payment.
type RealtimeClaims struct {
	Role        string `json:"role"`
	Type        string `json:"typ"`
	MerchantID  int64  `json:"merchant_id"`
	SessionID   int64  `json:"session_id"`
	ReferenceID string `json:"reference_id"`
	SourceType  string `json:"source_type"`
	jwt.RegisteredClaims
}

// IssueRealtime returns a realtime key for one session and reference, valid
// for ttl. Role, Type, Issuer, IssuedAt and ExpiresAt are filled in.
//
// A key is minted for every watched payment, so its claims are written by
// hand rather than through reflection: the same bytes golang-jwt would sign
// (TestIssueRealtimeMatchesLibrary), at a quarter of the allocations.
func (t *Tokens) IssueRealtime(c RealtimeClaims, ttl time.Duration) (string, error) {
	now := t.now()
	iat, exp := now.Truncate(time.Second).Unix(), now.Add(ttl).Truncate(time.Second).Unix()
	claims := make([]byte, 0, 256)
	claims = append(claims, `{"role":"`+RoleAuthenticated+`","typ":"`+TypeRealtime+`","merchant_id":`...)
	claims = strconv.AppendInt(claims, c.MerchantID, 10)
	claims = append(claims, `,"session_id":`...)
	claims = strconv.AppendInt(claims, c.SessionID, 10)
	claims = append(claims, `,"reference_id":`...)
	claims = appendJSONString(claims, c.ReferenceID)
	claims = append(claims, `,"source_type":`...)
	claims = appendJSONString(claims, c.SourceType)
	claims = append(claims, `,"iss":"`+Issuer+`","exp":`...)
	claims = strconv.AppendInt(claims, exp, 10)
	claims = append(claims, `,"iat":`...)
	claims = strconv.AppendInt(claims, iat, 10)
	claims = append(claims, '}')

	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(hs256Header)+1+enc.EncodedLen(len(claims))+1+enc.EncodedLen(sha256.Size))
	out = append(out, hs256Header...)
	out = append(out, '.')
	out = enc.AppendEncode(out, claims)
	mac := hmac.New(sha256.New, t.realtimeSecret)
	mac.Write(out)
	out = append(out, '.')
	out = enc.AppendEncode(out, mac.Sum(nil))
	return string(out), nil
}

// hs256Header is golang-jwt's header for HS256, {"alg":"HS256","typ":"JWT"}, encoded.
const hs256Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// appendJSONString appends s as encoding/json would write it: plain ASCII
// is copied, anything else (never the case for a UUID or a source type) goes
// through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// VerifyRealtime checks a realtime key (typ realtime, role authenticated).
func (t *Tokens) VerifyRealtime(s string) (*RealtimeClaims, error) {
	var c RealtimeClaims
	if err := t.parse(s, &c, t.realtimeSecret); err != nil {
		return nil, err
	}
	if c.Type != TypeRealtime || c.Role != RoleAuthenticated {
		return nil, fmt.Errorf("%w: not a realtime key", ErrInvalid)
	}
	if c.SessionID <= 0 || c.MerchantID <= 0 || c.ReferenceID == "" {
		return nil, fmt.Errorf("%w: realtime key lacks its scope", ErrInvalid)
	}
	return &c, nil
}

// VerifyAnon checks an anon key.
func (t *Tokens) VerifyAnon(s string) (*AnonClaims, error) {
	var c AnonClaims
	if err := t.parse(s, &c, t.realtimeSecret); err != nil {
		return nil, err
	}
	if c.Role != RoleAnon {
		return nil, fmt.Errorf("%w: not an anon key", ErrInvalid)
	}
	return &c, nil
}

// parse verifies signature (HS256 only), issuer and expiry into claims.
func (t *Tokens) parse(s string, claims jwt.Claims, secret []byte) error {
	// A token is a few hundred bytes; refuse giant inputs before base64 work.
	if len(s) > 8192 {
		return fmt.Errorf("%w: too long", ErrInvalid)
	}
	_, err := jwt.ParseWithClaims(s, claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
