package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
)

func init() {
	register("pay", command{
		Summary: "run one sandbox payment end to end and watch it to its final status",
		Run:     runPay,
	})
}

// cardRe is the API's pattern for a payment_method_id.
var cardRe = regexp.MustCompile(`^pm_[A-Za-z0-9_]{1,200}$`)

// phoneMethods maps a phone's country calling code to the sandbox's
// mobile-money method for that country.
var phoneMethods = []struct{ prefix, method string }{
	{"231", "MTN_MOMO_LBR"},
	{"250", "MTN_MOMO_RWA"},
}

func runPay(ctx context.Context, args []string) int {
	fs := newFlagSet("pay", "dollr pay [flags]", `
Runs a whole sandbox collection against a running 'dollr serve' with the
merchant in --credentials, the way an integration would: checkout source
(POST /v1/checkouts/create), checkout session, payment account, execution with
a fresh reference_id, and then 'dollr watch' on it (realtime, then polling).
Exit 0 when the payment COMPLETED, 1 when it FAILED, 2 on error or timeout.

The sandbox picks the outcome from the payer (docs/sandbox.md): a phone ending
in 10 completes, 01 fails for insufficient funds, 02 is approved slowly, 03 is
an invalid account, 04 is never approved. With --card the payment is a card
payment instead: pm_card_visa completes, pm_card_chargeDeclined is declined,
pm_card_threeDSecure2Required needs 3-D Secure, which pay answers with --3ds.`)
	var wf watchFlags
	wf.register(fs)
	phone := fs.String("phone", "231770000010", "payer's phone, E.164 without '+' (the party's phone; the mobile-money number)")
	amount := fs.String("amount", "10", "amount to collect")
	currency := fs.String("currency", "USD", "currency of the checkout and the payment")
	method := fs.String("method", "", "mobile-money method (default from the phone's country code: 231 MTN_MOMO_LBR, 250 MTN_MOMO_RWA)")
	card := fs.String("card", "", "pay by card with this sandbox payment-method id (pm_card_visa, ...) instead of mobile money")
	threeDS := fs.String("3ds", "succeed", "answer to a card's 3-D Secure challenge: succeed or fail")
	sourceKind := fs.String("source-kind", string(dollr.SourceInvoice), "INVOICE or ORDER")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "dollr pay: "+format+"\n", args...)
		return exitError
	}
	amt, err := dollr.ParseAmount(*amount)
	if err != nil || amt <= 0 {
		return fail("--amount %q is not a positive amount", *amount)
	}
	if *threeDS != string(client.Sandbox3DSSucceed) && *threeDS != string(client.Sandbox3DSFail) {
		return fail("--3ds must be succeed or fail")
	}
	kind := dollr.SourceType(strings.ToUpper(*sourceKind))
	if !kind.Valid() {
		return fail("--source-kind %q: want INVOICE or ORDER", *sourceKind)
	}
	// Checked here, before any request, so a typo does not leave a
	// checkout and a session behind.
	momo := strings.ToUpper(*method)
	switch {
	case *card != "" && momo != "":
		return fail("--method is for mobile money and --card for cards: pass one of them")
	case *card != "" && !cardRe.MatchString(*card):
		return fail("--card %q: want a sandbox payment-method id such as pm_card_visa", *card)
	case momo != "":
		if _, ok := dollr.MobileMoneyMethods[momo]; !ok {
			return fail("--method %q: want one of %s", *method, strings.Join(slices.Sorted(maps.Keys(dollr.MobileMoneyMethods)), ", "))
		}
	}
	if *card == "" && momo == "" {
		for _, pm := range phoneMethods {
			if strings.HasPrefix(*phone, pm.prefix) {
				momo = pm.method
			}
		}
		if momo == "" {
			return fail("no mobile-money method for phone %s: pass --method", *phone)
		}
	}
	c, err := client.NewFromCredentialsFile(wf.credentials)
	if err != nil {
		return fail("%v (is 'dollr serve' running? it writes credentials.json on first start)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wf.timeout)
	defer cancel()
	out := newStatusPrinter(os.Stdout, os.Stderr, wf.jsonOut)
	// step prints one step; with --json, fields (ids such as session_id and
	// reference_id) go into the line next to the message.
	step := func(name string, fields map[string]any, format string, args ...any) {
		if wf.jsonOut {
			v := map[string]any{"event": "step", "step": name, "message": fmt.Sprintf(format, args...)}
			for k, f := range fields {
				v[k] = f
			}
			out.mu.Lock()
			out.json(v)
			out.mu.Unlock()
			return
		}
		out.info("%-9s %s", name, fmt.Sprintf(format, args...))
	}
	apiFail := func(what string, err error) int {
		out.fail(fmt.Errorf("%s: %w", what, err))
		return exitError
	}

	src, err := c.CreateCheckout(ctx, client.CheckoutRequest{
		Mode: dollr.ModeDirect, SourceKind: kind, PartyPhone: *phone,
		PartyName: "Sandbox payer", Currency: *currency,
		Items: []client.Item{{Name: "dollr pay demo", Currency: *currency, Amount: amt}},
	})
	if err != nil {
		return apiFail("create checkout", err)
	}
	step("checkout", map[string]any{"source_id": src.SourceID, "source_type": src.SourceType, "party_id": src.PartyID},
		"%s %s (id %d) for %s %s, payer %s", strings.ToLower(string(src.SourceType)), src.SourceNumber, src.SourceID, src.TotalAmount, src.Currency, *phone)

	sess, err := c.CreateCheckoutSession(ctx, client.CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		return apiFail("create checkout session", err)
	}
	step("session", map[string]any{"session_id": sess.ID, "source_type": sess.SourceType}, "%d, %s until %s", sess.ID, sess.Status, sess.ExpiresAt.Local().Format("15:04:05"))

	acctReq := client.PaymentAccountRequest{AccountName: "Sandbox payer", PartyID: src.PartyID}
	if *card != "" {
		acctReq.Provider, acctReq.Method, acctReq.PaymentMethodID = dollr.ProviderStripe, dollr.MethodCreditCard, *card
	} else {
		acctReq.Provider, acctReq.Method, acctReq.InsensitiveAccountNumber = dollr.ProviderPawapay, momo, *phone
		acctReq.CountryCode = dollr.MobileMoneyMethods[momo]
	}
	acct, err := c.CreatePaymentAccount(ctx, dollr.OperationCollection, acctReq)
	if err != nil {
		return apiFail("create payment account", err)
	}
	step("account", map[string]any{"payment_account_id": acct.ID}, "%d, %s %s", acct.ID, acct.Method, firstNonEmpty(*card, *phone))

	// The reference_id is the idempotency key: made before the call and
	// reused unchanged if the call has to be repeated.
	ref := uuid.NewString()
	ex, err := c.ExecuteCollection(ctx, client.CollectionRequest{SessionID: sess.ID, PaymentAccountID: acct.ID, Currency: src.Currency, ReferenceID: ref})
	if err != nil {
		return apiFail("execute collection "+ref, err)
	}
	step("execute", map[string]any{"reference_id": ref, "session_id": sess.ID, "status": ex.Status,
		"watch": watchCommand(ref, sess.ID, sess.SourceType)}, "reference_id %s: %s", ref, ex.Status)
	if ex.RequiresAction && ex.ClientSecret != "" {
		step("3ds", map[string]any{"reference_id": ref}, "the card needs 3-D Secure: answering the sandbox challenge with %q", *threeDS)
		if _, err := c.CompleteSandbox3DS(ctx, ex.ClientSecret, client.Sandbox3DSOutcome(*threeDS)); err != nil {
			return apiFail("3-D Secure", err)
		}
	}
	if !wf.jsonOut {
		out.info("          (later: %s)", watchCommand(ref, sess.ID, sess.SourceType))
	}
	return watchCollection(ctx, c, ref, sess.ID, sess.SourceType, wf, out)
}

// watchCommand is the dollr watch command line that follows this payment
// again; ORDER sessions need --source-type for their realtime key.
func watchCommand(ref string, sessionID int64, st dollr.SourceType) string {
	cmd := fmt.Sprintf("dollr watch %s --session-id %d", ref, sessionID)
	if st != "" && st != dollr.SourceInvoice {
		cmd += " --source-type " + string(st)
	}
	return cmd
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
