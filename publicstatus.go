package dollr

import (
	"encoding/json"
	"time"
)

// PublicStatusTable is the table a realtime client subscribes to.
const (
	PublicSchema      = "public"
	PublicStatusTable = "checkout_payment_intent_public_status"
)

// PublicStatus is one row of checkout_payment_intent_public_status.
type PublicStatus struct {
	ID             int64
	ReferenceID    string
	SessionID      int64
	SourceType     SourceType
	SourceID       int64
	Status         ExecutionStatus
	PayerAmount    Amount
	PayerCurrency  string
	PaymentMethod  string
	RequiresAction bool
	GatewayMessage string // empty renders as null
	CreatedAt      time.Time
	UpdatedAt      time.Time

	// CommitTime is not a column: a store may set it, when reading the row, to
	// a time no earlier than the commit of the row's current state, for the
	// commit_timestamp of a snapshot event. Zero means unknown (use
	// UpdatedAt). PostgreSQL commits after the writer set updated_at, so its
	// change events carry a later commit time than updated_at.
	CommitTime time.Time
}

// PublicStatusColumns lists the table's columns in attnum order with their
// PostgreSQL type names (pg_type.typname). Both backends create the table with
// exactly these types.
var PublicStatusColumns = []Column{
	{Name: "id", Type: "int8"},
	{Name: "reference_id", Type: "uuid"},
	{Name: "session_id", Type: "int8"},
	{Name: "source_type", Type: "text"},
	{Name: "source_id", Type: "int8"},
	{Name: "status", Type: "text"},
	{Name: "payer_amount", Type: "numeric"},
	{Name: "payer_currency", Type: "text"},
	{Name: "payment_method", Type: "text"},
	{Name: "requires_action", Type: "bool"},
	{Name: "gateway_message", Type: "text"},
	{Name: "created_at", Type: "timestamptz"},
	{Name: "updated_at", Type: "timestamptz"},
}

// PublicStatusKey is the primary key column, the row identity sent in old_record.
const PublicStatusKey = "id"

// Record renders the row as to_jsonb would: int8 as numbers, numeric as a
// JSON number, bool, timestamptz as "2006-01-02T15:04:05.999999+00:00", NULL as nil.
func (p PublicStatus) Record() map[string]any {
	var gm any
	if p.GatewayMessage != "" {
		gm = p.GatewayMessage
	}
	return map[string]any{
		"id":              p.ID,
		"reference_id":    p.ReferenceID,
		"session_id":      p.SessionID,
		"source_type":     string(p.SourceType),
		"source_id":       p.SourceID,
		"status":          string(p.Status),
		"payer_amount":    json.Number(p.PayerAmount.String()),
		"payer_currency":  p.PayerCurrency,
		"payment_method":  p.PaymentMethod,
		"requires_action": p.RequiresAction,
		"gateway_message": gm,
		"created_at":      FormatTimestamptz(p.CreatedAt),
		"updated_at":      FormatTimestamptz(p.UpdatedAt),
	}
}

// FormatTimestamptz renders t as PostgreSQL's to_jsonb renders a timestamptz
// in a UTC session: microsecond precision, trailing zeros trimmed, "+00:00".
func FormatTimestamptz(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999") + "+00:00"
}
