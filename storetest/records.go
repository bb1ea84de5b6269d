package storetest

import (
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

func testMerchants(t *testing.T, s dollr.Store) {
	if ms, err := s.Merchants(ctx(t)); err != nil || len(ms) != 0 {
		t.Fatalf("Merchants on an empty store = %v, %v; want none", ms, err)
	}
	before := now()
	a := newMerchant(t, s)
	b := newMerchant(t, s)
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Fatalf("merchant IDs = %d, %d; want distinct non-zero", a.ID, b.ID)
	}
	if a.CreatedAt.Before(before.Add(-time.Minute)) || a.CreatedAt.After(now().Add(time.Minute)) {
		t.Errorf("CreatedAt = %v, not set to about now", a.CreatedAt)
	}

	check := func(what string, got *dollr.Merchant, err error, want *dollr.Merchant) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.ID != want.ID || got.Name != want.Name || got.ClientID != want.ClientID ||
			got.ClientSecretHash != want.ClientSecretHash || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("%s = %+v, want %+v", what, got, want)
		}
	}
	got, err := s.Merchant(ctx(t), a.ID)
	check("Merchant", got, err, a)
	got, err = s.MerchantByClientID(ctx(t), b.ClientID)
	check("MerchantByClientID", got, err, b)

	list, err := s.Merchants(ctx(t))
	if err != nil {
		t.Fatalf("Merchants: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("Merchants returned %d, want 2", len(list))
	}
	check("Merchants[0]", list[0], nil, a)
	check("Merchants[1]", list[1], nil, b)

	_, err = s.Merchant(ctx(t), b.ID+1000)
	wantCode(t, err, dollr.ENOTFOUND, "Merchant(unknown)")
	_, err = s.MerchantByClientID(ctx(t), "no-such-client")
	wantCode(t, err, dollr.ENOTFOUND, "MerchantByClientID(unknown)")

	dup := &dollr.Merchant{Name: "Copy", ClientID: a.ClientID, ClientSecretHash: "x"}
	wantCode(t, s.CreateMerchant(ctx(t), dup), dollr.ECONFLICT, "CreateMerchant(duplicate client id)")
}

func testSetting(t *testing.T, s dollr.Store) {
	v, err := s.Setting(ctx(t), "jwt_secret", "first")
	if err != nil || v != "first" {
		t.Fatalf("Setting(absent) = %q, %v; want first", v, err)
	}
	v, err = s.Setting(ctx(t), "jwt_secret", "second")
	if err != nil || v != "first" {
		t.Fatalf("Setting(present) = %q, %v; want the stored first", v, err)
	}
	v, err = s.Setting(ctx(t), "anon_key", "other")
	if err != nil || v != "other" {
		t.Fatalf("Setting(another key) = %q, %v; want other", v, err)
	}
}

func testSettingConcurrent(t *testing.T, s dollr.Store) {
	const callers = 20
	got := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			got[i], errs[i] = s.Setting(ctx(t), "installation_secret", fmt.Sprintf("value-%d", i))
		})
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("caller %d got %q, caller 0 got %q: concurrent callers must share one value", i, got[i], got[0])
		}
	}
	if !regexp.MustCompile(`^value-\d+$`).MatchString(got[0]) {
		t.Fatalf("stored value %q is none of the offered ones", got[0])
	}
}

