// A hostile client for the isolation scenario: it authenticates exactly as the
// guide's snippet does (same options, same key, same channel name) but asks for
// other rows with the bindings it is given. Each probe gets its own client and
// socket; every record names its probe and, for changes, the binding index.
import { report, readConfig, errorText } from "./harness.mjs";

const { createClient } = await import("@supabase/supabase-js");
const vsn1 = process.env.DOLLR_REALTIME_VSN === "1.0.0";

const { SUPABASE_URL, SUPABASE_ANON_KEY, realtimeKey, sessionId, referenceId, probes } = await readConfig();

for (const probe of probes) {
  const supabase = createClient(SUPABASE_URL, SUPABASE_ANON_KEY, {
    auth: { autoRefreshToken: false, persistSession: false },
    accessToken: async () => realtimeKey.access_token,
    ...(vsn1 ? { realtime: { vsn: "1.0.0" } } : {}),
  });
  supabase.realtime.setAuth(realtimeKey.access_token);

  let channel = supabase.channel(`payment-intent:${sessionId}:${referenceId}`);
  probe.bindings.forEach((binding, index) => {
    channel = channel.on("postgres_changes", binding, (payload) => {
      report({ kind: "change", probe: probe.name, binding: index, eventType: payload.eventType, new: payload.new, old: payload.old });
    });
  });
  channel.on("system", {}, (payload) => report({ kind: "system", probe: probe.name, payload }));
  channel.subscribe((status, err) => report({ kind: "status", probe: probe.name, status, error: errorText(err) }));
}
