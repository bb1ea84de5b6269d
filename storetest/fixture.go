package storetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// unique feeds client IDs and phone numbers that never repeat within a process.
var unique atomic.Int64

// now returns the current time at the precision stores keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newUUID returns a random UUID v4, the shape Dollr requires for reference_id.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newPhone returns a distinct E.164 number without the plus.
func newPhone() string { return fmt.Sprintf("2317%08d", unique.Add(1)) }

func newMerchant(t *testing.T, s dollr.Store) *dollr.Merchant {
	t.Helper()
	n := unique.Add(1)
	m := &dollr.Merchant{
		Name:             fmt.Sprintf("Merchant %d", n),
		ClientID:         fmt.Sprintf("client-%d-%s", n, newUUID()),
		ClientSecretHash: fmt.Sprintf("%064x", n),
	}
	if err := s.CreateMerchant(ctx(t), m); err != nil {
		t.Fatalf("CreateMerchant: %v", err)
	}
	return m
}

// newSourceWith stores a source of the given type and mode for a party with phone.
func newSourceWith(t *testing.T, s dollr.Store, m *dollr.Merchant, phone string, typ dollr.SourceType, mode string) (*dollr.Party, *dollr.Source) {
	t.Helper()
	party := &dollr.Party{MerchantID: m.ID, Name: "Ada Customer", Phone: phone, Email: "ada@example.com", CountryCode: "LR"}
	due := now().Add(72 * time.Hour)
	src := &dollr.Source{
		MerchantID: m.ID,
		Type:       typ,
		Status:     dollr.SourceActive,
		Currency:   "USD",
		Items: []dollr.Item{
			{Name: "Rice 25kg", Currency: "USD", Amount: 1250},
			{Name: "Delivery", Currency: "USD", Amount: 300},
		},
		TotalAmount: 1550,
		Mode:        mode,
		ReferenceID: "order-" + newUUID(),
		Note:        "thank you",
		DueDate:     &due,
		SuccessURL:  "https://shop.example/success",
		CancelURL:   "https://shop.example/cancel",
	}
	if mode == dollr.ModeHosted {
		src.HostedToken = "hct_" + newUUID()
		exp := now().Add(time.Hour)
		src.ExpiresAt = &exp
	}
	if err := s.CreateCheckoutSource(ctx(t), party, src); err != nil {
		t.Fatalf("CreateCheckoutSource: %v", err)
	}
	return party, src
}

func newSource(t *testing.T, s dollr.Store, m *dollr.Merchant) (*dollr.Party, *dollr.Source) {
	t.Helper()
	return newSourceWith(t, s, m, newPhone(), dollr.SourceInvoice, dollr.ModeDirect)
}

func newSession(t *testing.T, s dollr.Store, m *dollr.Merchant, src *dollr.Source) *dollr.Session {
	t.Helper()
	sess := &dollr.Session{MerchantID: m.ID, SourceID: src.ID, SourceType: src.Type, ExpiresAt: now().Add(15 * time.Minute)}
	if err := s.CreateSession(ctx(t), sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

func newAccount(t *testing.T, s dollr.Store, m *dollr.Merchant, partyID int64) *dollr.PaymentAccount {
	t.Helper()
	a := &dollr.PaymentAccount{
		MerchantID:    m.ID,
		PartyID:       partyID,
		AccountName:   "Ada MoMo",
		Provider:      dollr.ProviderPawapay,
		Method:        "MTN_MOMO_LBR",
		CountryCode:   "LR",
		AccountNumber: "231771234567",
		OperationType: dollr.OperationCollection,
		IsActive:      true,
	}
	if err := s.CreatePaymentAccount(ctx(t), a); err != nil {
		t.Fatalf("CreatePaymentAccount: %v", err)
	}
	return a
}

// chain is a source with its party, a session and a payment account: all an
// execution needs.
type chain struct {
	m       *dollr.Merchant
	party   *dollr.Party
	src     *dollr.Source
	sess    *dollr.Session
	account *dollr.PaymentAccount
}

func newChain(t *testing.T, s dollr.Store, m *dollr.Merchant) *chain {
	t.Helper()
	party, src := newSource(t, s, m)
	return &chain{m: m, party: party, src: src, sess: newSession(t, s, m, src), account: newAccount(t, s, m, party.ID)}
}

// execution returns an unsaved PENDING execution on the chain's session.
func (c *chain) execution() *dollr.Execution {
	return &dollr.Execution{
		MerchantID:       c.m.ID,
		ReferenceID:      newUUID(),
		SessionID:        c.sess.ID,
		SourceID:         c.src.ID,
		SourceType:       c.src.Type,
		PaymentAccountID: c.account.ID,
		PaymentMethod:    c.account.Method,
		Status:           dollr.StatusPending,
		PayerAmount:      1550,
		PayerCurrency:    "USD",
		PayeeAmount:      1520,
		PayeeCurrency:    "USD",
		OperationType:    dollr.OperationCollection,
		GatewayMessage:   "",
		WalletMessage:    "queued",
		ClientSecret:     "",
		RequestHash:      "sha256:" + newUUID(),
	}
}

// create stores e and fails the test unless it was created.
func create(t *testing.T, s dollr.Store, e *dollr.Execution, jobs ...dollr.Job) *dollr.Execution {
	t.Helper()
	stored, created, err := s.CreateExecution(ctx(t), e, jobs)
	if err != nil {
		t.Fatalf("CreateExecution: %v", err)
	}
	if !created {
		t.Fatalf("CreateExecution: created = false for a new reference_id")
	}
	return stored
}

// newExecution stores a PENDING execution on a fresh chain of merchant m.
func newExecution(t *testing.T, s dollr.Store, m *dollr.Merchant, jobs ...dollr.Job) (*chain, *dollr.Execution) {
	t.Helper()
	c := newChain(t, s, m)
	return c, create(t, s, c.execution(), jobs...)
}

func transition(t *testing.T, s dollr.Store, e *dollr.Execution, to dollr.ExecutionStatus) *dollr.Execution {
	t.Helper()
	got, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: e.ID, From: e.Status, To: to, At: now()})
	if err != nil {
		t.Fatalf("ApplyTransition %s->%s: %v", e.Status, to, err)
	}
	if !applied {
		t.Fatalf("ApplyTransition %s->%s: not applied", e.Status, to)
	}
	return got
}

