package main

import (
	"encoding/json"
	"testing"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/realtime"
)

func TestRowPolicy(t *testing.T) {
	ref := "550e8400-e29b-41d4-a716-446655440000"
	key := map[string]any{"role": "authenticated", "typ": "realtime", "merchant_id": json.Number("1"),
		"session_id": json.Number("55"), "reference_id": ref, "source_type": "INVOICE", "exp": json.Number("9999999999")}
	g, err := rowPolicy(key, "payment-intent:55:"+ref)
	if err != nil || !g.Allow {
		t.Fatalf("own channel refused: %v", err)
	}
	rows := g.Rows[dollr.PublicSchema+"."+dollr.PublicStatusTable]
	if len(g.Rows) != 1 || rows["session_id"] != "55" || rows["reference_id"] != ref {
		t.Fatalf("grant rows %v", g.Rows)
	}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range key {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	refused := []struct {
		name   string
		claims map[string]any
		topic  string
	}{
		{"other session", key, "payment-intent:56:" + ref},
		{"other reference", key, "payment-intent:55:650e8400-e29b-41d4-a716-446655440000"},
		{"other topic", key, "room1"},
		{"prefix trick", key, "payment-intent:55:" + ref + ":x"},
		{"anon key", map[string]any{"role": "anon", "iss": "dollr", "exp": json.Number("9999999999")}, "payment-intent:55:" + ref},
		{"no typ", with("typ", nil), "payment-intent:55:" + ref},
		{"service role", with("role", "service_role"), "payment-intent:55:" + ref},
		{"string session", with("session_id", "55"), "payment-intent:55:" + ref},
		{"no reference", with("reference_id", nil), "payment-intent:55:"},
	}
	for _, c := range refused {
		g, err := rowPolicy(c.claims, c.topic)
		je, ok := err.(*realtime.JoinError)
		if g.Allow || !ok || je.Code != "Unauthorized" {
			t.Errorf("%s: grant %+v err %v, want Unauthorized", c.name, g, err)
		}
	}
}
