package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/google/uuid"

	"github.com/dollr/dollr/client"
	"github.com/dollr/dollr/pgtest"
)

// The 60 s realtime-against-polling target asks a whole watch (a realtime key,
// a socket's connect, upgrade and join, the minute's heartbeats, its close) to
// cost the server under 1.5 Status API polls. BenchmarkWatchParts measures
// each part's server CPU against three servers in one run, the same client
// loop driving each:
//
//   - dollr: `dollr serve`, as the bench scenarios meet it;
//   - floor: a server that does nothing but the protocol (net/http, gobwas/ws
//     for the upgrade, canned replies, no token, no database), so what it
//     costs is what any Go server pays on this machine's loopback;
//   - raw: the floor's socket without net/http: accept, a hand-read upgrade
//     request, the same canned replies (what bypassing net/http could save).
//
// Run it with (a few minutes):
//
//	go test -run XXX -bench BenchmarkWatchParts -benchtime 10000x -count 3 ./bench -args -watch-clients=16
//
// Each server runs in its own process so /proc gives its CPU alone. With
// DOLLR_BENCH_BASELINE=<another dollr binary> a fourth server, "baseline",
// runs the same loop: two builds compared in one run. With
// DOLLR_BENCH_DATABASE_URL=<a PostgreSQL database> and DOLLR_BENCH_DB_PID=<its
// postmaster>, "dollr-pg" is dollr on PostgreSQL, the database's CPU per op
// reported beside it.

// watchTarget is one server the benchmark drives.
type watchTarget struct {
	name    string
	pid     int
	dbPID   int    // a local database's postmaster, or 0
	baseURL string // for polls and keys; "" when the target has no HTTP API
	wsURL   string
	bearer  string
	keyBody []byte
	refID   string // a payment that exists, for polls
	join    []byte // the join frame's payload
	topic   string
}

// startFloor runs the test binary as the floor server; both ports' targets.
func startFloor(tb testing.TB) (viaHTTP, raw *watchTarget) {
	cmd := exec.Command(os.Args[0], "-test.run", "XXX")
	cmd.Env = append(os.Environ(), floorEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("floor server: %v", err)
	}
	addrs := strings.Fields(line)
	if len(addrs) != 2 {
		tb.Fatalf("floor server printed %q", line)
	}
	join := joinPayloadFor(uuid.NewString(), "not-checked")
	topic := "realtime:payment-intent:1:" + uuid.NewString()
	viaHTTP = &watchTarget{name: "floor", pid: cmd.Process.Pid, baseURL: "http://" + addrs[0], bearer: "not-checked",
		keyBody: []byte(`{}`), refID: uuid.NewString(), join: join, topic: topic,
		wsURL: "ws://" + addrs[0] + "/realtime/v1/websocket?apikey=x&vsn=2.0.0"}
	raw = &watchTarget{name: "raw", pid: cmd.Process.Pid, join: join, topic: topic,
		wsURL: "ws://" + addrs[1] + "/realtime/v1/websocket?apikey=x&vsn=2.0.0"}
	return viaHTTP, raw
}

