package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/dollr/dollr/internal/backends"
)

// BenchmarkCollectionFlow measures one whole API-embedded collection over
// loopback HTTP on each backend: checkout, session, payment account, execute.
func BenchmarkCollectionFlow(b *testing.B) {
	for _, bk := range backends.All() {
		b.Run(bk.Name, func(b *testing.B) {
			e := newEnv(b, bk, options{})
			for b.Loop() {
				src, party := e.checkout(e.a.token, "231770000010", "INVOICE")
				sess := e.session(e.a.token, src, "INVOICE")
				acct := e.momoAccount(e.a.token, party, "231770000010")
				e.must(http.MethodPost, "/v1/executions/collection", e.a.token, map[string]any{
					"session_id": fmt.Sprint(sess), "payment_account_id": fmt.Sprint(acct), "currency": "USD", "reference_id": uuid.NewString(),
				}, nil)
			}
		})
	}
}

// BenchmarkCollectionStatus measures GET /v1/status/collection/{reference_id}
// on each backend.
func BenchmarkCollectionStatus(b *testing.B) {
	for _, bk := range backends.All() {
		b.Run(bk.Name, func(b *testing.B) {
			e := newEnv(b, bk, options{})
			body := execBody(e.a)
			e.must(http.MethodPost, "/v1/executions/collection", e.a.token, body, nil)
			path := "/v1/status/collection/" + body["reference_id"].(string)
			for b.Loop() {
				e.must(http.MethodGet, path, e.a.token, nil, nil)
			}
		})
	}
}

// BenchmarkRealtimeKey measures POST /v1/realtime-keys/collection on each
// backend: the request a merchant's backend makes for every watched payment.
func BenchmarkRealtimeKey(b *testing.B) {
	for _, bk := range backends.All() {
		b.Run(bk.Name, func(b *testing.B) {
			e := newEnv(b, bk, options{})
			body := map[string]any{"session_id": e.a.sessionID, "source_type": "INVOICE", "reference_id": uuid.NewString()}
			for b.Loop() {
				e.must(http.MethodPost, "/v1/realtime-keys/collection", e.a.token, body, nil)
			}
		})
	}
}
