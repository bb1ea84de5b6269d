// Package bench is the load tool behind `dollr bench`: it drives a running
// dollr server through its public surfaces only (the Open API, the sandbox,
// the Supabase-protocol realtime socket, /metrics) and measures what a
// merchant's users would see: every status change delivered, and how long it
// took from its commit to the client.
//
// Scenarios:
//   - checkout: N real payments through the API and sandbox, each watched by
//     one realtime subscriber, executions paced to a target rate of status
//     changes per second;
//   - changes: status changes written straight into the store through the
//     sandbox's status-touch endpoint, to measure capture → fan-out → socket
//     alone, optionally with K subscribers per row;
//   - idle: N subscribed connections that receive nothing, for server memory
//     per connection;
//   - polling: the same payments watched by clients polling the Status API,
//     the alternative realtime replaces.
//
// Every loop is bounded in count and in time, targets are loopback only unless
// allowed otherwise, client sockets are spread over several 127.0.0.x source
// addresses, and a run refuses more connections than one process may open.
package bench
