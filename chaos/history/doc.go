// Package history defines the history format written by Skiff's chaos
// workload and the linear-time checker that finds the anomalies Jepsen's
// Kafka workload defines (lost writes, duplicates, inconsistent offsets,
// aborted reads, unexpected values, holes in the log, order violations by
// producers and consumers, and committed offsets going backwards).
//
// A history is a file of JSON lines, one Event per line, in the order the
// workload observed them. Check takes the events plus the final full read of
// every partition and returns a Report.
package history
