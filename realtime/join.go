package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/valyala/fastjson"

	"github.com/dollr/dollr"
)

// binding is one entry of a join's config.postgres_changes.
type binding struct {
	entry  []byte // echoed in the join reply: the client's entry plus "id"
	id     int64
	action string // "*", "INSERT", "UPDATE" or "DELETE"
	events uint8
	schema string
	table  string
	filter []rawCondition
	sel    []string
	err    string // why the binding cannot subscribe (a system error message)
}

// joinParams is the part of a phx_join payload the server uses (§4).
type joinParams struct {
	token            string
	replicationReady bool
	bindings         []*binding
	bcastSelf        bool
	bcastAck         bool
	presence         presenceConfig
}

func parseJoinPayload(payload []byte) joinParams {
	var p joinParams
	ps := parsers.Get()
	defer parsers.Put(ps)
	v, err := parseJSON(ps, payload)
	if err != nil {
		return p
	}
	root := objectOf(v)
	if root == nil {
		return p
	}
	for _, key := range []string{"access_token", "user_token"} {
		if s, _ := stringOf(member(root, key)); s != "" {
			p.token = s
			break
		}
	}
	cfg := objectOf(member(root, "config"))
	if cfg == nil {
		return p
	}
	// Each part of the config is used if it has the right shape, as the real
	// server uses a payload as far as it parses.
	if bc := objectOf(member(cfg, "broadcast")); bc != nil {
		p.bcastAck = flexBool(member(bc, "ack"))
		p.bcastSelf = flexBool(member(bc, "self"))
		p.replicationReady = flexBool(member(bc, "replication_ready"))
	}
	if pr := objectOf(member(cfg, "presence")); pr != nil {
		p.presence.enabled = flexBool(member(pr, "enabled"))
		p.presence.key, _ = stringOf(member(pr, "key"))
	}
	for _, e := range arrayOf(member(cfg, "postgres_changes")) {
		p.bindings = append(p.bindings, parseBinding(e))
	}
	return p
}

// flexBool reads true/false or "true"/"false" in any case, as Ecto's flexible booleans.
func flexBool(v *fastjson.Value) bool {
	if v == nil {
		return false
	}
	switch v.Type() {
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeString:
		s, _ := stringOf(v)
		return strings.EqualFold(s, "true")
	}
	return false
}

func jsonUnmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("empty")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func parseBinding(raw *fastjson.Value) *binding {
	b := &binding{action: "*", events: evAll}
	m, _ := toAny(raw).(map[string]any)
	if m == nil {
		m = map[string]any{}
		b.err = "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: " + inspectMap(m)
	}
	for k, v := range m { // the real server drops nil members before using the map
		if v == nil {
			delete(m, k)
		}
	}
	canon := appendCanonical(nil, m, -1)
	h := fnv.New32a()
	h.Write(canon)
	b.id = int64(h.Sum32() & (1<<27 - 1)) // the range of Erlang's phash2, which the real server uses
	b.entry = appendCanonical(canon[:0:0], m, b.id)
	if b.err != "" {
		return b
	}

	if ev, ok := m["event"].(string); ok && ev != "*" {
		switch up := strings.ToUpper(ev); up {
		case "INSERT", "UPDATE", "DELETE":
			b.action, b.events = up, eventBit(dollr.ChangeType(up))
		}
	}
	if sel, ok := m["select"]; ok {
		switch x := sel.(type) {
		case []any:
			for _, c := range x {
				if s, ok := c.(string); ok {
					b.sel = append(b.sel, s)
				}
			}
		case string:
			b.err = "Error parsing `select` params: expected a list of column name strings, e.g. select: [\"col1\", \"col2\"]"
			return b
		}
	}
	schema, hasSchema := m["schema"].(string)
	table, hasTable := m["table"].(string)
	filter, hasFilter := m["filter"].(string)
	_, schemaKey := m["schema"]
	_, tableKey := m["table"]
	_, filterKey := m["filter"]
	switch {
	case hasSchema && hasTable && hasFilter:
		conds, err := parseFilter(filter)
		if err != nil {
			b.err = err.Error()
			return b
		}
		b.schema, b.table, b.filter = schema, table, conds
	case hasSchema && hasTable && !filterKey:
		b.schema, b.table = schema, table
	case hasSchema && !tableKey && !filterKey:
		b.schema, b.table = schema, "*"
	case hasTable && !schemaKey && !filterKey:
		b.schema, b.table = "public", table
	default:
		b.err = "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: " + inspectMap(m)
		return b
	}
	if b.sel != nil && (b.schema == "*" || b.table == "*") {
		b.err = "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
	}
	return b
}

// inspectMap renders a map roughly as Elixir's inspect does, for error messages.
func inspectMap(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, _ := json.Marshal(m[k])
		parts[i] = strconv.Quote(k) + " => " + string(v)
	}
	return "%{" + strings.Join(parts, ", ") + "}"
}

