/*
 * checkout.js: the hosted checkout page. It pays through /checkout/<token>/pay,
 * then follows the payment the way Dollr's realtime guide says: subscribe to
 * the public status row over realtime (realtime.js), and poll
 * /checkout/<token>/status/<reference_id> every 2-5 s after 30 s without a
 * final status, or as soon as realtime reports CHANNEL_ERROR, TIMED_OUT or
 * CLOSED. A final status seen over realtime is confirmed by one status read
 * before the page shows it ("UX hints, not the sole source of truth").
 */
(function () {
  "use strict";

  var root = document.getElementById("checkout");
  if (!root) return;

  function $(id) { return document.getElementById(id); }
  function num(v, d) { var n = parseInt(v, 10); return isNaN(n) ? d : n; }

  var ds = root.dataset;
  var base = "/checkout/" + encodeURIComponent(ds.token);
  var cfg = {
    fallbackMs: num(ds.fallbackMs, 30000),
    pollMs: num(ds.pollMs, 2000),
    pollMaxMs: num(ds.pollMaxMs, 5000),
    redirectMs: num(ds.redirectMs, 4000)
  };
  var merchant = ds.merchant || "the merchant";
  var successURL = ds.successUrl || "";
  var cancelURL = ds.cancelUrl || "";
  var totalText = ($("total") && $("total").textContent) || "";
  var awaitingApproval = ds.awaitingApproval || "";

  var TABLE = "checkout_payment_intent_public_status";
  var RANK = { PENDING: 0, PROCESSING: 1, COMPLETED: 2, FAILED: 2 };
  var PANELS = ["pay-panel", "challenge-panel", "progress-panel", "result-panel"];

  var attemptRef = uuidv4(); // reused if the pay response is lost, so a retry is the same payment
  var watch = null;          // the payment being followed
  var redirectTimer = null;

  // ---- helpers -------------------------------------------------------------

  function uuidv4() {
    var b = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      headers: body ? { "Content-Type": "application/json", "Accept": "application/json" } : { "Accept": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
      cache: "no-store",
      credentials: "same-origin"
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var err = new Error(typeof data.detail === "string" ? data.detail : "Something went wrong (" + resp.status + "). Please try again.");
          err.status = resp.status;
          err.retryAfter = parseFloat(resp.headers.get("Retry-After"));
          throw err;
        }
        return data;
      });
    });
  }

  function show(panel) {
    PANELS.forEach(function (id) { var el = $(id); if (el) el.hidden = id !== panel; });
  }

  function setState(s) { ds.state = s; }

  function text(id, s) { var el = $(id); if (el) el.textContent = s; }

  function isCard(row) { return row && row.payment_method === "CREDIT_CARD"; }

  function setSteps(stage) {
    ["step-approve", "step-processing", "step-done"].forEach(function (id, i) {
      var el = $(id);
      if (!el) return;
      el.className = i < stage ? "done" : (i === stage ? "active" : "");
    });
  }

  function connection(msg) { text("connection", msg); }

  // ---- the pay form --------------------------------------------------------

  var form = $("pay-form");
  function chosenMethod() {
    var m = form && form.querySelector("input[name=method]:checked");
    return m ? m.value : "MOBILE_MONEY";
  }
  function syncMethod() {
    var card = chosenMethod() === "CARD";
    $("momo-fields").hidden = card;
    $("card-fields").hidden = !card;
  }
  function payError(msg) {
    var el = $("pay-error");
    el.textContent = msg;
    el.hidden = !msg;
  }

  if (form) {
    Array.prototype.forEach.call(form.querySelectorAll("input[name=method]"), function (el) {
      el.addEventListener("change", syncMethod);
    });
    syncMethod();
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      payError("");
      var body = { method: chosenMethod(), reference_id: attemptRef };
      if (body.method === "CARD") {
        var pm = form.querySelector("input[name=payment_method_id]:checked");
        if (!pm) { payError("Choose a card."); return; }
        body.payment_method_id = pm.value;
      } else {
        body.phone = $("phone").value.trim();
        body.network = $("network").value;
        if (!body.phone) { payError("Enter your mobile money number."); $("phone").focus(); return; }
      }
      var button = $("pay-button");
      var label = button.textContent;
      button.disabled = true;
      button.textContent = "Starting payment…";
      setState("paying");
      api("POST", base + "/pay", body).then(function (resp) {
        button.disabled = false;
        button.textContent = label;
        startWatching(resp.reference_id, resp, resp.realtime);
      }, function (err) {
        button.disabled = false;
        button.textContent = label;
        setState("form");
        if (err instanceof TypeError) {
          // The response was lost: the payment may exist. Paying again reuses attemptRef.
          payError("We could not reach the server. Check your connection and tap Pay again; you will not be charged twice.");
        } else {
          payError(err.message);
        }
      });
    });
  }

  // ---- following a payment -------------------------------------------------

  function startWatching(ref, first, realtime) {
    stopWatching();
    watch = {
      ref: ref,
      rank: -1,
      last: null,
      history: [],
      sub: null,
      realtime: realtime || null,
      keyExpiresAt: 0,
      polling: false,
      pollTimer: null,
      fallbackTimer: null,
      subscribedOnce: false,
      challengeAnswered: false,
      clientSecret: (first && first.client_secret) || "",
      done: false
    };
    ds.referenceId = ref;
    ds.polling = "false";
    ds.realtime = "connecting";
    text("reference", "Reference " + ref);
    setState("watching");
    show("progress-panel");
    if (first && first.status) apply(first, "pay");
    if (watch.done) return;
    // The guide's window: realtime first, polling if nothing final within 30 s.
    watch.fallbackTimer = setTimeout(function () { startPolling("no final status after " + Math.round(cfg.fallbackMs / 1000) + " s"); }, cfg.fallbackMs);
    if (realtime && realtime.access_token) {
      subscribe(realtime);
    } else {
      api("POST", base + "/key/" + encodeURIComponent(ref)).then(subscribe, function () { startPolling("no realtime key"); });
    }
  }

  function subscribe(rt) {
    var w = watch;
    if (!w || w.done) return;
    if (!window.DollrRealtime || !rt.supabase_url || !rt.access_token) { startPolling("realtime unavailable"); return; }
    w.realtime = rt;
    w.keyExpiresAt = Date.now() + (rt.expires_in || 60) * 1000;
    w.sub = window.DollrRealtime.subscribe({
      url: rt.supabase_url,
      apikey: rt.anon_key,
      channel: rt.channel,
      changes: [{ event: "*", schema: "public", table: TABLE, filter: "reference_id=eq." + w.ref }],
      accessToken: function () { return freshKey(w); },
      onChange: function (change) {
        if (change.type === "DELETE") return;
        apply(change.record, "realtime");
      },
      onStatus: function (status, detail) {
        if (w !== watch || w.done) return;
        ds.realtime = status.toLowerCase();
        if (status === "SUBSCRIBED") {
          connection("Live updates on.");
          // After a reconnect, read the status once: nothing is replayed.
          if (w.subscribedOnce) pollOnce();
          w.subscribedOnce = true;
        } else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT" || status === "CLOSED") {
          startPolling(status + (detail ? ": " + detail : ""));
        }
      },
      onSystem: function (p) {
        if (p && p.status === "error" && w === watch && !w.done) startPolling("realtime: " + (p.message || "error"));
      }
    });
  }

  // freshKey renews the realtime key a minute before it expires; realtime.js
  // asks on every heartbeat and pushes access_token when the value changes.
  function freshKey(w) {
    if (Date.now() < w.keyExpiresAt - 60000) return Promise.resolve(w.realtime.access_token);
    return api("POST", base + "/key/" + encodeURIComponent(w.ref)).then(function (rt) {
      w.realtime = rt;
      w.keyExpiresAt = Date.now() + (rt.expires_in || 60) * 1000;
      return rt.access_token;
    });
  }

  function startPolling(reason) {
    var w = watch;
    if (!w || w.done || w.polling) return;
    w.polling = true;
    ds.polling = "true";
    ds.pollReason = reason;
    connection("Live updates unavailable; checking every few seconds.");
    var interval = cfg.pollMs;
    function tick() {
      if (w !== watch || w.done) return;
      pollOnce().then(function (retryAfter) {
        if (w !== watch || w.done) return;
        // Back off while PROCESSING (dollr-api.md §6.3): 2 s growing to 5 s.
        if (w.last && w.last.status === "PROCESSING") interval = Math.min(Math.round(interval * 1.5), cfg.pollMaxMs);
        var wait = retryAfter > 0 ? Math.max(retryAfter * 1000, interval) : interval;
        w.pollTimer = setTimeout(tick, wait);
      });
    }
    tick();
  }

  // pollOnce reads the status once; it resolves with a Retry-After, if any.
  function pollOnce() {
    var w = watch;
    if (!w) return Promise.resolve(0);
    return api("GET", base + "/status/" + encodeURIComponent(w.ref)).then(function (row) {
      apply(row, "poll");
      return 0;
    }, function (err) {
      return err.retryAfter || 0;
    });
  }

  function stopWatching() {
    var w = watch;
    if (!w) return;
    w.done = true;
    clearTimeout(w.fallbackTimer);
    clearTimeout(w.pollTimer);
    if (w.sub) { w.sub.close(); w.sub = null; }
  }

  // apply shows a status row from any path. Statuses never move backwards,
  // so a late or repeated event cannot undo a newer one.
  function apply(row, via) {
    var w = watch;
    if (!w || w.done || !row || row.reference_id !== w.ref) return;
    var rank = RANK[row.status];
    if (rank === undefined || rank < w.rank) return;
    w.rank = rank;
    w.last = row;
    w.history.push(row.status + ":" + via);
    ds.history = w.history.join(" ");
    ds.status = row.status;
    ds.lastSource = via;
    if (rank === 2) {
      if (via === "realtime") { confirmFinal(w); } else { finish(w, row); }
      return;
    }
    if (row.client_secret) w.clientSecret = row.client_secret;
    if (row.requires_action && !w.challengeAnswered) {
      showChallenge();
      return;
    }
    setState("watching");
    show("progress-panel");
    var waitingForPhone = !isCard(row) && (row.status === "PENDING" ||
      (awaitingApproval !== "" && row.gateway_message === awaitingApproval));
    if (waitingForPhone) {
      text("progress-title", "Waiting for approval on your phone");
      text("progress-detail", "We sent a request for " + totalText + " to your phone. Approve it there to pay " + merchant + ".");
      setSteps(0);
    } else if (row.status === "PENDING") {
      text("progress-title", "Contacting your bank…");
      text("progress-detail", "Hold on while your card is checked.");
      setSteps(0);
    } else {
      text("progress-title", "Processing your payment");
      text("progress-detail", isCard(row)
        ? "Your card was approved; we are confirming the payment."
        : "Approved on your phone. The network is confirming the payment; this can take a few minutes.");
      setSteps(1);
    }
  }

  // confirmFinal checks a realtime final status with the status endpoint.
  function confirmFinal(w) {
    api("GET", base + "/status/" + encodeURIComponent(w.ref)).then(function (row) {
      if (w !== watch || w.done) return;
      if (RANK[row.status] === 2) { finish(w, row); } else { startPolling("final status not confirmed yet"); }
    }, function () {
      if (w === watch && !w.done) startPolling("could not confirm the final status");
    });
  }

  function finish(w, row) {
    if (w.done) return;
    stopWatching();
    ds.status = row.status;
    show("result-panel");
    var icon = $("result-icon");
    var retry = $("retry-button");
    var back = $("return-link");
    if (row.status === "COMPLETED") {
      setState("paid");
      icon.className = "result-icon ok";
      text("result-title", "Paid");
      text("result-detail", "Thank you! " + (row.payer_currency || "") + " " + formatAmount(row.payer_amount) + " was paid to " + merchant + ".");
      setSteps(3);
      retry.hidden = true;
      leaveTo(successURL);
    } else {
      setState("failed");
      icon.className = "result-icon fail";
      var reason = row.gateway_message || "The payment was not approved.";
      text("result-title", "Payment failed");
      text("result-detail", reason);
      retry.hidden = false;
      leaveTo(cancelURL);
    }
  }

  function formatAmount(a) {
    var n = Number(a);
    return isNaN(n) ? String(a) : n.toFixed(2);
  }

  // leaveTo sends the customer back to the merchant after a short pause on
  // the final screen; "Try again" cancels it.
  function leaveTo(url) {
    var back = $("return-link");
    var note = $("redirect-note");
    clearTimeout(redirectTimer);
    if (!url) { back.hidden = true; note.hidden = true; return; }
    back.href = url;
    back.hidden = false;
    note.hidden = false;
    note.textContent = "Taking you back to " + merchant + " in " + Math.ceil(cfg.redirectMs / 1000) + " s…";
    redirectTimer = setTimeout(function () { window.location.assign(url); }, cfg.redirectMs);
  }

  var retryButton = $("retry-button");
  if (retryButton) {
    retryButton.addEventListener("click", function () {
      clearTimeout(redirectTimer);
      var last = watch && watch.last;
      stopWatching();
      watch = null;
      // A deliberate retry is a new session and a new reference_id (dollr-api.md §8).
      attemptRef = uuidv4();
      $("redirect-note").hidden = true;
      var lf = $("last-failure");
      if (lf && last) {
        lf.textContent = "Your last attempt failed: " + (last.gateway_message || "the payment was not approved.") + " You can try again.";
        lf.hidden = false;
      }
      setState("form");
      show("pay-panel");
    });
  }

  // ---- sandbox 3-D Secure ----------------------------------------------------

  function showChallenge() {
    setState("challenge");
    show("challenge-panel");
  }

  function answerChallenge(approve) {
    var w = watch;
    if (!w) return;
    var err = $("challenge-error");
    err.hidden = true;
    $("challenge-approve").disabled = true;
    $("challenge-fail").disabled = true;
    if (!w.clientSecret) {
      err.textContent = "This payment cannot be confirmed from here. Please start again.";
      err.hidden = false;
      return;
    }
    // The sandbox bank's endpoint, public like Stripe's 3-D Secure pages: the
    // client secret is the only credential (docs/sandbox.md).
    api("POST", "/v1/sandbox/3ds/" + encodeURIComponent(w.clientSecret), { outcome: approve ? "succeed" : "fail" }).then(function () {
      $("challenge-approve").disabled = false;
      $("challenge-fail").disabled = false;
      w.challengeAnswered = true;
      setState("watching");
      show("progress-panel");
      text("progress-title", approve ? "Confirming with your bank…" : "Cancelling…");
      text("progress-detail", "");
      pollOnce();
    }, function (e) {
      $("challenge-approve").disabled = false;
      $("challenge-fail").disabled = false;
      err.textContent = e.message;
      err.hidden = false;
    });
  }

  if ($("challenge-approve")) {
    $("challenge-approve").addEventListener("click", function () { answerChallenge(true); });
    $("challenge-fail").addEventListener("click", function () { answerChallenge(false); });
  }

  // ---- initial state ---------------------------------------------------------

  if (ds.state === "watching" && ds.referenceId) {
    // A payment was already in flight when the page loaded (reload, second tab).
    var ref = ds.referenceId;
    api("GET", base + "/status/" + encodeURIComponent(ref)).then(function (row) {
      startWatching(ref, row, null);
    }, function () {
      startWatching(ref, null, null);
    });
  } else if (ds.state === "paid" && successURL) {
    var back = $("return-link");
    back.href = successURL;
    back.hidden = false;
  }
})();
