package api

import (
	"net/http"
	"strings"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/token"
)

func (s *Server) tokens() *token.Tokens { return s.cfg.Tokens }

// POST /v1/jwt/client/obtain/token
func (s *Server) handleObtainToken(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	clientID, _ := b.String("client_id", true)
	secret, _ := b.String("client_secret", true)
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.cfg.Store.MerchantByClientID(r.Context(), clientID)
	if err != nil && !dollr.IsNotFound(err) {
		s.writeError(w, r, err)
		return
	}
	if m == nil || !m.SecretMatches(secret) {
		s.writeError(w, r, dollr.Errorf(dollr.EUNAUTHORIZED, "Invalid client credentials"))
		return
	}
	tok, err := s.tokens().IssueAccess(m.ID, s.cfg.AccessTokenTTL)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	infoFrom(r.Context()).merchantID = m.ID
	writeJSON(w, http.StatusOK, ObtainTokenResponse{AccessToken: tok, ExpiresIn: int64(s.cfg.AccessTokenTTL.Minutes())})
}

// POST /v1/sessions/checkout
func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request, merchantID int64) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sourceID, _ := b.Int("source_id", true)
	sourceType, _ := b.Enum("source_type", true, string(dollr.SourceInvoice), string(dollr.SourceOrder))
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	src, err := s.source(r, merchantID, sourceID, dollr.SourceType(sourceType))
	if dollr.IsNotFound(err) {
		s.writeError(w, r, fieldError("not_found", "Source not found", "source_id"))
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := src.Status.CheckPayable("source_id"); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.cfg.Now()
	sess := &dollr.Session{MerchantID: merchantID, SourceID: src.ID, SourceType: src.Type, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.cfg.Store.CreateSession(ctx, sess); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.sessions.put(merchantID, sess.ID, sess.SourceType)
	writeJSON(w, http.StatusOK, sessionResponse(sess, now))
}

// source loads a merchant's source of the given type (ENOTFOUND otherwise).
func (s *Server) source(r *http.Request, merchantID, id int64, typ dollr.SourceType) (*dollr.Source, error) {
	if id <= 0 {
		return nil, dollr.NotFound("Source")
	}
	src, err := s.cfg.Store.Source(r.Context(), merchantID, id)
	if err != nil {
		if dollr.IsNotFound(err) {
			return nil, dollr.NotFound("Source")
		}
		return nil, err
	}
	if src.Type != typ {
		return nil, dollr.NotFound("Source")
	}
	return src, nil
}

// GET /v1/status/collection/{reference_id}
func (s *Server) handleCollectionStatus(w http.ResponseWriter, r *http.Request, merchantID int64) {
	ref := strings.ToLower(r.PathValue("reference_id"))
	e, err := s.cfg.Store.Execution(r.Context(), merchantID, ref)
	if dollr.IsNotFound(err) {
		s.writeError(w, r, dollr.NotFound("Execution"))
		return
	} else if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, NewExecutionResponse(e))
}

// GET /v1/status/source?source_type=&source_id=
func (s *Server) handleSourceStatus(w http.ResponseWriter, r *http.Request, merchantID int64) {
	q := &query{r: r}
	typ, _ := q.Enum("source_type", string(dollr.SourceInvoice), string(dollr.SourceOrder))
	id, _ := q.Int("source_id")
	if err := q.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	src, err := s.source(r, merchantID, id, dollr.SourceType(typ))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, PaymentSourceStatusResponse{
		SourceID: src.ID, SourceType: string(src.Type), SourceNumber: src.Number, Status: string(src.Status),
		Currency: src.Currency, TotalAmount: src.TotalAmount, PaidAt: tsPtr(src.PaidAt),
	})
}

// POST /v1/realtime-keys/collection
func (s *Server) handleRealtimeKey(w http.ResponseWriter, r *http.Request, merchantID int64) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sessionID, _ := b.Int("session_id", true)
	sourceType, _ := b.Enum("source_type", true, string(dollr.SourceInvoice), string(dollr.SourceOrder))
	ref, _ := b.UUID4("reference_id", true)
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	sessType, ok := s.sessions.get(merchantID, sessionID)
	if !ok {
		sess, err := s.session(r, merchantID, sessionID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		sessType = sess.SourceType
		s.sessions.put(merchantID, sess.ID, sessType)
	}
	if string(sessType) != sourceType {
		s.writeError(w, r, fieldError("source_type_mismatch", "source_type does not match the session's source ("+string(sessType)+")", "source_type"))
		return
	}
	tok, err := s.tokens().IssueRealtime(token.RealtimeClaims{
		MerchantID: merchantID, SessionID: sessionID, ReferenceID: ref, SourceType: sourceType,
	}, s.cfg.RealtimeKeyTTL)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RealtimeTokenResponse{AccessToken: tok, ExpiresIn: int64(s.cfg.RealtimeKeyTTL.Seconds())})
}

// session loads a merchant's session; not found is a 422 on body.session_id.
func (s *Server) session(r *http.Request, merchantID, id int64) (*dollr.Session, error) {
	if id <= 0 {
		return nil, fieldError("not_found", "Session not found", "session_id")
	}
	sess, err := s.cfg.Store.Session(r.Context(), merchantID, id)
	if dollr.IsNotFound(err) {
		return nil, fieldError("not_found", "Session not found", "session_id")
	}
	return sess, err
}
