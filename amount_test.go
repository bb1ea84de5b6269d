package dollr_test

import (
	"encoding/json"
	"testing"

	"github.com/dollr/dollr"
)

func TestParseAmount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want dollr.Amount
		ok   bool
	}{
		{"12.50", 1250, true},
		{"12.5", 1250, true},
		{"12", 1200, true},
		{"0.01", 1, true},
		{"12.500", 1250, true}, // trailing zeros beyond cents are harmless
		{"1e2", 10000, true},   // valid JSON number
		{"1.5e1", 1500, true},
		{"-3.25", -325, true},
		{"12.345", 0, false}, // more than two decimals
		{"1e-3", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{".5", 0, false},
		{"5.", 0, false},
		{"abc", 0, false},
		{"1.2.3", 0, false},
		{"99999999999999", 0, false}, // beyond 13 integer digits
		{"1e400", 0, false},
	} {
		got, err := dollr.ParseAmount(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseAmount(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestAmountJSON(t *testing.T) {
	b, err := json.Marshal(map[string]dollr.Amount{"a": 1250, "b": 5, "c": -101})
	if err != nil || string(b) != `{"a":12.50,"b":0.05,"c":-1.01}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var a dollr.Amount
	for _, bad := range []string{`"12.50"`, `null`, `true`, `12.345`} {
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
	if err := json.Unmarshal([]byte(`7.1`), &a); err != nil || a != 710 {
		t.Errorf("Unmarshal(7.1) = %v, %v", a, err)
	}
}

// FuzzParseAmount: no input panics, and whatever parses renders back to a
// string that parses to the same amount.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.50", "1e2", "-0.01", "9999999999999.99", "1.", "e", "--1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := dollr.ParseAmount(s)
		if err != nil {
			return
		}
		back, err := dollr.ParseAmount(a.String())
		if err != nil || back != a {
			t.Fatalf("ParseAmount(%q) = %v, but its rendering %q parses to %v, %v", s, a, a.String(), back, err)
		}
	})
}
