package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
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

// follower runs Follow in the background and records every change.
type follower struct {
	mu      sync.Mutex
	changes []dollr.Change
	updated chan struct{}
	done    chan error
	cancel  context.CancelFunc
	// block, when set, is called by the handler before it records a batch.
	block func([]dollr.Change)
}

func follow(t *testing.T, f dollr.ChangeFeed, after uint64) *follower {
	t.Helper()
	return followWith(t, f, after, nil)
}

func followWith(t *testing.T, feed dollr.ChangeFeed, after uint64, block func([]dollr.Change)) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{updated: make(chan struct{}, 1), done: make(chan error, 1), cancel: cancel, block: block}
	go func() {
		f.done <- feed.Follow(ctx, after, func(batch []dollr.Change) error {
			if f.block != nil {
				f.block(batch)
			}
			f.mu.Lock()
			f.changes = append(f.changes, batch...)
			f.mu.Unlock()
			select {
			case f.updated <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// stop cancels Follow and waits for it to return context.Canceled.
func (f *follower) stop(t *testing.T) {
	t.Helper()
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Errorf("Follow did not return after cancel")
	}
}

func (f *follower) snapshot() []dollr.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dollr.Change(nil), f.changes...)
}

func (f *follower) await(cond func([]dollr.Change) bool, limit time.Duration) ([]dollr.Change, bool) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if got := f.snapshot(); cond(got) {
			return got, true
		}
		select {
		case <-f.updated:
		case <-deadline.C:
			return nil, false
		}
	}
}

func (f *follower) waitFor(t *testing.T, what string, cond func([]dollr.Change) bool) []dollr.Change {
	t.Helper()
	got, ok := f.await(cond, waitLimit)
	if !ok {
		t.Fatalf("timed out waiting for %s; have %d changes", what, len(f.snapshot()))
	}
	return got
}

// live commits probes until the follower receives one.
func (f *follower) live(t *testing.T, s dollr.Store, m *dollr.Merchant) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		probe := mustPending(t, s, m)
		if _, ok := f.await(func(cs []dollr.Change) bool { return has(cs, probe.ID, dollr.ChangeInsert, "") }, time.Second); ok {
			return
		}
	}
	t.Fatal("follower never received a probe")
}

func rowID(c dollr.Change) int64 {
	rec := c.Record
	if rec == nil {
		rec = c.OldRecord
	}
	id, _ := rec["id"].(int64)
	return id
}

func has(cs []dollr.Change, id int64, typ dollr.ChangeType, status dollr.ExecutionStatus) bool {
	for _, c := range cs {
		if rowID(c) == id && c.Type == typ && (status == "" || c.Record["status"] == string(status)) {
			return true
		}
	}
	return false
}
