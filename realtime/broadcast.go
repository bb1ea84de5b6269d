package realtime

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/gobwas/ws"
)

// Broadcast and presence (realtime-protocol.md §12, §13) between the channels
// of one topic on this server. Channels are public: whoever may join a topic
// may broadcast on it and see its presence.

func (s *Server) joinTopic(ch *channel) {
	s.topicMu.Lock()
	s.topics[ch.topic] = append(s.topics[ch.topic], ch)
	s.topicMu.Unlock()
}

func (s *Server) leaveTopic(ch *channel) {
	s.topicMu.Lock()
	l := s.topics[ch.topic]
	for i, x := range l {
		if x == ch {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			l = l[:len(l)-1]
			break
		}
	}
	if len(l) == 0 {
		delete(s.topics, ch.topic)
	} else {
		s.topics[ch.topic] = l
	}
	s.topicMu.Unlock()
	ch.mu.Lock()
	meta, key := ch.meta, ch.pres.key
	ch.meta = nil
	ch.mu.Unlock()
	if meta != nil {
		s.presenceDiff(ch.topic, key, nil, meta)
	}
}

func (s *Server) peers(topic string) []*channel {
	s.topicMu.Lock()
	defer s.topicMu.Unlock()
	return append([]*channel(nil), s.topics[topic]...)
}

// broadcast relays a client broadcast to the topic's channels (not back to the
// sender unless it joined with broadcast.self).
func (ch *channel) broadcast(f frame) {
	b := f.bcast
	size := len(f.payload)
	if b != nil {
		size = len(b.payload) + len(b.metadata)
	}
	if size > ch.s.cfg.MaxBroadcastPayload {
		// Dropped, as the real server drops a payload above its tenant's
		// max_payload_size_in_kb (realtime-protocol.md §12.1); its ack is
		// Phoenix's rendering of {:error, :payload_size_exceeded}.
		if ch.bcastAck && f.ref != nil {
			ch.c.reply(f, "error", []byte(`"payload_size_exceeded"`))
		}
		return
	}
	if ch.bcastAck && f.ref != nil {
		ch.c.reply(f, "ok", emptyObject)
	}
	except := ch
	if ch.bcastSelf {
		except = nil
	}
	switch {
	case b == nil:
		ch.s.relay(ch.topic, except, f.payload, nil)
	case b.json:
		ch.s.relay(ch.topic, except, broadcastPayload(b.event, b.payload, b.metadata), nil)
	default:
		ch.s.relay(ch.topic, except, nil, b)
	}
}

// broadcastPayload is the JSON form of a broadcast: {"type","event","payload","meta"?}.
func broadcastPayload(event string, payload, metadata []byte) []byte {
	p := append([]byte(`{"type":"broadcast","event":`), appendJSONString(nil, event)...)
	p = append(p, `,"payload":`...)
	p = append(p, payload...)
	if len(metadata) > 0 && json.Valid(metadata) {
		p = append(p, `,"meta":`...)
		p = append(p, metadata...)
	}
	return append(p, '}')
}

// relay sends a broadcast to the topic's channels but except: the JSON form
// to every client, or a raw binary payload (kind 4) to the clients that can
// decode it.
func (s *Server) relay(topic string, except *channel, jsonPayload []byte, raw *binaryBroadcast) {
	topicJSON := appendJSONString(nil, topic)
	var v1, v2 []byte
	for _, peer := range s.peers(topic) {
		if peer == except {
			continue
		}
		v := peer.c.vsn
		switch {
		case jsonPayload != nil && v == vsn2:
			if v2 == nil {
				v2 = appendFrame(nil, vsn2, nil, nil, topicJSON, "broadcast", jsonPayload)
			}
			peer.c.send(outMsg{op: ws.OpText, data: v2})
		case jsonPayload != nil:
			if v1 == nil {
				v1 = appendFrame(nil, vsn1, nil, nil, topicJSON, "broadcast", jsonPayload)
			}
			peer.c.send(outMsg{op: ws.OpText, data: v1})
		case v == vsn2:
			if v2 == nil {
				var ok bool
				if v2, ok = appendUserBroadcast(nil, topic, raw.event, raw.metadata, false, raw.payload); !ok {
					return
				}
			}
			peer.c.send(outMsg{op: ws.OpBinary, data: v2})
		}
	}
}

// BroadcastHandler serves the REST broadcast endpoints supabase-js uses for
// httpSend() and for send() on a channel it has not joined (realtime-protocol.md
// §12.2). Mount it at /realtime/v1/api/broadcast and /realtime/v1/api/broadcast/:
//
//	POST …/api/broadcast                                {"messages":[{"topic","event","payload"}]}
//	POST …/api/broadcast/<sub-topic>/events/<event>     the payload as the body
//
// The apikey header (or query parameter) must verify; the bearer token, or
// else the apikey, must be allowed to join each topic by the Policy. Success is 202.
func (s *Server) BroadcastHandler() http.Handler {
	return http.HandlerFunc(s.serveBroadcast)
}

