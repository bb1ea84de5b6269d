package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/sandbox"
	"github.com/dollr/dollr/token"
)

const waitFor = 20 * time.Second

// env is a running API over a real store (SQLite or PostgreSQL), with two
// merchants. More API servers may share its database (addServer), as several
// `dollr serve` processes would.
type env struct {
	t       testing.TB
	url     string // the first server
	db      backends.Database
	store   dollr.Store // the first server's
	tokens  *token.Tokens
	network *sandbox.Network
	offset  atomic.Int64 // added to the clock, to expire sessions and tokens
	a, b    merchant
}

type merchant struct {
	id             int64
	clientID       string
	secret         string
	token          string
	sourceID       int64
	partyID        int64
	sessionID      int64
	accountID      int64
	cardAccountID  int64
	otherSourceID  int64 // an ORDER
	otherSessionID int64
}

type options struct {
	network *sandbox.Network
	runner  bool
}

func newEnv(t testing.TB, b backends.Backend, o options) *env {
	t.Helper()
	if o.network == nil {
		o.network = &sandbox.Network{Delay: time.Hour, LongDelay: time.Hour}
	}
	e := &env{t: t, db: b.NewDatabase(t), network: o.network}
	e.url, e.store, e.tokens = e.addServer(o.runner)
	e.a = e.newMerchant("A")
	e.b = e.newMerchant("B")
	return e
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// addServer starts another API server, with a sandbox runner if asked, on a
// store of its own over the env's database, and stops it when the test ends.
// Servers share the signing secrets through the database.
func (e *env) addServer(runner bool) (string, dollr.Store, *token.Tokens) {
	t := e.t
	t.Helper()
	st := e.db.Open(t)
	tokens, err := token.Load(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	tokens.Now = e.now
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := api.New(api.Config{
		Store: st, Tokens: tokens, Sandbox: e.network, Now: e.now, BaseURL: "http://pay.example",
		Logger: quiet, Metrics: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if runner {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&sandbox.Runner{Store: st, Now: e.now, Logger: quiet, MaxIdle: 50 * time.Millisecond}).Run(ctx)
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	return srv.URL, st, tokens
}

func (e *env) newMerchant(name string) merchant {
	e.t.Helper()
	m := merchant{clientID: "ci_" + name + uuid.NewString(), secret: "cs_" + uuid.NewString()}
	sum := sha256.Sum256([]byte(m.secret))
	dm := &dollr.Merchant{Name: name, ClientID: m.clientID, ClientSecretHash: hex.EncodeToString(sum[:])}
	if err := e.store.CreateMerchant(context.Background(), dm); err != nil {
		e.t.Fatal(err)
	}
	m.id = dm.ID
	var tok api.ObtainTokenResponse
	e.must(http.MethodPost, "/v1/jwt/client/obtain/token", "", map[string]any{"client_id": m.clientID, "client_secret": m.secret}, &tok)
	m.token = tok.AccessToken
	m.sourceID, m.partyID = e.checkout(m.token, "231770000010", "INVOICE")
	m.sessionID = e.session(m.token, m.sourceID, "INVOICE")
	m.accountID = e.momoAccount(m.token, m.partyID, "231770000010")
	m.cardAccountID = e.cardAccount(m.token, m.partyID, "pm_card_visa")
	m.otherSourceID, _ = e.checkout(m.token, "231770000010", "ORDER")
	m.otherSessionID = e.session(m.token, m.otherSourceID, "ORDER")
	return m
}

func (e *env) checkout(tok, phone, kind string) (sourceID, partyID int64) {
	e.t.Helper()
	var r api.CreateCheckoutSourceLinkResponse
	e.must(http.MethodPost, "/v1/checkouts/create", tok, map[string]any{
		"mode": "DIRECT", "source_kind": kind, "party_phone": phone, "currency": "USD",
		"items": []map[string]any{{"name": "Rice", "currency": "USD", "amount": 12.5}},
	}, &r)
	return r.SourceID, r.PartyID
}

func (e *env) session(tok string, sourceID int64, kind string) int64 {
	e.t.Helper()
	var r api.CheckoutSessionResponse
	e.must(http.MethodPost, "/v1/sessions/checkout", tok, map[string]any{"source_id": sourceID, "source_type": kind}, &r)
	return r.ID
}

func (e *env) momoAccount(tok string, partyID int64, phone string) int64 {
	e.t.Helper()
	var r api.PaymentAccountResponse
	e.must(http.MethodPost, "/v1/payment-accounts/create?operation_type=COLLECTION", tok, map[string]any{
		"account_name": "MoMo", "provider": "PAWAPAY", "method": "MTN_MOMO_LBR", "party_id": partyID,
		"country_code": "LR", "insensitive_account_number": phone,
	}, &r)
	return r.ID
}

func (e *env) cardAccount(tok string, partyID int64, pm string) int64 {
	e.t.Helper()
	var r api.PaymentAccountResponse
	e.must(http.MethodPost, "/v1/payment-accounts/create?operation_type=COLLECTION", tok, map[string]any{
		"account_name": "Card", "provider": "STRIPE", "method": "CREDIT_CARD", "party_id": partyID, "payment_method_id": pm,
	}, &r)
	return r.ID
}

// do sends a request to the first server; body is marshalled unless it is a
// string or []byte (sent raw).
func (e *env) do(method, path, tok string, body any) (int, []byte, http.Header) {
	e.t.Helper()
	status, out, hdr, err := send(e.url, method, path, tok, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return status, out, hdr
}

// send sends a request to the server at base. It does not fail the test, so
// it may be called from any goroutine.
func send(base, method, path, tok string, body any) (int, []byte, http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, out, resp.Header, nil
}

// must sends a request that must answer 200 and decodes the body into v.
func (e *env) must(method, path, tok string, body, v any) {
	e.t.Helper()
	status, out, _ := e.do(method, path, tok, body)
	if status != http.StatusOK {
		e.t.Fatalf("%s %s = %d %s", method, path, status, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
}

func (e *env) execute(tok string, body map[string]any) (int, api.ExecutionResponse, []byte) {
	e.t.Helper()
	status, out, _ := e.do(http.MethodPost, "/v1/executions/collection", tok, body)
	var r api.ExecutionResponse
	if status == http.StatusOK {
		if err := json.Unmarshal(out, &r); err != nil {
			e.t.Fatal(err)
		}
	}
	return status, r, out
}

func execBody(m merchant) map[string]any {
	return map[string]any{
		"session_id": fmt.Sprint(m.sessionID), "payment_account_id": fmt.Sprint(m.accountID),
		"currency": "USD", "reference_id": uuid.NewString(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == deleteKey {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

type deleteMarker struct{}

var deleteKey = deleteMarker{}

// errCase is an expected error response.
type errCase struct {
	name   string
	method string
	path   string
	token  string
	body   any
	status int
	detail string // for {"detail": "..."} bodies
	locs   []string
	types  []string // optional, parallel to locs
}

func (e *env) checkErrors(t *testing.T, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out, hdr := e.do(c.method, c.path, c.token, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, out)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			if c.status != http.StatusUnprocessableEntity {
				var body struct {
					Detail string `json:"detail"`
				}
				if err := json.Unmarshal(out, &body); err != nil || body.Detail != c.detail {
					t.Fatalf("body %s, want detail %q", out, c.detail)
				}
				return
			}
			var body struct {
				Detail []struct {
					Loc  []any  `json:"loc"`
					Msg  string `json:"msg"`
					Type string `json:"type"`
				} `json:"detail"`
			}
			if err := json.Unmarshal(out, &body); err != nil {
				t.Fatalf("422 body %s: %v", out, err)
			}
			var locs []string
			for i, d := range body.Detail {
				if d.Msg == "" || d.Type == "" || len(d.Loc) == 0 {
					t.Fatalf("incomplete error item %s", out)
				}
				parts := make([]string, len(d.Loc))
				for j, l := range d.Loc {
					parts[j] = fmt.Sprint(l)
				}
				locs = append(locs, strings.Join(parts, "."))
				if c.types != nil && i < len(c.types) && c.types[i] != d.Type {
					t.Errorf("detail[%d].type = %q, want %q (%s)", i, d.Type, c.types[i], out)
				}
			}
			if strings.Join(locs, " ") != strings.Join(c.locs, " ") {
				t.Fatalf("locs %v, want %v: %s", locs, c.locs, out)
			}
		})
	}
}

func TestObtainToken(t *testing.T) { backends.Each(t, testObtainToken) }

func testObtainToken(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	var tok api.ObtainTokenResponse
	e.must(http.MethodPost, "/v1/jwt/client/obtain/token", "", map[string]any{"client_id": e.a.clientID, "client_secret": e.a.secret}, &tok)
	if tok.ExpiresIn != 60 || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("token response %+v", tok)
	}
	if id, err := e.tokens.VerifyAccess(tok.AccessToken); err != nil || id != e.a.id {
		t.Fatalf("token verifies as %d, %v", id, err)
	}
	path := "/v1/jwt/client/obtain/token"
	e.checkErrors(t, []errCase{
		{name: "wrong secret", method: "POST", path: path, body: map[string]any{"client_id": e.a.clientID, "client_secret": e.b.secret}, status: 401, detail: "Invalid client credentials"},
		{name: "unknown client", method: "POST", path: path, body: map[string]any{"client_id": "nobody", "client_secret": "x"}, status: 401, detail: "Invalid client credentials"},
		{name: "missing fields", method: "POST", path: path, body: map[string]any{}, status: 422, locs: []string{"body.client_id", "body.client_secret"}, types: []string{"missing", "missing"}},
		{name: "wrong type", method: "POST", path: path, body: map[string]any{"client_id": 1, "client_secret": "x"}, status: 422, locs: []string{"body.client_id"}, types: []string{"string_type"}},
		{name: "malformed", method: "POST", path: path, body: `{"client_id": "x",}`, status: 422, locs: []string{"body.18"}, types: []string{"json_invalid"}},
		{name: "empty body", method: "POST", path: path, body: ``, status: 422, locs: []string{"body"}, types: []string{"missing"}},
		{name: "array body", method: "POST", path: path, body: `[1]`, status: 422, locs: []string{"body"}, types: []string{"model_attributes_type"}},
		{name: "null body", method: "POST", path: path, body: `null`, status: 422, locs: []string{"body"}, types: []string{"model_attributes_type"}},
	})
}

func TestAuthentication(t *testing.T) { backends.Each(t, testAuthentication) }

func testAuthentication(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	path := "/v1/status/collection/" + uuid.NewString()
	expired, _ := e.tokens.IssueAccess(e.a.id, time.Minute)
	e.offset.Store(int64(2 * time.Minute))
	defer e.offset.Store(0)
	other, _ := token.New(bytes.Repeat([]byte{9}, 32), bytes.Repeat([]byte{9}, 32))
	forged, _ := other.IssueAccess(e.a.id, time.Hour)
	rt, _ := e.tokens.IssueRealtime(token.RealtimeClaims{MerchantID: e.a.id, SessionID: 1, ReferenceID: uuid.NewString()}, time.Hour)
	cases := []errCase{
		{name: "no header", method: "GET", path: path, status: 401, detail: "Not authenticated"},
		{name: "garbage", method: "GET", path: path, token: "garbage", status: 401, detail: "Could not validate credentials"},
		{name: "expired", method: "GET", path: path, token: expired, status: 401, detail: "Could not validate credentials"},
		{name: "other secret", method: "GET", path: path, token: forged, status: 401, detail: "Could not validate credentials"},
		{name: "realtime key as bearer", method: "GET", path: path, token: rt, status: 401, detail: "Could not validate credentials"},
	}
	for _, p := range []string{"/v1/checkouts/create", "/v1/sessions/checkout", "/v1/payment-accounts/create", "/v1/executions/collection", "/v1/realtime-keys/collection"} {
		cases = append(cases, errCase{name: "no header " + p, method: "POST", path: p, body: `{}`, status: 401, detail: "Not authenticated"})
	}
	cases = append(cases, errCase{name: "no header source status", method: "GET", path: "/v1/status/source?source_type=INVOICE&source_id=1", status: 401, detail: "Not authenticated"})
	e.checkErrors(t, cases)

	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("basic auth: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestCreateCheckout(t *testing.T) { backends.Each(t, testCreateCheckout) }

func testCreateCheckout(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	var r api.CreateCheckoutSourceLinkResponse
	e.must("POST", "/v1/checkouts/create", e.a.token, map[string]any{
		"mode": "HOSTED", "source_kind": "ORDER", "party_phone": "231770000010", "currency": "USD", "party_name": "Ada",
		"party_relationship": "CUSTOMER", "reference_id": "order-77", "note": "n", "due_date": "2030-01-02",
		"expires_at": "2030-01-02T10:00:00Z", "success_url": "https://shop/s", "cancel_url": "https://shop/c",
		"items": []map[string]any{{"name": "A", "currency": "USD", "amount": 10}, {"name": "B", "currency": "USD", "amount": 2.55}},
	}, &r)
	if r.Mode != "HOSTED" || r.SourceType != "ORDER" || r.SourceID == 0 || !strings.HasPrefix(r.SourceNumber, "ORD-") ||
		r.SourceStatus != "ACTIVE" || r.PartyID != e.a.partyID || r.CounterpartyID != e.a.partyID || r.TotalAmount != 1255 ||
		r.SourceCheckoutConfigID == 0 || r.URL == nil || r.HostedPathOrToken == nil ||
		*r.URL != "http://pay.example/checkout/"+*r.HostedPathOrToken || *r.ReferenceID != "order-77" ||
		r.DueDate == nil || r.ExpiresAt == nil || *r.SuccessURL != "https://shop/s" || *r.CancelURL != "https://shop/c" {
		t.Fatalf("hosted response %+v", r)
	}
	// The raw JSON has every field of CreateCheckoutSourceLinkResponse, nulls included.
	_, raw, _ := e.do("POST", "/v1/checkouts/create", e.a.token, map[string]any{
		"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": "231770000011", "currency": "LRD",
		"items": []map[string]any{{"name": "A", "currency": "LRD", "amount": 500}},
	})
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, f := range []string{"mode", "source_type", "source_id", "source_number", "source_status", "counterparty_id", "party_id", "currency", "total_amount", "source_checkout_config_id", "url", "reference_id", "due_date", "expires_at", "hosted_path_or_token", "success_url", "cancel_url"} {
		if _, ok := m[f]; !ok {
			t.Errorf("DIRECT response lacks %q: %s", f, raw)
		}
	}
	if m["url"] != nil || m["hosted_path_or_token"] != nil || m["total_amount"] != 500.0 {
		t.Fatalf("DIRECT response %s", raw)
	}

	good := map[string]any{"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": "231770000010", "currency": "USD",
		"items": []map[string]any{{"name": "A", "currency": "USD", "amount": 1}}}
	p := "/v1/checkouts/create"
	tok := e.a.token
	e.checkErrors(t, []errCase{
		{name: "missing all", method: "POST", path: p, token: tok, body: map[string]any{}, status: 422,
			locs: []string{"body.mode", "body.source_kind", "body.party_phone", "body.currency", "body.items"}},
		{name: "enums", method: "POST", path: p, token: tok, body: with(good, "mode", "EMBEDDED", "source_kind", "SUBSCRIPTION"), status: 422,
			locs: []string{"body.mode", "body.source_kind"}, types: []string{"enum", "enum"}},
		{name: "source_type instead of source_kind", method: "POST", path: p, token: tok, body: with(good, "source_kind", deleteKey, "source_type", "INVOICE"), status: 422,
			locs: []string{"body.source_kind"}, types: []string{"missing"}},
		{name: "phone", method: "POST", path: p, token: tok, body: with(good, "party_phone", "+231770000010"), status: 422,
			locs: []string{"body.party_phone"}, types: []string{"string_pattern_mismatch"}},
		{name: "phone number type", method: "POST", path: p, token: tok, body: with(good, "party_phone", 231770000010), status: 422,
			locs: []string{"body.party_phone"}, types: []string{"string_type"}},
		{name: "currency", method: "POST", path: p, token: tok, body: with(good, "currency", "usd"), status: 422,
			locs: []string{"body.currency"}, types: []string{"string_pattern_mismatch"}},
		{name: "no items", method: "POST", path: p, token: tok, body: with(good, "items", []any{}), status: 422,
			locs: []string{"body.items"}, types: []string{"too_short"}},
		{name: "items not a list", method: "POST", path: p, token: tok, body: with(good, "items", "x"), status: 422,
			locs: []string{"body.items"}, types: []string{"list_type"}},
		{name: "bad items", method: "POST", path: p, token: tok, body: with(good, "items", []any{
			"x",
			map[string]any{},
			map[string]any{"name": "a", "currency": "EUR", "amount": 1},
			map[string]any{"name": "a", "currency": "USD", "amount": 0},
			map[string]any{"name": "a", "currency": "USD", "amount": 1.234},
			map[string]any{"name": "a", "currency": "USD", "amount": "1.00"},
		}), status: 422,
			locs:  []string{"body.items.0", "body.items.1.name", "body.items.1.currency", "body.items.1.amount", "body.items.2.currency", "body.items.3.amount", "body.items.4.amount", "body.items.5.amount"},
			types: []string{"model_attributes_type", "missing", "missing", "missing", "currency_mismatch", "greater_than_equal", "decimal_max_places", "float_type"}},
		{name: "dates", method: "POST", path: p, token: tok, body: with(good, "due_date", "tomorrow", "expires_at", true), status: 422,
			locs: []string{"body.due_date", "body.expires_at"}, types: []string{"datetime_parsing", "datetime_type"}},
		{name: "dates, more", method: "POST", path: p, token: tok, body: with(good, "due_date", "2030-01-01T10", "expires_at", []int{1}), status: 422,
			locs: []string{"body.due_date", "body.expires_at"}, types: []string{"datetime_parsing", "datetime_type"}},
		{name: "timestamp in the past", method: "POST", path: p, token: tok, body: with(good, "expires_at", 5), status: 422,
			locs: []string{"body.expires_at"}, types: []string{"value_error"}},
		{name: "expired expires_at", method: "POST", path: p, token: tok, body: with(good, "expires_at", "2001-01-01T00:00:00Z"), status: 422,
			locs: []string{"body.expires_at"}},
		{name: "relationship", method: "POST", path: p, token: tok, body: with(good, "party_relationship", "ENEMY"), status: 422,
			locs: []string{"body.party_relationship"}, types: []string{"enum"}},
		{name: "counterparty of another merchant", method: "POST", path: p, token: tok, body: with(good, "counterparty_id", e.b.partyID), status: 422,
			locs: []string{"body.counterparty_id"}, types: []string{"not_found"}},
		{name: "too large", method: "POST", path: p, token: tok, body: `{"note":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`, status: 413, detail: "Request body too large"},
	})
	// Optional fields accept null.
	e.must("POST", p, tok, with(good, "party_name", nil, "due_date", nil, "counterparty_id", nil, "party_relationship", nil), nil)
	e.must("POST", p, tok, with(good, "counterparty_id", e.a.partyID), nil)
}

func TestCreateSession(t *testing.T) { backends.Each(t, testCreateSession) }

func testCreateSession(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	var s api.CheckoutSessionResponse
	e.must("POST", "/v1/sessions/checkout", e.a.token, map[string]any{"source_id": e.a.sourceID, "source_type": "INVOICE"}, &s)
	if s.ID == 0 || s.SourceID != e.a.sourceID || s.SourceType != "INVOICE" || s.Status != "ACTIVE" || s.PaymentAccountID != nil {
		t.Fatalf("session %+v", s)
	}
	_, raw, _ := e.do("POST", "/v1/sessions/checkout", e.a.token, map[string]any{"source_id": fmt.Sprint(e.a.sourceID), "source_type": "INVOICE"})
	var m map[string]any
	json.Unmarshal(raw, &m)
	exp, err := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
	if err != nil || exp.Sub(time.Now()) < 29*time.Minute || exp.Sub(time.Now()) > 31*time.Minute {
		t.Fatalf("expires_at %v (%v), want ~30 min out: %s", exp, err, raw)
	}
	if _, ok := m["payment_account_id"]; !ok || m["id"] == nil {
		t.Fatalf("session body %s", raw)
	}
	p := "/v1/sessions/checkout"
	e.checkErrors(t, []errCase{
		{name: "missing", method: "POST", path: p, token: e.a.token, body: map[string]any{}, status: 422, locs: []string{"body.source_id", "body.source_type"}},
		{name: "types", method: "POST", path: p, token: e.a.token, body: map[string]any{"source_id": "abc", "source_type": 1}, status: 422,
			locs: []string{"body.source_id", "body.source_type"}, types: []string{"int_parsing", "string_type"}},
		{name: "fraction", method: "POST", path: p, token: e.a.token, body: map[string]any{"source_id": 1.5, "source_type": "INVOICE"}, status: 422,
			locs: []string{"body.source_id"}, types: []string{"int_from_float"}},
		{name: "enum", method: "POST", path: p, token: e.a.token, body: map[string]any{"source_id": 1, "source_type": "invoice"}, status: 422,
			locs: []string{"body.source_type"}, types: []string{"enum"}},
		{name: "another merchant's source", method: "POST", path: p, token: e.a.token, body: map[string]any{"source_id": e.b.sourceID, "source_type": "INVOICE"}, status: 422,
			locs: []string{"body.source_id"}, types: []string{"not_found"}},
		{name: "wrong type", method: "POST", path: p, token: e.a.token, body: map[string]any{"source_id": e.a.sourceID, "source_type": "ORDER"}, status: 422,
			locs: []string{"body.source_id"}, types: []string{"not_found"}},
		{name: "unknown", method: "POST", path: p, token: e.a.token, body: map[string]any{"source_id": 999999, "source_type": "INVOICE"}, status: 422,
			locs: []string{"body.source_id"}, types: []string{"not_found"}},
	})
}

func TestCreatePaymentAccount(t *testing.T) { backends.Each(t, testCreatePaymentAccount) }

func testCreatePaymentAccount(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	var r api.PaymentAccountResponse
	e.must("POST", "/v1/payment-accounts/create?operation_type=COLLECTION", e.a.token, map[string]any{
		"account_name": "Ada", "provider": "MTN_MOMO_LBR", "method": "MTN_MOMO_LBR", "party_id": e.a.partyID, "insensitive_account_number": "231770000010",
	}, &r)
	if r.ID == 0 || r.AccountName != "Ada" || r.Provider != "MTN_MOMO_LBR" || r.Method != "MTN_MOMO_LBR" || r.PartyID != e.a.partyID ||
		!r.IsActive || r.CountryCode == nil || *r.CountryCode != "LR" {
		t.Fatalf("account %+v", r)
	}
	e.must("POST", "/v1/payment-accounts/create?operation_type=COLLECTION", e.a.token, map[string]any{
		"account_name": "Card", "provider": "STRIPE", "method": "CREDIT_CARD", "party_id": e.a.partyID, "insensitive_account_number": "pm_card_visa",
	}, &r)
	if r.Method != "CREDIT_CARD" || r.CountryCode != nil {
		t.Fatalf("card account %+v", r)
	}
	momo := map[string]any{"account_name": "x", "provider": "PAWAPAY", "method": "MTN_MOMO_RWA", "party_id": e.a.partyID, "insensitive_account_number": "250788000010"}
	card := map[string]any{"account_name": "x", "provider": "STRIPE", "method": "CREDIT_CARD", "party_id": e.a.partyID, "payment_method_id": "pm_card_visa"}
	p := "/v1/payment-accounts/create?operation_type=COLLECTION"
	tok := e.a.token
	e.checkErrors(t, []errCase{
		{name: "no operation_type", method: "POST", path: "/v1/payment-accounts/create", token: tok, body: momo, status: 422, locs: []string{"query.operation_type"}, types: []string{"missing"}},
		{name: "bad operation_type", method: "POST", path: "/v1/payment-accounts/create?operation_type=collection", token: tok, body: momo, status: 422, locs: []string{"query.operation_type"}, types: []string{"enum"}},
		{name: "payout", method: "POST", path: "/v1/payment-accounts/create?operation_type=PAYOUT", token: tok, body: momo, status: 422, locs: []string{"query.operation_type"}},
		{name: "missing", method: "POST", path: p, token: tok, body: map[string]any{}, status: 422, locs: []string{"body.account_name", "body.provider", "body.method", "body.party_id"}},
		{name: "method", method: "POST", path: p, token: tok, body: with(momo, "method", "MPESA"), status: 422, locs: []string{"body.method"}, types: []string{"enum"}},
		{name: "provider", method: "POST", path: p, token: tok, body: with(momo, "provider", "STRIPE"), status: 422, locs: []string{"body.provider"}},
		{name: "country", method: "POST", path: p, token: tok, body: with(momo, "country_code", "LR"), status: 422, locs: []string{"body.country_code"}},
		{name: "country pattern", method: "POST", path: p, token: tok, body: with(momo, "country_code", "rw"), status: 422, locs: []string{"body.country_code"}, types: []string{"string_pattern_mismatch"}},
		{name: "no phone", method: "POST", path: p, token: tok, body: with(momo, "insensitive_account_number", deleteKey), status: 422, locs: []string{"body.insensitive_account_number"}, types: []string{"missing"}},
		{name: "bad phone", method: "POST", path: p, token: tok, body: with(momo, "insensitive_account_number", "0788"), status: 422, locs: []string{"body.insensitive_account_number"}, types: []string{"string_pattern_mismatch"}},
		{name: "card provider", method: "POST", path: p, token: tok, body: with(card, "provider", "PAWAPAY"), status: 422, locs: []string{"body.provider"}},
		{name: "card without pm", method: "POST", path: p, token: tok, body: with(card, "payment_method_id", deleteKey), status: 422, locs: []string{"body.payment_method_id"}, types: []string{"missing"}},
		{name: "card bad pm", method: "POST", path: p, token: tok, body: with(card, "payment_method_id", "4242424242424242"), status: 422, locs: []string{"body.payment_method_id"}, types: []string{"string_pattern_mismatch"}},
		{name: "party of another merchant", method: "POST", path: p, token: tok, body: with(momo, "party_id", e.b.partyID), status: 422, locs: []string{"body.party_id"}, types: []string{"not_found"}},
		{name: "party id type", method: "POST", path: p, token: tok, body: with(momo, "party_id", true), status: 422, locs: []string{"body.party_id"}, types: []string{"int_type"}},
	})
}

func TestExecuteCollection(t *testing.T) { backends.Each(t, testExecuteCollection) }

func testExecuteCollection(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	body := execBody(e.a)
	status, r, raw := e.execute(e.a.token, body)
	if status != 200 {
		t.Fatalf("execute = %d %s", status, raw)
	}
	if r.ReferenceID != body["reference_id"] || r.Status != "PENDING" || r.PayerAmount != 1250 || r.PayerCurrency != "USD" ||
		r.PayeeAmount != 1250-sandbox.Fee(1250) || r.PayeeCurrency != "USD" || r.OperationType != "COLLECTION" ||
		r.ProviderTransactionID == nil || r.ClientSecret != nil || r.RequiresAction {
		t.Fatalf("execution %+v", r)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, f := range []string{"reference_id", "status", "payer_amount", "payer_currency", "payee_currency", "payee_amount", "operation_type", "provider_transaction_id", "gateway_message", "wallet_message", "client_secret", "requires_action"} {
		if _, ok := m[f]; !ok {
			t.Errorf("ExecutionResponse lacks %q: %s", f, raw)
		}
	}
	// Same request again: the same execution. Uppercase UUID is the same key.
	status, again, _ := e.execute(e.a.token, with(body, "reference_id", strings.ToUpper(body["reference_id"].(string))))
	if status != 200 || again.ProviderTransactionID == nil || *again.ProviderTransactionID != *r.ProviderTransactionID {
		t.Fatalf("retry = %d %+v", status, again)
	}
	// The source is PROCESSING now.
	var src api.PaymentSourceStatusResponse
	e.must("GET", fmt.Sprintf("/v1/status/source?source_type=INVOICE&source_id=%d", e.a.sourceID), e.a.token, nil, &src)
	if src.Status != "PROCESSING" || src.SourceNumber == "" || src.TotalAmount != 1250 || src.PaidAt != nil {
		t.Fatalf("source status %+v", src)
	}

	// A fresh source and session for the error cases that need them.
	srcID, partyID := e.checkout(e.a.token, "231770000010", "INVOICE")
	fresh := e.session(e.a.token, srcID, "INVOICE")
	expiring := e.session(e.a.token, srcID, "INVOICE")
	lrdSrc, _ := e.checkout(e.a.token, "231770000010", "ORDER")
	_ = partyID
	good := with(execBody(e.a), "session_id", fmt.Sprint(fresh))
	p := "/v1/executions/collection"
	tok := e.a.token
	cases := []errCase{
		{name: "missing", method: "POST", path: p, token: tok, body: map[string]any{}, status: 422,
			locs: []string{"body.session_id", "body.payment_account_id", "body.currency", "body.reference_id"}, types: []string{"missing", "missing", "missing", "missing"}},
		{name: "integer ids", method: "POST", path: p, token: tok, body: with(good, "session_id", fresh, "payment_account_id", e.a.accountID), status: 422,
			locs: []string{"body.session_id", "body.payment_account_id"}, types: []string{"string_type", "string_type"}},
		{name: "null id", method: "POST", path: p, token: tok, body: with(good, "session_id", nil), status: 422,
			locs: []string{"body.session_id"}, types: []string{"string_type"}},
		{name: "bad uuid", method: "POST", path: p, token: tok, body: with(good, "reference_id", "not-a-uuid"), status: 422,
			locs: []string{"body.reference_id"}, types: []string{"uuid_parsing"}},
		{name: "uuid v1", method: "POST", path: p, token: tok, body: with(good, "reference_id", "c232ab00-9414-11ec-b3c8-9f6bdeced846"), status: 422,
			locs: []string{"body.reference_id"}, types: []string{"uuid_version"}},
		{name: "currency", method: "POST", path: p, token: tok, body: with(good, "currency", "US"), status: 422,
			locs: []string{"body.currency"}, types: []string{"string_pattern_mismatch"}},
		{name: "malformed", method: "POST", path: p, token: tok, body: `{"session_id": }`, status: 422,
			locs: []string{"body.15"}, types: []string{"json_invalid"}},
		{name: "unknown session", method: "POST", path: p, token: tok, body: with(good, "session_id", "999999"), status: 422,
			locs: []string{"body.session_id"}, types: []string{"not_found"}},
		{name: "non-numeric session", method: "POST", path: p, token: tok, body: with(good, "session_id", "sess_1"), status: 422,
			locs: []string{"body.session_id"}, types: []string{"not_found"}},
		{name: "another merchant's session and account", method: "POST", path: p, token: tok,
			body: with(good, "session_id", fmt.Sprint(e.b.sessionID), "payment_account_id", fmt.Sprint(e.b.accountID)), status: 422,
			locs: []string{"body.session_id", "body.payment_account_id"}, types: []string{"not_found", "not_found"}},
		{name: "currency mismatch", method: "POST", path: p, token: tok, body: with(good, "currency", "LRD"), status: 422,
			locs: []string{"body.currency"}, types: []string{"currency_mismatch"}},
		{name: "same key, different body", method: "POST", path: p, token: tok, body: with(good, "reference_id", body["reference_id"]), status: 422,
			locs: []string{"body.reference_id"}, types: []string{"duplicate_reference_id"}},
		{name: "source already processing", method: "POST", path: p, token: tok, body: with(execBody(e.a), "session_id", fmt.Sprint(e.a.sessionID)), status: 422,
			locs: []string{"body.session_id"}, types: []string{"source_status"}},
	}
	e.checkErrors(t, cases)
	_ = lrdSrc

	// The key is per merchant: B may use A's reference_id for its own payment.
	status, rb, raw := e.execute(e.b.token, with(execBody(e.b), "reference_id", body["reference_id"]))
	if status != 200 || *rb.ProviderTransactionID == *r.ProviderTransactionID {
		t.Fatalf("merchant B with A's key = %d %s", status, raw)
	}

	// An expired session cannot be executed, but a retry of an accepted
	// request still returns its execution after the session expired.
	e.offset.Store(int64(31 * time.Minute))
	e.checkErrors(t, []errCase{{name: "expired session", method: "POST", path: p, token: e.newToken(e.a),
		body: with(good, "session_id", fmt.Sprint(expiring)), status: 422, locs: []string{"body.session_id"}, types: []string{"session_expired"}}})
	status, again, raw = e.execute(e.newToken(e.a), body)
	if status != 200 || *again.ProviderTransactionID != *r.ProviderTransactionID {
		t.Fatalf("retry after expiry = %d %s", status, raw)
	}
	e.offset.Store(0)
}

func (e *env) newToken(m merchant) string {
	tok, err := e.tokens.IssueAccess(m.id, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func TestSessionUsedByAnotherReference(t *testing.T) {
	backends.Each(t, testSessionUsedByAnotherReference)
}

func testSessionUsedByAnotherReference(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	first := execBody(e.a)
	if status, _, raw := e.execute(e.a.token, first); status != 200 {
		t.Fatalf("first = %d %s", status, raw)
	}
	// The same session with a new reference: the source is PROCESSING (and
	// the store refuses a second execution on a session anyway).
	e.checkErrors(t, []errCase{{name: "reused session", method: "POST", path: "/v1/executions/collection", token: e.a.token,
		body: with(first, "reference_id", uuid.NewString()), status: 422, locs: []string{"body.session_id"}}})
}

func TestIdempotencyUnderConcurrency(t *testing.T) { backends.Each(t, testIdempotencyUnderConcurrency) }

func testIdempotencyUnderConcurrency(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	body := execBody(e.a)
	answers := e.executeAtOnce(100, []string{e.url}, []map[string]any{body})
	for i, a := range answers {
		if a.status != 200 {
			t.Fatalf("request %d = %d %s", i, a.status, a.raw)
		}
		if *a.exec.ProviderTransactionID != *answers[0].exec.ProviderTransactionID || a.exec.ReferenceID != body["reference_id"] {
			t.Fatalf("request %d got another execution: %+v vs %+v", i, a.exec, answers[0].exec)
		}
	}
	// Exactly one execution exists for the source: one INSERT on the feed.
	if n := e.inserts(body["reference_id"].(string)); n != 1 {
		t.Fatalf("%d executions inserted, want 1", n)
	}
}

// TestIdempotencyAcrossServers runs two API servers, each on its own store
// over one database, as two `dollr serve` behind a load balancer: 100
// concurrent identical executes split across both make exactly one
// execution.
func TestIdempotencyAcrossServers(t *testing.T) { backends.Each(t, testIdempotencyAcrossServers) }

func testIdempotencyAcrossServers(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	second, _, _ := e.addServer(false)
	servers := []string{e.url, second}
	body := execBody(e.a)
	answers := e.executeAtOnce(100, servers, []map[string]any{body})
	for i, a := range answers {
		if a.status != 200 {
			t.Fatalf("request %d (server %d) = %d %s", i, a.server, a.status, a.raw)
		}
		if *a.exec.ProviderTransactionID != *answers[0].exec.ProviderTransactionID || a.exec.ReferenceID != body["reference_id"] {
			t.Fatalf("request %d (server %d) got another execution: %+v vs %+v", i, a.server, a.exec, answers[0].exec)
		}
	}
	if n := e.inserts(body["reference_id"].(string)); n != 1 {
		t.Fatalf("%d executions inserted, want 1", n)
	}
	// Both servers' Status API answer with that one execution.
	for _, s := range servers {
		status, out, _, err := send(s, "GET", "/v1/status/collection/"+body["reference_id"].(string), e.a.token, nil)
		var r api.ExecutionResponse
		if err != nil || status != 200 || json.Unmarshal(out, &r) != nil || *r.ProviderTransactionID != *answers[0].exec.ProviderTransactionID {
			t.Fatalf("status at %s = %d %s (%v)", s, status, out, err)
		}
	}
}

// TestIdempotencyConflictAcrossServers races two different bodies with one
// reference_id across two servers sharing a database: one body wins and all
// its requests get its execution; every request with the other body is a 422
// on body.reference_id.
func TestIdempotencyConflictAcrossServers(t *testing.T) {
	backends.Each(t, testIdempotencyConflictAcrossServers)
}

func testIdempotencyConflictAcrossServers(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	second, _, _ := e.addServer(false)
	otherAccount := e.momoAccount(e.a.token, e.a.partyID, "231770000010")
	x := execBody(e.a)
	y := with(x, "payment_account_id", fmt.Sprint(otherAccount))
	answers := e.executeAtOnce(100, []string{e.url, second}, []map[string]any{x, y})
	winner := -1
	for _, a := range answers {
		if a.status == 200 {
			winner = a.body
			break
		}
	}
	if winner < 0 {
		t.Fatalf("no request succeeded; first answer %d %s", answers[0].status, answers[0].raw)
	}
	wantAccount := map[int]string{0: x["payment_account_id"].(string), 1: y["payment_account_id"].(string)}[winner]
	var winning *api.ExecutionResponse
	for i, a := range answers {
		if a.body == winner {
			if a.status != 200 {
				t.Fatalf("request %d (server %d) with the winning body = %d %s", i, a.server, a.status, a.raw)
			}
			if winning == nil {
				winning = &a.exec
			} else if *a.exec.ProviderTransactionID != *winning.ProviderTransactionID {
				t.Fatalf("request %d got another execution: %+v vs %+v", i, a.exec, *winning)
			}
			continue
		}
		var body struct {
			Detail []struct {
				Loc  []any  `json:"loc"`
				Type string `json:"type"`
			} `json:"detail"`
		}
		if a.status != 422 || json.Unmarshal(a.raw, &body) != nil || len(body.Detail) != 1 ||
			fmt.Sprint(body.Detail[0].Loc) != "[body reference_id]" || body.Detail[0].Type != "duplicate_reference_id" {
			t.Fatalf("request %d (server %d) with the losing body = %d %s, want a 422 on body.reference_id", i, a.server, a.status, a.raw)
		}
	}
	if n := e.inserts(x["reference_id"].(string)); n != 1 {
		t.Fatalf("%d executions inserted, want 1", n)
	}
	t.Logf("body %d (payment account %s) won", winner, wantAccount)
}

// answer is one response to an execute.
type answer struct {
	server, body int // indexes into executeAtOnce's arguments
	status       int
	raw          []byte
	exec         api.ExecutionResponse
}

// executeAtOnce sends n executes as merchant A at the same moment, spread so
// that every body goes to every server about equally often.
func (e *env) executeAtOnce(n int, servers []string, bodies []map[string]any) []answer {
	e.t.Helper()
	answers := make([]answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a := &answers[i]
			a.server, a.body = i%len(servers), i/len(servers)%len(bodies)
			a.status, a.raw, _, errs[i] = send(servers[a.server], http.MethodPost, "/v1/executions/collection", e.a.token, bodies[a.body])
			if errs[i] == nil && a.status == 200 {
				errs[i] = json.Unmarshal(a.raw, &a.exec)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.t.Fatalf("request %d: %v", i, err)
		}
	}
	return answers
}

// inserts counts the executions with reference ref inserted, from the change
// feed replayed from its start. It first commits a probe (merchant B's
// payment) and reads until the probe arrives: the feed delivers in commit
// order, so every earlier commit has been seen by then, on any backend.
func (e *env) inserts(ref string) int {
	e.t.Helper()
	srcID, partyID := e.checkout(e.b.token, "231770000010", "INVOICE")
	probe := uuid.NewString()
	if status, _, raw := e.execute(e.b.token, map[string]any{
		"session_id": fmt.Sprint(e.session(e.b.token, srcID, "INVOICE")), "currency": "USD", "reference_id": probe,
		"payment_account_id": fmt.Sprint(e.momoAccount(e.b.token, partyID, "231770000010")),
	}); status != 200 {
		e.t.Fatalf("probe execute = %d %s", status, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	n, sawProbe := 0, false
	err := e.store.Follow(ctx, 0, func(batch []dollr.Change) error {
		for _, c := range batch {
			if c.Type != dollr.ChangeInsert {
				continue
			}
			switch c.Record["reference_id"] {
			case ref:
				n++
			case probe:
				sawProbe = true
				cancel()
			}
		}
		return nil
	})
	if !sawProbe {
		e.t.Fatalf("the change feed never delivered the probe payment: %v", err)
	}
	return n
}

func TestCollectionStatus(t *testing.T) { backends.Each(t, testCollectionStatus) }

func testCollectionStatus(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	body := execBody(e.a)
	e.execute(e.a.token, body)
	var r api.ExecutionResponse
	e.must("GET", "/v1/status/collection/"+body["reference_id"].(string), e.a.token, nil, &r)
	if r.ReferenceID != body["reference_id"] || r.Status != "PENDING" {
		t.Fatalf("status %+v", r)
	}
	e.checkErrors(t, []errCase{
		{name: "unknown", method: "GET", path: "/v1/status/collection/" + uuid.NewString(), token: e.a.token, status: 404, detail: "Execution not found"},
		{name: "not a uuid", method: "GET", path: "/v1/status/collection/abc", token: e.a.token, status: 404, detail: "Execution not found"},
		{name: "other merchant", method: "GET", path: "/v1/status/collection/" + body["reference_id"].(string), token: e.b.token, status: 404, detail: "Execution not found"},
		{name: "source other merchant", method: "GET", path: fmt.Sprintf("/v1/status/source?source_type=INVOICE&source_id=%d", e.a.sourceID), token: e.b.token, status: 404, detail: "Source not found"},
		{name: "source wrong type", method: "GET", path: fmt.Sprintf("/v1/status/source?source_type=ORDER&source_id=%d", e.a.sourceID), token: e.a.token, status: 404, detail: "Source not found"},
		{name: "source missing params", method: "GET", path: "/v1/status/source", token: e.a.token, status: 422, locs: []string{"query.source_type", "query.source_id"}, types: []string{"missing", "missing"}},
		{name: "source bad params", method: "GET", path: "/v1/status/source?source_type=SUBSCRIPTION&source_id=x", token: e.a.token, status: 422, locs: []string{"query.source_type", "query.source_id"}, types: []string{"enum", "int_parsing"}},
	})
}

func TestRealtimeKey(t *testing.T) { backends.Each(t, testRealtimeKey) }

func testRealtimeKey(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	ref := uuid.NewString()
	var r api.RealtimeTokenResponse
	e.must("POST", "/v1/realtime-keys/collection", e.a.token, map[string]any{"session_id": e.a.sessionID, "source_type": "INVOICE", "reference_id": ref}, &r)
	if r.ExpiresIn != 900 {
		t.Fatalf("expires_in %d, want 900 seconds", r.ExpiresIn)
	}
	c, err := e.tokens.VerifyRealtime(r.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.MerchantID != e.a.id || c.SessionID != e.a.sessionID || c.ReferenceID != ref || c.SourceType != "INVOICE" || c.Role != "authenticated" {
		t.Fatalf("claims %+v", c)
	}
	p := "/v1/realtime-keys/collection"
	tok := e.a.token
	e.checkErrors(t, []errCase{
		{name: "missing", method: "POST", path: p, token: tok, body: map[string]any{}, status: 422, locs: []string{"body.session_id", "body.source_type", "body.reference_id"}},
		{name: "session as non-numeric string", method: "POST", path: p, token: tok, body: map[string]any{"session_id": "abc", "source_type": "INVOICE", "reference_id": ref}, status: 422,
			locs: []string{"body.session_id"}, types: []string{"int_parsing"}},
		{name: "bad uuid", method: "POST", path: p, token: tok, body: map[string]any{"session_id": e.a.sessionID, "source_type": "INVOICE", "reference_id": "x"}, status: 422,
			locs: []string{"body.reference_id"}, types: []string{"uuid_parsing"}},
		{name: "another merchant's session", method: "POST", path: p, token: tok, body: map[string]any{"session_id": e.b.sessionID, "source_type": "INVOICE", "reference_id": ref}, status: 422,
			locs: []string{"body.session_id"}, types: []string{"not_found"}},
		{name: "source type mismatch", method: "POST", path: p, token: tok, body: map[string]any{"session_id": e.a.otherSessionID, "source_type": "INVOICE", "reference_id": ref}, status: 422,
			locs: []string{"body.source_type"}, types: []string{"source_type_mismatch"}},
		// The session of the key above is remembered now; the answer must not change.
		{name: "source type mismatch, remembered session", method: "POST", path: p, token: tok, body: map[string]any{"session_id": e.a.sessionID, "source_type": "ORDER", "reference_id": ref}, status: 422,
			locs: []string{"body.source_type"}, types: []string{"source_type_mismatch"}},
	})
}

func TestRoutingAndMiddleware(t *testing.T) { backends.Each(t, testRoutingAndMiddleware) }

func testRoutingAndMiddleware(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	e.checkErrors(t, []errCase{
		{name: "unknown path", method: "GET", path: "/v1/nothing", status: 404, detail: "Not Found"},
		{name: "wrong method", method: "GET", path: "/v1/executions/collection", status: 405, detail: "Method Not Allowed"},
		{name: "wrong method on status", method: "POST", path: "/v1/status/collection/x", status: 405, detail: "Method Not Allowed"},
	})
	status, body, hdr := e.do("GET", "/healthz", "", nil)
	if status != 200 || !strings.Contains(string(body), `"ok"`) || len(hdr.Get("X-Request-Id")) == 0 {
		t.Fatalf("healthz = %d %s %v", status, body, hdr)
	}
	req, _ := http.NewRequest("GET", e.url+"/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "trace-123" {
		t.Fatalf("request id not echoed: %v", resp.Header)
	}
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("unsafe request id echoed: %q", got)
	}
}

// TestSandboxOutcomesOverHTTP drives every sandbox rule through the API with
// a running runner and short delays.
func TestSandboxOutcomesOverHTTP(t *testing.T) { backends.Each(t, testSandboxOutcomesOverHTTP) }

func testSandboxOutcomesOverHTTP(t *testing.T, b backends.Backend) {
	// Answered 3-D Secure challenges run where the timeout cannot win the race.
	fast := newEnv(t, b, options{network: &sandbox.Network{Delay: 100 * time.Millisecond, LongDelay: 300 * time.Millisecond}, runner: true})
	patient := newEnv(t, b, options{network: &sandbox.Network{Delay: 100 * time.Millisecond, LongDelay: time.Hour}, runner: true})
	cases := []struct {
		name, method, number string
		initial, final       string
		threeDS              string // "succeed" or "fail": answer the challenge
	}{
		{"momo completes", "MTN_MOMO_LBR", "231770000010", "PENDING", "COMPLETED", ""},
		{"momo insufficient funds", "MTN_MOMO_LBR", "231770000001", "PENDING", "FAILED", ""},
		{"momo slow approval", "MTN_MOMO_LBR", "231770000002", "PENDING", "COMPLETED", ""},
		{"momo invalid account", "MTN_MOMO_LBR", "231770000003", "FAILED", "FAILED", ""},
		{"momo never approved", "MTN_MOMO_LBR", "231770000004", "PENDING", "FAILED", ""},
		{"card completes", "CREDIT_CARD", "pm_card_visa", "PENDING", "COMPLETED", ""},
		{"card declined", "CREDIT_CARD", "pm_card_chargeDeclined", "FAILED", "FAILED", ""},
		{"card 3ds succeed", "CREDIT_CARD", "pm_card_threeDSecure2Required", "PROCESSING", "COMPLETED", "succeed"},
		{"card 3ds fail", "CREDIT_CARD", "pm_card_threeDSecure2Required", "PROCESSING", "FAILED", "fail"},
		{"card 3ds abandoned", "CREDIT_CARD", "pm_card_threeDSecure2Required", "PROCESSING", "FAILED", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := fast
			if c.threeDS != "" {
				e = patient
			}
			srcID, partyID := e.checkout(e.a.token, "231770000099", "INVOICE")
			sess := e.session(e.a.token, srcID, "INVOICE")
			var acct int64
			if c.method == "CREDIT_CARD" {
				acct = e.cardAccount(e.a.token, partyID, c.number)
			} else {
				acct = e.momoAccount(e.a.token, partyID, c.number)
			}
			ref := uuid.NewString()
			status, r, raw := e.execute(e.a.token, map[string]any{"session_id": fmt.Sprint(sess), "payment_account_id": fmt.Sprint(acct), "currency": "USD", "reference_id": ref})
			if status != 200 || r.Status != c.initial {
				t.Fatalf("execute = %d %s, want %s", status, raw, c.initial)
			}
			if c.method == "CREDIT_CARD" && (r.ClientSecret == nil || !strings.HasPrefix(*r.ClientSecret, "pi_")) {
				t.Fatalf("card without client_secret: %s", raw)
			}
			if c.initial == "PROCESSING" && !r.RequiresAction {
				t.Fatalf("3DS without requires_action: %s", raw)
			}
			if c.threeDS != "" {
				var after api.ExecutionResponse
				e.must("POST", "/v1/sandbox/3ds/"+*r.ClientSecret, "", map[string]any{"outcome": c.threeDS}, &after)
				if after.Status != c.final || after.RequiresAction {
					t.Fatalf("after 3DS %+v", after)
				}
			}
			final := e.waitStatus(e.a.token, ref, c.final)
			if final.GatewayMessage == nil || *final.GatewayMessage == "" {
				t.Fatalf("final without gateway_message: %+v", final)
			}
			var src api.PaymentSourceStatusResponse
			e.must("GET", fmt.Sprintf("/v1/status/source?source_type=INVOICE&source_id=%d", srcID), e.a.token, nil, &src)
			want := map[string]string{"COMPLETED": "PAID", "FAILED": "ACTIVE"}[c.final]
			if src.Status != want || (want == "PAID") != (src.PaidAt != nil) {
				t.Fatalf("source %+v, want %s", src, want)
			}
		})
	}
	fast.checkErrors(t, []errCase{
		{name: "3ds unknown secret", method: "POST", path: "/v1/sandbox/3ds/pi_x_secret_y", body: map[string]any{"outcome": "succeed"}, status: 404, detail: "Payment intent not found"},
		{name: "3ds bad outcome", method: "POST", path: "/v1/sandbox/3ds/pi_x_secret_y", body: map[string]any{"outcome": "maybe"}, status: 422, locs: []string{"body.outcome"}, types: []string{"enum"}},
	})
}

func (e *env) waitStatus(tok, ref, want string) api.ExecutionResponse {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	var r api.ExecutionResponse
	for {
		e.must("GET", "/v1/status/collection/"+ref, tok, nil, &r)
		if r.Status == want {
			return r
		}
		if r.Status == "COMPLETED" || r.Status == "FAILED" {
			e.t.Fatalf("ended %s (%v), want %s", r.Status, r.GatewayMessage, want)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("still %s after %s, want %s", r.Status, waitFor, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzHandlers sends arbitrary bodies to every body-taking endpoint: the
// answer is always a JSON 200/400/401/404/413/422, never a 500 or a panic.
func FuzzHandlers(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `null`, `{"session_id":"1","payment_account_id":"1","currency":"USD","reference_id":"550e8400-e29b-41d4-a716-446655440000"}`,
		`{"mode":"HOSTED","source_kind":"INVOICE","party_phone":"231770000010","currency":"USD","items":[{"name":"a","currency":"USD","amount":1e400}]}`,
		`{"session_id":1e30,"source_type":"INVOICE","reference_id":"x"}`, `{"source_id":-1,"source_type":"ORDER"}`, "\xff", `{"a":"\ud800"}`,
		`{"account_name":"x","provider":"STRIPE","method":"CREDIT_CARD","party_id":1,"insensitive_account_number":"pm_x"}`} {
		for p := range 7 {
			f.Add(uint8(p), s)
		}
	}
	e := newEnv(f, backends.SQLite, options{})
	paths := []string{"/v1/jwt/client/obtain/token", "/v1/checkouts/create", "/v1/sessions/checkout",
		"/v1/payment-accounts/create?operation_type=COLLECTION", "/v1/executions/collection", "/v1/realtime-keys/collection", "/v1/sandbox/3ds/pi_x_secret_y"}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		req, err := http.NewRequest("POST", e.url+paths[int(which)%len(paths)], strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.a.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200, 400, 401, 404, 413, 422:
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, out)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
	})
}
