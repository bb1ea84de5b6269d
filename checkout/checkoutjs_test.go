package checkout

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// checkout.js's formatMoney, run in Chromium, writes every amount of
// moneyCases exactly as the server's formatMoney does: the amounts a payer
// sees from the template and from the script agree.
func TestCheckoutJSFormatMoney(t *testing.T) {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("/money.html", func(w http.ResponseWriter, r *http.Request) {
		// No #checkout element: the script only exports its helpers.
		fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><title>checkout.js</title><script src="/static/checkout.js"></script>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv.URL)
	b.run(10*time.Second, chromedp.Navigate(srv.URL+"/money.html"))
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