// startDollrTarget runs `dollr serve` with one executed payment to poll, and a
// second payment, not yet executed, to mint keys for and join: a checkout page
// subscribes before its payer pays.
func startDollrTarget(tb testing.TB, name, bin string, serveFlags ...string) *watchTarget {
	s := startServerBinary(tb, bin, serveFlags...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Defaults("checkout")
	api, err := client.New(client.Config{BaseURL: s.creds.BaseURL, ClientID: s.creds.ClientID, ClientSecret: s.creds.ClientSecret})
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{o: o, api: api, prog: newProgress(nil, "")}
	ps, err := e.preparePayments(ctx, 2, o.Phone, true)
	if err != nil {
		tb.Fatal(err)
	}
	polled, p := ps[0], ps[1]
	if _, err := e.execute(ctx, polled); err != nil {
		tb.Fatal(err)
	}
	bearer, err := e.api.AccessToken(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	keyBody, _ := json.Marshal(client.RealtimeKeyRequest{SessionID: p.sessionID, SourceType: p.sourceType, ReferenceID: p.referenceID})
	wsURL, err := realtimeURL(s.creds.SupabaseURL, s.creds.SupabaseAnonKey)
	if err != nil {
		tb.Fatal(err)
	}
	return &watchTarget{name: name, pid: s.cmd.Process.Pid, baseURL: s.creds.BaseURL, wsURL: wsURL, bearer: bearer,
		keyBody: keyBody, refID: polled.referenceID, join: joinPayloadFor(p.referenceID, p.key),
		topic: fmt.Sprintf("realtime:payment-intent:%d:%s", p.sessionID, p.referenceID)}
}

// cpu is the server's and its database's user+system seconds so far.
func (t *watchTarget) cpu(b *testing.B) (server, db float64) {
	s, err := procSample(t.pid)
	if err != nil {
		b.Fatal(err)
	}
	if t.dbPID > 0 {
		if db, err = treeCPU(t.dbPID); err != nil {
			b.Fatal(err)
		}
	}
	return s.cpu, db
}

// watchClients is how many clients drive a server at once: 1 leaves the
// server idle between operations (each pays its wake-ups, as sparse checkouts
// do); more keep it busy, as the bench scenarios' bursts do.
var watchClients = flag.Int("watch-clients", 1, "BenchmarkWatchParts: concurrent clients per server")

// measure runs b.N operations over *watchClients clients, each with its own
// op from setup, and reports the target's CPU per op (and its database's).
func measure(b *testing.B, t *watchTarget, setup func() (op func() error, cleanup func(), err error)) (server, db float64) {
	n := max(*watchClients, 1)
	ops := make([]func() error, n)
	for i := range ops {
		op, cleanup, err := setup()
		if err != nil {
			b.Fatal(err)
		}
		ops[i] = op
		b.Cleanup(cleanup)
	}
	var next atomic.Int64
	errs := make(chan error, n)
	b.ResetTimer()
	serverBefore, dbBefore := t.cpu(b)
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	serverAfter, dbAfter := t.cpu(b)
	server = (serverAfter - serverBefore) / float64(b.N) * 1e6
	b.ReportMetric(server, "server-µs/op")
	if t.dbPID > 0 {
		db = (dbAfter - dbBefore) / float64(b.N) * 1e6
		b.ReportMetric(db, "db-µs/op")
	}
	return server, db
}

func noCleanup() {}

func (t *watchTarget) request(hc *http.Client, method, path string, body []byte) error {
	req, err := http.NewRequest(method, t.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}

// socket is the benchmark's side of one realtime socket.
type socket struct {
	nc  net.Conn
	br  io.Reader
	ref int
}

func (t *watchTarget) dial() (*socket, error) {
	nc, br, _, err := ws.Dial(context.Background(), t.wsURL)
	if err != nil {
		return nil, err
	}
	s := &socket{nc: nc, br: nc}
	if br != nil {
		s.br = br
	}
	return s, nil
}

// roundTrip sends one client frame and reads server frames until one
// contains want.
func (s *socket) roundTrip(frame []byte, want string) error {
	_ = s.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientText(s.nc, frame); err != nil {
		return err
	}
	for {
		h, err := ws.ReadHeader(s.br)
		if err != nil {
			return err
		}
		if h.Length > 1<<20 {
			return fmt.Errorf("%d-byte frame", h.Length)
		}
		msg := make([]byte, h.Length)
		if _, err := io.ReadFull(s.br, msg); err != nil {
			return err
		}
		switch {
		case h.OpCode == ws.OpClose:
			return fmt.Errorf("server closed the socket: %q", msg)
		case h.OpCode != ws.OpText || !h.Fin:
			continue // the servers here send whole text frames; pings need no answer in a benchmark
		}
		if bytes.Contains(msg, []byte(want)) {
			return nil
		}
		if bytes.Contains(msg, []byte(`"status":"error"`)) {
			return fmt.Errorf("server: %s", msg)
		}
	}
}

func (s *socket) joinFrame(t *watchTarget) []byte {
	s.ref++
	ref := fmt.Sprint(s.ref)
	return fmt.Appendf(nil, `["%s","%s","%s","phx_join",%s]`, ref, ref, t.topic, t.join)
}

func (s *socket) heartbeatFrame() []byte {
	s.ref++
	return fmt.Appendf(nil, `[null,"%d","phoenix","heartbeat",{}]`, s.ref)
}

// close sends a close frame and waits for the server's, so the server's
// teardown falls inside the op that caused it.
func (s *socket) close() error {
	defer s.nc.Close()
	_ = s.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteFrame(s.nc, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		return err
	}
	for {
		h, err := ws.ReadHeader(s.br)
		if err != nil {
			return nil // the server closed first
		}
		if _, err := io.CopyN(io.Discard, s.br, h.Length); err != nil {
			return nil
		}
		if h.OpCode == ws.OpClose {
			return nil
		}
	}
}

// watchCosts holds one target's per-op server CPU, in µs, per part: one
// figure per -count.
type watchCosts map[string][]float64

// median of a part's figures, 0 when it was not run.
func (c watchCosts) median(part string) float64 {
	v := slices.Sorted(slices.Values(c[part]))
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// fixedWatch is what a 60 s watch costs before any event: a key request, a
// join and the minute's two heartbeats (supabase-js sends one every 25 s).
func (c watchCosts) fixedWatch() float64 {
	return c.median("key") + c.median("join") + 2*c.median("heartbeat")
}

// watchPart is one operation of a watch (or a poll) and how a client gets
// ready to repeat it.
type watchPart struct {
	name  string
	setup func() (op func() error, cleanup func(), err error)
}

// parts are the operations t supports: a poll and a key request over
// keep-alive HTTP, a join (connect, upgrade, join until "Subscribed", close)
// and a heartbeat on a joined socket.
func (t *watchTarget) parts(hc *http.Client) []watchPart {
	request := func(method, path string, body []byte) func() (func() error, func(), error) {
		return func() (func() error, func(), error) {
			return func() error { return t.request(hc, method, path, body) }, noCleanup, nil
		}
	}
	var out []watchPart
	if t.baseURL != "" {
		out = append(out,
			watchPart{"poll", request(http.MethodGet, "/v1/status/collection/"+t.refID, nil)},
			watchPart{"key", request(http.MethodPost, "/v1/realtime-keys/collection", t.keyBody)})
	}
	join := func() (*socket, error) {
		s, err := t.dial()
		if err != nil {
			return nil, err
		}
		if err := s.roundTrip(s.joinFrame(t), "Subscribed to PostgreSQL"); err != nil {
			s.nc.Close()
			return nil, err
		}
		return s, nil
	}
	return append(out,
		watchPart{"join", func() (func() error, func(), error) {
			return func() error {
				s, err := join()
				if err != nil {
					return err
				}
				return s.close()
			}, noCleanup, nil
		}},
		watchPart{"heartbeat", func() (func() error, func(), error) {
			s, err := join()
			if err != nil {
				return nil, nil, err
			}
			return func() error { return s.roundTrip(s.heartbeatFrame(), "phx_reply") }, func() { _ = s.close() }, nil
		}})
}

func BenchmarkWatchParts(b *testing.B) {
	floor, raw := startFloor(b)
	targets := []*watchTarget{startDollrTarget(b, "dollr", dollrBinary(b))}
	if other := os.Getenv("DOLLR_BENCH_BASELINE"); other != "" {
		targets = append(targets, startDollrTarget(b, "baseline", other))
	}
	if url := os.Getenv("DOLLR_BENCH_DATABASE_URL"); url != "" {
		pg := startDollrTarget(b, "dollr-pg", dollrBinary(b), "--database-url", url)
		if pid := os.Getenv("DOLLR_BENCH_DB_PID"); pid != "" {
			var err error
			if pg.dbPID, err = strconv.Atoi(pid); err != nil {
				b.Fatalf("DOLLR_BENCH_DB_PID: %v", err)
			}
		}
		targets = append(targets, pg)
	}
	targets = append(targets, floor, raw)
	var mu sync.Mutex
	costs := map[string]watchCosts{}
	for _, t := range targets {
		costs[t.name], costs[t.name+"+db"] = watchCosts{}, watchCosts{}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(*watchClients, 1)}}
		b.Cleanup(hc.CloseIdleConnections)
		for _, part := range t.parts(hc) {
			b.Run(t.name+"/"+part.name, func(b *testing.B) {
				server, db := measure(b, t, part.setup)
				if b.N < 1000 {
					return // the framework's probing run: too short for /proc's 10 ms ticks
				}
				mu.Lock()
				costs[t.name][part.name] = append(costs[t.name][part.name], server)
				if t.dbPID > 0 {
					costs[t.name+"+db"][part.name] = append(costs[t.name+"+db"][part.name], server+db)
				}
				mu.Unlock()
			})
		}
	}
	// What the parts say about the 60 s target, medians over -count. Events
	// are left out: they cost a watch and not polling, so these ratios are
	// upper bounds.
	polls := 30 * costs["dollr"].median("poll")
	runs := 0
	for _, c := range costs {
		for _, v := range c {
			runs = max(runs, len(v))
		}
	}
	fmt.Printf("server CPU per op, µs (median of %d), %d client(s):\n", runs, max(*watchClients, 1))
	var names []string
	for _, t := range targets {
		names = append(names, t.name, t.name+"+db")
	}
	for _, name := range names {
		c := costs[name]
		if len(c) == 0 {
			continue // filtered out by -bench, or no database measured
		}
		fmt.Printf("  %-11s", name)
		for _, part := range []string{"poll", "key", "join", "heartbeat"} {
			if len(c[part]) > 0 {
				fmt.Printf("  %s %6.1f", part, c.median(part))
			}
		}
		if len(c["poll"]) > 0 && len(c["key"]) > 0 && len(c["join"]) > 0 && len(c["heartbeat"]) > 0 {
			fmt.Printf("  | 60 s watch %5.0f µs: %4.1f× below its own 30 polls", c.fixedWatch(), 30*c.median("poll")/c.fixedWatch())
			if polls > 0 {
				fmt.Printf(", %4.1f× below dollr's", polls/c.fixedWatch())
			}
		}
		fmt.Println()
	}
}

// TestWatchParts runs each of BenchmarkWatchParts's operations twice against
// each server, so the benchmark's client and floor server keep speaking the
// protocol dollr speaks.
func TestWatchParts(t *testing.T) {
	floor, raw := startFloor(t)
	for _, target := range []*watchTarget{startDollrTarget(t, "dollr", dollrBinary(t)), floor, raw} {
		driveParts(t, target)
	}
}

// TestWatchPartsPostgres is TestWatchParts for the dollr-pg server.
func TestWatchPartsPostgres(t *testing.T) {
	c := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, _, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	driveParts(t, startDollrTarget(t, "dollr-pg", dollrBinary(t), "--database-url", url))
}

// driveParts runs each of target's operations twice.
func driveParts(t *testing.T, target *watchTarget) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	parts := target.parts(hc)
	want := 2 // join and heartbeat
	if target.baseURL != "" {
		want += 2 // poll and key
	}
	if len(parts) != want {
		t.Fatalf("%s: %d parts, want %d", target.name, len(parts), want)
	}
	for _, part := range parts {
		op, cleanup, err := part.setup()
		if err != nil {
			t.Fatalf("%s/%s: %v", target.name, part.name, err)
		}
		for range 2 {
			if err := op(); err != nil {
				t.Fatalf("%s/%s: %v", target.name, part.name, err)
			}
		}
		cleanup()
	}
}
