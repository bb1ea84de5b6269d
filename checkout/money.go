package checkout

import (
	"strings"

	"github.com/dollr/dollr"
)

// minorDigits lists the ISO 4217 currencies whose minor unit is not the
// cent: those with none (RWF, UGX, XOF…) and those with three digits.
// Every other currency has two.
var minorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// minorUnits is the number of decimals a currency is written with.
func minorUnits(currency string) int {
	if d, ok := minorDigits[currency]; ok {
		return d
	}
	return 2
}

// formatMoney writes an amount for the customer: thousands grouped with
// commas, as many decimals as the currency has, then the currency code:
// "12,500 RWF", "1,234.50 USD". A currency without a minor unit still shows
// cents that are there (Dollr amounts have two decimals), never hiding money.
// checkout.js's formatMoney does the same for the amounts it shows.
func formatMoney(a dollr.Amount, currency string) string {
	// Amount.String gives [-]whole.cents; only the grouping and the
	// currency's decimals differ.
	digits, sign := a.String(), ""
	if rest, ok := strings.CutPrefix(digits, "-"); ok {
		digits, sign = rest, "-"
	}
	whole, cents, _ := strings.Cut(digits, ".")
	s := groupThousands(whole)
	switch d := minorUnits(currency); {
	case d == 0 && cents == "00":
	case d == 3:
		s += "." + cents + "0"
	default:
		s += "." + cents
	}
	return strings.TrimSpace(sign + s + " " + currency)
}

// groupThousands puts a comma between groups of three digits.
func groupThousands(digits string) string {
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
