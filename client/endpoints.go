package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/dollr/dollr"
)

// CreateCheckout calls POST /v1/checkouts/create: it creates an invoice or
// order (and its party) and, with Mode HOSTED, a hosted payment page at URL.
func (c *Client) CreateCheckout(ctx context.Context, req CheckoutRequest) (*CheckoutResponse, error) {
	var res CheckoutResponse
	if err := c.do(ctx, http.MethodPost, "/v1/checkouts/create", nil, req, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// CreateCheckoutSession calls POST /v1/sessions/checkout.
func (c *Client) CreateCheckoutSession(ctx context.Context, req CheckoutSessionRequest) (*CheckoutSession, error) {
	var res CheckoutSession
	if err := c.do(ctx, http.MethodPost, "/v1/sessions/checkout", nil, req, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// CreatePaymentAccount calls POST /v1/payment-accounts/create with the
// required operation_type query parameter (dollr.OperationCollection for
// collections; empty means COLLECTION).
func (c *Client) CreatePaymentAccount(ctx context.Context, operationType string, req PaymentAccountRequest) (*PaymentAccount, error) {
	if operationType == "" {
		operationType = dollr.OperationCollection
	}
	var res PaymentAccount
	q := url.Values{"operation_type": {operationType}}
	if err := c.do(ctx, http.MethodPost, "/v1/payment-accounts/create", q, req, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// ExecuteCollection calls POST /v1/executions/collection. The call is
// idempotent on req.ReferenceID: after a timeout, a lost response or a 5xx,
// check CollectionStatus with the same ReferenceID before anything else, and
// repeat the call only with the same ReferenceID.
func (c *Client) ExecuteCollection(ctx context.Context, req CollectionRequest) (*ExecutionResponse, error) {
	if req.ReferenceID == "" {
		return nil, errors.New("client: ExecuteCollection needs a ReferenceID (a UUID v4 persisted before the call)")
	}
	var res ExecutionResponse
	if err := c.do(ctx, http.MethodPost, "/v1/executions/collection", nil, req, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// CollectionStatus calls GET /v1/status/collection/{reference_id}. An unknown
// reference is an *APIError for which IsNotFound is true.
func (c *Client) CollectionStatus(ctx context.Context, referenceID string) (*ExecutionResponse, error) {
	var res ExecutionResponse
	if err := c.do(ctx, http.MethodGet, "/v1/status/collection/"+url.PathEscape(referenceID), nil, nil, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// SourceStatus calls GET /v1/status/source: the document status of an
// invoice or order (fulfil only on PAID).
func (c *Client) SourceStatus(ctx context.Context, sourceType dollr.SourceType, sourceID int64) (*SourceStatusResponse, error) {
	var res SourceStatusResponse
	q := url.Values{"source_type": {string(sourceType)}, "source_id": {strconv.FormatInt(sourceID, 10)}}
	if err := c.do(ctx, http.MethodGet, "/v1/status/source", q, nil, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// CreateRealtimeKey calls POST /v1/realtime-keys/collection: a short-lived
// JWT for subscribing to one collection's status over realtime.
func (c *Client) CreateRealtimeKey(ctx context.Context, req RealtimeKeyRequest) (*RealtimeKey, error) {
	var res RealtimeKey
	if err := c.do(ctx, http.MethodPost, "/v1/realtime-keys/collection", nil, req, &res, true); err != nil {
		return nil, err
	}
	return &res, nil
}

// Sandbox3DSOutcome is the answer given to the sandbox's 3-D Secure challenge.
type Sandbox3DSOutcome string

const (
	Sandbox3DSSucceed Sandbox3DSOutcome = "succeed"
	Sandbox3DSFail    Sandbox3DSOutcome = "fail"
)

// CompleteSandbox3DS answers the sandbox's stand-in for a card issuer's 3-D
// Secure challenge (POST /v1/sandbox/3ds/{client_secret}, docs/sandbox.md):
// call it with the ClientSecret of an execution that came back with
// RequiresAction. Like Stripe.js it needs no bearer token; the client secret
// is the capability. It exists only on a dollr sandbox, not on Dollr.
func (c *Client) CompleteSandbox3DS(ctx context.Context, clientSecret string, outcome Sandbox3DSOutcome) (*ExecutionResponse, error) {
	if clientSecret == "" {
		return nil, errors.New("client: CompleteSandbox3DS needs the execution's client_secret")
	}
	var res ExecutionResponse
	body := map[string]string{"outcome": string(outcome)}
	if err := c.do(ctx, http.MethodPost, "/v1/sandbox/3ds/"+url.PathEscape(clientSecret), nil, body, &res, false); err != nil {
		return nil, err
	}
	return &res, nil
}
