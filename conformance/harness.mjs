// Shared set-up for the Node scripts the Go suite runs. Importing this module
// makes ws the global WebSocket (Node 20 has none, and supabase-js needs one
// at createClient time), optionally traces every frame, and gives the scripts
// a JSON-lines reporter and their configuration.
//
// Protocol with conformance_test.go:
//   stdout: one JSON object per line: {"kind":"ready"} once supabase-js is
//           loaded, then "status", "change", "frame" and "fatal" records.
//   stdin:  one JSON line with the run's configuration (keys are minted only
//           after the process is ready, so Node's start-up never eats into a
//           short-lived key), then optional update lines. When stdin closes
//           the process exits, so it never outlives the test that started it.

globalThis.WebSocket = (await import("ws")).WebSocket;

const started = Date.now();

export function report(record) {
  process.stdout.write(JSON.stringify({ ms: Date.now() - started, ...record }) + "\n");
}

process.on("uncaughtException", (err) => {
  report({ kind: "fatal", message: String(err && err.stack ? err.stack : err) });
  process.exit(2);
});
process.on("unhandledRejection", (err) => {
  report({ kind: "fatal", message: String(err && err.stack ? err.stack : err) });
  process.exit(2);
});

// A safety net: the Go side always kills its clients, but a client left behind
// by a crashed test stops on its own.
const maxSeconds = Number(process.env.DOLLR_CLIENT_MAX_SECONDS || 300);
setTimeout(() => {
  report({ kind: "fatal", message: `client ran longer than ${maxSeconds}s` });
  process.exit(3);
}, maxSeconds * 1000).unref();

// Frame tracing wraps ws's own send and emit, so the transport the client uses
// is still exactly ws's WebSocket class. Each frame is reported with the
// socket's sequence number (a reconnect opens a new socket).
if (process.env.DOLLR_TRACE_FRAMES === "1") {
  const WS = globalThis.WebSocket;
  const socketIds = new WeakMap();
  let nextSocket = 1;
  const socketId = (ws) => {
    if (!socketIds.has(ws)) socketIds.set(ws, nextSocket++);
    return socketIds.get(ws);
  };
  const text = (data, binary) =>
    binary ? "binary:" + Buffer.from(data).toString("hex") : Buffer.isBuffer(data) ? data.toString("utf8") : String(data);
  const send = WS.prototype.send;
  WS.prototype.send = function (data, ...rest) {
    report({ kind: "frame", dir: "out", socket: socketId(this), data: text(data, typeof data !== "string") });
    return send.call(this, data, ...rest);
  };
  const emit = WS.prototype.emit;
  WS.prototype.emit = function (event, ...args) {
    if (event === "message") {
      report({ kind: "frame", dir: "in", socket: socketId(this), data: text(args[0], args[1]) });
    } else if (event === "open") {
      report({ kind: "frame", dir: "open", socket: socketId(this), data: this.url });
    } else if (event === "close") {
      report({ kind: "frame", dir: "close", socket: socketId(this), data: `${args[0]} ${args[1] || ""}`.trim() });
    }
    return emit.call(this, event, ...args);
  };
}

// readConfig announces readiness and resolves with the first stdin line.
// Every later line is handed to the onUpdate callback (the page's own code
// replacing its realtimeKey, for instance).
export function readConfig(onUpdate = () => {}) {
  return new Promise((resolve) => {
    let buffered = "";
    let configured = false;
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        if (!configured) {
          configured = true;
          resolve(line);
        } else {
          onUpdate(line);
        }
      }
    });
    process.stdin.on("end", () => process.exit(0));
    report({ kind: "ready" });
  });
}

// errorText renders the subscribe callback's error argument.
export function errorText(err) {
  if (!err) return undefined;
  let cause = "";
  if (err.cause !== undefined && err.cause !== null) {
    const c = err.cause;
    cause = ` (cause: ${typeof c === "string" ? c : c.message !== undefined ? c.message : JSON.stringify(c)})`;
  }
  return String(err.message) + cause;
}
