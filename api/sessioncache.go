package api

import (
	"sync"

	"github.com/dollr/dollr"
)

// sessionSources remembers which source type recent checkout sessions pay,
// for POST /v1/realtime-keys/collection. A merchant asks for a realtime key
// right after creating the session and executing the payment, and the
// session read was a quarter of that request's CPU (docs/benchmarks.md).
// A session's merchant and source type never change and sessions are never
// deleted, so an entry cannot go stale; anything not remembered (older, or
// created by another server on a shared database) is read from the store.
type sessionSources struct {
	mu        sync.Mutex
	cur, prev map[sessionKey]dollr.SourceType // two generations: at most 2×limit entries
	limit     int
}

type sessionKey struct{ merchantID, sessionID int64 }

const sessionSourcesLimit = 16 << 10

func newSessionSources(limit int) *sessionSources {
	return &sessionSources{cur: make(map[sessionKey]dollr.SourceType), limit: limit}
}

func (c *sessionSources) get(merchantID, sessionID int64) (dollr.SourceType, bool) {
	k := sessionKey{merchantID, sessionID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.cur[k]; ok {
		return t, true
	}
	t, ok := c.prev[k]
	if ok {
		c.putLocked(k, t)
	}
	return t, ok
}

func (c *sessionSources) put(merchantID, sessionID int64, t dollr.SourceType) {
	c.mu.Lock()
	c.putLocked(sessionKey{merchantID, sessionID}, t)
	c.mu.Unlock()
}

func (c *sessionSources) putLocked(k sessionKey, t dollr.SourceType) {
	if len(c.cur) >= c.limit {
		c.prev, c.cur = c.cur, make(map[sessionKey]dollr.SourceType, c.limit)
	}
	c.cur[k] = t
}
