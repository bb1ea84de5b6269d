package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/sandbox"
)

// CollectRequest is a collection execution's body, typed.
type CollectRequest struct {
	SessionID        int64
	PaymentAccountID int64
	Currency         string
	ReferenceID      string // a lowercase UUID v4
}

// hash fingerprints the request so a reused reference_id with another body is
// told apart from a retry.
func (c CollectRequest) hash() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("collection|%d|%d|%s|%s", c.SessionID, c.PaymentAccountID, c.Currency, c.ReferenceID)))
	return hex.EncodeToString(sum[:])
}

var errDuplicateReference = fieldError("duplicate_reference_id", "reference_id was already used for a different request", "reference_id")

// POST /v1/executions/collection
func (s *Server) handleExecuteCollection(w http.ResponseWriter, r *http.Request, merchantID int64) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sessionID, _ := b.String("session_id", true)
	accountID, _ := b.String("payment_account_id", true)
	currency, _ := b.Currency("currency", true)
	ref, _ := b.UUID4("reference_id", true)
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Dollr types these ids as strings; one that is no positive integer names
	// nothing, and Collect reports it as not found.
	req := CollectRequest{Currency: currency, ReferenceID: ref}
	req.SessionID, _ = parseID(sessionID)
	req.PaymentAccountID, _ = parseID(accountID)
	e, _, err := s.Collect(r.Context(), merchantID, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, NewExecutionResponse(e))
}

func parseID(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return n, nil
}

// Collect starts a collection, idempotently on the merchant's reference_id:
// the same request again returns the stored execution in its current state
// (created=false); the same reference_id with a different request is a 422 on
// body.reference_id. Errors carry Dollr's body locations. The hosted checkout
// page uses this too, so both paths apply the same rules.
func (s *Server) Collect(ctx context.Context, merchantID int64, req CollectRequest) (*dollr.Execution, bool, error) {
	req.ReferenceID = strings.ToLower(req.ReferenceID)
	if e, found, err := s.existing(ctx, merchantID, req); found || err != nil {
		return e, false, err
	}
	e, created, err := s.collect(ctx, merchantID, req)
	if dollr.ErrorCode(err) == dollr.EINVALID || dollr.ErrorCode(err) == dollr.ECONFLICT {
		// A concurrent identical request may have won between our lookup and
		// our checks (its payment made the source PROCESSING): answer as a retry.
		if e, found, err2 := s.existing(ctx, merchantID, req); found || err2 != nil {
			return e, false, err2
		}
	}
	return e, created, err
}

// existing returns the merchant's execution with req's reference_id, or
// errDuplicateReference if it was created by a different request.
func (s *Server) existing(ctx context.Context, merchantID int64, req CollectRequest) (*dollr.Execution, bool, error) {
	e, err := s.cfg.Store.Execution(ctx, merchantID, req.ReferenceID)
	switch {
	case dollr.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case e.RequestHash != req.hash():
		return nil, true, errDuplicateReference
	}
	return e, true, nil
}

func (s *Server) collect(ctx context.Context, merchantID int64, req CollectRequest) (*dollr.Execution, bool, error) {
	st := s.cfg.Store
	hash := req.hash()
	now := s.cfg.Now()
	var fields []dollr.FieldError
	add := func(field, typ, msg string) {
		fields = append(fields, dollr.FieldError{Loc: []any{"body", field}, Msg: msg, Type: typ})
	}
	var src *dollr.Source
	sess, err := st.Session(ctx, merchantID, max(req.SessionID, 0))
	switch {
	case dollr.IsNotFound(err):
		add("session_id", "not_found", "Session not found")
	case err != nil:
		return nil, false, err
	case sess.Status(now) == dollr.SessionExpired:
		add("session_id", "session_expired", "Session expired")
	default:
		src, err = st.Source(ctx, merchantID, sess.SourceID)
		if err != nil {
			return nil, false, err
		}
		if perr := src.Status.CheckPayable("session_id"); perr != nil {
			fields = append(fields, perr.Fields...)
		} else if req.Currency != src.Currency {
			add("currency", "currency_mismatch", "Currency must be "+src.Currency+", the source's currency (the sandbox does no FX)")
		}
	}
	acct, err := st.PaymentAccount(ctx, merchantID, max(req.PaymentAccountID, 0))
	switch {
	case dollr.IsNotFound(err):
		add("payment_account_id", "not_found", "Payment account not found")
	case err != nil:
		return nil, false, err
	case !acct.IsActive:
		add("payment_account_id", "account_inactive", "Payment account is not active")
	case acct.OperationType != dollr.OperationCollection:
		add("payment_account_id", "operation_type_mismatch", "Payment account is not a COLLECTION account")
	}
	if len(fields) > 0 {
		return nil, false, &dollr.Error{Code: dollr.EINVALID, Message: "validation failed", Fields: fields}
	}

	plan, err := s.cfg.Sandbox.Plan(acct, merchantID, req.ReferenceID, now)
	if err != nil {
		return nil, false, err
	}
	e := &dollr.Execution{
		MerchantID: merchantID, ReferenceID: req.ReferenceID,
		SessionID: sess.ID, SourceID: src.ID, SourceType: src.Type,
		PaymentAccountID: acct.ID, PaymentMethod: acct.Method,
		Status:      plan.Status,
		PayerAmount: src.TotalAmount, PayerCurrency: req.Currency,
		PayeeAmount: src.TotalAmount - sandbox.Fee(src.TotalAmount), PayeeCurrency: src.Currency,
		OperationType:         dollr.OperationCollection,
		ProviderTransactionID: plan.ProviderTransactionID,
		GatewayMessage:        plan.GatewayMessage,
		ClientSecret:          plan.ClientSecret,
		RequiresAction:        plan.RequiresAction,
		RequestHash:           hash,
		CreatedAt:             now, UpdatedAt: now,
	}
	stored, created, err := st.CreateExecution(ctx, e, plan.Jobs)
	if err != nil {
		return nil, false, err
	}
	if !created && stored.RequestHash != hash {
		return nil, false, errDuplicateReference
	}
	return stored, created, nil
}
