package checkout

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// checkout.js's formatMoney, run in Chromium, writes every amount of
// moneyCases exactly as the server's formatMoney does: the amounts a payer
// sees from the template and from the script agree.
func TestCheckoutJSFormatMoney(t *testing.T) {
	// No #checkout element: the script only exports its helpers.
	b := scriptPage(t, "checkout.js", nil)
	b.waitFor(5*time.Second, "checkout.js", `!!window.DollrCheckout`)

	var calls []string
	for _, tt := range moneyCases {
		// The amount as the status JSON carries it (payer_amount).
		amount, err := json.Marshal(tt.amount)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, fmt.Sprintf("DollrCheckout.formatMoney(%s, %q, %d)", amount, tt.currency, minorUnits(tt.currency)))
	}
	got, err := eval[[]string](b, "["+strings.Join(calls, ",\n")+"]")
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range moneyCases {
		if got[i] != tt.want {
			t.Errorf("%s = %q, want %q", calls[i], got[i], tt.want)
		}
	}
	b.checkClean()
}
