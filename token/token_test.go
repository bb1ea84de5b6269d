package token_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dollr/dollr/token"
)

var (
	apiSecret = bytes.Repeat([]byte{1}, 32)
	rtSecret  = bytes.Repeat([]byte{2}, 32)
)

func newTokens(t testing.TB, now *time.Time) *token.Tokens {
	t.Helper()
	return newTokensWith(t, apiSecret, now)
}

func TestAccessRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := newTokens(t, &now)
	s, err := tk.IssueAccess(42, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tk.VerifyAccess(s)
	if err != nil || id != 42 {
		t.Fatalf("VerifyAccess = %d, %v; want 42", id, err)
	}
	now = now.Add(time.Hour + time.Minute)
	if _, err := tk.VerifyAccess(s); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("expired token accepted: %v", err)
	}
}

func TestRealtimeRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := newTokens(t, &now)
	s, err := tk.IssueRealtime(token.RealtimeClaims{MerchantID: 1, SessionID: 55, ReferenceID: "550e8400-e29b-41d4-a716-446655440000", SourceType: "INVOICE"}, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tk.VerifyRealtime(s)
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionID != 55 || c.MerchantID != 1 || c.Role != "authenticated" || c.Type != "realtime" || c.SourceType != "INVOICE" {
		t.Fatalf("claims = %+v", c)
	}
	if c.ExpiresAt.Sub(now) != 15*time.Minute {
		t.Fatalf("exp = %v", c.ExpiresAt)
	}
	// A realtime key is no bearer token and no anon key, and vice versa.
	if _, err := tk.VerifyAccess(s); err == nil {
		t.Fatal("realtime key accepted as bearer token")
	}
	if _, err := tk.VerifyAnon(s); err == nil {
		t.Fatal("realtime key accepted as anon key")
	}
	anon, _ := tk.AnonKey()
	if _, err := tk.VerifyRealtime(anon); err == nil {
		t.Fatal("anon key accepted as realtime key")
	}
	if c, err := tk.VerifyAnon(anon); err != nil || c.Role != "anon" || c.ExpiresAt.Sub(now) < 9*365*24*time.Hour {
		t.Fatalf("anon = %+v, %v", c, err)
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := newTokens(t, &now)
	claims := func(typ string) token.AccessClaims {
		return token.AccessClaims{Type: typ, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "dollr", Subject: "7",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}}
	}
	signed := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noExp := claims("access")
	noExp.ExpiresAt = nil
	otherIss := claims("access")
	otherIss.Issuer = "supabase"
	badSub := claims("access")
	badSub.Subject = "x"
	good := signed(jwt.SigningMethodHS256, apiSecret, claims("access"))
	cases := map[string]string{
		"empty":           "",
		"garbage":         "not.a.jwt",
		"alg none":        signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("access")),
		"HS512":           signed(jwt.SigningMethodHS512, apiSecret, claims("access")),
		"other secret":    signed(jwt.SigningMethodHS256, rtSecret, claims("access")),
		"wrong typ":       signed(jwt.SigningMethodHS256, apiSecret, claims("realtime")),
		"no exp":          signed(jwt.SigningMethodHS256, apiSecret, noExp),
		"other issuer":    signed(jwt.SigningMethodHS256, apiSecret, otherIss),
		"bad subject":     signed(jwt.SigningMethodHS256, apiSecret, badSub),
		"tampered":        good[:len(good)-2] + "xx",
		"huge":            strings.Repeat("a", 10000),
		"payload swapped": strings.Split(good, ".")[0] + "." + strings.Split(signed(jwt.SigningMethodHS256, apiSecret, claims("realtime")), ".")[1] + "." + strings.Split(good, ".")[2],
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := tk.VerifyAccess(s); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("VerifyAccess(%s) err = %v, want ErrInvalid", name, err)
			}
		})
	}
	if _, err := tk.VerifyAccess(good); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
}

func TestNewRejectsShortSecrets(t *testing.T) {
	if _, err := token.New([]byte("short"), rtSecret); err == nil {
		t.Fatal("short secret accepted")
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	tk := newTokens(f, &now)
	acc, _ := tk.IssueAccess(1, time.Hour)
	rt, _ := tk.IssueRealtime(token.RealtimeClaims{MerchantID: 1, SessionID: 2, ReferenceID: "r"}, time.Minute)
	anon, _ := tk.AnonKey()
	for _, s := range []string{acc, rt, anon, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "...."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Only the exact tokens this issuer made verify; everything else errors, nothing panics.
		if _, err := tk.VerifyAccess(s); err == nil && s != acc {
			if _, err2 := tk.VerifyAccess(s); err2 != nil {
				t.Fatal("non-deterministic verification")
			}
		}
		tk.VerifyRealtime(s)
		tk.VerifyAnon(s)
	})
}

