package api

import (
	"net/http"
	"strings"
)

// maxTouchBatch bounds one status-touch request (each id is its own commit).
const maxTouchBatch = 1000

// POST /v1/sandbox/status-touch {"reference_ids": [...], "gateway_message": "..."}
//
// A sandbox-only hook for the load tool (`dollr bench changes`): each listed
// in-flight collection of the caller gets the message as a provider update,
// one transaction per id and in list order, so every id is one committed
// UPDATE of its public status row. It measures capture → fan-out → socket
// without the sandbox's timers. Answers {"touched": n}.
func (s *Server) handleSandboxStatusTouch(w http.ResponseWriter, r *http.Request, merchantID int64) {
	b, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, _ := b.List("reference_ids", true, 1, maxTouchBatch)
	message, _ := b.String("gateway_message", true)
	refs := make([]string, 0, len(items))
	elems := obj{loc: b.at("reference_ids"), errs: b.errs}
	for i, raw := range items {
		ref, ok := elems.asString(i, raw)
		if ok {
			refs = append(refs, strings.ToLower(ref))
		}
	}
	if err := b.err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	touched := 0
	for _, ref := range refs {
		if _, err := s.cfg.Store.NoteGatewayMessage(r.Context(), merchantID, ref, message, s.cfg.Now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		touched++
	}
	writeJSON(w, http.StatusOK, map[string]int{"touched": touched})
}
