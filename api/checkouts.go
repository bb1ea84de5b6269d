package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/dollr/dollr"
)

// RelationshipTypes are the accepted party_relationship values.
var RelationshipTypes = []string{"CUSTOMER", "SUPPLIER", "EMPLOYEE", "BENEFICIARY", "FRIEND", "FAMILY", "DONOR", "DONEE", "CONTACT", "SERVICE_PROVIDER", "PARTNER", "SELF", "OTHER"}

const maxItems = 100

// maxTotal bounds a source's total below 10^13 units, like every amount
// (dollr.MaxAmountDigits), so a total renders as an amount that parses back.
const maxTotal = dollr.Amount(1e15)

// POST /v1/checkouts/create: creates (or reuses, by phone) the party and a
// published (ACTIVE) invoice or order; HOSTED also gets a hosted page URL.
func (s *Server) handleCreateCheckout(w http.ResponseWriter, r *http.Request, merchantID int64) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mode, _ := b.Enum("mode", true, dollr.ModeHosted, dollr.ModeDirect)
	kind, _ := b.Enum("source_kind", true, string(dollr.SourceInvoice), string(dollr.SourceOrder))
	phone, _ := b.Pattern("party_phone", true, phoneRe)
	currency, currencyOK := b.Currency("currency", true)
	var items []dollr.Item
	var total dollr.Amount
	if list, ok := b.List("items", true, 1, maxItems); ok {
		for i, raw := range list {
			item, ok := b.Object("items", i, raw)
			if !ok {
				continue
			}
			name, _ := item.String("name", true)
			cur, curOK := item.Currency("currency", true)
			amount, amountOK := item.Amount("amount", true)
			if curOK && currencyOK && cur != currency {
				item.fail("currency", "currency_mismatch", "Item currency must equal the checkout currency "+currency)
			}
			if amountOK {
				total += amount
				if total >= maxTotal {
					item.fail("amount", "value_error", "Value error, total amount is too large")
				}
			}
			items = append(items, dollr.Item{Name: name, Currency: cur, Amount: amount})
		}
	}
	partyName, _ := b.String("party_name", false)
	partyEmail, _ := b.String("party_email", false)
	b.Enum("party_relationship", false, RelationshipTypes...) // validated; every party is the merchant's customer here
	reference, _ := b.String("reference_id", false)
	note, _ := b.String("note", false)
	due, _ := b.Time("due_date")
	successURL, _ := b.HTTPURL("success_url")
	cancelURL, _ := b.HTTPURL("cancel_url")
	expires, _ := b.Time("expires_at")
	counterpartyID, hasCounterparty := b.Int("counterparty_id", false)
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if expires != nil && !expires.After(s.cfg.Now()) {
		s.writeError(w, r, fieldError("value_error", "Value error, expires_at must be in the future", "expires_at"))
		return
	}
	// A party is its own counterparty here; a given counterparty_id must be one
	// of the merchant's parties.
	if hasCounterparty {
		if counterpartyID <= 0 {
			s.writeError(w, r, fieldError("not_found", "Counterparty not found", "counterparty_id"))
			return
		}
		if _, err := s.cfg.Store.Party(ctx, merchantID, counterpartyID); dollr.IsNotFound(err) {
			s.writeError(w, r, fieldError("not_found", "Counterparty not found", "counterparty_id"))
			return
		} else if err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	party := &dollr.Party{MerchantID: merchantID, Name: partyName, Phone: phone, Email: partyEmail}
	src := &dollr.Source{
		MerchantID: merchantID, Type: dollr.SourceType(kind), Status: dollr.SourceActive,
		Currency: currency, TotalAmount: total, Items: items, CounterpartyID: counterpartyID,
		Mode: mode, ReferenceID: reference, Note: note, DueDate: due, ExpiresAt: expires,
		SuccessURL: successURL, CancelURL: cancelURL,
	}
	if mode == dollr.ModeHosted {
		src.HostedToken = "hct_" + randomHex(24)
	}
	if err := s.cfg.Store.CreateCheckoutSource(ctx, party, src); err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := CreateCheckoutSourceLinkResponse{
		Mode: src.Mode, SourceType: string(src.Type), SourceID: src.ID, SourceNumber: src.Number,
		SourceStatus: string(src.Status), CounterpartyID: src.CounterpartyID, PartyID: party.ID,
		Currency: src.Currency, TotalAmount: src.TotalAmount, SourceCheckoutConfigID: src.CheckoutConfigID,
		ReferenceID: strPtr(src.ReferenceID), DueDate: tsPtr(src.DueDate), ExpiresAt: tsPtr(src.ExpiresAt),
		SuccessURL: strPtr(src.SuccessURL), CancelURL: strPtr(src.CancelURL),
	}
	if resp.CounterpartyID == 0 {
		resp.CounterpartyID = party.ID
	}
	if src.HostedToken != "" {
		url := s.cfg.BaseURL + "/checkout/" + src.HostedToken
		resp.URL, resp.HostedPathOrToken = &url, &src.HostedToken
	}
	writeJSON(w, http.StatusOK, resp)
}

// maxURLLen is pydantic's HttpUrl limit.
const maxURLLen = 2083

// HTTPURL reads an optional absolute http(s) URL as pydantic's HttpUrl does:
// a string (url_type otherwise) of at most 2083 characters (url_too_long),
// that parses as a URL with a host (url_parsing) whose scheme is http or
// https (url_scheme). The value is kept as sent, less surrounding spaces
// (which the URL parser ignores too). A javascript: or data: URL
// is refused here, so a merchant learns at creation time that the hosted
// page could never redirect to it.
func (o obj) HTTPURL(name string) (string, bool) {
	v, ok := o.raw(name, false)
	if !ok {
		return "", false
	}
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		o.fail(name, "url_type", "URL input should be a string or URL")
		return "", false
	}
	if len(s) > maxURLLen && utf8.RuneCountInString(s) > maxURLLen {
		o.fail(name, "url_too_long", fmt.Sprintf("URL should have at most %d characters", maxURLLen))
		return "", false
	}
	if reason := urlProblem(s); reason != "" {
		o.fail(name, "url_parsing", "Input should be a valid URL, "+reason)
		return "", false
	}
	if u, _ := url.Parse(strings.TrimSpace(s)); u.Scheme != "http" && u.Scheme != "https" {
		o.fail(name, "url_scheme", "URL scheme should be 'http' or 'https'")
		return "", false
	}
	return strings.TrimSpace(s), true
}

// urlProblem names why s is not an absolute URL with a host, in the words of
// the URL parser pydantic uses; "" if it is one. A scheme other than http(s)
// is not a problem here (HTTPURL reports it as url_scheme).
func urlProblem(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "input is empty"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil && u == nil && strings.Contains(err.Error(), "missing protocol scheme"):
		return "relative URL without a base"
	case err != nil && strings.Contains(err.Error(), "in host name"):
		return "invalid domain character"
	case err != nil && strings.Contains(err.Error(), "invalid port"):
		return "invalid port number"
	case err != nil:
		return "invalid URL"
	case u.Scheme == "":
		return "relative URL without a base"
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return "empty host"
	}
	return ""
}
