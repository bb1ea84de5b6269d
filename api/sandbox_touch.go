package api

import (
	"net/http"
	"strings"
	"sync"

	"github.com/dollr/dollr"
)

// maxTouchBatch bounds one status-touch request.
const maxTouchBatch = 1000

// touchParallelism bounds the store calls one status-touch request has in flight.
const touchParallelism = 64

// POST /v1/sandbox/status-touch {"reference_ids": [...], "gateway_message": "..."}
//
// A sandbox-only hook for the load tool (`dollr bench changes`): each listed
// in-flight collection of the caller gets the message as a provider update,
// each id its own committed UPDATE of its public status row. It measures
// capture → fan-out → socket without the sandbox's timers. Different payments
// are touched concurrently, as independent provider messages would arrive (a
// store may commit them together); one payment listed twice is touched in
// list order. Answers {"touched": n}.
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
	// One worker per distinct payment, each touching it as often as listed.
	var order []string
	times := make(map[string]int, len(refs))
	for _, ref := range refs {
		if times[ref] == 0 {
			order = append(order, ref)
		}
		times[ref]++
	}
	var (
		mu       sync.Mutex
		firstErr error
		errAt    = len(order) // the list position of firstErr's payment, so the answer is deterministic
		touched  int
		wg       sync.WaitGroup
		slots    = make(chan struct{}, touchParallelism)
	)
	for i, ref := range order {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			n := 0
			var err error
			for range times[ref] {
				if _, err = s.cfg.Store.NoteGatewayMessage(r.Context(), merchantID, ref, message, s.cfg.Now()); err != nil {
					break
				}
				n++
			}
			mu.Lock()
			defer mu.Unlock()
			touched += n
			if err != nil && i < errAt {
				firstErr, errAt = err, i
			}
		})
	}
	wg.Wait()
	if dollr.IsNotFound(firstErr) {
		firstErr = dollr.NotFound("Execution") // as the status endpoint words it
	}
	if firstErr != nil {
		s.writeError(w, r, firstErr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"touched": touched})
}
