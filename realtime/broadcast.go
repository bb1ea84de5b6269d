package realtime

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

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
	if ch.bcastAck && f.ref != nil {
		ch.c.reply(f, "ok", emptyObject)
	}
	var jsonPayload []byte
	b := f.bcast
	switch {
	case b == nil:
		jsonPayload = f.payload
	case b.json:
		var p []byte
		p = append(p, `{"type":"broadcast","event":`...)
		p = appendJSONString(p, b.event)
		p = append(p, `,"payload":`...)
		p = append(p, b.payload...)
		if len(b.metadata) > 0 && json.Valid(b.metadata) {
			p = append(p, `,"meta":`...)
			p = append(p, b.metadata...)
		}
		jsonPayload = append(p, '}')
	}
	var v1, v2 []byte
	for _, peer := range ch.s.peers(ch.topic) {
		if peer == ch && !ch.bcastSelf {
			continue
		}
		v := peer.c.vsn
		switch {
		case jsonPayload != nil && v == vsn2:
			if v2 == nil {
				v2 = appendFrame(nil, vsn2, nil, nil, ch.topicJSON, "broadcast", jsonPayload)
			}
			peer.c.send(outMsg{op: ws.OpText, data: v2})
		case jsonPayload != nil:
			if v1 == nil {
				v1 = appendFrame(nil, vsn1, nil, nil, ch.topicJSON, "broadcast", jsonPayload)
			}
			peer.c.send(outMsg{op: ws.OpText, data: v1})
		case v == vsn2: // raw binary payloads reach only binary-capable clients
			if v2 == nil {
				var ok bool
				if v2, ok = appendUserBroadcast(nil, ch.topic, b.event, b.metadata, false, b.payload); !ok {
					return
				}
			}
			peer.c.send(outMsg{op: ws.OpBinary, data: v2})
		}
	}
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