// logParams renders a binding as the real server logs subscription params.
func (b *binding) logParams() string {
	sel := "nil"
	if b.sel != nil {
		sel = inspectList(b.sel...)
	}
	return fmt.Sprintf("event: %s, schema: %s, table: %s, filters: %s, select: %s",
		b.action, b.schema, b.table, describeConditions(b.filter), sel)
}

const (
	reasonUnknown    = "Unknown Error on Channel"
	msgSubscribed    = "Subscribed to PostgreSQL"
	unmatchedPayload = `{"status":"error","response":{"reason":"unmatched topic"}}`
)

// join handles phx_join (realtime-protocol.md §4–§6).
func (c *conn) join(f frame) {
	s := c.s
	joinRef := f.joinRef
	if joinRef == nil {
		joinRef = f.ref
	}
	fail := func(outcome, reason string) {
		s.m.joins.WithLabelValues(outcome).Inc()
		payload := append([]byte(`{"status":"error","response":{"reason":`), appendJSONString(nil, reason)...)
		payload = append(payload, "}}"...)
		msg := outMsg{op: ws.OpText, data: encodeFrame(c.vsn, joinRef, f.ref, f.topic, "phx_reply", payload)}
		d := s.cfg.JoinErrorDelay
		if d <= 0 {
			c.send(msg)
			return
		}
		// A client that piles up refused joins faster than they are answered is
		// cut off, as the real server does past its joins-per-second limit.
		if c.refusing.Add(1) > maxPendingRefusals {
			c.send(outMsg{op: ws.OpText, data: encodeFrame(c.vsn, joinRef, f.ref, f.topic, "phx_reply",
				[]byte(`{"status":"error","response":{"reason":"ClientJoinRateLimitReached: Too many joins per second"}}`))})
			c.goAway(ws.StatusPolicyViolation, "too many joins")
			return
		}
		time.AfterFunc(d, func() {
			c.refusing.Add(-1)
			c.send(msg)
		})
	}
	subTopic, ok := strings.CutPrefix(f.topic, "realtime:")
	if !ok {
		// No channel route matches, so Phoenix answers outside any join:
		// realtime-protocol.md §11, "reply `[null, ref, topic, "phx_reply",
		// {"status":"error","response":{"reason":"unmatched topic"}}]`".
		s.m.joins.WithLabelValues(outcomeBadTopic).Inc()
		c.send(outMsg{op: ws.OpText, data: encodeFrame(c.vsn, nil, f.ref, f.topic, "phx_reply", []byte(unmatchedPayload))})
		return
	}
	if subTopic == "" {
		fail(outcomeBadTopic, "TopicNameRequired: You must provide a topic name")
		return
	}
	// A second join of a joined topic replaces the first (§3).
	if old := c.channel(f.topic); old != nil && c.removeChannel(old) {
		old.close()
		old.sendClose()
	}
	c.chanMu.Lock()
	n := len(c.channels)
	c.chanMu.Unlock()
	if n >= s.cfg.MaxChannels {
		fail(outcomeLimit, "ChannelRateLimitReached: Too many channels")
		return
	}
	p := parseJoinPayload(f.payload)
	tok := c.apikey
	if p.token != "" && !strings.HasPrefix(p.token, "sb_") {
		t, err := VerifyToken(s.cfg.Secret, p.token, s.now())
		if err != nil {
			fail(outcomeInvalidToken, err.(*TokenError).Reason())
			return
		}
		tok = t
	} else if now := s.now(); !tok.Exp.After(now) {
		fail(outcomeInvalidToken, errTokenExpired(now.Unix()-tok.Exp.Unix()).Reason())
		return
	}
	grant, err := s.policy.Authorize(tok.Claims, subTopic)
	if err != nil {
		var je *JoinError
		if errors.As(err, &je) {
			fail(outcomeUnauthorized, je.Error())
		} else {
			s.logPolicyFailure(f.topic, err)
			fail(outcomeError, reasonUnknown)
		}
		return
	}
	if !grant.Allow {
		fail(outcomeUnauthorized, "Unauthorized: You do not have permissions to read from this Channel topic: "+subTopic)
		return
	}

	ch := &channel{
		s: s, c: c, topic: f.topic, subTopic: subTopic, topicJSON: appendJSONString(nil, f.topic),
		joinRef: joinRef, bindings: p.bindings, bcastSelf: p.bcastSelf, bcastAck: p.bcastAck,
		pres: p.presence, tokenHash: s.tokenHash(tok.Raw), exp: tok.Exp, grantKey: grantKey(grant.Rows), syncing: true,
	}
	if ch.pres.key == "" && ch.pres.enabled {
		ch.pres.key = newPresenceKey()
	}
	ch.subs, ch.subErr = s.buildSubs(ch, grant)
	s.m.channels.Inc()
	s.joinTopic(ch)
	// Until the connection lists it, nothing else would close the channel: if
	// the rest of the join panics (a Snapshotter, say), close it here.
	listed := false
	defer func() {
		if !listed {
			ch.close()
		}
	}()
	// Registered before the snapshot and the reply: every change committed from
	// here on reaches the channel (held until the reply, the system message and
	// the snapshot are out), and every change after the reply is newer than the
	// snapshot.
	s.idx.swap(nil, ch.subs)
	syncGen, snapGroups, snapshot, snapErr := ch.syncNow(ch.subs)

	reply := make([]byte, 0, 64+128*len(p.bindings))
	reply = append(reply, `{"status":"ok","response":{"postgres_changes":[`...)
	for i, b := range p.bindings {
		if i > 0 {
			reply = append(reply, ',')
		}
		reply = append(reply, b.entry...)
		b.entry = nil // only the reply needs it
	}
	reply = append(reply, "]}}"...)
	c.cork()
	defer c.uncork()
	c.send(outMsg{op: ws.OpText, data: encodeFrame(c.vsn, joinRef, f.ref, f.topic, "phx_reply", reply)})
	s.m.joins.WithLabelValues(outcomeOK).Inc()
	if p.replicationReady { // changes flow in-process: replication is always ready
		ch.sendSystem("system", "ok", "Replication connection established")
	}
	if ch.pres.enabled {
		ch.sendPresenceState()
	}
	if snapErr != nil {
		// The subscription is live but its current rows could not be read
		// (the database is down, say): say so and keep reading them.
		ch.retrySync(syncGen, snapGroups)
	} else {
		if len(p.bindings) > 0 {
			ch.sendSubscriptionStatus()
		}
		ch.flush(syncGen, snapshot)
	}
	// Only now does the connection list the channel, which makes it visible to
	// the sweeper (expiry), a leave and teardown: whatever closes it from here
	// on finds it in the topic map and the index to remove it from, and its
	// phx_close queues behind the reply. (Listed before the topic map, a
	// channel the sweeper expired in between stayed in the map for good.) A
	// token that expired meanwhile ends the channel at the next sweep.
	c.chanMu.Lock()
	if c.gone {
		c.chanMu.Unlock()
		return // closed by the deferred close
	}
	c.channels = append(c.channels, ch)
	listed = true
	c.noteExpiry(ch.exp)
	c.chanMu.Unlock()
}

