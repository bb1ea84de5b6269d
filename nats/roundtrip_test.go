package nats

import (
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/nats/internal/wire"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/storetest"
)

// TestMain stops the PostgreSQL cluster the round-trip test starts.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func roundTrip(t *testing.T, batch []dollr.Change) []dollr.Change {
	t.Helper()
	data, err := wire.Encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.Decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return got
}

// TestStoreChangesRoundTrip sends both stores' real changes (an INSERT and
// UPDATEs of a public status row) through the wire format: values must come
// back with the same Go types, which the realtime server's filters depend on.
func TestStoreChangesRoundTrip(t *testing.T) {
	backends.Each(t, func(t *testing.T, b backends.Backend) {
		s := b.Open(t)
		ctx := testContext(t)
		head, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := &dollr.Merchant{Name: "Round trip", ClientID: "rt-" + uuid.NewString(), ClientSecretHash: "00"}
		if err := s.CreateMerchant(ctx, m); err != nil {
			t.Fatal(err)
		}
		f := storetest.Follow(t, s, head, nil)
		f.Live(t, s, m)
		e := newExecution(t, s, m)
		msg := "Waiting for approval"
		if _, _, err := s.ApplyTransition(ctx, dollr.Transition{ExecutionID: e.ID, From: dollr.StatusPending,
			To: dollr.StatusProcessing, At: time.Now(), GatewayMessage: &msg}); err != nil {
			t.Fatal(err)
		}
		got := f.WaitFor(t, "the row's INSERT and UPDATE", func(cs []dollr.Change) bool {
			n := 0
			for _, c := range cs {
				if storetest.RowID(c) == e.ID {
					n++
				}
			}
			return n >= 2
		})
		var mine []dollr.Change
		for _, c := range got {
			if storetest.RowID(c) == e.ID {
				mine = append(mine, c)
			}
		}
		for _, c := range mine {
			if back := roundTrip(t, []dollr.Change{c}); !storetest.EqualChanges(back, []dollr.Change{c}) {
				t.Errorf("%s change changed on the wire:\n sent %#v\n  got %#v", c.Type, c, back[0])
			}
		}
		if mine[0].Type != dollr.ChangeInsert || mine[1].Record["gateway_message"] != msg {
			t.Errorf("unexpected changes %+v", mine)
		}
	})
}

// newExecution stores a PENDING execution with everything it needs.
func newExecution(t *testing.T, s dollr.Store, m *dollr.Merchant) *dollr.Execution {
	t.Helper()
	ctx := testContext(t)
	party := &dollr.Party{MerchantID: m.ID, Name: "Ada", Phone: "231770000010", CountryCode: "LR"}
	src := &dollr.Source{MerchantID: m.ID, Type: dollr.SourceInvoice, Status: dollr.SourceActive, Currency: "USD",
		Items: []dollr.Item{{Name: "Rice", Currency: "USD", Amount: 1250}}, TotalAmount: 1250, Mode: dollr.ModeDirect,
		ReferenceID: "order-" + uuid.NewString()}
	if err := s.CreateCheckoutSource(ctx, party, src); err != nil {
		t.Fatal(err)
	}
	sess := &dollr.Session{MerchantID: m.ID, SourceID: src.ID, SourceType: src.Type, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	acct := &dollr.PaymentAccount{MerchantID: m.ID, PartyID: party.ID, AccountName: "MoMo", Provider: dollr.ProviderPawapay,
		Method: "MTN_MOMO_LBR", CountryCode: "LR", AccountNumber: "231770000010", OperationType: dollr.OperationCollection, IsActive: true}
	if err := s.CreatePaymentAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	e, created, err := s.CreateExecution(ctx, &dollr.Execution{MerchantID: m.ID, ReferenceID: uuid.NewString(), SessionID: sess.ID,
		SourceID: src.ID, SourceType: src.Type, PaymentAccountID: acct.ID, PaymentMethod: acct.Method, Status: dollr.StatusPending,
		PayerAmount: 1250, PayerCurrency: "USD", PayeeAmount: 1250, PayeeCurrency: "USD", OperationType: dollr.OperationCollection,
		RequestHash: "sha256:" + uuid.NewString()}, nil)
	if err != nil || !created {
		t.Fatalf("CreateExecution: %v (created %v)", err, created)
	}
	return e
}
