package dollr_test

import (
	"encoding/json"
	"strings"
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
		{"1e", 0, false},
		{"1e+", 0, false},
		{"e5", 0, false},
		{"1.e5", 0, false},
		{"1e2.5", 0, false},
		{"0e999999999999", 0, true},
		{"1.000e-2", 1, true}, // 0.01: only the value counts
		{"1234.5e-2", 1234, false},
		{"12.345e1", 12345, true},
		{"9999999999999.99", 999999999999999, true},
		{"9.99999999999999e12", 999999999999999, true}, // the same value: float64 would lose it
		{"999999999999999e-2", 999999999999999, true},  // again
		{"0.0000000000999999999999999e23", 999999999999999, true},
		{"-9.99999999999999E+12", -999999999999999, true},
		{"1e-400", 0, false}, // more than two decimals, however tiny
	} {
		got, err := dollr.ParseAmount(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseAmount(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestParseAmountSpellings: every spelling of one value gets the same
// answer, accepted or refused for the same reason (10^13 units and beyond are
// too large whether written 1e13 or 10000000000000).
func TestParseAmountSpellings(t *testing.T) {
	for _, group := range [][]string{
		{"10000000000000", "1e13", "1E13", "1e+13", "10e12", "0.1e14", "100000000000000e-1", "10000000000000.00"},
		{"100000000000000", "1e14", "1.0e14"},
		{"1e15", "1000000000000000"},
		{"12.34", "1.234e1", "1234e-2", "0.1234e2", "12.340"},
		{"0.001", "1e-3", "0.1e-2", "10e-4"},
		{"0", "0e5", "0.00", "0e-9", "-0"},
	} {
		want, wantErr := dollr.ParseAmount(group[0])
		for _, s := range group[1:] {
			got, err := dollr.ParseAmount(s)
			if got != want || (err == nil) != (wantErr == nil) ||
				(err != nil && strings.Replace(err.Error(), s, group[0], 1) != wantErr.Error()) {
				t.Errorf("ParseAmount(%q) = %v, %v; ParseAmount(%q) = %v, %v", s, got, err, group[0], want, wantErr)
			}
		}
	}
	if _, err := dollr.ParseAmount("1e13"); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("1e13 = %v, want too large", err)
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
	for _, s := range []string{"12.50", "1e2", "-0.01", "9999999999999.99", "1.", "e", "--1", "9.99999999999999e12", "1e-400"} {
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
