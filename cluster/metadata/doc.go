// Package metadata is the replicated cluster metadata of Skiff: the state
// held by the `meta` Raft group on every node (brokers, topics with their
// configs and replica assignments, producer-id blocks, the meta voters), the
// commands that change it, their validation, and the hashicorp/raft FSM that
// applies them.
//
// The package does no I/O and starts no goroutine. The controller proposes
// commands built with EncodeCommand on the meta leader and reads each
// outcome with ResultOf; every node reads the applied state through
// FSM.State and waits for changes on FSM.Changed.
//
// Determinism is the rule everything here follows: Apply depends only on
// the state and the log entry (never on the clock, node configuration or
// map iteration order), re-validates every command (the FSM never trusts
// the proposer), and a rejected command changes nothing. Because every rule
// Apply checks is part of the replicated state machine, changing one (a
// bound, a new field) is a log-format change: it needs a new command type,
// or replicas running different versions would disagree on the same entry.
package metadata