// TestVerifyAccessRemembered checks that remembering verified bearer tokens
// changes no answer: a token verified before still expires on time, a
// tampered copy of it is still refused, and the bound on remembered tokens
// loses no merchant.
func TestVerifyAccessRemembered(t *testing.T) {
	issued := time.Unix(1_800_000_000, 0)
	now := issued
	warm := newTokens(t, &now)
	good, err := warm.IssueAccess(7, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := warm.VerifyAccess(good); err != nil || id != 7 {
		t.Fatalf("VerifyAccess = %d, %v; want 7", id, err)
	}
	// The same claims signed with another secret.
	forged, err := newTokensWith(t, rtSecret, &now).IssueAccess(7, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"tampered signature": good[:len(good)-2] + "xx",
		"truncated":          good[:len(good)-1],
		"extended":           good + "a",
		"other secret":       forged,
	} {
		if _, err := warm.VerifyAccess(s); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: accepted after the genuine token was remembered (err %v)", name, err)
		}
	}
	// Around the expiry (an hour, plus 5 s of leeway) a remembered token and a
	// freshly parsed one get the same answer.
	for _, at := range []time.Duration{time.Hour, time.Hour + 5*time.Second - time.Nanosecond, time.Hour + 5*time.Second, 2 * time.Hour} {
		now = issued.Add(at)
		cold := newTokens(t, &now)
		_, coldErr := cold.VerifyAccess(good)
		_, warmErr := warm.VerifyAccess(good)
		if (coldErr == nil) != (warmErr == nil) {
			t.Errorf("at +%v: remembered token err %v, parsed err %v", at, warmErr, coldErr)
		}
	}
	now = issued.Add(time.Hour + time.Minute)
	if _, err := warm.VerifyAccess(good); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("expired remembered token accepted: %v", err)
	}
	// More distinct tokens than are remembered: every one still verifies as its own merchant.
	now = issued
	for id := int64(1); id <= 5000; id++ {
		s, err := warm.IssueAccess(id, time.Duration(id)*time.Second+time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if got, err := warm.VerifyAccess(s); err != nil || got != id {
				t.Fatalf("token %d: VerifyAccess = %d, %v", id, got, err)
			}
		}
	}
}

// newTokensWith returns Tokens with the given API secret, on the clock *now.
func newTokensWith(t testing.TB, api []byte, now *time.Time) *token.Tokens {
	t.Helper()
	tk, err := token.New(api, rtSecret)
	if err != nil {
		t.Fatal(err)
	}
	tk.Now = func() time.Time { return *now }
	return tk
}

// TestIssueRealtimeMatchesLibrary checks that the hand-written realtime key
// is byte for byte what golang-jwt signs for the same claims.
func TestIssueRealtimeMatchesLibrary(t *testing.T) {
	now := time.Unix(1_800_000_000, 987_654_321)
	tk := newTokens(t, &now)
	for _, c := range []token.RealtimeClaims{
		{MerchantID: 1, SessionID: 55, ReferenceID: "550e8400-e29b-41d4-a716-446655440000", SourceType: "INVOICE"},
		{MerchantID: 1 << 62, SessionID: 9_007_199_254_740_993, ReferenceID: "x", SourceType: "ORDER"},
		{MerchantID: 0, SessionID: -3, ReferenceID: "", SourceType: ""},
		{MerchantID: 2, SessionID: 3, ReferenceID: "a\"b\\c<d>&e\n\u2028é\xff", SourceType: "\x00"},
	} {
		for _, ttl := range []time.Duration{15 * time.Minute, 1500 * time.Millisecond} {
			got, err := tk.IssueRealtime(c, ttl)
			if err != nil {
				t.Fatal(err)
			}
			want := c
			want.Role, want.Type = token.RoleAuthenticated, token.TypeRealtime
			want.RegisteredClaims = jwt.RegisteredClaims{
				Issuer:    token.Issuer,
				IssuedAt:  jwt.NewNumericDate(now),
				ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			}
			lib, err := jwt.NewWithClaims(jwt.SigningMethodHS256, want).SignedString(rtSecret)
			if err != nil {
				t.Fatal(err)
			}
			if got != lib {
				t.Errorf("claims %+v, ttl %v:\n got %s\nwant %s", c, ttl, got, lib)
			}
		}
	}
}
