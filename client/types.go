package client

import (
	"encoding/json"
	"time"

	"github.com/dollr/dollr"
)

// Amount is a money amount with two decimals, sent and read as a JSON number.
type Amount = dollr.Amount

// TokenResponse is ObtainTokenResponse. ExpiresIn is in minutes.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// Item is one line of a checkout source.
type Item struct {
	Name     string `json:"name"`
	Currency string `json:"currency"`
	Amount   Amount `json:"amount"`
}

// CheckoutRequest is CreateCheckoutSourceRequestPayload (POST /v1/checkouts/create).
// Empty optional fields are left out of the request.
type CheckoutRequest struct {
	Mode              string           `json:"mode"`        // HOSTED or DIRECT
	SourceKind        dollr.SourceType `json:"source_kind"` // INVOICE or ORDER
	PartyPhone        string           `json:"party_phone"` // E.164 without '+'
	Currency          string           `json:"currency"`
	Items             []Item           `json:"items"`
	PartyName         string           `json:"party_name,omitempty"`
	PartyEmail        string           `json:"party_email,omitempty"`
	PartyRelationship string           `json:"party_relationship,omitempty"`
	ReferenceID       string           `json:"reference_id,omitempty"` // the merchant's own reference, not an execution key
	Note              string           `json:"note,omitempty"`
	DueDate           *time.Time       `json:"due_date,omitempty"`
	SuccessURL        string           `json:"success_url,omitempty"`
	CancelURL         string           `json:"cancel_url,omitempty"`
	ExpiresAt         *time.Time       `json:"expires_at,omitempty"`
	CounterpartyID    int64            `json:"counterparty_id,omitempty"`
}

// CheckoutResponse is CreateCheckoutSourceLinkResponse. Nullable strings read
// as "".
type CheckoutResponse struct {
	Mode                   string             `json:"mode"`
	SourceType             dollr.SourceType   `json:"source_type"`
	SourceID               int64              `json:"source_id"`
	SourceNumber           string             `json:"source_number"`
	SourceStatus           dollr.SourceStatus `json:"source_status"`
	CounterpartyID         int64              `json:"counterparty_id"`
	PartyID                int64              `json:"party_id"`
	Currency               string             `json:"currency"`
	TotalAmount            Amount             `json:"total_amount"`
	SourceCheckoutConfigID int64              `json:"source_checkout_config_id"`
	URL                    string             `json:"url"`
	ReferenceID            string             `json:"reference_id"`
	DueDate                *time.Time         `json:"due_date"`
	ExpiresAt              *time.Time         `json:"expires_at"`
	HostedPathOrToken      string             `json:"hosted_path_or_token"`
	SuccessURL             string             `json:"success_url"`
	CancelURL              string             `json:"cancel_url"`
}

// CheckoutSessionRequest is CreateCheckoutSessionPayload (POST /v1/sessions/checkout).
type CheckoutSessionRequest struct {
	SourceID   int64            `json:"source_id"`
	SourceType dollr.SourceType `json:"source_type"`
}

// CheckoutSession is CheckoutSessionResponse.
type CheckoutSession struct {
	ID               int64            `json:"id"`
	SourceID         int64            `json:"source_id"`
	SourceType       dollr.SourceType `json:"source_type"`
	Status           string           `json:"status"`
	ExpiresAt        time.Time        `json:"expires_at"`
	CreatedAt        time.Time        `json:"created_at"`
	UpdatedAt        time.Time        `json:"updated_at"`
	PaymentAccountID *int64           `json:"payment_account_id"`
}

// PaymentAccountRequest is CreatePaymentAccountPayload
// (POST /v1/payment-accounts/create?operation_type=...).
type PaymentAccountRequest struct {
	AccountName string `json:"account_name"`
	Provider    string `json:"provider"` // PAWAPAY, STRIPE
	Method      string `json:"method"`   // MTN_MOMO_LBR, ..., CREDIT_CARD
	PartyID     int64  `json:"party_id"`
	CountryCode string `json:"country_code,omitempty"`
	// InsensitiveAccountNumber is the mobile-money phone (E.164 without '+').
	InsensitiveAccountNumber string `json:"insensitive_account_number,omitempty"`
	// PaymentMethodID is a card's payment-method id (pm_..., e.g. the
	// sandbox's pm_card_visa); cards only.
	PaymentMethodID string `json:"payment_method_id,omitempty"`
}

