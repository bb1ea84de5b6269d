package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
)

// credentialsPath is where the examples find a running server's credentials:
// $DOLLR_CREDENTIALS, or ./dollr-data/credentials.json as `dollr serve`
// writes it.
func credentialsPath() string {
	if p := os.Getenv("DOLLR_CREDENTIALS"); p != "" {
		return p
	}
	return "dollr-data/credentials.json"
}

// A full mobile-money collection against a `dollr serve` sandbox: checkout
// source, session, payment account, execution, then the final status the
// guide's way (realtime first, then the Status API).
func Example() {
	ctx := context.Background()
	c, err := client.NewFromCredentialsFile(credentialsPath())
	if err != nil {
		log.Fatal(err)
	}
	src, err := c.CreateCheckout(ctx, client.CheckoutRequest{
		Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice, PartyPhone: "231770000010", Currency: "USD",
		Items: []client.Item{{Name: "Coffee beans", Currency: "USD", Amount: 1250}}, // 12.50
	})
	if err != nil {
		log.Fatal(err)
	}
	sess, err := c.CreateCheckoutSession(ctx, client.CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		log.Fatal(err)
	}
	acct, err := c.CreatePaymentAccount(ctx, dollr.OperationCollection, client.PaymentAccountRequest{
		AccountName: "Payer", Provider: "PAWAPAY", Method: "MTN_MOMO_LBR", PartyID: src.PartyID,
		CountryCode: "LR", InsensitiveAccountNumber: "231770000010",
	})
	if err != nil {
		log.Fatal(err)
	}
	// Generate the idempotency key and store it before executing, so the
	// payment can be looked up whatever happens to the response.
	ref := uuid.NewString()
	if _, err := c.ExecuteCollection(ctx, client.CollectionRequest{
		SessionID: sess.ID, PaymentAccountID: acct.ID, Currency: "USD", ReferenceID: ref,
	}); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	final, err := c.WaitForCollection(ctx, ref, client.WaitOptions{
		SessionID:  sess.ID,
		SourceType: sess.SourceType,
		OnUpdate:   func(u client.Update) { fmt.Println("status:", u.Status, u.GatewayMessage) },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("final:", final.Status, final.PayerAmount, final.PayerCurrency)
	// Fulfil on the document status, as Dollr's guide says.
	doc, err := c.SourceStatus(ctx, src.SourceType, src.SourceID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("invoice:", doc.Status)
}

// Errors from the API are *client.APIError values carrying Dollr's detail.
func ExampleAPIError() {
	ctx := context.Background()
	c, err := client.NewFromCredentialsFile(credentialsPath())
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CollectionStatus(ctx, uuid.NewString())
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		log.Fatal("want an API error, got ", err)
	}
	switch {
	case apiErr.StatusCode == 404:
		// The execution never landed: safe to start again with a new
		// session and a new reference_id.
		fmt.Println("not found:", apiErr.Detail)
	case apiErr.Temporary():
		fmt.Println("retry after", apiErr.RetryAfter)
	default:
		for _, f := range apiErr.Fields {
			fmt.Println(f.Loc, f.Msg)
		}
	}
}

// TestExamples runs the examples against a real dollr serve.
func TestExamples(t *testing.T) {
	t.Setenv("DOLLR_CREDENTIALS", client.StartServerForExamples(t))
	Example()
	ExampleAPIError()
	ExampleDialRealtime()
}
