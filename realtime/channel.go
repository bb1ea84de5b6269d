package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// channel is one joined topic on one connection.
type channel struct {
	s         *Server
	c         *conn
	topic     string
	subTopic  string
	topicJSON []byte
	joinRef   []byte
	bindings  []*binding
	bcastSelf bool
	bcastAck  bool
	pres      presenceConfig

	mu        sync.Mutex // guards the fields below
	closed    bool
	tokenHash uint64    // of the token in force, to ignore a refresh with the same token
	exp       time.Time // the token's expiry
	grantKey  string    // the grant's rows, to tell whether a refresh changes them
	subs      []*sub
	subErr    string
	syncing   bool // live changes are held in pending until the join's snapshot is out
	syncGen   uint64
	pending   []pendingChange
	cancel    context.CancelFunc
	meta      []byte // this channel's tracked presence meta, JSON

	// Publisher scratch, owned by whoever holds Server.pubMu.
	gen  uint64
	ids  []int64
	hits []*sub
}

type presenceConfig struct {
	enabled bool
	key     string
}

// sendSubscriptionStatus pushes "Subscribed to PostgreSQL", or the reason the
// subscription failed (realtime-protocol.md §6).
func (ch *channel) sendSubscriptionStatus() {
	ch.mu.Lock()
	subErr := ch.subErr
	ch.mu.Unlock()
	if subErr != "" {
		ch.sendSystem("postgres_changes", "error", subErr)
	} else {
		ch.sendSystem("postgres_changes", "ok", msgSubscribed)
	}
}

func (ch *channel) sendSystem(extension, status, message string) {
	payload, _ := json.Marshal(map[string]string{
		"extension": extension, "status": status, "message": message, "channel": ch.subTopic,
	})
	ch.c.send(outMsg{op: ws.OpText, data: appendFrame(nil, ch.c.vsn, ch.joinRef, nil, ch.topicJSON, "system", payload)})
}

// sendClose pushes phx_close with ref = join_ref, which closes the client's channel for good.
func (ch *channel) sendClose() {
	ch.c.send(outMsg{op: ws.OpText, data: appendFrame(nil, ch.c.vsn, ch.joinRef, ch.joinRef, ch.topicJSON, "phx_close", emptyObject)})
}

// expire shuts the channel down once its token has expired (§10.3); the
// sweeper calls it (sweep.go).
func (ch *channel) expire() {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	exp := ch.exp
	now := ch.s.now()
	ch.mu.Unlock()
	if now.Before(exp) { // refreshed meanwhile
		return
	}
	ch.shutdown(fmt.Sprintf("Token has expired %d seconds ago", now.Unix()-exp.Unix()))
}

// shutdown closes the channel from the server side: a system error, then phx_close.
func (ch *channel) shutdown(message string) {
	if !ch.c.removeChannel(ch) {
		return
	}
	ch.close()
	ch.sendSystem("system", "error", message)
	ch.sendClose()
}

// close releases the channel's subscriptions and snapshot. It sends nothing.
func (ch *channel) close() {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	ch.closed = true
	if ch.cancel != nil {
		ch.cancel()
	}
	// Under ch.mu, so a concurrent refresh cannot register subscriptions after these leave.
	ch.s.idx.swap(ch.subs, nil)
	ch.subs, ch.pending = nil, nil
	ch.mu.Unlock()
	ch.s.leaveTopic(ch)
	ch.s.m.channels.Dec()
}

// refresh handles an access_token event (realtime-protocol.md §10.3).
func (ch *channel) refresh(raw string) {
	s := ch.s
	ch.mu.Lock()
	same := ch.tokenHash == s.tokenHash(raw)
	ch.mu.Unlock()
	if raw == "" || strings.HasPrefix(raw, "sb_") || same {
		return
	}
	tok, err := VerifyToken(s.cfg.Secret, raw, s.now())
	if err != nil {
		ch.shutdown(err.(*TokenError).Message)
		return
	}
	grant, err := s.policy.Authorize(tok.Claims, ch.subTopic)
	if err != nil || !grant.Allow {
		var je *JoinError
		switch {
		case err == nil:
		case errors.As(err, &je):
			// The policy's normal way to refuse, which any client can trigger
			// in a loop: not worth more than a debug line (join logs none).
			s.log.Debug("realtime: token refresh refused by the policy", "topic", ch.topic, "err", err)
		default:
			s.logPolicyFailure(ch.topic, err)
		}
		ch.shutdown("You no longer have permission to read from this Channel topic: " + ch.subTopic)
		return
	}
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	ch.tokenHash, ch.exp = s.tokenHash(raw), tok.Exp
	key := grantKey(grant.Rows)
	sameRows := key == ch.grantKey
	ch.grantKey = key
	ch.mu.Unlock()
	// A new token may expire sooner than the one it replaces.
	ch.c.chanMu.Lock()
	ch.c.noteExpiry(tok.Exp)
	ch.c.chanMu.Unlock()
	if len(ch.bindings) == 0 {
		return
	}
	if sameRows {
		ch.sendSubscriptionStatus()
		return
	}
	subs, subErr := s.buildSubs(ch, grant)
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	s.idx.swap(ch.subs, subs) // ch.mu before idx.mu, never the reverse
	ch.subs, ch.subErr, ch.syncing = subs, subErr, true
	ch.mu.Unlock()
	ch.sendSubscriptionStatus()
	ch.startSync(subs)
}

// grantKey renders a grant's rows canonically; nil and empty differ (all rows vs none).
func grantKey(rows map[string]map[string]string) string {
	if rows == nil {
		return "*"
	}
	var parts []string
	for t, cols := range rows {
		for c, v := range cols {
			parts = append(parts, t+"\x00"+c+"\x00"+v)
		}
		parts = append(parts, t)
	}
	sort.Strings(parts)
	return strings.Join(parts, "\x01")
}
