// The Realtime Status guide's snippet, run verbatim against dollr serve.
//
// The only additions are instrumentation: the two callbacks report what they
// receive as JSON lines, and DOLLR_REALTIME_VSN=1.0.0 adds
// `realtime: { vsn: "1.0.0" }` to the options for the vsn 1 run.
import { report, readConfig, errorText } from "./harness.mjs";

const { createClient } = await import("@supabase/supabase-js");
const vsn1 = process.env.DOLLR_REALTIME_VSN === "1.0.0";

// A later stdin line {"realtimeKey": {...}} plays the page fetching a fresh
// key: the snippet's accessToken callback then returns the new one.
let realtimeKey;
const { SUPABASE_URL, SUPABASE_ANON_KEY, sessionId, referenceId, ...config } = await readConfig((update) => {
  if (update.realtimeKey) {
    realtimeKey = update.realtimeKey;
    report({ kind: "key-replaced" });
  }
});
realtimeKey = config.realtimeKey;

function fallbackToPolling() {
  report({ kind: "fallback" });
}

// ---- the guide's snippet ----------------------------------------------------
const supabase = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
  auth: { autoRefreshToken: false, persistSession: false },
  accessToken: async () => realtimeKey.access_token,
  ...(vsn1 ? { realtime: { vsn: "1.0.0" } } : {}),
});
supabase.realtime.setAuth(realtimeKey.access_token);

supabase
  .channel(`payment-intent:${sessionId}:${referenceId}`)
  .on(
    "postgres_changes",
    {
      event: "*",
      schema: "public",
      table: "checkout_payment_intent_public_status",
      filter: `reference_id=eq.${referenceId}`,
    },
    (payload) => {
      const row = payload.new;
      report({ kind: "change", eventType: payload.eventType, commit_timestamp: payload.commit_timestamp, new: row, old: payload.old, errors: payload.errors });
    }
  )
  .subscribe((status, err) => {
    report({ kind: "status", status, error: errorText(err) });
    if (status === "SUBSCRIBED") {
      // listening for updates
    }
    if (status === "CHANNEL_ERROR") fallbackToPolling();
  });
// ---- end of the guide's snippet ---------------------------------------------
