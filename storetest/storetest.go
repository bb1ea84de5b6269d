// Package storetest is the one conformance suite every dollr.Store backend
// must pass, in the spirit of River's riverdrivertest: the SQLite and the
// PostgreSQL store run the same subtests, so behaviour the rest of dollr relies
// on is written down once, as executable checks.
//
// The suite is backend-neutral. Where the contract lets backends differ it
// asserts only what holds for all of them; for example a PostgreSQL feed may
// start later than the position Follow is given, so feed tests first wait
// until a probe change arrives ("the Follower is live") and only then demand
// that nothing is skipped.
//
// Conventions the suite pins down beyond the dollr.Store comments:
//   - Source numbers count per merchant, source type and year, from 1:
//     the first invoice of a merchant in 2026 is INV-2026-00001.
//   - Times are kept at microsecond precision and read back Equal.
//   - NextJobAt also counts claimed jobs, at the time their lease lapses,
//     because that is when ClaimJobs can return them again.
//   - DeleteJob of a job that no longer exists is not an error (a stale
//     transition may already have deleted it); RetryJob of one is ENOTFOUND.
//   - CreateMerchant with a client ID already in use is ECONFLICT.
package storetest

import (
	"context"
	"testing"

	"github.com/dollr/dollr"
)

// Run runs every conformance subtest. open must return a fresh, empty,
// migrated store; the caller closes it (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) dollr.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s dollr.Store)
	}{
		{"Merchants", testMerchants},
		{"Setting", testSetting},
		{"CancelledWrites", testCancelledWrites},
		{"SettingConcurrent", testSettingConcurrent},
		{"CheckoutSource", testCheckoutSource},
		{"SourceNumbers", testSourceNumbers},
		{"HostedToken", testHostedToken},
		{"Sessions", testSessions},
		{"PaymentAccounts", testPaymentAccounts},
		{"CreateExecution", testCreateExecution},
		{"CreateExecutionSourceStatus", testCreateExecutionSourceStatus},
		{"CreateExecutionIdempotent", testCreateExecutionIdempotent},
		{"CreateExecutionConcurrent", testCreateExecutionConcurrent},
		{"CreateExecutionPerMerchant", testCreateExecutionPerMerchant},
		{"CreateExecutionSessionConflict", testCreateExecutionSessionConflict},
		{"CreateExecutionOneSourceOnePayment", testCreateExecutionOneSourceOnePayment},
		{"NoteGatewayMessage", testNoteGatewayMessage},
		{"NoteGatewayMessageConcurrent", testNoteGatewayMessageConcurrent},
		{"ApplyTransition", testApplyTransition},
		{"ApplyTransitionStale", testApplyTransitionStale},
		{"ApplyTransitionIllegal", testApplyTransitionIllegal},
		{"ApplyTransitionFailed", testApplyTransitionFailed},
		{"ApplyTransitionNotFound", testApplyTransitionNotFound},
		{"ClaimJobsRunAt", testClaimJobsRunAt},
		{"ClaimJobsLease", testClaimJobsLease},
		{"ClaimJobsOrderAndLimit", testClaimJobsOrderAndLimit},
		{"ClaimJobsConcurrent", testClaimJobsConcurrent},
		{"RetryJob", testRetryJob},
		{"DeleteJob", testDeleteJob},
		{"JobIDsNeverReused", testJobIDsNeverReused},
		{"NextJobAt", testNextJobAt},
		{"JobAdded", testJobAdded},
		{"FollowFromHead", testFollowFromHead},
		{"FollowFromZero", testFollowFromZero},
		{"ChangeRecords", testChangeRecords},
		{"ChangeCommitOrder", testChangeCommitOrder},
		{"ChangeRolledBack", testChangeRolledBack},
		{"ChangeConcurrentCreateOnce", testChangeConcurrentCreateOnce},
		{"FollowStops", testFollowStops},
		{"PublicStatus", testPublicStatus},
		{"PublicStatusSnapshotSeq", testPublicStatusSnapshotSeq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// ctx returns a context that ends with the test.
func ctx(t *testing.T) context.Context {
	return t.Context()
}
