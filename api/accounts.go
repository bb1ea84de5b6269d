package api

import (
	"errors"
	"net/http"
	"sort"

	"github.com/dollr/dollr"
)

// paymentMethods lists the accepted method values, mobile money then card.
var paymentMethods = func() []string {
	var m []string
	for k := range dollr.MobileMoneyMethods {
		m = append(m, k)
	}
	sort.Strings(m)
	return append(m, dollr.MethodCreditCard)
}()

// POST /v1/payment-accounts/create?operation_type=COLLECTION
//
// Mobile money: the phone is insensitive_account_number. Card: the Stripe
// payment-method id (pm_...) is payment_method_id (insensitive_account_number
// is accepted as a fallback when it starts with pm_).
func (s *Server) handleCreatePaymentAccount(w http.ResponseWriter, r *http.Request, merchantID int64) {
	// FastAPI reports a malformed body alone (json_invalid, 400), otherwise
	// query and body errors together, query first: a body that is missing or
	// no object (e.g. not sent as JSON) is a validation error like the others.
	b, err := readBody(w, r)
	q := &query{r: r}
	op, opOK := q.Enum("operation_type", dollr.OperationCollection, dollr.OperationPayout, dollr.OperationTransfer, dollr.OperationRefund)
	if opOK && op != dollr.OperationCollection {
		q.fail("operation_type", "value_error", "Value error, this server supports COLLECTION accounts only")
	}
	if err != nil {
		var de *dollr.Error
		if errors.As(err, &de) && len(de.Fields) == 1 && len(de.Fields[0].Loc) == 1 && len(q.errs) > 0 {
			err = &dollr.Error{Code: dollr.EINVALID, Message: "validation failed", Fields: append(q.errs, de.Fields...)}
		}
		s.writeError(w, r, err)
		return
	}
	*b.errs = append(*b.errs, q.errs...)
	name, _ := b.String("account_name", true)
	provider, providerOK := b.String("provider", true)
	method, methodOK := b.Enum("method", true, paymentMethods...)
	partyID, partyOK := b.Int("party_id", true)
	country, countryOK := b.Pattern("country_code", false, countryRe)
	number, numberOK := b.String("insensitive_account_number", false)
	pm, _ := b.Pattern("payment_method_id", false, pmRe)

	acct := &dollr.PaymentAccount{
		MerchantID: merchantID, PartyID: partyID, AccountName: name, Provider: provider, Method: method,
		CountryCode: country, OperationType: op, IsActive: true,
	}
	if methodOK && method == dollr.MethodCreditCard {
		if providerOK && provider != dollr.ProviderStripe {
			b.fail("provider", "value_error", "Value error, CREDIT_CARD requires provider STRIPE")
		}
		if pm == "" && pmRe.MatchString(number) {
			pm = number
		}
		if pm == "" {
			// null is no payment method either (a malformed one has failed above).
			if v, given := b.m["payment_method_id"]; !given || string(v) == "null" {
				b.fail("payment_method_id", "missing", msgMissing)
			}
		}
		acct.AccountNumber = pm
	} else if methodOK {
		wantCountry := dollr.MobileMoneyMethods[method]
		if providerOK && provider != dollr.ProviderPawapay && provider != method {
			b.fail("provider", "value_error", "Value error, "+method+" requires provider PAWAPAY")
		}
		if countryOK && country != wantCountry {
			b.fail("country_code", "value_error", "Value error, "+method+" is available in "+wantCountry+" only")
		}
		if acct.CountryCode == "" {
			acct.CountryCode = wantCountry
		}
		if _, given := b.m["insensitive_account_number"]; !given || string(b.m["insensitive_account_number"]) == "null" {
			b.fail("insensitive_account_number", "missing", msgMissing)
		} else if numberOK && !phoneRe.MatchString(number) {
			b.fail("insensitive_account_number", "string_pattern_mismatch", "String should match pattern '"+phoneRe.String()+"'")
		}
		acct.AccountNumber = number
	}
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if partyOK {
		if partyID <= 0 {
			s.writeError(w, r, fieldError("not_found", "Party not found", "party_id"))
			return
		}
		if _, err := s.cfg.Store.Party(ctx, merchantID, partyID); dollr.IsNotFound(err) {
			s.writeError(w, r, fieldError("not_found", "Party not found", "party_id"))
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := s.cfg.Store.CreatePaymentAccount(ctx, acct); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, PaymentAccountResponse{
		ID: acct.ID, AccountName: acct.AccountName, Provider: acct.Provider, Method: acct.Method,
		PartyID: acct.PartyID, IsActive: acct.IsActive, CreatedAt: timestamp(acct.CreatedAt),
		UpdatedAt: timestamp(acct.UpdatedAt), CountryCode: strPtr(acct.CountryCode),
	})
}
