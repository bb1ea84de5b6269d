package bench

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/gobwas/ws"
)

// The floor server: the least a Go server can do and still answer
// BenchmarkWatchParts (watchparts_test.go) as dollr does, so that what it
// costs is what the protocol costs on this machine's loopback.

// floorEnv makes the test binary serve as the floor server (TestMain).
const floorEnv = "DOLLR_BENCH_FLOOR_SERVER"

// floorStatusBody is the size and shape of a Status API answer.
var floorStatusBody = []byte(`{"id":1,"reference_id":"6f1c2d7e-4b0a-4c55-9a47-2b8f3e1d9c10","status":"PROCESSING",` +
	`"currency":"USD","amount":"100.00","payer_amount":"100.00","payee_amount":"100.00","provider":"PAWAPAY",` +
	`"method":"MTN_MOMO_LBR","created_at":"2026-11-26T10:00:00.000000Z","updated_at":"2026-11-26T10:00:00.500000Z"}`)

// runFloorServer serves the floor on two loopback ports, prints them, and
// exits when its standard input closes (the benchmark ended or died).
func runFloorServer() {
	viaHTTP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("%s %s\n", viaHTTP.Addr(), raw.Addr())
	go func() { _ = http.Serve(viaHTTP, http.HandlerFunc(floorHTTP)) }()
	go serveRawFloor(raw)
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func floorHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/realtime/v1/websocket" {
		nc, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
		if err != nil {
			return
		}
		floorSocket(nc, rw.Reader)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(floorStatusBody)
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// serveRawFloor upgrades without net/http: read the request's header lines,
// answer 101, then the same socket loop.
func serveRawFloor(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			br := bufio.NewReaderSize(nc, 1024)
			var key string
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					nc.Close()
					return
				}
				if len(line) <= 2 {
					break
				}
				if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Sec-WebSocket-Key") {
					key = string(bytes.TrimSpace(v))
				}
			}
			sum := sha1.Sum([]byte(key + wsGUID))
			resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
			if _, err := io.WriteString(nc, resp); err != nil {
				nc.Close()
				return
			}
			floorSocket(nc, br)
		}()
	}
}

// floorSocket answers joins and heartbeats with canned frames until the
// client closes.
func floorSocket(nc net.Conn, br *bufio.Reader) {
	defer nc.Close()
	var in, out []byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil || h.Length > 1<<16 {
			return
		}
		if int64(cap(in)) < h.Length {
			in = make([]byte, h.Length)
		}
		in = in[:h.Length]
		if _, err := io.ReadFull(br, in); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(in, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			_, _ = nc.Write(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			return
		case ws.OpText:
			f, err := parseFrame(in)
			if err != nil {
				return
			}
			out = out[:0]
			switch string(f.event) {
			case "heartbeat":
				out = appendText(out, `[null,"`+string(f.ref)+`","phoenix","phx_reply",{"status":"ok","response":{}}]`)
			case "phx_join":
				jr, topic := string(f.joinRef), string(f.topic)
				out = appendText(out, `["`+jr+`","`+string(f.ref)+`","`+topic+`","phx_reply",{"status":"ok","response":`+
					`{"postgres_changes":[{"id":31339675,"event":"*","schema":"public","table":"checkout_payment_intent_public_status",`+
					`"filter":"reference_id=eq.x"}]}}]`)
				out = appendText(out, `["`+jr+`",null,"`+topic+`","system",{"message":"Subscribed to PostgreSQL",`+
					`"status":"ok","extension":"postgres_changes","channel":"`+strings.TrimPrefix(topic, "realtime:")+`"}]`)
			}
			if len(out) > 0 {
				if _, err := nc.Write(out); err != nil {
					return
				}
			}
		}
	}
}

// appendText appends a server's text frame carrying payload.
func appendText(b []byte, payload string) []byte {
	return append(b, ws.MustCompileFrame(ws.NewTextFrame([]byte(payload)))...)
}
