package checkout

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/dollr/dollr"
)

func TestParsePayRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    PayRequest
		wantErr string
		field   string // the form field the error names
	}{
		{name: "mobile money with formatting", body: `{"method":"MOBILE_MONEY","phone":"+231 77-123 4567"}`,
			want: PayRequest{Method: PayMobileMoney, Phone: "231771234567"}},
		{name: "mobile money with network", body: `{"method":"MOBILE_MONEY","phone":"250781234567","network":"AIRTEL_RWA"}`,
			want: PayRequest{Method: PayMobileMoney, Phone: "250781234567", Network: "AIRTEL_RWA"}},
		{name: "card", body: `{"method":"CARD","payment_method_id":"pm_card_visa","phone":"ignored"}`,
			want: PayRequest{Method: PayCard, PaymentMethodID: "pm_card_visa"}},
		{name: "retry with reference", body: `{"method":"CARD","payment_method_id":"pm_card_visa","reference_id":"550e8400-e29b-41d4-a716-446655440000"}`,
			want: PayRequest{Method: PayCard, PaymentMethodID: "pm_card_visa", ReferenceID: "550e8400-e29b-41d4-a716-446655440000"}},
		{name: "reference not v4", body: `{"method":"CARD","payment_method_id":"pm_card_visa","reference_id":"550e8400-e29b-11d4-a716-446655440000"}`,
			wantErr: "version-4 UUID"},
		{name: "no method", body: `{}`, wantErr: "Choose mobile money or card.", field: "method"},
		{name: "unknown method", body: `{"method":"WALLET"}`, wantErr: "Choose mobile money or card."},
		{name: "not json", body: `method=CARD`, wantErr: "not valid JSON"},
		{name: "unknown field", body: `{"method":"CARD","payment_method_id":"pm_card_visa","amount":1}`, wantErr: "not valid JSON"},
		{name: "trailing data", body: `{"method":"CARD","payment_method_id":"pm_card_visa"}{}`, wantErr: "trailing data"},
		{name: "short phone", body: `{"method":"MOBILE_MONEY","phone":"1234"}`, wantErr: "country code", field: "phone"},
		{name: "leading zero", body: `{"method":"MOBILE_MONEY","phone":"0771234567"}`, wantErr: "country code", field: "phone"},
		{name: "letters in phone", body: `{"method":"MOBILE_MONEY","phone":"23177abc4567"}`, wantErr: "only digits", field: "phone"},
		{name: "country without mobile money", body: `{"method":"MOBILE_MONEY","phone":"14155550123"}`, wantErr: "Liberian", field: "phone"},
		{name: "network of another country", body: `{"method":"MOBILE_MONEY","phone":"231771234567","network":"AIRTEL_RWA"}`, wantErr: "does not serve +231", field: "network"},
		{name: "unknown network", body: `{"method":"MOBILE_MONEY","phone":"231771234567","network":"MPESA"}`, wantErr: "network", field: "network"},
		{name: "card without id", body: `{"method":"CARD"}`, wantErr: "Choose a card.", field: "payment_method_id"},
		{name: "card id with punctuation", body: `{"method":"CARD","payment_method_id":"pm_<script>"}`, wantErr: "Choose a card."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePayRequest([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				// The page shows the message as is: a sentence.
				var ie *InputError
				msg := err.Error()
				if !errors.As(err, &ie) || !unicode.IsUpper([]rune(msg)[0]) || !strings.HasSuffix(msg, ".") {
					t.Errorf("err %q (%T) is not a sentence the page can show", msg, err)
				}
				if tt.field != "" && (ie == nil || ie.Field != tt.field) {
					t.Errorf("err %q is about field %v, want %q", msg, ie, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMobileMoneyMethod(t *testing.T) {
	tests := []struct {
		phone, network, method, country string
	}{
		{"231771234567", "", "MTN_MOMO_LBR", "LR"},
		{"231881234567", "ORANGE_MONEY_LBR", "ORANGE_MONEY_LBR", "LR"},
		{"250781234567", "", "MTN_MOMO_RWA", "RW"},
		{"250731234567", "AIRTEL_RWA", "AIRTEL_RWA", "RW"},
	}
	for _, tt := range tests {
		m, c, err := MobileMoneyMethod(tt.phone, tt.network)
		if err != nil || m != tt.method || c != tt.country {
			t.Errorf("MobileMoneyMethod(%q, %q) = %q, %q, %v; want %q, %q", tt.phone, tt.network, m, c, err, tt.method, tt.country)
		}
	}
}

func TestSafeRedirect(t *testing.T) {
	tests := map[string]string{
		"https://shop.example/thanks?order=1": "https://shop.example/thanks?order=1",
		"http://127.0.0.1:9000/done":          "http://127.0.0.1:9000/done",
		"javascript:alert(1)":                 "",
		"JavaScript:alert(1)":                 "",
		"data:text/html,hi":                   "",
		"/relative":                           "",
		"//evil.example/x":                    "",
		"":                                    "",
		"https://":                            "",
	}
	for in, want := range tests {
		if got := safeRedirect(in); got != want {
			t.Errorf("safeRedirect(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidToken(t *testing.T) {
	for _, tok := range []string{"hct_0123456789abcdef0123456789abcdef0123456789abcdef", "abcDEF12-_"} {
		if !validToken(tok) {
			t.Errorf("validToken(%q) = false", tok)
		}
	}
	for _, tok := range []string{"", "short", "has space in it", "hct_../../etc", strings.Repeat("a", 129), "ünïcode-token"} {
		if validToken(tok) {
			t.Errorf("validToken(%q) = true", tok)
		}
	}
}

func TestRealtimeOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":      "ws://127.0.0.1:8080",
		"https://pay.example.com/x/": "wss://pay.example.com",
		"":                           "",
	} {
		got, err := realtimeOrigin(in)
		if err != nil || got != want {
			t.Errorf("realtimeOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := realtimeOrigin("ftp://x"); err == nil {
		t.Error("ftp URL accepted")
	}
}

func FuzzParsePayRequest(f *testing.F) {
	f.Add([]byte(`{"method":"MOBILE_MONEY","phone":"+231 77 123 4567","network":"MTN_MOMO_LBR"}`))
	f.Add([]byte(`{"method":"CARD","payment_method_id":"pm_card_visa","reference_id":"550e8400-e29b-41d4-a716-446655440000"}`))
	f.Add([]byte(`{"method":"MOBILE_MONEY","phone":"+"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParsePayRequest(body)
		if err != nil {
			return
		}
		switch req.Method {
		case PayMobileMoney:
			if p, err := NormalizePhone(req.Phone); err != nil || p != req.Phone {
				t.Fatalf("accepted phone %q is not normalised: %q, %v", req.Phone, p, err)
			}
		case PayCard:
			if !validPaymentMethodID(req.PaymentMethodID) {
				t.Fatalf("accepted card id %q", req.PaymentMethodID)
			}
		default:
			t.Fatalf("accepted method %q", req.Method)
		}
	})
}

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+231 77 123 4567", "(250) 78-123-4567", "0", "++231771234567", " +231771234567"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NormalizePhone(s)
		if err != nil {
			return
		}
		if len(p) < 8 || len(p) > 15 || p[0] == '0' || strings.Trim(p, "0123456789") != "" {
			t.Fatalf("NormalizePhone(%q) = %q", s, p)
		}
	})
}

func TestFormatMoney(t *testing.T) {
	for _, tt := range moneyCases {
		if got := formatMoney(tt.amount, tt.currency); got != tt.want {
			t.Errorf("formatMoney(%d, %q) = %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}

// moneyCases are shared with the test of checkout.js's formatMoney.
var moneyCases = []struct {
	amount   dollr.Amount // hundredths
	currency string
	want     string
}{
	{1250, "USD", "12.50 USD"},
	{1250000, "RWF", "12,500 RWF"},
	{1250050, "RWF", "12,500.50 RWF"}, // cents that are there are shown
	{100, "UGX", "1 UGX"},
	{123456789, "LRD", "1,234,567.89 LRD"},
	{100000000, "USD", "1,000,000.00 USD"},
	{99999999999999, "XOF", "999,999,999,999.99 XOF"},
	{1, "USD", "0.01 USD"},
	{0, "RWF", "0 RWF"},
	{150, "KWD", "1.500 KWD"},
	{123400, "JPY", "1,234 JPY"},
	{-1250, "USD", "-12.50 USD"},
}
