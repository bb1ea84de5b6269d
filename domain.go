package dollr

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"
)

// Merchant is a tenant. Every other record belongs to exactly one merchant and
// every read is scoped by merchant ID, so one merchant can never see another's.
type Merchant struct {
	ID               int64
	Name             string
	ClientID         string
	ClientSecretHash string // hex SHA-256 of the client secret; the secret itself is never stored
	CreatedAt        time.Time
}

// HashClientSecret is what a merchant's ClientSecretHash holds for secret.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches reports whether secret is the merchant's client secret, in
// constant time.
func (m *Merchant) SecretMatches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(HashClientSecret(secret)), []byte(strings.ToLower(m.ClientSecretHash))) == 1
}

// Party is the paying customer of a checkout source.
type Party struct {
	ID          int64
	MerchantID  int64
	Name        string
	Phone       string
	Email       string
	CountryCode string
	CreatedAt   time.Time
}

// Item is one line of an invoice or order.
type Item struct {
	Name     string `json:"name"`
	Currency string `json:"currency"`
	Amount   Amount `json:"amount"`
}

// Source is an invoice or an order (a "payment source"), created by
// POST /v1/checkouts/create, with its checkout configuration.
type Source struct {
	ID               int64
	MerchantID       int64
	Type             SourceType
	Number           string // INV-YYYY-NNNNN / ORD-YYYY-NNNNN
	Status           SourceStatus
	Currency         string
	TotalAmount      Amount
	Items            []Item
	PartyID          int64
	CounterpartyID   int64
	Mode             string // HOSTED or DIRECT
	ReferenceID      string // the merchant's own reference, not an execution key
	Note             string
	DueDate          *time.Time
	ExpiresAt        *time.Time
	SuccessURL       string
	CancelURL        string
	CheckoutConfigID int64
	HostedToken      string // random token in the hosted checkout URL; empty unless Mode is HOSTED
	PaidAt           *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Session is a checkout session: permission to execute one collection against
// a source before ExpiresAt.
type Session struct {
	ID               int64
	MerchantID       int64
	SourceID         int64
	SourceType       SourceType
	ExpiresAt        time.Time
	PaymentAccountID *int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Status reports ACTIVE or EXPIRED at the given time.
func (s *Session) Status(now time.Time) string {
	if !now.Before(s.ExpiresAt) {
		return SessionExpired
	}
	return SessionActive
}

// PaymentAccount is how a party pays: a mobile-money phone number or a card
// payment method.
type PaymentAccount struct {
	ID            int64
	MerchantID    int64
	PartyID       int64
	AccountName   string
	Provider      string
	Method        string // MTN_MOMO_LBR, ..., CREDIT_CARD
	CountryCode   string
	AccountNumber string // MoMo phone (E.164 without +) or card payment-method id (pm_...)
	OperationType string
	IsActive      bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// IsCard reports whether the account is a card.
func (a *PaymentAccount) IsCard() bool { return a.Method == MethodCreditCard }

// Payment methods and providers accepted by the sandbox (dollr-api.md §5.7).
const (
	MethodCreditCard = "CREDIT_CARD"
	ProviderStripe   = "STRIPE"
	ProviderPawapay  = "PAWAPAY"
)

// MobileMoneyMethods are the mobile-money methods and their countries.
var MobileMoneyMethods = map[string]string{
	"MTN_MOMO_LBR":     "LR",
	"ORANGE_MONEY_LBR": "LR",
	"AIRTEL_RWA":       "RW",
	"MTN_MOMO_RWA":     "RW",
	"ORANGE_MONEY_RWA": "RW",
}

// Execution is a collection attempt (a payment intent), keyed per merchant by
// the caller's ReferenceID.
type Execution struct {
	ID                    int64
	MerchantID            int64
	ReferenceID           string
	SessionID             int64
	SourceID              int64
	SourceType            SourceType
	PaymentAccountID      int64
	PaymentMethod         string
	Status                ExecutionStatus
	PayerAmount           Amount
	PayerCurrency         string
	PayeeAmount           Amount
	PayeeCurrency         string
	OperationType         string
	ProviderTransactionID string
	GatewayMessage        string
	WalletMessage         string
	ClientSecret          string
	RequiresAction        bool
	// RequestHash fingerprints the request body that created the execution, so a
	// retry with the same reference_id and a different body is detected.
	RequestHash string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// PublicStatus is the browser-safe projection of an execution: one row of
// checkout_payment_intent_public_status. No secrets, no phone or card numbers.
func (e *Execution) PublicStatus() PublicStatus {
	return PublicStatus{
		ID:             e.ID,
		ReferenceID:    e.ReferenceID,
		SessionID:      e.SessionID,
		SourceType:     e.SourceType,
		SourceID:       e.SourceID,
		Status:         e.Status,
		PayerAmount:    e.PayerAmount,
		PayerCurrency:  e.PayerCurrency,
		PaymentMethod:  e.PaymentMethod,
		RequiresAction: e.RequiresAction,
		GatewayMessage: e.GatewayMessage,
		CreatedAt:      e.CreatedAt,
		UpdatedAt:      e.UpdatedAt,
	}
}
