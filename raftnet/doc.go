// Package raftnet lets every Raft group of a node share one TCP port, and
// (through a Hub) a few connections per peer node.
//
// A node runs one hashicorp/raft group per partition replica plus the meta
// group. A Mux owns the listener; anything that wants connections of its
// own registers a name with Mux.StreamLayer(name) and gets a StreamLayer
// whose Accept yields the inbound connections addressed to that name and
// whose Dial reaches the same name on a peer's Mux. The node-to-node HTTP
// channel is one such name; the Hub is another.
//
// The Raft groups themselves run on a Hub (NewHub): each group's
// raft.Transport (Hub.Transport) sends its RPCs over connections the Hub
// shares between all groups of the node, instead of a
// raft.NetworkTransport per group with its own pool of connections to each
// peer. NetworkTransport gives every connection 256 KiB read and 256 KiB
// write buffers; with a hundred groups, a pool per group and two peers
// that was most of an idle node's memory (135 of 158 MB in a heap
// profile). A Hub keeps two connections per peer for all groups, with 4 to
// 32 KiB buffers.
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
// After the header the connection belongs to whoever registered the group
// (the Hub, the peer HTTP server, or a raft.NetworkTransport in tests): the
// mux never copies bytes through a goroutine of its own, so it adds no cost
// per byte (see BenchmarkThroughput).
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
// # Hub wire format (RPC version 1)
//
// A Hub connection is a Mux connection to the group HubConfig.MuxGroup
// ("raftnet:rpc" by default; Raft group names live in the Hub's own
// namespace, carried in each request frame), so TLS, the
// verified node id and MuxConfig.Authorize (called with that group name)
// apply to it unchanged. Right after the Mux header the dialer writes a
// two-byte preamble:
//
//	offset  size  field
//	0       1     RPC version, currently 2 (RPCVersion)
//	1       1     lane: 0 control, 1 data, 2 snapshot
//
// The accepting Hub closes a connection with another version or lane.
// Nodes of different RPC versions, or a node of this version and one that
// still ran a NetworkTransport per group (Skiff before the Hub), cannot
// replicate with each other: upgrade all nodes of a cluster together.
//
// Then both directions carry frames. Every integer is big-endian:
//
//	offset  size  field
//	0       4     L = length of the rest of the frame, 9..MaxFrameBytes
//	4       1     kind
//	5       8     request id, chosen by the requester, unique on the connection
//	13      L-9   payload
//
// A request's kind is the RPC type, hashicorp/raft's own numbering: 0
// AppendEntries, 1 RequestVote, 2 InstallSnapshot, 3 TimeoutNow, 4
// RequestPreVote. Its payload is the group name (2-byte length G, 1..
// MaxNameLen, then G bytes of [A-Za-z0-9._:/-]) followed by raft's request
// struct in msgpack (hashicorp/go-msgpack, as raft.NetworkTransport
// encodes it), except AppendEntries, whose fields and entries have a
// fixed binary layout (appendcodec.go): one exact allocation per payload
// where msgpack grows a large one in 256 KiB steps. A response's kind is 0x80|type with raft's response struct
// in msgpack, or 0xC0 with an error message (UTF-8, at most 1 KiB); its
// request id is the request's. Responses come in whatever order the groups
// answer; the requester matches them by id.
//
// Lanes keep kinds of traffic from queueing behind each other. The control
// lane carries heartbeats and other AppendEntries without entries, votes,
// pre-votes and TimeoutNow: small, latency-critical requests, so a large
// append of one group never delays another group's heartbeat. The data
// lane carries AppendEntries with entries. Each of the two is one
// connection per peer for all groups; the answering Hub handles the
// requests of a connection concurrently, each on a worker goroutine of its
// own while it is handled (at most HubConfig.MaxInflight at once), so a
// group whose Raft loop is slow to answer holds up none of the others. An InstallSnapshot dials a snapshot lane of its own: the
// request frame, then exactly InstallSnapshotRequest.Size bytes of
// snapshot, streamed through a 32 KiB buffer on both sides, then one
// response, after which the connection is closed.
//
// Everything read from the network is treated as hostile. A frame length
// beyond MaxFrameBytes (default 72 MiB: a partition's largest batch, 64
// MiB, in one AppendEntries plus headers) is refused before anything is
// allocated, and a body's buffer grows as its bytes arrive (or is a
// pooled one already allocated), so a peer announcing a large frame and
// sending little costs little. Frame buffers are pooled by size class in
// both directions: building and reading an AppendEntries allocates no
// buffer of its size in the steady state. A malformed
// frame (bad length, unknown kind, bad group name, a body that does not
// decode, a response where a request belongs) closes the connection; a
// request for a group this node does not run is answered with an error.
//
// Each RPC has TransportConfig.RPCTimeout from the call to its answer
// (InstallSnapshot one more per 256 KiB, as NetworkTransport scales it).
// When a connection fails, every RPC waiting on it fails at once; when an
// RPC times out and nothing at all arrived on its connection since it was
// sent, the connection is presumed dead (a silent partition keeps TCP
// open) and closed, and the next RPC redials. Outbound connections idle
// for HubConfig.IdleTimeout are closed.
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