// buildSubs compiles the channel's bindings against the served tables and the
// grant. On any error no subscription is made and the error is returned as
// the system message, as the real server creates a channel's subscriptions in
// one transaction.
func (s *Server) buildSubs(ch *channel, grant Grant) ([]*sub, string) {
	var subs []*sub
	for _, b := range ch.bindings {
		if b.err != "" {
			return nil, b.err
		}
		matched := 0
		for _, t := range s.list {
			if !likeMatch(b.schema, t.schema) || !likeMatch(b.table, t.name) {
				continue
			}
			matched++
			conds, err := compileConditions(t, b.filter)
			if err == nil {
				for _, name := range b.sel {
					if _, ok := t.colIndex[name]; !ok {
						err = raiseError("invalid column for select %s", name)
						break
					}
				}
			}
			if err != nil {
				return nil, "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [" +
					b.logParams() + "]. Exception: " + err.Error()
			}
			var all []condition
			if grant.Rows != nil {
				rows, visible := grant.Rows[t.id]
				if !visible {
					continue
				}
				gconds, err := grantConditions(t, rows)
				if err != nil {
					s.log.Error("realtime: grant names a condition the table cannot hold; table hidden", "table", t.id, "err", err)
					continue
				}
				all = gconds
			}
			all = append(all, conds...)
			sb := &sub{ch: ch, id: b.id, table: t, events: b.events, conds: all}
			sb.chooseKey()
			subs = append(subs, sb)
		}
		if matched == 0 {
			return nil, "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [" +
				b.logParams() + "]"
		}
	}
	return subs, ""
}

// grantConditions turns a grant's equalities into conditions, in column order.
func grantConditions(t *table, rows map[string]string) ([]condition, error) {
	cols := make([]string, 0, len(rows))
	for c := range rows {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	out := make([]condition, 0, len(cols))
	for _, col := range cols {
		c, err := compileCondition(t, rawCondition{column: col, op: "eq", value: rows[col]})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// appendCanonical appends m as json.Marshal renders it (keys sorted, the same
// escaping), with "id" set to id when id >= 0, without reflection for the
// strings a binding is made of. The binding id hashes this text.
func appendCanonical(dst []byte, m map[string]any, id int64) []byte {
	keys := make([]string, 0, len(m)+1)
	for k := range m {
		if k != "id" || id < 0 {
			keys = append(keys, k)
		}
	}
	if id >= 0 {
		keys = append(keys, "id")
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendMarshaled(dst, k)
		dst = append(dst, ':')
		if k == "id" && id >= 0 {
			dst = strconv.AppendInt(dst, id, 10)
			continue
		}
		dst = appendMarshaled(dst, m[k])
	}
	return append(dst, '}')
}

// appendMarshaled appends json.Marshal(v), quoting plain ASCII strings itself.
func appendMarshaled(dst []byte, v any) []byte {
	if s, ok := v.(string); ok && plainASCII(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// plainASCII reports whether json.Marshal would write s between quotes unchanged.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
