// Package workload is the client side of Skiff's chaos tests: producers that
// write unique, sequenced values with keys to a multi-partition topic,
// readers that consume it while faults happen, members of a consumer group
// that consume it and commit offsets (group.go), and the final read of every
// partition once they healed. Every attempt, outcome and record read goes
// to a history (package chaos/history) for the checker.
//
// It speaks to the cluster only through the public Go client (package
// client), as a user's program would, so it runs against any cluster: the
// compose cluster of scripts/chaos.sh, `skiff dev`, or nodes a Go test
// started in-process.
package workload
