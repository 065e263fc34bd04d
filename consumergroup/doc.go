// Package consumergroup coordinates consumer groups: membership in the
// style of Kafka's KIP-848 consumer protocol (members heartbeat with their
// subscription; the coordinator computes a sticky, balanced target
// assignment and hands partitions over incrementally, a partition going to
// its new owner only after the old owner released it), committed offsets
// fenced by member epochs, and offset resets for replay.
//
// Committed offsets live in the internal topic __consumer_offsets. A group
// belongs to one of its partitions (PartitionFor), and that partition's
// leader is the group's coordinator. Every replica of an offsets partition
// reads its log and keeps the latest committed offsets in memory, so a new
// coordinator has them the moment it is elected. The log is kept short by
// checkpoints: the coordinator rewrites the live offsets as one contiguous
// run of records, after which every replica deletes the segments before it.
//
// Group membership is soft state held by the coordinator only. After a
// coordinator failover members heartbeat the new coordinator with their
// member id, epoch and owned partitions, and it adopts them, so members
// carry on without giving up their partitions.
//
// Share groups (queues) keep their state in the same log as typed share
// commands (share_cmd.go). Their decisions are a pure core (share_core.go)
// over the state, the time and the request; a shell (share_shell.go)
// reads the records, decides under one mutex per offsets partition that
// it never holds across a write, and hands the commands to a group
// committer (share_commit.go) that appends all concurrent operations'
// commands at once and answers each caller once they are committed.
//
// The package reaches partitions and the cluster only through the Host and
// Log interfaces; it never imports the cluster or the RPC layer.
package consumergroup