// PaymentAccount is PaymentAccountResponse.
type PaymentAccount struct {
	ID          int64     `json:"id"`
	AccountName string    `json:"account_name"`
	Provider    string    `json:"provider"`
	Method      string    `json:"method"`
	PartyID     int64     `json:"party_id"`
	IsActive    bool      `json:"is_active"`
	CountryCode string    `json:"country_code"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// CollectionRequest is CheckoutExecutionPayload (POST /v1/executions/collection).
// Dollr types both IDs as JSON strings on executions ("55"); the ",string"
// tags keep them int64 in Go and strings on the wire.
type CollectionRequest struct {
	SessionID        int64  `json:"session_id,string"`
	PaymentAccountID int64  `json:"payment_account_id,string"`
	Currency         string `json:"currency"` // the payer's currency
	// ReferenceID is the idempotency key: a UUID v4 generated and persisted
	// before the call, reused unchanged on every retry of this attempt.
	ReferenceID string `json:"reference_id"`
}

// ExecutionResponse is returned by executions and by GET /v1/status/collection.
// Nullable strings read as "" and are written back as null (MarshalJSON), so
// a response re-encoded has the API's shape.
type ExecutionResponse struct {
	ReferenceID           string                `json:"reference_id"`
	Status                dollr.ExecutionStatus `json:"status"`
	PayerAmount           Amount                `json:"payer_amount"`
	PayerCurrency         string                `json:"payer_currency"`
	PayeeCurrency         string                `json:"payee_currency"`
	PayeeAmount           Amount                `json:"payee_amount"`
	OperationType         string                `json:"operation_type"`
	ProviderTransactionID string                `json:"provider_transaction_id"`
	GatewayMessage        string                `json:"gateway_message"`
	WalletMessage         string                `json:"wallet_message"`
	// ClientSecret and RequiresAction are set for cards that need 3-D Secure.
	ClientSecret   string `json:"client_secret"`
	RequiresAction bool   `json:"requires_action"`
}

// MarshalJSON writes the API's nullable strings that are empty as null.
func (e ExecutionResponse) MarshalJSON() ([]byte, error) {
	type plain ExecutionResponse // without this method
	nullable := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return json.Marshal(struct {
		plain
		ProviderTransactionID *string `json:"provider_transaction_id"`
		GatewayMessage        *string `json:"gateway_message"`
		WalletMessage         *string `json:"wallet_message"`
		ClientSecret          *string `json:"client_secret"`
	}{plain(e), nullable(e.ProviderTransactionID), nullable(e.GatewayMessage), nullable(e.WalletMessage), nullable(e.ClientSecret)})
}

// SourceStatusResponse is PaymentSourceStatusResponse (GET /v1/status/source).
type SourceStatusResponse struct {
	SourceID     int64              `json:"source_id"`
	SourceType   dollr.SourceType   `json:"source_type"`
	SourceNumber string             `json:"source_number"`
	Status       dollr.SourceStatus `json:"status"`
	Currency     string             `json:"currency"`
	TotalAmount  Amount             `json:"total_amount"`
	PaidAt       *time.Time         `json:"paid_at"`
}

// RealtimeKeyRequest is the body of POST /v1/realtime-keys/collection. Unlike
// executions, session_id is a JSON integer here.
type RealtimeKeyRequest struct {
	SessionID   int64            `json:"session_id"`
	SourceType  dollr.SourceType `json:"source_type"`
	ReferenceID string           `json:"reference_id"`
}

// RealtimeKey is RealtimeTokenResponse. ExpiresIn is in seconds.
type RealtimeKey struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}
