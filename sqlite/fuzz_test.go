package sqlite

import (
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/dollr/dollr"
)

// FuzzDecodeRecord checks that whatever sits in change_log.record, decoding
// returns a value or an error and never panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(`{"id":1,"payer_amount":12.50,"requires_action":false,"gateway_message":null,"created_at":"2026-01-02T03:04:05.123456+00:00"}`)
	f.Add(`{"id":1.5}`)
	f.Add(`{"id":99999999999999999999}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Add(`{"id":"7"}`)
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := decodeRecord(sql.NullString{String: s, Valid: true}, dollr.PublicStatusColumns)
		if err != nil {
			return
		}
		// Integer columns never come back as json.Number: they are int64 or
		// decoding failed.
		for _, col := range dollr.PublicStatusColumns {
			if _, isNumber := rec[col.Name].(json.Number); isNumber && col.Type == "int8" {
				t.Fatalf("int8 column %s decoded as json.Number", col.Name)
			}
		}
	})
}
