package dollr

import (
	"context"
	"time"
)

// Job is a durable unit of scheduled work stored in the same database as the
// payments it moves (sandbox transitions). Kind and Payload are opaque to the
// store.
type Job struct {
	ID          int64
	Kind        string
	ExecutionID int64
	Payload     string
	RunAt       time.Time
	Attempts    int // how many times it has been claimed, this claim included
}

// Transition moves one execution between statuses. ApplyTransition applies it
// atomically with the public status row, the source's status and any jobs.
type Transition struct {
	ExecutionID int64
	// From must equal the execution's current status, otherwise the transition
	// is stale (a job ran twice after a crash) and nothing changes but DoneJobID.
	From ExecutionStatus
	To   ExecutionStatus
	At   time.Time

	// Optional field updates; nil leaves a field unchanged.
	GatewayMessage        *string
	ProviderTransactionID *string
	RequiresAction        *bool

	DoneJobID int64 // a job this transition completes: deleted in the same transaction (0: none)
	Next      []Job // jobs to schedule in the same transaction; ExecutionID is filled in
}

// Store is the system of record. Every backend (sqlite, postgres) implements
// it and must pass the conformance suite in package storetest. All reads that
// take a merchantID return ENOTFOUND for another merchant's records.
type Store interface {
	ChangeFeed

	// Setting returns the value stored under key, first storing value if the
	// key is absent. Concurrent callers all get the one stored value. Used for
	// per-installation secrets.
	Setting(ctx context.Context, key, value string) (string, error)

	CreateMerchant(ctx context.Context, m *Merchant) error // sets ID, CreatedAt
	Merchant(ctx context.Context, id int64) (*Merchant, error)
	MerchantByClientID(ctx context.Context, clientID string) (*Merchant, error)
	Merchants(ctx context.Context) ([]*Merchant, error)

	// CreateCheckoutSource stores a source and its party (reusing the merchant's
	// party with the same phone). It sets IDs, Number, timestamps and party.ID.
	CreateCheckoutSource(ctx context.Context, party *Party, src *Source) error
	Source(ctx context.Context, merchantID int64, id int64) (*Source, error)
	SourceByHostedToken(ctx context.Context, token string) (*Source, error)
	Party(ctx context.Context, merchantID, id int64) (*Party, error)

	CreateSession(ctx context.Context, s *Session) error // sets ID, timestamps
	Session(ctx context.Context, merchantID, id int64) (*Session, error)

	CreatePaymentAccount(ctx context.Context, a *PaymentAccount) error // sets ID, timestamps
	PaymentAccount(ctx context.Context, merchantID, id int64) (*PaymentAccount, error)

	// CreateExecution stores e, its public status row (an INSERT change), moves
	// its source to SourceStatusFor(e.Status) and schedules jobs, in one
	// transaction. If the merchant already has an execution with e.ReferenceID
	// it stores nothing and returns that execution with created=false; this
	// holds under any concurrency. If another execution already used the
	// session it returns an ECONFLICT error on body.session_id.
	CreateExecution(ctx context.Context, e *Execution, jobs []Job) (stored *Execution, created bool, err error)
	Execution(ctx context.Context, merchantID int64, referenceID string) (*Execution, error)
	ExecutionByID(ctx context.Context, id int64) (*Execution, error)
	// LatestExecutionForSource returns the newest execution against a source.
	LatestExecutionForSource(ctx context.Context, merchantID, sourceID int64) (*Execution, error)
	// RecentExecutionTimes returns when the newest n executions against a
	// source were created, newest first (fewer if it has fewer).
	RecentExecutionTimes(ctx context.Context, merchantID, sourceID int64, n int) ([]time.Time, error)

	// ApplyTransition applies t (see Transition). It returns the execution as
	// it is afterwards and whether t was applied. An illegal move (CanTransition
	// false) is an EINVALID error and changes nothing.
	ApplyTransition(ctx context.Context, t Transition) (e *Execution, applied bool, err error)

	// NoteGatewayMessage records a provider message on an execution still in
	// flight (PENDING or PROCESSING) without changing its status: the execution
	// and its public status row (an UPDATE change) get the message and
	// UpdatedAt = at. A finished execution is an EINVALID error; unknown is
	// ENOTFOUND. The sandbox uses it for the load tool's change path.
	NoteGatewayMessage(ctx context.Context, merchantID int64, referenceID, message string, at time.Time) (*Execution, error)

	// ClaimJobs leases up to limit jobs whose RunAt <= now and whose lease has
	// lapsed, for lease; a job whose worker died is claimed again after that.
	// Safe with several processes sharing the database.
	ClaimJobs(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Job, error)
	// RetryJob releases a claimed job to run again at runAt.
	RetryJob(ctx context.Context, id int64, runAt time.Time) error
	// DeleteJob removes a job (finished without a transition).
	DeleteJob(ctx context.Context, id int64) error
	// NextJobAt returns the earliest time ClaimJobs could return a job (its RunAt,
	// or its lease end if claimed), ok=false if none.
	NextJobAt(ctx context.Context) (at time.Time, ok bool, err error)
	// JobAdded is signalled (never blocking, may coalesce) after a commit that
	// scheduled a job, so an in-process runner wakes at once.
	JobAdded() <-chan struct{}

	// PublicStatus returns the current public status row of the execution in
	// session sessionID with referenceID, and the feed position it reflects:
	// every change with Seq <= seq is already visible in the row.
	PublicStatus(ctx context.Context, sessionID int64, referenceID string) (row *PublicStatus, seq uint64, err error)

	Close() error
}
