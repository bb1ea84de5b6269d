package api

import (
	"net/http"

	"github.com/dollr/dollr/sandbox"
)

// POST /v1/sandbox/3ds/{client_secret} {"outcome": "succeed"|"fail"}
//
// Stands in for the card issuer's 3-D Secure challenge. Like Stripe.js, the
// caller needs no bearer token: the client secret is the capability. It
// answers with the payment's ExecutionResponse.
func (s *Server) handleSandbox3DS(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	outcome, _ := b.Enum("outcome", true, "succeed", "fail")
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := sandbox.Authenticate(r.Context(), s.cfg.Store, r.PathValue("client_secret"), outcome == "succeed", s.cfg.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, NewExecutionResponse(e))
}
