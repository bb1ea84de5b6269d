package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/storetest"
)

// waitLimit bounds every wait; passing tests never wait it out.
const waitLimit = 30 * time.Second

var unique atomic.Int64

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func ctxT(t *testing.T) context.Context { return t.Context() }

func newMerchant(t *testing.T, s dollr.Store) *dollr.Merchant {
	t.Helper()
	n := unique.Add(1)
	m := &dollr.Merchant{Name: fmt.Sprintf("M%d", n), ClientID: fmt.Sprintf("c-%d-%s", n, newUUID()), ClientSecretHash: "h"}
	if err := s.CreateMerchant(ctxT(t), m); err != nil {
		t.Fatalf("CreateMerchant: %v", err)
	}
	return m
}

// newPending stores a source, session, account and a PENDING execution.
func newPending(ctx context.Context, s dollr.Store, m *dollr.Merchant) (*dollr.Execution, error) {
	e, err := newProto(ctx, s, m)
	if err != nil {
		return nil, err
	}
	stored, created, err := s.CreateExecution(ctx, e, nil)
	if err == nil && !created {
		err = errors.New("execution not created")
	}
	return stored, err
}

// newProto stores a source, session and account, and returns an unsaved
// PENDING execution on them.
func newProto(ctx context.Context, s dollr.Store, m *dollr.Merchant) (*dollr.Execution, error) {
	src := &dollr.Source{MerchantID: m.ID, Type: dollr.SourceInvoice, Status: dollr.SourceActive, Currency: "USD",
		Items: []dollr.Item{{Name: "x", Currency: "USD", Amount: 1250}}, TotalAmount: 1250, Mode: dollr.ModeDirect}
	party := &dollr.Party{MerchantID: m.ID, Name: "P", Phone: fmt.Sprintf("2317%08d", unique.Add(1))}
	if err := s.CreateCheckoutSource(ctx, party, src); err != nil {
		return nil, err
	}
	sess := &dollr.Session{MerchantID: m.ID, SourceID: src.ID, SourceType: src.Type, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	acct := &dollr.PaymentAccount{MerchantID: m.ID, PartyID: party.ID, AccountName: "A", Provider: dollr.ProviderPawapay,
		Method: "MTN_MOMO_LBR", CountryCode: "LR", AccountNumber: "231771234567", OperationType: dollr.OperationCollection, IsActive: true}
	if err := s.CreatePaymentAccount(ctx, acct); err != nil {
		return nil, err
	}
	e := &dollr.Execution{MerchantID: m.ID, ReferenceID: newUUID(), SessionID: sess.ID, SourceID: src.ID, SourceType: src.Type,
		PaymentAccountID: acct.ID, PaymentMethod: acct.Method, Status: dollr.StatusPending, PayerAmount: 1250, PayerCurrency: "USD",
		PayeeAmount: 1200, PayeeCurrency: "USD", OperationType: dollr.OperationCollection, RequestHash: "h"}
	return e, nil
}

func mustPending(t *testing.T, s dollr.Store, m *dollr.Merchant) *dollr.Execution {
	t.Helper()
	e, err := newPending(ctxT(t), s, m)
	if err != nil {
		t.Fatalf("new execution: %v", err)
	}
	return e
}

// follower is the store conformance suite's feed recorder, shared so the
// PostgreSQL-only feed tests check the same contract.
type follower = storetest.Follower

func follow(t *testing.T, f dollr.ChangeFeed, after uint64) *follower {
	t.Helper()
	return storetest.Follow(t, f, after, nil)
}

func followWith(t *testing.T, feed dollr.ChangeFeed, after uint64, block func([]dollr.Change)) *follower {
	t.Helper()
	return storetest.Follow(t, feed, after, block)
}

var rowID = storetest.RowID

func has(cs []dollr.Change, id int64, typ dollr.ChangeType, status dollr.ExecutionStatus) bool {
	for _, c := range cs {
		if rowID(c) == id && c.Type == typ && (status == "" || c.Record["status"] == string(status)) {
			return true
		}
	}
	return false
}
