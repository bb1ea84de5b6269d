package dollr

import (
	"fmt"
	"strconv"
	"strings"
)

// Amount is a money amount in hundredths of the currency unit. Integer
// hundredths keep sums exact; two decimals is the precision Dollr's minimum
// (0.01) implies. It is rendered as a JSON number such as 12.50, which is how
// PostgreSQL's to_jsonb renders numeric(18,2).
type Amount int64

// MaxAmountDigits is the most integer digits an amount may have: every amount
// is below 10^13 units, however it is written.
const MaxAmountDigits = 13

// ParseAmount parses a decimal number with at most two fraction digits (more
// are accepted only as trailing zeros), optionally with an exponent as JSON
// allows (1e2, 1.5E+1). The value decides, not the spelling: 1e13 and
// 10000000000000 are the same amount and get the same answer. The parse is
// exact (no float64 on the way).
func ParseAmount(s string) (Amount, error) {
	orig := s
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, ok := parseExponent(s[i+1:])
		if !ok {
			return 0, fmt.Errorf("invalid amount %q", orig)
		}
		exp = e
	}
	whole, frac, hasFrac := strings.Cut(mant, ".")
	if !isDigits(whole) || (hasFrac && !isDigits(frac)) {
		return 0, fmt.Errorf("invalid amount %q", orig)
	}
	// The value is 0.<digits> × 10^point.
	digits := whole + frac
	point := len(whole) + exp
	trimmed := strings.TrimLeft(digits, "0")
	point -= len(digits) - len(trimmed)
	digits = strings.TrimRight(trimmed, "0")
	if digits == "" {
		return 0, nil
	}
	if len(digits)-point > 2 {
		return 0, fmt.Errorf("amount %q has more than two decimals", orig)
	}
	if point > MaxAmountDigits {
		return 0, fmt.Errorf("amount %q is too large", orig)
	}
	// At most 15 digits once scaled to hundredths: no overflow.
	n, err := strconv.ParseInt(digits+strings.Repeat("0", point+2-len(digits)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid amount %q", orig)
	}
	if neg {
		n = -n
	}
	return Amount(n), nil
}

// parseExponent reads an exponent's [+-]digits, saturating far beyond any
// amount's range.
func parseExponent(e string) (int, bool) {
	neg := false
	if e != "" && (e[0] == '+' || e[0] == '-') {
		neg = e[0] == '-'
		e = e[1:]
	}
	if !isDigits(e) {
		return 0, false
	}
	n := 0
	for _, c := range []byte(e) {
		if n < 1_000_000 {
			n = n*10 + int(c-'0')
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
