package api

import (
	"time"

	"github.com/dollr/dollr"
)

// Response bodies, field for field as Dollr's OpenAPI schemas.

// timestamp renders an ISO 8601 UTC date-time with microseconds.
type timestamp time.Time

func (t timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.999999Z07:00") + `"`), nil
}

func (t *timestamp) UnmarshalJSON(b []byte) error {
	var v time.Time
	if err := v.UnmarshalJSON(b); err != nil {
		return err
	}
	*t = timestamp(v)
	return nil
}

// Time returns the timestamp as a time.Time.
func (t timestamp) Time() time.Time { return time.Time(t) }

func tsPtr(t *time.Time) *timestamp {
	if t == nil {
		return nil
	}
	v := timestamp(*t)
	return &v
}

// strPtr renders "" as null.
func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ObtainTokenResponse is the token endpoint's body (expires_in in minutes).
type ObtainTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// CreateCheckoutSourceLinkResponse is POST /v1/checkouts/create's body.
type CreateCheckoutSourceLinkResponse struct {
	Mode                   string       `json:"mode"`
	SourceType             string       `json:"source_type"`
	SourceID               int64        `json:"source_id"`
	SourceNumber           string       `json:"source_number"`
	SourceStatus           string       `json:"source_status"`
	CounterpartyID         int64        `json:"counterparty_id"`
	PartyID                int64        `json:"party_id"`
	Currency               string       `json:"currency"`
	TotalAmount            dollr.Amount `json:"total_amount"`
	SourceCheckoutConfigID int64        `json:"source_checkout_config_id"`
	URL                    *string      `json:"url"`
	ReferenceID            *string      `json:"reference_id"`
	DueDate                *timestamp   `json:"due_date"`
	ExpiresAt              *timestamp   `json:"expires_at"`
	HostedPathOrToken      *string      `json:"hosted_path_or_token"`
	SuccessURL             *string      `json:"success_url"`
	CancelURL              *string      `json:"cancel_url"`
}

// CheckoutSessionResponse is POST /v1/sessions/checkout's body.
type CheckoutSessionResponse struct {
	ID               int64     `json:"id"`
	SourceID         int64     `json:"source_id"`
	SourceType       string    `json:"source_type"`
	Status           string    `json:"status"`
	ExpiresAt        timestamp `json:"expires_at"`
	CreatedAt        timestamp `json:"created_at"`
	UpdatedAt        timestamp `json:"updated_at"`
	PaymentAccountID *int64    `json:"payment_account_id"`
}

func sessionResponse(s *dollr.Session, now time.Time) CheckoutSessionResponse {
	return CheckoutSessionResponse{
		ID: s.ID, SourceID: s.SourceID, SourceType: string(s.SourceType), Status: s.Status(now),
		ExpiresAt: timestamp(s.ExpiresAt), CreatedAt: timestamp(s.CreatedAt), UpdatedAt: timestamp(s.UpdatedAt),
		PaymentAccountID: s.PaymentAccountID,
	}
}

// PaymentAccountResponse is POST /v1/payment-accounts/create's body.
type PaymentAccountResponse struct {
	ID          int64     `json:"id"`
	AccountName string    `json:"account_name"`
	Provider    string    `json:"provider"`
	Method      string    `json:"method"`
	PartyID     int64     `json:"party_id"`
	IsActive    bool      `json:"is_active"`
	CreatedAt   timestamp `json:"created_at"`
	UpdatedAt   timestamp `json:"updated_at"`
	CountryCode *string   `json:"country_code"`
}

// ExecutionResponse is the body of every execution and execution-status call.
type ExecutionResponse struct {
	ReferenceID           string       `json:"reference_id"`
	Status                string       `json:"status"`
	PayerAmount           dollr.Amount `json:"payer_amount"`
	PayerCurrency         string       `json:"payer_currency"`
	PayeeCurrency         string       `json:"payee_currency"`
	PayeeAmount           dollr.Amount `json:"payee_amount"`
	OperationType         string       `json:"operation_type"`
	ProviderTransactionID *string      `json:"provider_transaction_id"`
	GatewayMessage        *string      `json:"gateway_message"`
	WalletMessage         *string      `json:"wallet_message"`
	ClientSecret          *string      `json:"client_secret"`
	RequiresAction        bool         `json:"requires_action"`
}

// NewExecutionResponse renders an execution as Dollr's ExecutionResponse.
func NewExecutionResponse(e *dollr.Execution) ExecutionResponse {
	return ExecutionResponse{
		ReferenceID: e.ReferenceID, Status: string(e.Status),
		PayerAmount: e.PayerAmount, PayerCurrency: e.PayerCurrency,
		PayeeCurrency: e.PayeeCurrency, PayeeAmount: e.PayeeAmount,
		OperationType:         e.OperationType,
		ProviderTransactionID: strPtr(e.ProviderTransactionID),
		GatewayMessage:        strPtr(e.GatewayMessage),
		WalletMessage:         strPtr(e.WalletMessage),
		ClientSecret:          strPtr(e.ClientSecret),
		RequiresAction:        e.RequiresAction,
	}
}

// PaymentSourceStatusResponse is GET /v1/status/source's body.
type PaymentSourceStatusResponse struct {
	SourceID     int64        `json:"source_id"`
	SourceType   string       `json:"source_type"`
	SourceNumber string       `json:"source_number"`
	Status       string       `json:"status"`
	Currency     string       `json:"currency"`
	TotalAmount  dollr.Amount `json:"total_amount"`
	PaidAt       *timestamp   `json:"paid_at"`
}

// RealtimeTokenResponse is POST /v1/realtime-keys/collection's body
// (expires_in in seconds).
type RealtimeTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}
