/*
 * checkout.js: the hosted checkout page. It pays through /checkout/<token>/pay,
 * then follows the payment the way Dollr's realtime guide says: subscribe to
 * the public status row over realtime (realtime.js), and poll
 * /checkout/<token>/status/<reference_id> every 2-5 s after 30 s without a
 * final status, or as soon as realtime reports CHANNEL_ERROR, TIMED_OUT or
 * CLOSED. A final status seen over realtime is confirmed by one status read
 * before the page shows it ("UX hints, not the sole source of truth").
 *
 * Accessibility: every status change is written into one polite live region
 * (#live) that is in the page from the start, and the focus moves to the new
 * panel's heading after Pay and on the final screen.
 */
(function () {
  "use strict";

  // ---- amounts ---------------------------------------------------------------

  function groupThousands(digits) {
    var out = "";
    for (var i = 0; i < digits.length; i++) {
      if (i > 0 && (digits.length - i) % 3 === 0) out += ",";
      out += digits.charAt(i);
    }
    return out;
  }

  // formatMoney writes an amount as the server's formatMoney (money.go) does:
  // thousands grouped, as many decimals as the currency has (digits), then
  // the code: "12,500 RWF", "1,234.50 USD". Cents that are there are shown
  // even for a currency without a minor unit.
  function formatMoney(amount, currency, digits) {
    var n = Number(amount);
    if (amount === null || amount === undefined || amount === "" || !isFinite(n)) {
      return (String(amount === undefined || amount === null ? "" : amount) + " " + (currency || "")).trim();
    }
    var cents = Math.round(Math.abs(n) * 100);
    var s = groupThousands(String(Math.floor(cents / 100)));
    var c = cents % 100;
    var cc = (c < 10 ? "0" : "") + c;
    if (digits === 3) s += "." + cc + "0";
    else if (digits !== 0 || c !== 0) s += "." + cc;
    return ((n < 0 && cents > 0 ? "-" : "") + s + " " + (currency || "")).trim();
  }

  window.DollrCheckout = { formatMoney: formatMoney };

  // The page is styled for "no JavaScript" until this runs (no spinner).
  var docEl = document.documentElement;
  docEl.className = docEl.className.replace(/\bno-js\b/, "js");

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
  var kind = ds.kind || "invoice";
  var successURL = ds.successUrl || "";
  var cancelURL = ds.cancelUrl || "";
  var totalText = ($("total") && $("total").textContent) || "";
  var awaitingApproval = ds.awaitingApproval || "";

  var TABLE = "checkout_payment_intent_public_status";
  var RANK = { PENDING: 0, PROCESSING: 1, COMPLETED: 2, FAILED: 2 };
  var PANELS = ["pay-panel", "challenge-panel", "progress-panel", "result-panel"];
  var HEADINGS = { "challenge-panel": "challenge-title", "progress-panel": "progress-title", "result-panel": "result-title" };

  var attemptRef = uuidv4(); // reused if the pay response is lost, so a retry is the same payment
  var lostAttempt = null;    // the body (without reference_id) whose response was lost
  var watch = null;          // the payment being followed
  var redirectTimer = null;
  var shown = null;          // the visible panel
  var announced = "";

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
          err.field = typeof data.field === "string" ? data.field : "";
          err.retryAfter = parseFloat(resp.headers.get("Retry-After"));
          throw err;
        }
        return data;
      });
    });
  }

  function money(amount, currency) {
    currency = currency || ds.currency || "";
    return formatMoney(amount, currency, currency === ds.currency ? num(ds.currencyDigits, 2) : 2);
  }

  // show makes one panel visible; it reports whether that changed anything.
  function show(panel) {
    PANELS.forEach(function (id) { var el = $(id); if (el) el.hidden = id !== panel; });
    var changed = shown !== panel;
    shown = panel;
    return changed;
  }

  // focusOn moves the keyboard and screen-reader focus to an element (a
  // heading with tabindex="-1", or a notice) once it is visible.
  function focusOn(id) {
    var el = $(id);
    if (el && !el.hidden && !el.closest("[hidden]")) el.focus();
  }

  function focusPanel() {
    if (shown && HEADINGS[shown]) focusOn(HEADINGS[shown]);
  }

  // announce writes msg into the live region that has been in the page since
  // it loaded, so assistive technology reads every status change.
  function announce(msg) {
    if (!msg || msg === announced) return;
    announced = msg;
    text("live", msg);
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

  // joined reads title and detail as sentences: "Paid. Thank you!".
  function joined(title, detail) {
    if (!detail) return title;
    return title + (/[.…!?]$/.test(title) ? " " : ". ") + detail;
  }

  // sentence ends a gateway message with a full stop, to put text after it.
  function sentence(s) {
    s = String(s || "").trim();
    return s && !/[.…!?]$/.test(s) ? s + "." : s;
  }

  function progress(title, detail) {
    text("progress-title", title);
    text("progress-detail", detail);
    announce(joined(title, detail));
  }

  function connection(msg) { text("connection", msg); }

  // This tab's own payment survives a reload (sessionStorage is per tab), so
  // a reload resumes it as before, while another tab's payment is shown as
  // such.
  var storeKey = "dollr-checkout:" + ds.token;
  function remember(ref) {
    try { window.sessionStorage.setItem(storeKey, ref); } catch (e) { /* storage off: nothing to remember */ }
  }
  function remembered() {
    try { return window.sessionStorage.getItem(storeKey) || ""; } catch (e) { return ""; }
  }

  // ---- the pay form --------------------------------------------------------

  var form = $("pay-form");
  var FIELDS = { phone: "phone", network: "network" };

  function chosenMethod() {
    var m = form && form.querySelector("input[name=method]:checked");
    return m ? m.value : "MOBILE_MONEY";
  }
  function syncMethod() {
    var card = chosenMethod() === "CARD";
    $("momo-fields").hidden = card;
    $("card-fields").hidden = !card;
  }
  function markInvalid(el, invalid) {
    if (!el) return;
    if (invalid) {
      el.setAttribute("aria-invalid", "true");
      el.setAttribute("aria-describedby", "pay-error");
    } else {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    }
  }
  // payError shows msg under the form; field names the input it is about,
  // which is marked invalid, described by the message, and focused.
  function payError(msg, field) {
    text("pay-error", msg);
    Object.keys(FIELDS).forEach(function (f) { markInvalid($(FIELDS[f]), msg && f === field); });
    if (msg && FIELDS[field] && !$(FIELDS[field]).closest("[hidden]")) $(FIELDS[field]).focus();
  }

  if (form) {
    Array.prototype.forEach.call(form.querySelectorAll("input[name=method]"), function (el) {
      el.addEventListener("change", function () { payError(""); syncMethod(); });
    });
    Object.keys(FIELDS).forEach(function (f) {
      var el = $(FIELDS[f]);
      if (el) el.addEventListener("input", function () { markInvalid(el, false); });
    });
    syncMethod();
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      payError("");
      var body = { method: chosenMethod() };
      if (body.method === "CARD") {
        var pm = form.querySelector("input[name=payment_method_id]:checked");
        if (!pm) { payError("Choose a card."); return; }
        body.payment_method_id = pm.value;
      } else {
        body.phone = $("phone").value.trim();
        body.network = $("network").value;
        if (!body.phone) { payError("Enter your mobile money number.", "phone"); return; }
      }
      // After a lost response the same details reuse the reference_id (the
      // same payment); changed details are a new attempt.
      var key = JSON.stringify(body);
      if (lostAttempt !== null && lostAttempt !== key) attemptRef = uuidv4();
      lostAttempt = null;
      body.reference_id = attemptRef;
      var button = $("pay-button");
      var label = button.textContent;
      button.disabled = true;
      button.textContent = "Starting payment…";
      setState("paying");
      announce("Starting payment…");
      api("POST", base + "/pay", body).then(function (resp) {
        button.disabled = false;
        button.textContent = label;
        // The server returns the payment already in flight, if there is one:
        // another tab's. Say so rather than take it over.
        var elsewhere = resp.reference_id !== body.reference_id;
        if (!elsewhere) remember(resp.reference_id);
        startWatching(resp.reference_id, resp, resp.realtime, elsewhere);
        if (watch && !watch.done) focusPanel();
      }, function (err) {
        button.disabled = false;
        button.textContent = label;
        if (err.status === 409) {
          // Paid in the meantime (another tab): show it, not a form error.
          showAlreadyPaid();
          return;
        }
        setState("form");
        if (err instanceof TypeError) {
          // The response was lost: the payment may exist. Paying again with
          // the same details reuses attemptRef.
          lostAttempt = key;
          payError("We could not reach the server. Check your connection and tap Pay again; you will not be charged twice.");
        } else {
          payError(err.message, err.field);
        }
        announce($("pay-error").textContent);
      });
    });
  }

  // ---- following a payment -------------------------------------------------

  function startWatching(ref, first, realtime, elsewhere) {
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
      elsewhere: !!elsewhere, // started by another tab: shown, not taken over
      clientSecret: (first && first.client_secret) || "",
      done: false
    };
    ds.referenceId = ref;
    ds.elsewhere = elsewhere ? "true" : "false";
    ds.polling = "false";
    ds.realtime = "connecting";
    text("reference", "Reference " + ref);
    setState("watching");
    show("progress-panel");
    if (elsewhere) {
      progress("A payment for this " + kind + " is already in progress",
        "It was started in another tab or window. This page shows its result when it ends.");
    }
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
    var needsChallenge = row.requires_action && !w.challengeAnswered;
    if (needsChallenge && !w.elsewhere) {
      showChallenge();
      return;
    }
    setState("watching");
    show("progress-panel");
    $("continue-here").hidden = !needsChallenge;
    var waitingForPhone = !isCard(row) && (row.status === "PENDING" ||
      (awaitingApproval !== "" && row.gateway_message === awaitingApproval));
    setSteps(waitingForPhone || row.status === "PENDING" || needsChallenge ? 0 : 1);
    if (w.elsewhere) {
      var what = isCard(row) ? "A card payment" : "A mobile money payment";
      var where = needsChallenge ? " waits for 3-D Secure confirmation in another tab or window."
        : waitingForPhone ? " started in another tab or window is waiting for approval on the phone."
        : " started in another tab or window is being processed.";
      progress("A payment for this " + kind + " is already in progress",
        what + where + " This page shows its result when it ends; nothing more will be charged.");
    } else if (waitingForPhone) {
      progress("Waiting for approval on your phone",
        "We sent a request for " + totalText + " to your phone. Approve it there to pay " + merchant + ".");
    } else if (row.status === "PENDING") {
      progress("Contacting your bank…", "Hold on while your card is checked.");
    } else {
      progress("Processing your payment", isCard(row)
        ? "Your card was approved; we are confirming the payment."
        : "Approved on your phone. The network is confirming the payment; this can take a few minutes.");
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
    $("continue-here").hidden = true;
    var reason = row.gateway_message || "The payment was not approved.";
    if (row.status !== "COMPLETED" && w.elsewhere) {
      // Another tab's payment failed: this tab may pay now, its own way.
      watch = null;
      attemptRef = uuidv4();
      showForm("The payment started in another tab or window failed: " + sentence(reason) + " You can pay now.");
      return;
    }
    show("result-panel");
    var icon = $("result-icon");
    var retry = $("retry-button");
    if (row.status === "COMPLETED") {
      setState("paid");
      icon.className = "result-icon ok";
      text("result-title", "Paid");
      text("result-detail", "Thank you! " + money(row.payer_amount, row.payer_currency) + " was paid to " + merchant + ".");
      setSteps(3);
      retry.hidden = true;
      returnLink(successURL);
      leaveTo(successURL);
    } else {
      // No automatic redirect after a failure: the payer chooses between
      // trying again and going back to the merchant (cancel_url).
      setState("failed");
      icon.className = "result-icon fail";
      text("result-title", "Payment failed");
      text("result-detail", reason);
      retry.hidden = false;
      returnLink(cancelURL);
      $("redirect-note").hidden = true;
    }
    announce(joined($("result-title").textContent, $("result-detail").textContent +
      ($("redirect-note").hidden ? "" : " " + $("redirect-note").textContent)));
    focusOn("result-title");
  }

  // showAlreadyPaid is the paid screen for a tab that learns from /pay that
  // the source was paid elsewhere.
  function showAlreadyPaid() {
    stopWatching();
    watch = null;
    setState("paid");
    show("result-panel");
    $("result-icon").className = "result-icon ok";
    $("retry-button").hidden = true;
    text("result-title", "Paid");
    text("result-detail", "This " + kind + " has been paid. Thank you!");
    setSteps(3);
    returnLink(successURL);
    announce(joined("Paid", $("result-detail").textContent));
    focusOn("result-title");
  }

  function returnLink(url) {
    var back = $("return-link");
    if (url) back.href = url; else back.removeAttribute("href");
    back.hidden = !url;
  }

  // leaveTo sends the customer back to the merchant after a short pause on
  // the paid screen.
  function leaveTo(url) {
    var note = $("redirect-note");
    clearTimeout(redirectTimer);
    if (!url) { note.hidden = true; return; }
    note.hidden = false;
    note.textContent = "Taking you back to " + merchant + " in " + Math.ceil(cfg.redirectMs / 1000) + " s…";
    redirectTimer = setTimeout(function () { window.location.assign(url); }, cfg.redirectMs);
  }

  function showForm(notice) {
    clearTimeout(redirectTimer);
    $("redirect-note").hidden = true;
    var lf = $("last-failure");
    if (lf && notice) {
      lf.textContent = notice;
      lf.hidden = false;
    }
    setState("form");
    show("pay-panel");
    if (notice) announce(notice);
    focusOn("last-failure");
  }

  var retryButton = $("retry-button");
  if (retryButton) {
    retryButton.addEventListener("click", function () {
      var last = watch && watch.last;
      stopWatching();
      watch = null;
      // A deliberate retry is a new session and a new reference_id (dollr-api.md §8).
      attemptRef = uuidv4();
      showForm(last ? "Your last attempt failed: " + sentence(last.gateway_message || "The payment was not approved.") + " You can try again." : "");
    });
  }

  // ---- sandbox 3-D Secure ----------------------------------------------------

  function showChallenge() {
    setState("challenge");
    if (show("challenge-panel")) {
      announce("Your bank asks you to confirm this card payment of " + totalText + ".");
      focusOn("challenge-title");
    }
  }

  // "Confirm the card payment here": the payer takes over another tab's card
  // payment that waits for 3-D Secure (that tab may be closed).
  if ($("continue-here")) {
    $("continue-here").addEventListener("click", function () {
      var w = watch;
      if (!w || w.done) return;
      w.elsewhere = false;
      ds.elsewhere = "false";
      remember(w.ref);
      $("continue-here").hidden = true;
      showChallenge();
    });
  }

  function answerChallenge(approve) {
    var w = watch;
    if (!w) return;
    var err = $("challenge-error");
    err.textContent = "";
    $("challenge-approve").disabled = true;
    $("challenge-fail").disabled = true;
    if (!w.clientSecret) {
      err.textContent = "This payment cannot be confirmed from here. Please start again.";
      return;
    }
    // The sandbox bank's endpoint, public like Stripe's 3-D Secure pages: the
    // client secret is the only credential (docs/sandbox.md).
    api("POST", "/v1/sandbox/3ds/" + encodeURIComponent(w.clientSecret), { outcome: approve ? "succeed" : "fail" }).then(function () {
      $("challenge-approve").disabled = false;
      $("challenge-fail").disabled = false;
      w.challengeAnswered = true;
      if (w.done) return;
      setState("watching");
      show("progress-panel");
      progress(approve ? "Confirming with your bank…" : "Cancelling…", "");
      focusOn("progress-title");
      pollOnce();
    }, function (e) {
      $("challenge-approve").disabled = false;
      $("challenge-fail").disabled = false;
      err.textContent = e.message;
    });
  }

  if ($("challenge-approve")) {
    $("challenge-approve").addEventListener("click", function () { answerChallenge(true); });
    $("challenge-fail").addEventListener("click", function () { answerChallenge(false); });
  }

  // ---- initial state ---------------------------------------------------------

  shown = PANELS.filter(function (id) { return $(id) && !$(id).hidden; })[0] || null;
  if (ds.state === "watching" && ds.referenceId) {
    // A payment was already in flight when the page loaded: this tab's own
    // (a reload), or another tab's.
    var ref = ds.referenceId;
    var elsewhere = remembered() !== ref;
    api("GET", base + "/status/" + encodeURIComponent(ref)).then(function (row) {
      startWatching(ref, row, null, elsewhere);
    }, function () {
      startWatching(ref, null, null, elsewhere);
    });
  }
})();