func testCheckoutSource(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	other := newMerchant(t, s)
	phone := newPhone()
	before := now()
	party, src := newSourceWith(t, s, m, phone, dollr.SourceInvoice, dollr.ModeHosted)
	if src.ID == 0 || party.ID == 0 || src.PartyID != party.ID || src.CheckoutConfigID == 0 {
		t.Fatalf("IDs not set: source %d, party %d, source.PartyID %d, config %d", src.ID, party.ID, src.PartyID, src.CheckoutConfigID)
	}
	if src.CreatedAt.IsZero() || src.UpdatedAt.IsZero() || src.CreatedAt.Before(before.Add(-time.Minute)) {
		t.Errorf("timestamps not set: %v %v", src.CreatedAt, src.UpdatedAt)
	}
	if src.TotalAmount != 1550 || len(src.Items) != 2 {
		t.Errorf("total %v items %d, want 15.50 and 2", src.TotalAmount, len(src.Items))
	}

	got, err := s.Source(ctx(t), m.ID, src.ID)
	if err != nil {
		t.Fatalf("Source: %v", err)
	}
	checkSource(t, "Source", got, src)

	// The same phone under the same merchant is the same party.
	party2, src2 := newSourceWith(t, s, m, phone, dollr.SourceOrder, dollr.ModeDirect)
	if party2.ID != party.ID || src2.PartyID != party.ID {
		t.Errorf("party with the same phone: id %d (source.PartyID %d), want reused %d", party2.ID, src2.PartyID, party.ID)
	}
	// Another merchant never shares a party.
	party3, _ := newSourceWith(t, s, other, phone, dollr.SourceInvoice, dollr.ModeDirect)
	if party3.ID == party.ID {
		t.Errorf("another merchant reused party %d", party.ID)
	}
	// A different phone is a different party.
	party4, _ := newSourceWith(t, s, m, newPhone(), dollr.SourceInvoice, dollr.ModeDirect)
	if party4.ID == party.ID {
		t.Errorf("a different phone reused party %d", party.ID)
	}

	p, err := s.Party(ctx(t), m.ID, party.ID)
	if err != nil {
		t.Fatalf("Party: %v", err)
	}
	if p.ID != party.ID || p.MerchantID != m.ID || p.Phone != phone || p.Name != party.Name ||
		p.Email != party.Email || p.CountryCode != party.CountryCode || p.CreatedAt.IsZero() {
		t.Errorf("Party = %+v, want %+v", p, party)
	}

	// Optional fields stay empty.
	plain := &dollr.Source{MerchantID: m.ID, Type: dollr.SourceOrder, Status: dollr.SourceActive, Currency: "LRD",
		Items: []dollr.Item{{Name: "Tea", Currency: "LRD", Amount: 5}}, TotalAmount: 5, Mode: dollr.ModeDirect}
	if err := s.CreateCheckoutSource(ctx(t), &dollr.Party{MerchantID: m.ID, Phone: newPhone()}, plain); err != nil {
		t.Fatalf("CreateCheckoutSource(minimal): %v", err)
	}
	got, err = s.Source(ctx(t), m.ID, plain.ID)
	if err != nil {
		t.Fatalf("Source(minimal): %v", err)
	}
	checkSource(t, "Source(minimal)", got, plain)

	_, err = s.Source(ctx(t), other.ID, src.ID)
	wantCode(t, err, dollr.ENOTFOUND, "Source(another merchant)")
	_, err = s.Source(ctx(t), m.ID, src.ID+1000)
	wantCode(t, err, dollr.ENOTFOUND, "Source(unknown)")
	_, err = s.Party(ctx(t), other.ID, party.ID)
	wantCode(t, err, dollr.ENOTFOUND, "Party(another merchant)")
}

func testSourceNumbers(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	other := newMerchant(t, s)
	format := regexp.MustCompile(`^(INV|ORD)-(\d{4})-(\d{5})$`)
	number := func(mm *dollr.Merchant, typ dollr.SourceType) *dollr.Source {
		t.Helper()
		_, src := newSourceWith(t, s, mm, newPhone(), typ, dollr.ModeDirect)
		if !format.MatchString(src.Number) {
			t.Fatalf("number %q does not match %v", src.Number, format)
		}
		return src
	}
	want := func(src *dollr.Source, prefix string, n int) {
		t.Helper()
		w := fmt.Sprintf("%s-%04d-%05d", prefix, src.CreatedAt.UTC().Year(), n)
		if src.Number != w {
			t.Errorf("number = %q, want %q", src.Number, w)
		}
		got, err := s.Source(ctx(t), src.MerchantID, src.ID)
		if err != nil || got.Number != src.Number {
			t.Errorf("stored number = %v, %v; want %q", got, err, src.Number)
		}
	}
	want(number(m, dollr.SourceInvoice), "INV", 1)
	want(number(m, dollr.SourceInvoice), "INV", 2)
	want(number(m, dollr.SourceOrder), "ORD", 1)
	want(number(other, dollr.SourceInvoice), "INV", 1)
	want(number(m, dollr.SourceInvoice), "INV", 3)
	want(number(m, dollr.SourceOrder), "ORD", 2)

	// Concurrent creation never hands out one number twice.
	const n = 10
	srcs := make([]*dollr.Source, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			src := &dollr.Source{MerchantID: m.ID, Type: dollr.SourceInvoice, Status: dollr.SourceActive, Currency: "USD",
				Items: []dollr.Item{{Name: "x", Currency: "USD", Amount: 100}}, TotalAmount: 100, Mode: dollr.ModeDirect}
			errs[i] = s.CreateCheckoutSource(ctx(t), &dollr.Party{MerchantID: m.ID, Phone: newPhone()}, src)
			srcs[i] = src
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent create %d: %v", i, errs[i])
		}
		if seen[srcs[i].Number] {
			t.Fatalf("number %s handed out twice", srcs[i].Number)
		}
		seen[srcs[i].Number] = true
	}
	for i := 4; i < 4+n; i++ {
		if w := fmt.Sprintf("INV-%04d-%05d", srcs[0].CreatedAt.UTC().Year(), i); !seen[w] {
			t.Errorf("numbers %v skip %s", seen, w)
		}
	}
}

