// Package raftnet lets every Raft group of a node share one TCP port.
//
// A node runs one hashicorp/raft group per partition replica plus the meta
// group. Each group keeps its own raft.NetworkTransport (connection pools,
// pipelining and timeouts stay as hashicorp/raft wrote them); only the
// raft.StreamLayer underneath is shared. A Mux owns the listener; every
// group registers with Mux.StreamLayer(name) and gets a StreamLayer whose
// Accept yields the inbound connections addressed to that group and whose
// Dial reaches the same group on a peer's Mux.
//
// # Wire format
//
// Every connection starts with one header, written by the dialing side in a
// single write and read by the accepting side before anything else:
//
//	offset  size  field
//	0       4     magic "SKRF" (0x53 0x4B 0x52 0x46)
//	4       1     version, currently 1
//	5       2     G = length of the group name, big-endian uint16, 1..MaxNameLen
//	7       G     group name, [A-Za-z0-9._:/-]
//	7+G     2     N = length of the source node id, big-endian uint16, 1..MaxNameLen
//	9+G     N     source node id, [A-Za-z0-9._:/-]
//
// After the header the connection belongs to the group's
// raft.NetworkTransport and carries its msgpack RPCs unchanged: the mux
// never copies bytes through a goroutine of its own, so it adds no cost per
// byte (see BenchmarkThroughput).
//
// There is no reply to the header. A connection to an unknown group, or
// with a malformed header, is simply closed by the accepting side; the
// dialer's first RPC then fails with EOF, which hashicorp/raft already
// treats as a failed RPC and retries with back-off. An acknowledgement
// would cost every new connection a round trip to report something Raft
// handles anyway.
//
// The magic lets the accepting side reject stray traffic (a health checker,
// an HTTP client on the wrong port) at the first four bytes; the version
// byte leaves room for a different header later. Lengths are bounded so
// that a hostile peer cannot make the mux allocate much, and the whole
// header must arrive within MuxConfig.HeaderTimeout.
//
// # TLS
//
// With MuxConfig.TLS the connection is TLS from its first byte: the dialer
// runs the client handshake (presenting its node certificate), then writes
// the header inside the encrypted stream. The accepting side completes the
// server handshake within HeaderTimeout, requires a client certificate it
// trusts, and refuses the connection when the node id in the header is not
// the one PeerID finds in that certificate. Accepted connections carry the
// header's node id (Peer), marked verified under TLS; in plaintext it is
// only a claim, which MuxConfig.Authorize may check against what the node
// knows of its cluster.
//
// # Fault injection
//
// FaultNetwork is the fault-injecting twin used by in-process multi-node
// tests: Muxes built through it filter both their dial and accept paths by
// (source node, destination node), so a test can partition, isolate, delay
// and heal links between nodes while hashicorp/raft runs over real loopback
// TCP.
package raftnet
