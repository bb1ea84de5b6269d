package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
)

// payment is one collection the tool drives through the API.
type payment struct {
	referenceID string
	sessionID   int64
	sourceType  dollr.SourceType
	accountID   int64
	key         string // realtime key, when the scenario subscribes
}

// Currency of every bench payment; the sandbox accepts USD for Liberian
// mobile money.
const benchCurrency = "USD"

// accounts caches one mobile-money payment account per party: Dollr reuses
// mobile-money accounts per party and phone, and it keeps setup to the calls
// that matter.
type accounts struct {
	mu sync.Mutex
	m  map[int64]*accountFlight
}

type accountFlight struct {
	done chan struct{}
	id   int64
	err  error
}

func (a *accounts) get(ctx context.Context, api *client.Client, partyID int64, phone string) (int64, error) {
	a.mu.Lock()
	if a.m == nil {
		a.m = make(map[int64]*accountFlight)
	}
	f, ok := a.m[partyID]
	if !ok {
		f = &accountFlight{done: make(chan struct{})}
		a.m[partyID] = f
	}
	a.mu.Unlock()
	if !ok {
		acct, err := api.CreatePaymentAccount(ctx, dollr.OperationCollection, client.PaymentAccountRequest{
			AccountName: "bench payer", Provider: dollr.ProviderPawapay, Method: "MTN_MOMO_LBR",
			PartyID: partyID, CountryCode: "LR", InsensitiveAccountNumber: phone,
		})
		if err != nil {
			f.err = fmt.Errorf("payment account: %w", err)
		} else {
			f.id = acct.ID
		}
		close(f.done)
	}
	select {
	case <-f.done:
		return f.id, f.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// preparePayments creates n checkout sources, sessions and reference ids
// (and realtime keys when withKeys), ready to execute.
func (e *env) preparePayments(ctx context.Context, n int, phone string, withKeys bool) ([]*payment, error) {
	out := make([]*payment, n)
	var done atomic.Int64
	var accts accounts
	e.prog.set("setup", func() string { return fmt.Sprintf("payments %d/%d", done.Load(), n) })
	err := forEach(ctx, n, e.o.Concurrency, func(ctx context.Context, i int) error {
		src, err := e.api.CreateCheckout(ctx, client.CheckoutRequest{
			Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice, PartyPhone: phone, Currency: benchCurrency,
			PartyName: "Bench Payer", Items: []client.Item{{Name: "bench item", Currency: benchCurrency, Amount: 100}},
		})
		if err != nil {
			return fmt.Errorf("checkouts/create: %w", err)
		}
		sess, err := e.api.CreateCheckoutSession(ctx, client.CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
		if err != nil {
			return fmt.Errorf("sessions/checkout: %w", err)
		}
		acct, err := accts.get(ctx, e.api, src.PartyID, phone)
		if err != nil {
			return err
		}
		p := &payment{referenceID: uuid.NewString(), sessionID: sess.ID, sourceType: sess.SourceType, accountID: acct}
		if withKeys {
			if err := e.mintKey(ctx, p); err != nil {
				return err
			}
		}
		out[i] = p
		done.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// mintKey asks for p's realtime key, as a merchant backend does per checkout.
func (e *env) mintKey(ctx context.Context, p *payment) error {
	k, err := e.api.CreateRealtimeKey(ctx, client.RealtimeKeyRequest{SessionID: p.sessionID, SourceType: p.sourceType, ReferenceID: p.referenceID})
	if err != nil {
		return fmt.Errorf("realtime-keys/collection: %w", err)
	}
	p.key = k.AccessToken
	return nil
}

// mintKeys mints every payment's realtime key.
func (e *env) mintKeys(ctx context.Context, ps []*payment) error {
	var done atomic.Int64
	e.prog.set("realtime keys", func() string { return fmt.Sprintf("%d/%d", done.Load(), len(ps)) })
	return forEach(ctx, len(ps), e.o.Concurrency, func(ctx context.Context, i int) error {
		err := e.mintKey(ctx, ps[i])
		done.Add(1)
		return err
	})
}

// execute starts p's collection.
func (e *env) execute(ctx context.Context, p *payment) (*client.ExecutionResponse, error) {
	return e.api.ExecuteCollection(ctx, client.CollectionRequest{
		SessionID: p.sessionID, PaymentAccountID: p.accountID, Currency: benchCurrency, ReferenceID: p.referenceID,
	})
}

// statusRank orders execution statuses; payments never move backwards.
func statusRank(s []byte) int {
	switch string(s) {
	case string(dollr.StatusPending):
		return 0
	case string(dollr.StatusProcessing):
		return 1
	case string(dollr.StatusCompleted), string(dollr.StatusFailed):
		return 2
	}
	return -1
}

// statusesUpTo is how many distinct public statuses a payment on the
// sandbox's normal path has shown once it reached s: PENDING at insert, then
// PROCESSING, then the final status.
func statusesUpTo(s dollr.ExecutionStatus) int64 {
	return int64(statusRank([]byte(s)) + 1)
}

// paceExecutions executes payments at rate executions per second on the
// run's concurrency, stopping at the count bound (len(ps)), the end time, or
// ctx. started is called when an execution's response arrived.
func (e *env) paceExecutions(ctx context.Context, ps []*payment, rate float64, end time.Time, started func(i int, res *client.ExecutionResponse, at time.Time)) int {
	pacer := &Pacer{Rate: rate, Max: len(ps), End: end}
	work := make(chan int, e.o.Concurrency*4)
	var wg sync.WaitGroup
	for range e.o.Concurrency {
		wg.Go(func() {
			for i := range work {
				res, err := e.execute(ctx, ps[i])
				if err != nil {
					e.errs.add("execute %s: %v", ps[i].referenceID, err)
					continue
				}
				started(i, res, time.Now())
			}
		})
	}
	next := 0
pace:
	for {
		n := pacer.Next(ctx)
		if n == 0 {
			break
		}
		for range n {
			select {
			case work <- next:
				next++
			case <-ctx.Done():
				break pace
			}
		}
	}
	close(work)
	wg.Wait()
	return next
}
