package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/internal/backends"
)

// noContentType makes doRaw send no Content-Type header at all.
const noContentType = "<none>"

// doRaw sends body as it is, with the given Content-Type header (or none).
func (e *env) doRaw(method, path, tok, contentType, body string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != noContentType {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// fieldErrors decodes a 422 body.
func fieldErrors(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var body struct {
		Detail []map[string]any `json:"detail"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("422 body %s: %v", raw, err)
	}
	return body.Detail
}

// A card account needs a payment method: null is refused like a missing
// field, not stored as a card account with no card.
func TestCardAccountNullPaymentMethod(t *testing.T) {
	backends.Each(t, testCardAccountNullPaymentMethod)
}

func testCardAccountNullPaymentMethod(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	p := "/v1/payment-accounts/create?operation_type=COLLECTION"
	card := map[string]any{"account_name": "Card", "provider": "STRIPE", "method": "CREDIT_CARD", "party_id": e.a.partyID}
	e.checkErrors(t, []errCase{
		{name: "null", method: "POST", path: p, token: e.a.token, body: with(card, "payment_method_id", nil), status: 422,
			locs: []string{"body.payment_method_id"}, types: []string{"missing"}},
		{name: "null, null fallback", method: "POST", path: p, token: e.a.token, body: with(card, "payment_method_id", nil, "insensitive_account_number", nil), status: 422,
			locs: []string{"body.payment_method_id"}, types: []string{"missing"}},
		{name: "absent", method: "POST", path: p, token: e.a.token, body: card, status: 422,
			locs: []string{"body.payment_method_id"}, types: []string{"missing"}},
	})
	// As when the field is absent, a pm_ id in insensitive_account_number is the fallback.
	e.must("POST", p, e.a.token, with(card, "payment_method_id", nil, "insensitive_account_number", "pm_card_visa"), nil)
}

// The 2000-character limit counts characters, as pydantic does, not bytes.
func TestStringLimitCountsCharacters(t *testing.T) { backends.Each(t, testStringLimitCountsCharacters) }

func testStringLimitCountsCharacters(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	good := map[string]any{"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": "231770000010", "currency": "USD",
		"items": []map[string]any{{"name": "a", "currency": "USD", "amount": 1}}}
	p := "/v1/checkouts/create"
	for _, s := range []string{strings.Repeat("😀", 600), strings.Repeat("é", 2000), strings.Repeat("x", 2000), strings.Repeat("😀", 2000)} {
		e.must("POST", p, e.a.token, with(good, "note", s, "party_name", s), nil)
	}
	e.checkErrors(t, []errCase{
		{name: "2001 é", method: "POST", path: p, token: e.a.token, body: with(good, "note", strings.Repeat("é", 2001)), status: 422,
			locs: []string{"body.note"}, types: []string{"string_too_long"}},
		{name: "2001 x", method: "POST", path: p, token: e.a.token, body: with(good, "note", strings.Repeat("x", 2001)), status: 422,
			locs: []string{"body.note"}, types: []string{"string_too_long"}},
	})
}

// Bodies are JSON only when the Content-Type says so (or is absent), as in
// FastAPI; JSON that is not UTF-8 is a 400.
func TestBodyMediaTypeAndEncoding(t *testing.T) { backends.Each(t, testBodyMediaTypeAndEncoding) }

func testBodyMediaTypeAndEncoding(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	tokenPath := "/v1/jwt/client/obtain/token"
	creds, _ := json.Marshal(map[string]string{"client_id": e.a.clientID, "client_secret": e.a.secret})
	for _, ct := range []string{noContentType, "", "application/json", "application/json; charset=utf-8", "Application/JSON",
		" application/json ;charset=UTF-8", "application/vnd.api+json", "application/merge-patch+json"} {
		if status, out, _ := e.doRaw("POST", tokenPath, "", ct, string(creds)); status != 200 {
			t.Errorf("Content-Type %q: %d %s, want 200", ct, status, out)
		}
	}
	// A UTF-8 byte-order mark is skipped, as Python's json.loads does.
	if status, out, _ := e.doRaw("POST", tokenPath, "", "application/json", "\xef\xbb\xbf"+string(creds)); status != 200 {
		t.Errorf("JSON after a BOM: %d %s, want 200", status, out)
	}

	// Not JSON by its media type: one model_attributes_type on ["body"].
	for _, c := range []struct{ ct, body string }{
		{"text/plain", string(creds)},
		{"text/json", string(creds)},
		{"application/x-www-form-urlencoded", "client_id=a&client_secret=b"},
		{"multipart/form-data; boundary=x", string(creds)},
		{"application/jsonx", string(creds)},
		{"application/json/x", string(creds)},
		{"json", string(creds)},
		{"application", string(creds)},
		{"text/plain", "   "},
	} {
		status, out, hdr := e.doRaw("POST", tokenPath, "", c.ct, c.body)
		if status != 422 || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type %q: %d %s, want 422", c.ct, status, out)
			continue
		}
		want := `{"detail":[{"loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","type":"model_attributes_type"}]}`
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("Content-Type %q: %s, want %s", c.ct, got, want)
		}
	}
	// An empty body is missing, whatever its media type (FastAPI never parses it).
	for _, ct := range []string{"text/plain", "application/json", noContentType} {
		status, out, _ := e.doRaw("POST", tokenPath, "", ct, "")
		if d := fieldErrors(t, out); status != 422 || len(d) != 1 || d[0]["type"] != "missing" || fmt.Sprint(d[0]["loc"]) != "[body]" {
			t.Errorf("empty body as %q: %d %s, want 422 missing on body", ct, status, out)
		}
	}
	// Query and body validation errors come together, query first.
	status, out, _ := e.doRaw("POST", "/v1/payment-accounts/create", e.a.token, "text/plain", `{"account_name":"x"}`)
	if d := fieldErrors(t, out); status != 422 || len(d) != 2 || fmt.Sprint(d[0]["loc"]) != "[query operation_type]" ||
		fmt.Sprint(d[1]["loc"]) != "[body]" || d[1]["type"] != "model_attributes_type" {
		t.Errorf("payment account as text/plain without operation_type: %d %s", status, out)
	}
	status, out, _ = e.doRaw("POST", "/v1/payment-accounts/create?operation_type=COLLECTION", e.a.token, "text/plain", `{"account_name":"x"}`)
	if d := fieldErrors(t, out); status != 422 || len(d) != 1 || fmt.Sprint(d[0]["loc"]) != "[body]" {
		t.Errorf("payment account as text/plain: %d %s", status, out)
	}

	// Bytes that are not UTF-8: 400, with or without a JSON Content-Type, on
	// every body-taking endpoint, before any JSON syntax check.
	bad := []string{
		`{"client_id":"` + e.a.clientID + "\xff\xfe" + `","client_secret":"x"}`,
		"{\"party_name\":\"\xc3\x28\"}",
		"{\"a\":\"\xed\xa0\x80\"}", // an encoded surrogate
		"\xff",
		"{\xff,",
	}
	for _, path := range []string{tokenPath, "/v1/checkouts/create", "/v1/payment-accounts/create?operation_type=COLLECTION", "/v1/executions/collection"} {
		for _, body := range bad {
			for _, ct := range []string{"application/json", noContentType} {
				status, out, hdr := e.doRaw("POST", path, e.a.token, ct, body)
				if status != 400 || strings.TrimSpace(string(out)) != `{"detail":"There was an error parsing the body"}` || hdr.Get("Content-Type") != "application/json" {
					t.Errorf("POST %s %q as %q: %d %s, want 400", path, body, ct, status, out)
				}
			}
		}
	}
	// Not parsed as JSON, so not decoded either: the media type decides first.
	if status, out, _ := e.doRaw("POST", tokenPath, "", "text/plain", "\xff"); status != 422 {
		t.Errorf("invalid UTF-8 as text/plain: %d %s, want 422", status, out)
	}
	// json_invalid positions count characters, as Python's do.
	status, out, _ = e.doRaw("POST", tokenPath, "", "application/json", `{"client_id":"ééé",}`)
	if d := fieldErrors(t, out); status != 422 || len(d) != 1 || fmt.Sprint(d[0]["loc"]) != "[body 19]" || d[0]["type"] != "json_invalid" {
		t.Errorf("malformed JSON after non-ASCII: %d %s, want json_invalid at character 19", status, out)
	}
}

// Every value_error reads "Value error, …", including the stores' own, and
// not-found details are worded as the status endpoint words them.
func TestErrorMessages(t *testing.T) { backends.Each(t, testErrorMessages) }

func testErrorMessages(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	// A payment that fails at once leaves its source ACTIVE; its session is
	// used, and the store refuses a second execution on it.
	srcID, partyID := e.checkout(e.a.token, "231770000003", "INVOICE")
	sess := fmt.Sprint(e.session(e.a.token, srcID, "INVOICE"))
	acct := fmt.Sprint(e.momoAccount(e.a.token, partyID, "231770000003"))
	first := map[string]any{"session_id": sess, "payment_account_id": acct, "currency": "USD", "reference_id": uuid.NewString()}
	if status, r, raw := e.execute(e.a.token, first); status != 200 || r.Status != "FAILED" {
		t.Fatalf("first execute = %d %s, want FAILED", status, raw)
	}
	e.checkErrors(t, []errCase{
		{name: "touch unknown", method: "POST", path: "/v1/sandbox/status-touch", token: e.a.token,
			body: map[string]any{"reference_ids": []string{"nope"}, "gateway_message": "x"}, status: 404, detail: "Execution not found"},
		{name: "touch another merchant's", method: "POST", path: "/v1/sandbox/status-touch", token: e.b.token,
			body: map[string]any{"reference_ids": []string{first["reference_id"].(string)}, "gateway_message": "x"}, status: 404, detail: "Execution not found"},
	})
	status, _, raw := e.execute(e.a.token, with(first, "reference_id", uuid.NewString()))
	d := fieldErrors(t, raw)
	if status != 422 || len(d) != 1 || fmt.Sprint(d[0]["loc"]) != "[body session_id]" || d[0]["type"] != "value_error" ||
		d[0]["msg"] != "Value error, session has already been used" {
		t.Errorf("second execute on the session = %d %s, want the store's value_error with pydantic's prefix", status, raw)
	}
}

// A path ServeMux would clean gets the JSON 404, not a 307 with an HTML body.
func TestNonCanonicalPaths(t *testing.T) { backends.Each(t, testNonCanonicalPaths) }

func testNonCanonicalPaths(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	var cases []errCase
	for _, p := range []string{"/v1//status/source?source_type=INVOICE&source_id=1", "//v1/status/source", "/v1/./status/source",
		"/v1/status/source/.", "/v1/status/source/..", "/v1/x/../status/source", "//healthz", "/healthz/.", "//"} {
		cases = append(cases, errCase{name: "GET " + p, method: "GET", path: p, token: e.a.token, status: 404, detail: "Not Found"})
	}
	for _, p := range []string{"/v1//executions/collection", "/v1/executions/collection/.", "/v1/./jwt/client/obtain/token"} {
		cases = append(cases, errCase{name: "POST " + p, method: "POST", path: p, token: e.a.token, body: execBody(e.a), status: 404, detail: "Not Found"})
	}
	e.checkErrors(t, cases)
	// Still routed: dots inside a segment, and encoded slashes.
	e.checkErrors(t, []errCase{
		{name: "dot in a segment", method: "GET", path: "/v1/status/collection/.x.", token: e.a.token, status: 404, detail: "Execution not found"},
		{name: "encoded slash", method: "GET", path: "/v1/status/collection/a%2F..%2Fb", token: e.a.token, status: 404, detail: "Execution not found"},
	})
	status, _, _ := e.do("GET", "/healthz", "", nil)
	if status != 200 {
		t.Fatalf("healthz = %d", status)
	}

	// Mounted on another ServeMux (as dollr serve does), the outer mux must be
	// wrapped too, or it redirects before the API sees the request.
	h, err := api.New(api.Config{Store: e.store, Tokens: e.tokens, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	outer := http.NewServeMux()
	outer.Handle("/", h)
	for _, c := range []struct {
		path   string
		status int
	}{{"/v1//status/source", 404}, {"/v1/status/source/.", 404}, {"/healthz", 200}} {
		rec := httptest.NewRecorder()
		api.CanonicalPaths(outer).ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.status || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("outer mux, GET %s = %d %q %s", c.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}
}

// One amount, however written, gets one answer: 10^13 units and more are out
// of range, below it the total must stay below 10^13 too.
func TestAmountSpellings(t *testing.T) { backends.Each(t, testAmountSpellings) }

func testAmountSpellings(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	body := func(amounts ...string) string {
		items := make([]string, len(amounts))
		for i, a := range amounts {
			items[i] = `{"name":"a","currency":"USD","amount":` + a + `}`
		}
		return `{"mode":"DIRECT","source_kind":"INVOICE","party_phone":"231770000010","currency":"USD","items":[` + strings.Join(items, ",") + `]}`
	}
	p := "/v1/checkouts/create"
	outOfRange := `{"detail":[{"loc":["body","items",0,"amount"],"msg":"Value error, amount is out of range","type":"value_error"}]}`
	for _, a := range []string{"10000000000000", "1e13", "1E+13", "10e12", "10000000000000.00", "1e14", "100000000000000", "1e15", "1.5e14"} {
		status, out, _ := e.doRaw("POST", p, e.a.token, "application/json", body(a))
		if status != 422 || strings.TrimSpace(string(out)) != outOfRange {
			t.Errorf("amount %s: %d %s, want %s", a, status, out, outOfRange)
		}
	}
	for _, a := range []string{"9999999999999.99", "9.99999999999999e12", "999999999999999e-2"} {
		var r api.CreateCheckoutSourceLinkResponse
		status, out, _ := e.doRaw("POST", p, e.a.token, "application/json", body(a))
		if status != 200 || json.Unmarshal(out, &r) != nil || r.TotalAmount != 999999999999999 {
			t.Errorf("amount %s: %d %s, want 200 with total 9999999999999.99", a, status, out)
		}
	}
	// The total is bounded like an amount, so it always renders as one.
	tooLarge := `{"detail":[{"loc":["body","items",1,"amount"],"msg":"Value error, total amount is too large","type":"value_error"}]}`
	for _, amounts := range [][]string{{"5e12", "5e12"}, {"5000000000000", "5000000000000.00"}, {"9999999999999.99", "0.01"}} {
		status, out, _ := e.doRaw("POST", p, e.a.token, "application/json", body(amounts...))
		if status != 422 || strings.TrimSpace(string(out)) != tooLarge {
			t.Errorf("amounts %v: %d %s, want %s", amounts, status, out, tooLarge)
		}
	}
	e.must("POST", p, e.a.token, body("9999999999999.98", "0.01"), nil)
}

// Date-time fields take what pydantic v2 takes: no seconds, lowercase t/z,
// other separators, and Unix timestamps in seconds or milliseconds.
func TestDateTimeFormats(t *testing.T) { backends.Each(t, testDateTimeFormats) }

func testDateTimeFormats(t *testing.T, b backends.Backend) {
	e := newEnv(t, b, options{})
	good := map[string]any{"mode": "DIRECT", "source_kind": "INVOICE", "party_phone": "231770000010", "currency": "USD",
		"items": []map[string]any{{"name": "a", "currency": "USD", "amount": 1}}}
	want := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	sec := want.Unix() // 1893492000
	for _, v := range []any{
		"2030-01-01T10:00", "2030-01-01t10:00:00z", "2030-01-01T10:00Z", "2030-01-01 10:00:00", "2030-01-01_10:00:00.000",
		"2030-01-01T11:30+01:30", "2030-01-01T11:30:00+0130", "2030-01-01T08:00:00\u221202:00", "2030-01-01T10:00:00,0000009Z",
		json.RawMessage(fmt.Sprint(sec)), json.RawMessage(fmt.Sprint(sec * 1000)), json.RawMessage(fmt.Sprintf("%d.0", sec)),
		json.RawMessage(fmt.Sprintf("%de3", sec)), fmt.Sprint(sec), fmt.Sprint(sec * 1000), fmt.Sprintf("%d.000", sec),
	} {
		var r api.CreateCheckoutSourceLinkResponse
		status, out, _ := e.do("POST", "/v1/checkouts/create", e.a.token, with(good, "expires_at", v, "due_date", v))
		if status != 200 || json.Unmarshal(out, &r) != nil || r.ExpiresAt == nil || !r.ExpiresAt.Time().Equal(want) ||
			r.DueDate == nil || !r.DueDate.Time().Equal(want) {
			t.Errorf("expires_at %s: %d %s, want %s", show(v), status, out, want)
		}
	}
	// Fractions: microseconds from a float, milliseconds from a float in ms.
	for _, c := range []struct {
		v    json.RawMessage
		want time.Time
	}{
		{json.RawMessage(fmt.Sprintf("%d.25", sec)), want.Add(250 * time.Millisecond)},
		{json.RawMessage(fmt.Sprintf("%d.5", sec*1000)), want.Add(500 * time.Microsecond)},
		{json.RawMessage(fmt.Sprintf("%d123", sec)), want.Add(123 * time.Millisecond)},
	} {
		var r api.CreateCheckoutSourceLinkResponse
		status, out, _ := e.do("POST", "/v1/checkouts/create", e.a.token, with(good, "expires_at", c.v))
		if status != 200 || json.Unmarshal(out, &r) != nil || r.ExpiresAt == nil || !r.ExpiresAt.Time().Equal(c.want) {
			t.Errorf("expires_at %s: %d %s, want %s", c.v, status, out, c.want)
		}
	}
	p := "/v1/checkouts/create"
	var cases []errCase
	for _, v := range []any{"2030-01-01T10", "2030-01-01T10:0", "2030-01-01T24:00", "2030-02-30T10:00", "2030-01-01T10:00:00.",
		"2030-01-01T10:00:60", "2030-01-01T10:00+24:00", "2030-01-01T10:00+01:60", "2030-01-01T10:00Zx", "2030-01-01x10:00",
		"2030-1-01T10:00", "0000-01-01", "1e10", "", json.RawMessage("1e300"), json.RawMessage("-1e17"), json.RawMessage("253402300800000")} {
		cases = append(cases, errCase{name: show(v), method: "POST", path: p, token: e.a.token, body: with(good, "due_date", v), status: 422,
			locs: []string{"body.due_date"}, types: []string{"datetime_parsing"}})
	}
	for _, v := range []any{true, map[string]any{}, []string{"2030-01-01"}} {
		cases = append(cases, errCase{name: show(v), method: "POST", path: p, token: e.a.token, body: with(good, "due_date", v), status: 422,
			locs: []string{"body.due_date"}, types: []string{"datetime_type"}})
	}
	// 2e10 is the last value read as seconds (year 2603); above, milliseconds.
	cases = append(cases,
		errCase{name: "2e10 s is in the future", method: "POST", path: p, token: e.a.token, body: with(good, "expires_at", json.RawMessage("20000000000")), status: 200},
		errCase{name: "2e10+1 ms is 1970", method: "POST", path: p, token: e.a.token, body: with(good, "expires_at", json.RawMessage("20000000001")), status: 422,
			locs: []string{"body.expires_at"}, types: []string{"value_error"}},
	)
	for _, c := range cases {
		if c.status == 200 {
			e.must(c.method, c.path, c.token, c.body, nil)
			continue
		}
		e.checkErrors(t, []errCase{c})
	}
}

// show renders a test value for a subtest name.
func show(v any) string {
	if r, ok := v.(json.RawMessage); ok {
		return "number " + string(r)
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}
