package dollr

// ExecutionStatus tracks the movement of funds (dollr-api.md §6.2).
type ExecutionStatus string

const (
	StatusPending    ExecutionStatus = "PENDING"
	StatusProcessing ExecutionStatus = "PROCESSING"
	StatusCompleted  ExecutionStatus = "COMPLETED"
	StatusFailed     ExecutionStatus = "FAILED"
)

// Terminal reports whether no further transition is possible.
func (s ExecutionStatus) Terminal() bool { return s == StatusCompleted || s == StatusFailed }

// CanTransition reports whether an execution may move from one status to
// another. Payments never move backwards: PENDING → PROCESSING → COMPLETED|FAILED,
// and PENDING may fail or complete at once (an invalid account fails in the
// execute response).
func CanTransition(from, to ExecutionStatus) bool {
	switch from {
	case StatusPending:
		return to == StatusProcessing || to == StatusFailed || to == StatusCompleted
	case StatusProcessing:
		return to == StatusCompleted || to == StatusFailed
	}
	return false
}

// SourceStatus tracks an invoice's or order's document lifecycle.
type SourceStatus string

const (
	SourceIdle       SourceStatus = "IDLE"
	SourceActive     SourceStatus = "ACTIVE"
	SourceProcessing SourceStatus = "PROCESSING"
	SourcePaid       SourceStatus = "PAID"
	SourceCanceled   SourceStatus = "CANCELED"
)

// SourceStatusFor returns the status a source takes when its collection has
// the given status: it follows the collection, back to ACTIVE on FAILED so the
// customer can try again with a new session.
func SourceStatusFor(s ExecutionStatus) SourceStatus {
	switch s {
	case StatusPending, StatusProcessing:
		return SourceProcessing
	case StatusCompleted:
		return SourcePaid
	default:
		return SourceActive
	}
}

// SourceType names the kind of payment source.
type SourceType string

const (
	SourceInvoice SourceType = "INVOICE"
	SourceOrder   SourceType = "ORDER"
)

// Valid reports whether t is a publicly supported source type.
func (t SourceType) Valid() bool { return t == SourceInvoice || t == SourceOrder }

// Session statuses. A session is ACTIVE until it expires or an execution uses it.
const (
	SessionActive  = "ACTIVE"
	SessionExpired = "EXPIRED"
)

// Operation types (the payment-accounts query parameter and ExecutionResponse.operation_type).
const (
	OperationCollection = "COLLECTION"
	OperationPayout     = "PAYOUT"
	OperationTransfer   = "TRANSFER"
	OperationRefund     = "REFUND"
)

// Checkout modes.
const (
	ModeHosted = "HOSTED"
	ModeDirect = "DIRECT"
)

// CheckPayable returns nil if a new collection may start against a source in
// status s, else an ECONFLICT error on body.<field> saying why. The API checks
// it for a clear answer and the stores check it again inside the execution's
// transaction, so two sessions of one source can never both start a payment.
func (s SourceStatus) CheckPayable(field string) *Error {
	var msg string
	switch s {
	case SourceActive:
		return nil
	case SourceIdle:
		msg = "Source is IDLE: publish it before paying"
	case SourceProcessing:
		msg = "Source is PROCESSING: a payment is already in progress"
	case SourcePaid:
		msg = "Source is already PAID"
	case SourceCanceled:
		msg = "Source is CANCELED"
	default:
		msg = "Source cannot be paid in status " + string(s)
	}
	return &Error{Code: ECONFLICT, Message: msg, Fields: []FieldError{{Loc: []any{"body", field}, Msg: msg, Type: "source_status"}}}
}
