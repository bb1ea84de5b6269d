package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/api"
	"github.com/dollr/dollr/token"
)

// Payment choices the page sends.
const (
	PayMobileMoney = "MOBILE_MONEY"
	PayCard        = "CARD"
)

// maxBody bounds every JSON body the page sends.
const maxBody = 4 << 10

// PayRequest is the body of POST /checkout/<token>/pay.
type PayRequest struct {
	Method          string `json:"method"`            // MOBILE_MONEY or CARD
	Phone           string `json:"phone"`             // MOBILE_MONEY: E.164, "+", spaces and dashes allowed
	Network         string `json:"network"`           // MOBILE_MONEY: optional method such as MTN_MOMO_LBR
	PaymentMethodID string `json:"payment_method_id"` // CARD: pm_...
	// ReferenceID lets the page retry a lost response without starting a
	// second payment: the same reference_id returns the same execution.
	ReferenceID string `json:"reference_id"`
}

// InputError is a pay request the customer can correct: a sentence the page
// shows as is, and the form field it is about ("phone", "network",
// "payment_method_id", "method"; "" for the request as a whole), so the page
// can mark that field invalid and move the focus to it.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Msg }

func inputError(field, msg string) *InputError { return &InputError{Field: field, Msg: msg} }

// ParsePayRequest decodes and validates a pay body. Phone numbers come back
// normalised to digits. Errors are *InputError.
func ParsePayRequest(body []byte) (PayRequest, error) {
	var req PayRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return PayRequest{}, inputError("", "The request is not valid JSON.")
	}
	if dec.More() {
		return PayRequest{}, inputError("", "The request has trailing data.")
	}
	if req.ReferenceID != "" && !validUUIDv4(req.ReferenceID) {
		return PayRequest{}, inputError("", "The reference_id must be a version-4 UUID.")
	}
	switch req.Method {
	case PayMobileMoney:
		phone, err := NormalizePhone(req.Phone)
		if err != nil {
			return PayRequest{}, err
		}
		req.Phone = phone
		if _, _, err := MobileMoneyMethod(phone, req.Network); err != nil {
			return PayRequest{}, err
		}
		req.PaymentMethodID = ""
	case PayCard:
		if !validPaymentMethodID(req.PaymentMethodID) {
			return PayRequest{}, inputError("payment_method_id", "Choose a card.")
		}
		req.Phone, req.Network = "", ""
	default:
		return PayRequest{}, inputError("method", "Choose mobile money or card.")
	}
	return req, nil
}

// NormalizePhone strips what people type around a phone number ("+", spaces,
// dashes, dots, parentheses) and checks Dollr's E.164 rule: 8 to 15 digits,
// no leading zero. Errors are *InputError about "phone".
func NormalizePhone(s string) (string, error) {
	if len(s) > 40 {
		return "", errPhoneFormat
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && b.Len() == 0 && strings.TrimSpace(s[:i]) == "":
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", inputError("phone", "A phone number has only digits.")
		}
	}
	p := b.String()
	if len(p) < 8 || len(p) > 15 || p[0] == '0' {
		return "", errPhoneFormat
	}
	return p, nil
}

var errPhoneFormat = inputError("phone", "Enter your mobile money number with its country code, e.g. 231 77 123 4567.")

// countryPrefixes maps E.164 country codes to the countries with mobile money.
var countryPrefixes = map[string]string{"231": "LR", "250": "RW"}

// defaultNetwork is the method assumed when the customer does not pick one.
var defaultNetwork = map[string]string{"LR": "MTN_MOMO_LBR", "RW": "MTN_MOMO_RWA"}

// MobileMoneyMethod returns the method and country for a normalised phone.
// network, when set, must be a mobile-money method of the phone's country.
// Errors are *InputError about "phone" or "network".
func MobileMoneyMethod(phone, network string) (method, country string, err error) {
	for prefix, c := range countryPrefixes {
		if strings.HasPrefix(phone, prefix) {
			country = c
		}
	}
	if country == "" {
		return "", "", inputError("phone", "Mobile money is available for Liberian (+231) and Rwandan (+250) numbers.")
	}
	if network == "" {
		return defaultNetwork[country], country, nil
	}
	c, ok := dollr.MobileMoneyMethods[network]
	if !ok {
		return "", "", inputError("network", "Choose your mobile money network.")
	}
	if c != country {
		return "", "", inputError("network", fmt.Sprintf("This network does not serve +%s numbers.", phone[:3]))
	}
	return network, country, nil
}

