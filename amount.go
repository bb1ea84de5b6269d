package dollr

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amount is a money amount in hundredths of the currency unit. Integer
// hundredths keep sums exact; two decimals is the precision Dollr's minimum
// (0.01) implies. It is rendered as a JSON number such as 12.50, which is how
// PostgreSQL's to_jsonb renders numeric(18,2).
type Amount int64

// ParseAmount parses a decimal string with at most two fraction digits.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("invalid amount %q", s)
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || (hasFrac && frac == "") {
		return 0, fmt.Errorf("invalid amount %q", s)
	}
	// An exponent form such as 1e2 is valid JSON; accept it through float only when exact.
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			return 0, fmt.Errorf("invalid amount %q", s)
		}
		c := math.Round(f * 100)
		if math.Abs(c-f*100) > 1e-6 {
			return 0, fmt.Errorf("amount %q has more than two decimals", s)
		}
		if neg {
			c = -c
		}
		return Amount(c), nil
	}
	if len(frac) > 2 {
		// Trailing zeros beyond two decimals are harmless (12.500).
		if strings.Trim(frac[2:], "0") != "" {
			return 0, fmt.Errorf("amount %q has more than two decimals", s)
		}
		frac = frac[:2]
	}
	for len(frac) < 2 {
		frac += "0"
	}
	if len(whole) > 13 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid amount %q", s)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid amount %q", s)
	}
	a := Amount(w*100 + f)
	if neg {
		a = -a
	}
	return a, nil
}

// String renders the amount with exactly two decimals: 12.50.
func (a Amount) String() string {
	sign := ""
	v := int64(a)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// MarshalJSON renders the amount as a JSON number with two decimals.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON accepts a JSON number (or numeric string is refused: Dollr types amounts as numbers).
func (a *Amount) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) || s == "null" || s == "true" || s == "false" {
		return fmt.Errorf("amount must be a number")
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
