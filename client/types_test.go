package client

import (
	"encoding/json"
	"testing"
)

// An execution decoded from the API and encoded again reads as the API wrote
// it: nulls stay null, set strings stay set.
func TestExecutionResponseRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"reference_id":"r","status":"FAILED","payer_amount":12.5,"payer_currency":"USD","payee_currency":"USD","payee_amount":12.13,"operation_type":"COLLECTION","provider_transaction_id":"pp_1","gateway_message":"Insufficient funds","wallet_message":null,"client_secret":null,"requires_action":false}`,
		`{"reference_id":"r","status":"PROCESSING","payer_amount":1,"payer_currency":"USD","payee_currency":"USD","payee_amount":0.97,"operation_type":"COLLECTION","provider_transaction_id":null,"gateway_message":null,"wallet_message":"w","client_secret":"pi_1_secret_2","requires_action":true}`,
	} {
		var e ExecutionResponse
		if err := json.Unmarshal([]byte(in), &e); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var want, got map[string]any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("fields: got %s, want %s", out, in)
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: got %v (present %v), want %v", k, g, ok, v)
			}
		}
	}
}