type restMessage struct {
	Topic   string          `json:"topic"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

func (s *Server) serveBroadcast(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	key := r.Header.Get("apikey")
	if key == "" {
		key = r.URL.Query().Get("apikey")
	}
	if key == "" {
		refuse(w, http.StatusUnauthorized, errAPIKeyMissing.Upgrade)
		return
	}
	tok, err := s.verifyAPIKey(key)
	if err != nil {
		refuse(w, http.StatusUnauthorized, err.(*TokenError).Upgrade)
		return
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && bearer != "" && !strings.HasPrefix(bearer, "sb_") {
		if tok, err = VerifyToken(s.cfg.Secret, bearer, s.now()); err != nil {
			refuse(w, http.StatusUnauthorized, err.(*TokenError).Upgrade)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxMessageSize)+1))
	if err != nil || len(body) > s.cfg.MaxMessageSize {
		refuse(w, http.StatusRequestEntityTooLarge, "Payload too large")
		return
	}
	var msgs []restMessage
	at := strings.Index(r.URL.Path, "/api/broadcast")
	if at < 0 {
		refuse(w, http.StatusNotFound, "Not found")
		return
	}
	rest, _ := strings.CutPrefix(r.URL.Path[at+len("/api/broadcast"):], "/")
	if rest == "" {
		var batch struct {
			Messages []restMessage `json:"messages"`
		}
		if json.Unmarshal(body, &batch) != nil {
			refuse(w, http.StatusBadRequest, "Invalid body")
			return
		}
		msgs = batch.Messages
	} else {
		subTopic, event, ok := strings.Cut(rest, "/events/")
		if !ok || subTopic == "" || !json.Valid(body) {
			refuse(w, http.StatusBadRequest, "Invalid request")
			return
		}
		msgs = []restMessage{{Topic: subTopic, Event: event, Payload: body}}
	}
	for _, m := range msgs {
		grant, err := s.policy.Authorize(tok.Claims, m.Topic)
		if err != nil || !grant.Allow || m.Topic == "" {
			refuse(w, http.StatusUnauthorized, "Unauthorized: You do not have permissions to write to this Channel topic: "+m.Topic)
			return
		}
	}
	for _, m := range msgs {
		payload := m.Payload
		if len(payload) == 0 {
			payload = emptyObject
		}
		if len(payload) > s.cfg.MaxBroadcastPayload {
			continue // dropped, as over the websocket
		}
		s.relay("realtime:"+m.Topic, nil, broadcastPayload(m.Event, payload, nil), nil)
	}
	w.WriteHeader(http.StatusAccepted)
}

// presence handles track and untrack.
func (ch *channel) presence(f frame) {
	var p struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if jsonUnmarshal(f.payload, &p) != nil {
		ch.c.reply(f, "error", []byte(`{"reason":"Presence track payload must be a map"}`))
		return
	}
	switch p.Event {
	case "track":
		var meta map[string]any
		if jsonUnmarshal(p.Payload, &meta) != nil || meta == nil {
			ch.c.reply(f, "error", []byte(`{"reason":"Presence track payload must be a map"}`))
			return
		}
		meta["phx_ref"] = newPhxRef()
		enc, err := json.Marshal(meta)
		if err != nil {
			ch.c.reply(f, "error", []byte(`{"reason":"Presence track payload must be a map"}`))
			return
		}
		ch.c.reply(f, "ok", emptyObject)
		ch.mu.Lock()
		if ch.pres.key == "" {
			ch.pres.key = newPresenceKey()
		}
		old, key := ch.meta, ch.pres.key
		ch.meta = enc
		closed := ch.closed
		ch.mu.Unlock()
		if !closed {
			ch.s.presenceDiff(ch.topic, key, enc, old)
		}
	case "untrack":
		ch.c.reply(f, "ok", emptyObject)
		ch.mu.Lock()
		if ch.pres.key == "" {
			ch.pres.key = newPresenceKey()
		}
		old := ch.meta
		ch.meta = nil
		ch.mu.Unlock()
		if old != nil {
			ch.s.presenceDiff(ch.topic, ch.pres.key, nil, old)
		}
	default:
		ch.c.reply(f, "ok", emptyObject)
	}
}

// sendPresenceState pushes the topic's tracked presences to a channel that just joined.
func (ch *channel) sendPresenceState() {
	state := map[string]map[string][]json.RawMessage{}
	for _, peer := range ch.s.peers(ch.topic) {
		peer.mu.Lock()
		meta, key := peer.meta, peer.pres.key
		peer.mu.Unlock()
		if meta == nil {
			continue
		}
		e := state[key]
		if e == nil {
			e = map[string][]json.RawMessage{"metas": nil}
			state[key] = e
		}
		e["metas"] = append(e["metas"], meta)
	}
	payload, _ := json.Marshal(state)
	ch.c.send(outMsg{op: ws.OpText, data: appendFrame(nil, ch.c.vsn, ch.joinRef, nil, ch.topicJSON, "presence_state", payload)})
}

// presenceDiff tells the topic's presence-enabled channels that key joined with
// meta joined and/or left with meta left.
func (s *Server) presenceDiff(topic, key string, joined, left []byte) {
	diff := map[string]map[string]map[string][]json.RawMessage{"joins": {}, "leaves": {}}
	if joined != nil {
		diff["joins"][key] = map[string][]json.RawMessage{"metas": {joined}}
	}
	if left != nil {
		diff["leaves"][key] = map[string][]json.RawMessage{"metas": {left}}
	}
	payload, _ := json.Marshal(diff)
	topicJSON := appendJSONString(nil, topic)
	var frames [3][]byte
	for _, peer := range s.peers(topic) {
		if !peer.pres.enabled {
			continue
		}
		v := peer.c.vsn
		if frames[v] == nil {
			frames[v] = appendFrame(nil, v, nil, nil, topicJSON, "presence_diff", payload)
		}
		peer.c.send(outMsg{op: ws.OpText, data: frames[v]})
	}
}

func newPresenceKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newPhxRef() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "F" + base64.RawURLEncoding.EncodeToString(b[:])
}