func testHostedToken(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	_, hosted := newSourceWith(t, s, m, newPhone(), dollr.SourceInvoice, dollr.ModeHosted)
	_, direct := newSourceWith(t, s, m, newPhone(), dollr.SourceOrder, dollr.ModeDirect)
	if direct.HostedToken != "" {
		t.Fatalf("direct source got hosted token %q", direct.HostedToken)
	}
	got, err := s.SourceByHostedToken(ctx(t), hosted.HostedToken)
	if err != nil {
		t.Fatalf("SourceByHostedToken: %v", err)
	}
	checkSource(t, "SourceByHostedToken", got, hosted)

	_, err = s.SourceByHostedToken(ctx(t), "")
	wantCode(t, err, dollr.ENOTFOUND, "SourceByHostedToken(empty), with a direct source stored")
	_, err = s.SourceByHostedToken(ctx(t), "hct_unknown")
	wantCode(t, err, dollr.ENOTFOUND, "SourceByHostedToken(unknown)")
}

func testSessions(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	other := newMerchant(t, s)
	party, src := newSource(t, s, m)
	sess := newSession(t, s, m, src)
	if sess.ID == 0 || sess.CreatedAt.IsZero() || sess.UpdatedAt.IsZero() {
		t.Fatalf("CreateSession did not set ID and timestamps: %+v", sess)
	}
	check := func(what string, got *dollr.Session, err error, want *dollr.Session) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.ID != want.ID || got.MerchantID != want.MerchantID || got.SourceID != want.SourceID ||
			got.SourceType != want.SourceType || !got.ExpiresAt.Equal(want.ExpiresAt) ||
			!equalInt64Ptr(got.PaymentAccountID, want.PaymentAccountID) ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("%s = %+v, want %+v", what, got, want)
		}
	}
	got, err := s.Session(ctx(t), m.ID, sess.ID)
	check("Session", got, err, sess)

	acct := newAccount(t, s, m, party.ID)
	withAccount := &dollr.Session{MerchantID: m.ID, SourceID: src.ID, SourceType: src.Type,
		ExpiresAt: now().Add(time.Minute), PaymentAccountID: &acct.ID}
	if err := s.CreateSession(ctx(t), withAccount); err != nil {
		t.Fatalf("CreateSession(with account): %v", err)
	}
	if withAccount.ID == sess.ID {
		t.Fatalf("two sessions share ID %d", sess.ID)
	}
	got, err = s.Session(ctx(t), m.ID, withAccount.ID)
	check("Session(with account)", got, err, withAccount)

	_, err = s.Session(ctx(t), other.ID, sess.ID)
	wantCode(t, err, dollr.ENOTFOUND, "Session(another merchant)")
	_, err = s.Session(ctx(t), m.ID, withAccount.ID+1000)
	wantCode(t, err, dollr.ENOTFOUND, "Session(unknown)")
}

func testPaymentAccounts(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	other := newMerchant(t, s)
	party, _ := newSource(t, s, m)
	momo := newAccount(t, s, m, party.ID)
	card := &dollr.PaymentAccount{MerchantID: m.ID, PartyID: party.ID, AccountName: "Ada Visa", Provider: dollr.ProviderStripe,
		Method: dollr.MethodCreditCard, AccountNumber: "pm_card_visa", OperationType: dollr.OperationCollection, IsActive: false}
	if err := s.CreatePaymentAccount(ctx(t), card); err != nil {
		t.Fatalf("CreatePaymentAccount(card): %v", err)
	}
	for _, want := range []*dollr.PaymentAccount{momo, card} {
		if want.ID == 0 || want.CreatedAt.IsZero() || want.UpdatedAt.IsZero() {
			t.Fatalf("CreatePaymentAccount did not set ID and timestamps: %+v", want)
		}
		got, err := s.PaymentAccount(ctx(t), m.ID, want.ID)
		if err != nil {
			t.Fatalf("PaymentAccount: %v", err)
		}
		g, w := *got, *want
		if !g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) {
			t.Errorf("PaymentAccount times %v %v, want %v %v", g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt)
		}
		g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if g != w {
			t.Errorf("PaymentAccount = %+v, want %+v", g, w)
		}
	}
	_, err := s.PaymentAccount(ctx(t), other.ID, momo.ID)
	wantCode(t, err, dollr.ENOTFOUND, "PaymentAccount(another merchant)")
	_, err = s.PaymentAccount(ctx(t), m.ID, card.ID+1000)
	wantCode(t, err, dollr.ENOTFOUND, "PaymentAccount(unknown)")
}