func validPaymentMethodID(s string) bool {
	if !strings.HasPrefix(s, "pm_") || len(s) > 100 || len(s) < 4 {
		return false
	}
	for i := 3; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validUUIDv4(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && len(s) == 36 && u.Version() == 4 && u.Variant() == uuid.RFC4122
}

// PayResponse tells the page what to watch and how to subscribe.
type PayResponse struct {
	Status
	SessionID  int64            `json:"session_id"`
	SourceType dollr.SourceType `json:"source_type"`
	Realtime   Realtime         `json:"realtime"`
}

// Realtime is what the page's realtime client needs: the same three values
// the guide's supabase-js snippet takes.
type Realtime struct {
	SupabaseURL string `json:"supabase_url"`
	AnonKey     string `json:"anon_key"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"` // seconds, as in RealtimeTokenResponse
	Channel     string `json:"channel"`    // payment-intent:<session_id>:<reference_id>
}

// Status is the browser-safe status of one payment, as polled.
type Status struct {
	ReferenceID    string                `json:"reference_id"`
	Status         dollr.ExecutionStatus `json:"status"`
	RequiresAction bool                  `json:"requires_action"`
	GatewayMessage *string               `json:"gateway_message"`
	PaymentMethod  string                `json:"payment_method"`
	PayerAmount    dollr.Amount          `json:"payer_amount"`
	PayerCurrency  string                `json:"payer_currency"`
	UpdatedAt      time.Time             `json:"updated_at"`
	SourceStatus   dollr.SourceStatus    `json:"source_status"`
	// ClientSecret is set while a card waits for 3-D Secure: the page answers
	// the sandbox challenge with it, as Stripe.js would with a real one.
	ClientSecret string `json:"client_secret,omitempty"`
}

func statusOf(e *dollr.Execution, src *dollr.Source) Status {
	s := Status{
		ReferenceID:    e.ReferenceID,
		Status:         e.Status,
		RequiresAction: e.RequiresAction && !e.Status.Terminal(),
		PaymentMethod:  e.PaymentMethod,
		PayerAmount:    e.PayerAmount,
		PayerCurrency:  e.PayerCurrency,
		UpdatedAt:      e.UpdatedAt.UTC(),
		SourceStatus:   src.Status,
	}
	if e.GatewayMessage != "" {
		m := e.GatewayMessage
		s.GatewayMessage = &m
	}
	if s.RequiresAction {
		s.ClientSecret = e.ClientSecret
	}
	return s
}

// payError is a failure the customer can act on, with its HTTP status.
type payError struct {
	status     int
	msg        string
	retryAfter time.Duration // sent as Retry-After when set
}

// errorBody is the JSON error: Dollr's {"detail": "..."}, plus the form
// field a 422 is about.
type errorBody struct {
	Detail string `json:"detail"`
	Field  string `json:"field,omitempty"`
}

func (e *payError) Error() string { return e.msg }

func (h *Handler) servePay(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	src, ok := h.sourceForAPI(w, r)
	if !ok {
		return
	}
	// JSON only: a cross-site form cannot send it, so no other site can make
	// a visitor's browser start a payment.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeDetail(w, http.StatusUnsupportedMediaType, "Send application/json.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeDetail(w, http.StatusRequestEntityTooLarge, "The request is too large.")
		return
	}
	req, err := ParsePayRequest(body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	e, src, err := h.pay(ctx, src, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := PayResponse{
		Status:     statusOf(e, src),
		SessionID:  e.SessionID,
		SourceType: e.SourceType,
	}
	if resp.Realtime, err = h.realtime(e); err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// pay starts a collection for src, or returns the one already in flight.
// It is what a merchant backend would do for a hosted customer: a checkout
// session, a payment account for the party, and an execution with a fresh
// reference_id (dollr-api.md §5.8).
func (h *Handler) pay(ctx context.Context, src *dollr.Source, req PayRequest) (*dollr.Execution, *dollr.Source, error) {
	st := h.cfg.Store
	defer h.lockSource(src.ID)()
	// Re-read under the lock: another request may have just paid.
	src, err := st.Source(ctx, src.MerchantID, src.ID)
	if err != nil {
		return nil, nil, err
	}
	if req.ReferenceID != "" {
		e, err := st.Execution(ctx, src.MerchantID, req.ReferenceID)
		if err == nil {
			if e.SourceID != src.ID {
				return nil, nil, &payError{status: http.StatusUnprocessableEntity, msg: "The reference_id belongs to another payment."}
			}
			return e, src, nil
		} else if !dollr.IsNotFound(err) {
			return nil, nil, err
		}
	}
	latest, err := st.LatestExecutionForSource(ctx, src.MerchantID, src.ID)
	if err != nil && !dollr.IsNotFound(err) {
		return nil, nil, err
	}
	if latest != nil && !latest.Status.Terminal() {
		// Never a second charge while one is in flight (dollr-api.md §8).
		return latest, src, nil
	}
	switch {
	case src.Status == dollr.SourcePaid:
		return nil, nil, &payError{status: http.StatusConflict, msg: "This " + kindOf(src) + " is already paid."}
	case src.Status == dollr.SourceCanceled:
		return nil, nil, &payError{status: http.StatusGone, msg: canceledPage(src).Message}
	case h.expired(src):
		return nil, nil, &payError{status: http.StatusGone, msg: errExpiredPage.Message}
	}

	now := h.cfg.Now()
	recent, err := st.RecentExecutionTimes(ctx, src.MerchantID, src.ID, maxAttempts)
	if err != nil {
		return nil, nil, err
	}
	if wait, ok := attemptWait(recent, now); !ok {
		mins := int(wait.Round(time.Minute) / time.Minute)
		return nil, nil, &payError{status: http.StatusTooManyRequests, retryAfter: wait,
			msg: fmt.Sprintf("Too many payment attempts for this %s. Try again in %d minute%s.", kindOf(src), max(mins, 1), plural(max(mins, 1)))}
	}
	acct := &dollr.PaymentAccount{
		MerchantID:    src.MerchantID,
		PartyID:       src.PartyID,
		OperationType: dollr.OperationCollection,
		IsActive:      true,
	}
	switch req.Method {
	case PayMobileMoney:
		method, country, err := MobileMoneyMethod(req.Phone, req.Network)
		if err != nil {
			return nil, nil, err
		}
		acct.AccountName, acct.Provider, acct.Method = "Mobile money", dollr.ProviderPawapay, method
		acct.CountryCode, acct.AccountNumber = country, req.Phone
	case PayCard:
		// A new account per card attempt, as the guide says (dollr-api.md §5.6).
		acct.AccountName, acct.Provider, acct.Method = "Card", dollr.ProviderStripe, dollr.MethodCreditCard
		acct.AccountNumber = req.PaymentMethodID
	}
	if p, err := st.Party(ctx, src.MerchantID, src.PartyID); err == nil && p.Name != "" {
		acct.AccountName = p.Name
	}
	sess := &dollr.Session{
		MerchantID: src.MerchantID,
		SourceID:   src.ID,
		SourceType: src.Type,
		ExpiresAt:  now.Add(h.cfg.SessionTTL),
	}
	if err := st.CreateSession(ctx, sess); err != nil {
		return nil, nil, err
	}
	if err := st.CreatePaymentAccount(ctx, acct); err != nil {
		return nil, nil, err
	}
	ref := req.ReferenceID
	if ref == "" {
		ref = uuid.NewString()
	}
	e, _, err := h.cfg.Collector.Collect(ctx, src.MerchantID, api.CollectRequest{
		SessionID:        sess.ID,
		PaymentAccountID: acct.ID,
		Currency:         src.Currency,
		ReferenceID:      ref,
	})
	if err != nil {
		// Another server sharing the store may have started a payment since
		// the check above (payLocks are per process; the store lets only one
		// be in flight and refused ours): show that one, as a second tab here
		// would see it.
		if latest, lerr := st.LatestExecutionForSource(ctx, src.MerchantID, src.ID); lerr == nil && !latest.Status.Terminal() && latest.ReferenceID != ref {
			if src, err = st.Source(ctx, src.MerchantID, src.ID); err != nil {
				return nil, nil, err
			}
			return latest, src, nil
		}
		return nil, nil, err
	}
	h.log.Info("checkout: payment started", "source_id", src.ID, "reference_id", e.ReferenceID,
		"method", acct.Method, "status", e.Status)
	if src, err = st.Source(ctx, src.MerchantID, src.ID); err != nil {
		return nil, nil, err
	}
	return e, src, nil
}

// realtime issues a realtime key scoped to e, as POST
// /v1/realtime-keys/collection would for the merchant.
func (h *Handler) realtime(e *dollr.Execution) (Realtime, error) {
	ttl := h.cfg.RealtimeKeyTTL
	tok, err := h.cfg.Tokens.IssueRealtime(token.RealtimeClaims{
		MerchantID:  e.MerchantID,
		SessionID:   e.SessionID,
		ReferenceID: e.ReferenceID,
		SourceType:  string(e.SourceType),
	}, ttl)
	if err != nil {
		return Realtime{}, err
	}
	anon := h.cfg.AnonKey
	if anon == "" {
		if anon, err = h.cfg.Tokens.AnonKey(); err != nil {
			return Realtime{}, err
		}
	}
	return Realtime{
		SupabaseURL: h.cfg.SupabaseURL,
		AnonKey:     anon,
		AccessToken: tok,
		ExpiresIn:   int64(ttl / time.Second),
		Channel:     fmt.Sprintf("payment-intent:%d:%s", e.SessionID, e.ReferenceID),
	}, nil
}

// serveStatus answers the page's polling: the public status of one of this
// source's payments. It works after the link expires, so a customer who
// paid just in time still sees the outcome.
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	src, e, ok := h.executionForAPI(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, statusOf(e, src))
}

// serveKey issues a fresh realtime key before the old one expires.
func (h *Handler) serveKey(w http.ResponseWriter, r *http.Request) {
	_, e, ok := h.executionForAPI(w, r)
	if !ok {
		return
	}
	rt, err := h.realtime(e)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rt)
}

// sourceForAPI is sourceForPage for the JSON endpoints.
func (h *Handler) sourceForAPI(w http.ResponseWriter, r *http.Request) (*dollr.Source, bool) {
	src, err := h.source(r.Context(), r.PathValue("token"))
	if err != nil {
		h.writeError(w, r, err)
		return nil, false
	}
	return src, true
}

// executionForAPI loads the source and one of its executions; another
// source's reference_id is not found, whoever owns it.
func (h *Handler) executionForAPI(w http.ResponseWriter, r *http.Request) (*dollr.Source, *dollr.Execution, bool) {
	src, ok := h.sourceForAPI(w, r)
	if !ok {
		return nil, nil, false
	}
	ref := r.PathValue("reference_id")
	if len(ref) > 64 {
		writeDetail(w, http.StatusNotFound, "Payment not found.")
		return nil, nil, false
	}
	e, err := h.cfg.Store.Execution(r.Context(), src.MerchantID, ref)
	if err == nil && e.SourceID != src.ID {
		err = dollr.NotFound("payment")
	}
	if err != nil {
		if dollr.IsNotFound(err) {
			writeDetail(w, http.StatusNotFound, "Payment not found.")
		} else {
			h.writeError(w, r, err)
		}
		return nil, nil, false
	}
	return src, e, true
}

// writeError maps an error to a JSON answer. Internal details stay in the log.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *payError
	var ie *InputError
	var de *dollr.Error
	switch {
	case errors.As(err, &pe):
		if pe.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(pe.retryAfter.Round(time.Second)/time.Second)))
		}
		writeDetail(w, pe.status, pe.msg)
	case errors.As(err, &ie):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Detail: ie.Msg, Field: ie.Field})
	case errors.As(err, &de) && de.Code == dollr.ENOTFOUND:
		writeDetail(w, http.StatusNotFound, sentence(de.Message))
	case errors.As(err, &de) && (de.Code == dollr.EINVALID || de.Code == dollr.ECONFLICT):
		msg := de.Message
		if len(de.Fields) > 0 {
			msg = de.Fields[0].Msg
		}
		writeDetail(w, http.StatusUnprocessableEntity, sentence(msg))
	case dollr.IsUnavailable(err):
		h.log.Warn("checkout: store unavailable", "path", loggedPath(r), "err", err)
		w.Header().Set("Retry-After", "5")
		writeDetail(w, http.StatusServiceUnavailable, msgUnavailable)
	default:
		h.log.Error("checkout: request failed", "path", loggedPath(r), "err", err)
		writeDetail(w, http.StatusInternalServerError, "Something went wrong. Please try again.")
	}
}

// sentence makes a message the page shows as is start with a capital letter
// and end with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.ContainsRune(".!?", rune(s[len(s)-1])) {
		s += "."
	}
	return s
}
