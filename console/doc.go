// Package console is Skiff's built-in web console, served under /ui/ on a
// node's HTTP port: the cluster (nodes, racks, controller, health), topics
// (partitions, leaders, in-sync replicas, offsets, configs), a message
// browser, consumer groups (members, assignments, lag in records and
// seconds) and share groups (in flight, available, dead letters,
// quarantined keys) with dead-letter redrive and discard behind a
// confirmation.
//
// Pages are rendered on the server from html/template files embedded in
// the binary; a few lines of JavaScript refresh them in place. There is
// no build step and no Node toolchain.
//
// The console holds no privileges of its own: it reads and acts through
// the node's public gRPC API with the Go client, as the browser's user.
// With authentication on (skiff server --auth) every request must carry
// HTTP Basic credentials, which the console hands to the API as the
// user's name and password; the API's authentication and ACLs then decide
// every page and every action exactly as they decide the same calls from
// the CLI. A principal without the rights to redrive or discard dead
// letters sees the API's refusal, and nothing changes.
package console
