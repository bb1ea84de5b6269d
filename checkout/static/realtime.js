/*
 * realtime.js: a small client of the Supabase Realtime protocol (vsn 2.0.0),
 * enough for one postgres_changes channel. It follows the wire reference in
 * docs/realtime-protocol.md: join with config.postgres_changes and the
 * access token (§4), match the reply ids (§5.2), heartbeat every 25 s (§9),
 * push a renewed access_token (§10.2), and react to system, phx_error,
 * phx_close and socket loss the way realtime-js does (§6, §11).
 *
 *   var sub = DollrRealtime.subscribe({
 *     url: supabaseURL, apikey: anonKey, channel: "payment-intent:55:<ref>",
 *     changes: [{event: "*", schema: "public", table: "t", filter: "reference_id=eq.<ref>"}],
 *     accessToken: function () { return Promise.resolve(jwt); },
 *     onChange: function (change) { change.record ... },
 *     onStatus: function (status, detail) { "SUBSCRIBED" | "CHANNEL_ERROR" | "TIMED_OUT" | "CLOSED" },
 *     onSystem: function (payload) {}
 *   });
 *   sub.close();
 */
(function (global) {
  "use strict";

  var DEFAULTS = {
    heartbeatMs: 25000,   // realtime-js's heartbeatIntervalMs
    joinTimeoutMs: 10000, // realtime-js's push timeout
    backoffMs: [1000, 2000, 5000, 10000] // reconnect and rejoin steps, then the last one forever
  };

  function sameOptional(a, b) {
    // realtime-js treats null and undefined as equal, and nothing else.
    if (a === undefined || a === null) return b === undefined || b === null;
    return a === b;
  }

  function socketURL(base, apikey) {
    var u = new URL("realtime/v1/websocket", base.replace(/\/*$/, "/"));
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.search = "";
    u.searchParams.set("apikey", apikey);
    u.searchParams.set("vsn", "2.0.0");
    return u.toString();
  }

  function subscribe(opts) {
    var cfg = {};
    Object.keys(DEFAULTS).forEach(function (k) { cfg[k] = opts[k] !== undefined ? opts[k] : DEFAULTS[k]; });
    var WS = opts.WebSocket || global.WebSocket;
    var topic = "realtime:" + opts.channel;
    var bindings = (opts.changes || []).map(function (c) {
      var b = { event: c.event, schema: c.schema };
      if (c.table !== undefined) b.table = c.table;
      if (c.filter !== undefined) b.filter = c.filter;
      return b;
    });
    var noop = function () {};
    var onChange = opts.onChange || noop;
    var onStatus = opts.onStatus || noop;
    var onSystem = opts.onSystem || noop;

    var ws = null;
    var refCounter = 0;
    var joinRef = null;
    var state = "closed"; // closed | joining | joined | errored | left
    var ids = [];
    var replies = {};
    var token = null;
    var heartbeatTimer = null, heartbeatRef = null;
    var joinTimer = null, retryTimer = null;
    var socketTries = 0, joinTries = 0;
    var stopped = false;

    function makeRef() { refCounter += 1; return String(refCounter); }

    function status(s, detail) {
      try { onStatus(s, detail); } catch (e) { if (global.console) console.error(e); }
    }

    function push(frame) {
      if (!ws || ws.readyState !== 1) return false;
      ws.send(JSON.stringify(frame));
      return true;
    }

    function backoff(tries) {
      return cfg.backoffMs[Math.min(tries, cfg.backoffMs.length - 1)];
    }

    function getToken() {
      try {
        return Promise.resolve(opts.accessToken ? opts.accessToken() : null);
      } catch (e) {
        return Promise.reject(e);
      }
    }

    function connect() {
      if (stopped) return;
      var sock;
      try {
        sock = new WS(socketURL(opts.url, opts.apikey));
      } catch (e) {
        socketGone("socket error: " + e.message);
        return;
      }
      ws = sock;
      sock.onopen = function () {
        if (sock !== ws) return;
        socketTries = 0;
        startHeartbeat();
        join();
      };
      sock.onmessage = function (ev) {
        if (sock !== ws || typeof ev.data !== "string") return; // vsn 2 binary kinds carry broadcasts only
        var msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        if (!Array.isArray(msg) || msg.length < 5) return;
        handle(msg[0], msg[1], msg[2], msg[3], msg[4] || {});
      };
      sock.onclose = function (ev) {
        if (sock !== ws) return;
        socketGone("socket closed: " + ev.code + (ev.reason ? " (" + ev.reason + ")" : ""));
      };
      sock.onerror = function () { /* onclose follows with the code */ };
    }

    function socketGone(reason) {
      ws = null;
      stopHeartbeat();
      clearTimeout(joinTimer);
      replies = {};
      if (stopped) return;
      if (state === "joined" || state === "joining" || state === "closed") {
        state = "errored";
        status("CHANNEL_ERROR", reason);
      }
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, backoff(socketTries++));
    }

    function join() {
      if (stopped || !ws || ws.readyState !== 1) return;
      state = "joining";
      getToken().then(function (t) {
        if (stopped || !ws || ws.readyState !== 1 || state !== "joining") return;
        token = t || null;
        joinRef = makeRef();
        ids = [];
        var payload = {
          config: {
            broadcast: { ack: false, self: false },
            presence: { key: "", enabled: false },
            postgres_changes: bindings,
            "private": false
          }
        };
        if (token) payload.access_token = token;
        var myJoin = joinRef;
        replies[myJoin] = function (reply) { joinReply(myJoin, reply); };
        push([myJoin, myJoin, topic, "phx_join", payload]);
        clearTimeout(joinTimer);
        joinTimer = setTimeout(function () {
          if (state !== "joining" || joinRef !== myJoin) return;
          delete replies[myJoin];
          status("TIMED_OUT");
          push([myJoin, makeRef(), topic, "phx_leave", {}]);
          rejoinLater();
        }, cfg.joinTimeoutMs);
      }, function (err) {
        state = "errored";
        status("CHANNEL_ERROR", "access token: " + (err && err.message ? err.message : err));
        rejoinLater();
      });
    }

    function rejoinLater() {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(function () {
        if (ws && ws.readyState === 1) join();
      }, backoff(joinTries++));
    }

    function joinReply(ref, reply) {
      if (ref !== joinRef) return;
      clearTimeout(joinTimer);
      if (reply.status !== "ok") {
        state = "errored";
        var r = reply.response || {};
        var reason = Object.keys(r).map(function (k) { return r[k]; }).join(", ");
        status("CHANNEL_ERROR", reason || "join refused");
        rejoinLater();
        return;
      }
      var server = (reply.response || {}).postgres_changes;
      if (server !== undefined) {
        for (var i = 0; i < bindings.length; i++) {
          var s = server[i], c = bindings[i];
          if (!s || s.event !== c.event || !sameOptional(s.schema, c.schema) ||
              !sameOptional(s.table, c.table) || !sameOptional(s.filter, c.filter)) {
            // realtime-js leaves and gives up here; so do we.
            push([joinRef, makeRef(), topic, "phx_leave", {}]);
            state = "left";
            status("CHANNEL_ERROR", "mismatch between server and client bindings for postgres changes");
            return;
          }
          ids.push(s.id);
        }
      }
      state = "joined";
      joinTries = 0;
      status("SUBSCRIBED");
      refreshToken();
    }

    function handle(jref, ref, t, event, payload) {
      if (t === "phoenix") {
        if (event === "phx_reply" && ref !== null && ref === heartbeatRef) heartbeatRef = null;
        return;
      }
      if (t !== topic) return;
      // Phoenix drops frames of an earlier join (isMember).
      if (jref !== null && jref !== undefined && jref !== joinRef) return;
      switch (event) {
        case "phx_reply":
          var cb = replies[ref];
          if (cb) { delete replies[ref]; cb(payload); }
          return;
        case "postgres_changes":
          if (state !== "joined" || !payload.data || !Array.isArray(payload.ids)) return;
          var mine = payload.ids.some(function (id) { return ids.indexOf(id) >= 0; });
          if (!mine && ids.length > 0) return;
          var d = payload.data;
          onChange({
            type: d.type,
            schema: d.schema,
            table: d.table,
            commitTimestamp: d.commit_timestamp,
            columns: d.columns || [],
            record: d.record || {},
            oldRecord: d.old_record || {},
            errors: d.errors || null
          });
          return;
        case "system":
          onSystem(payload);
          return;
        case "phx_error":
          if (ref !== null && ref !== undefined && ref !== joinRef) return;
          state = "errored";
          status("CHANNEL_ERROR", "channel error: transport failure");
          rejoinLater();
          return;
        case "phx_close":
          if (ref !== null && ref !== undefined && ref !== joinRef) return;
          if (state === "left") return;
          state = "left";
          status("CLOSED");
          stop(false);
          return;
      }
    }

    function startHeartbeat() {
      stopHeartbeat();
      heartbeatTimer = setInterval(function () {
        if (!ws) return;
        if (heartbeatRef !== null) {
          // The previous heartbeat went unanswered for a whole interval.
          heartbeatRef = null;
          var sock = ws;
          socketGone("heartbeat timeout");
          try { sock.close(1000, "heartbeat timeout"); } catch (e) { /* already closing */ }
          return;
        }
        heartbeatRef = makeRef();
        push([null, heartbeatRef, "phoenix", "heartbeat", {}]);
        refreshToken();
      }, cfg.heartbeatMs);
    }

    function stopHeartbeat() {
      clearInterval(heartbeatTimer);
      heartbeatTimer = null;
      heartbeatRef = null;
    }

    // refreshToken asks for the token again and sends it only if it changed.
    function refreshToken() {
      getToken().then(function (t) {
        if (!t || t === token) return;
        token = t;
        if (state === "joined") push([joinRef, makeRef(), topic, "access_token", { access_token: t }]);
      }, function () { /* keep the current token; the server closes the channel at its exp */ });
    }

    function stop(leave) {
      stopped = true;
      clearTimeout(joinTimer);
      clearTimeout(retryTimer);
      stopHeartbeat();
      var sock = ws;
      ws = null;
      if (sock) {
        if (leave && state === "joined" && sock.readyState === 1) {
          try { sock.send(JSON.stringify([joinRef, makeRef(), topic, "phx_leave", {}])); } catch (e) { /* closing */ }
        }
        try { sock.close(1000, "client closed"); } catch (e) { /* closing */ }
      }
    }

    connect();

    return {
      close: function () {
        if (stopped) return;
        var wasLive = state !== "left";
        stop(true);
        state = "left";
        if (wasLive) status("CLOSED");
      },
      state: function () { return state; }
    };
  }

  global.DollrRealtime = { subscribe: subscribe, socketURL: socketURL };
})(typeof window !== "undefined" ? window : this);
