package token_test

import (
	"testing"
	"time"

	"github.com/dollr/dollr/token"
)

// BenchmarkVerifyAccess is the bearer-token check every authenticated API
// request makes (a merchant presents the same token for its whole lifetime).
func BenchmarkVerifyAccess(b *testing.B) {
	now := time.Now()
	tk := newTokens(b, &now)
	s, err := tk.IssueAccess(42, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tk.VerifyAccess(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueRealtime is the signing half of POST /v1/realtime-keys/collection.
func BenchmarkIssueRealtime(b *testing.B) {
	now := time.Now()
	tk := newTokens(b, &now)
	c := token.RealtimeClaims{MerchantID: 1, SessionID: 55, ReferenceID: "550e8400-e29b-41d4-a716-446655440000", SourceType: "INVOICE"}
	for b.Loop() {
		if _, err := tk.IssueRealtime(c, 15*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
