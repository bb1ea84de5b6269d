package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
)

// The low-level realtime client: one socket, one channel per collection,
// a callback per change with the time it arrived. A load tool joins
// thousands of channels this way.
func ExampleDialRealtime() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	creds, err := client.LoadCredentials(credentialsPath())
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.NewFromCredentials(creds)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := client.DialRealtime(ctx, creds.SupabaseURL, client.RealtimeOptions{APIKey: creds.SupabaseAnonKey})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// A collection to watch.
	src, err := c.CreateCheckout(ctx, client.CheckoutRequest{Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice,
		PartyPhone: "231770000010", Currency: "USD", Items: []client.Item{{Name: "Tea", Currency: "USD", Amount: 300}}})
	if err != nil {
		log.Fatal(err)
	}
	sess, err := c.CreateCheckoutSession(ctx, client.CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		log.Fatal(err)
	}
	ref := uuid.NewString()
	key, err := c.CreateRealtimeKey(ctx, client.RealtimeKeyRequest{SessionID: sess.ID, SourceType: sess.SourceType, ReferenceID: ref})
	if err != nil {
		log.Fatal(err)
	}

	subscribed := make(chan error, 1)
	final := make(chan string, 1)
	_, err = conn.Join(fmt.Sprintf("payment-intent:%d:%s", sess.ID, ref), client.ChannelOptions{
		AccessToken: key.AccessToken,
		PostgresChanges: []client.PostgresChangesFilter{{
			Event: "*", Schema: "public", Table: dollr.PublicStatusTable, Filter: "reference_id=eq." + ref,
		}},
		OnStatus: func(s client.ChannelStatus, err error) {
			if s == client.ChannelSubscribed {
				subscribed <- nil
			} else {
				subscribed <- fmt.Errorf("%s: %v", s, err)
			}
		},
		OnChange: func(ev *client.PostgresChange) {
			status, _ := ev.Record["status"].(string)
			fmt.Println(ev.ReceivedAt.Format(time.RFC3339), ev.Type, status)
			if dollr.ExecutionStatus(status).Terminal() {
				final <- status
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := <-subscribed; err != nil {
		log.Fatal(err) // an application would poll the Status API instead
	}

	// Subscribed before executing, so no change can be missed.
	acct, err := c.CreatePaymentAccount(ctx, "", client.PaymentAccountRequest{AccountName: "Payer", Provider: "PAWAPAY",
		Method: "MTN_MOMO_LBR", PartyID: src.PartyID, InsensitiveAccountNumber: "231770000010"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.ExecuteCollection(ctx, client.CollectionRequest{SessionID: sess.ID, PaymentAccountID: acct.ID, Currency: "USD", ReferenceID: ref}); err != nil {
		log.Fatal(err)
	}
	select {
	case s := <-final:
		fmt.Println("realtime says", s, "- confirm with the Status API before fulfilling")
	case <-ctx.Done():
		log.Fatal(ctx.Err())
	}
}
