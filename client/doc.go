// Package client is a Go SDK for the Dollr Open API as `dollr serve` offers it:
// a typed method per endpoint, bearer-token caching, errors that carry Dollr's
// `detail`, a small Supabase Realtime protocol client (RealtimeConn), and
// WaitForCollection, which follows Dollr's status guide: realtime first, then
// polling the Status API, with the final status always confirmed by the
// Status API.
//
//	c, _ := client.NewFromCredentialsFile("dollr-data/credentials.json")
//	src, _ := c.CreateCheckout(ctx, client.CheckoutRequest{...})
//	sess, _ := c.CreateCheckoutSession(ctx, client.CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
//	acct, _ := c.CreatePaymentAccount(ctx, dollr.OperationCollection, client.PaymentAccountRequest{...})
//	ref := uuid.NewString() // persist it before executing
//	exec, _ := c.ExecuteCollection(ctx, client.CollectionRequest{SessionID: sess.ID, PaymentAccountID: acct.ID, Currency: "USD", ReferenceID: ref})
//	final, _ := c.WaitForCollection(ctx, ref, client.WaitOptions{SessionID: sess.ID, SourceType: sess.SourceType})
package client