func wantCode(t *testing.T, err error, code string, what string) {
	t.Helper()
	if got := dollr.ErrorCode(err); got != code {
		t.Fatalf("%s: error code = %q (%v), want %q", what, got, err, code)
	}
}

func wantFieldLoc(t *testing.T, err error, loc ...any) {
	t.Helper()
	var de *dollr.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a *dollr.Error", err)
	}
	if len(de.Fields) != 1 || !reflect.DeepEqual(de.Fields[0].Loc, loc) {
		t.Fatalf("error fields = %+v, want one field at %v", de.Fields, loc)
	}
}

func equalTime(a, b time.Time) bool { return a.Equal(b) }

func equalTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func equalInt64Ptr(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// checkExecution compares every field of got with want.
func checkExecution(t *testing.T, what string, got, want *dollr.Execution) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: execution is nil", what)
	}
	g, w := *got, *want
	if !equalTime(g.CreatedAt, w.CreatedAt) || !equalTime(g.UpdatedAt, w.UpdatedAt) {
		t.Errorf("%s: times = %v/%v, want %v/%v", what, g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt)
	}
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// checkSource compares every field of got with want.
func checkSource(t *testing.T, what string, got, want *dollr.Source) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: source is nil", what)
	}
	g, w := *got, *want
	if !equalTime(g.CreatedAt, w.CreatedAt) || !equalTime(g.UpdatedAt, w.UpdatedAt) ||
		!equalTimePtr(g.DueDate, w.DueDate) || !equalTimePtr(g.ExpiresAt, w.ExpiresAt) || !equalTimePtr(g.PaidAt, w.PaidAt) {
		t.Errorf("%s: times created=%v updated=%v due=%v expires=%v paid=%v, want %v %v %v %v %v", what,
			g.CreatedAt, g.UpdatedAt, g.DueDate, g.ExpiresAt, g.PaidAt,
			w.CreatedAt, w.UpdatedAt, w.DueDate, w.ExpiresAt, w.PaidAt)
	}
	if !reflect.DeepEqual(g.Items, w.Items) {
		t.Errorf("%s: items = %+v, want %+v", what, g.Items, w.Items)
	}
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	g.DueDate, g.ExpiresAt, g.PaidAt, w.DueDate, w.ExpiresAt, w.PaidAt = nil, nil, nil, nil, nil, nil
	g.Items, w.Items = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// checkPublicStatus compares a public status row with want.
func checkPublicStatus(t *testing.T, what string, got *dollr.PublicStatus, want dollr.PublicStatus) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: row is nil", what)
	}
	if !reflect.DeepEqual(got.Record(), want.Record()) {
		t.Errorf("%s:\n got %v\nwant %v", what, got.Record(), want.Record())
	}
}
