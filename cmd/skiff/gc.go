package main

import (
	"fmt"
	"os"
	"runtime/debug"
)

// defaultGCPercent is the server's GOGC unless --gc-percent or GOGC says
// otherwise.
//
// Why not Go's 100: an idle node's live heap is mostly fixed per-replica
// state (raft-wal keeps a 128 KiB index and a 64 KiB write buffer for the
// open segment of every partition: 19 of the ~26 MB live on a node with
// 100 partitions), and GOGC=100 lets the heap grow to twice the live heap
// before collecting, which the runtime then keeps resident. 50 lets it grow
// by half: measured with scripts/bench-vs-jetstream.sh --idle, 100
// partitions RF 3, that is the difference between ~75 and ~60 MB RSS per
// node (README, "Idle with 100 partitions"). The price is a collection
// twice as often for the same allocation; the produce benchmark in the
// README shows what that costs.
const defaultGCPercent = 50

// gcPercent decides the GOGC the server runs with: --gc-percent when it was
// set (on the command line or as SKIFF_GC_PERCENT), else nothing when the
// GOGC variable is set (the runtime has applied it), else
// defaultGCPercent. ok is false when the runtime is to be left alone.
func gcPercent(flagSet bool, flagValue int, lookupEnv func(string) (string, bool)) (percent int, ok bool, err error) {
	if flagSet {
		if flagValue != -1 && flagValue < 10 {
			return 0, false, fmt.Errorf("--gc-percent %d: want -1 (no collection) or at least 10", flagValue)
		}
		return flagValue, true, nil
	}
	if _, set := lookupEnv("GOGC"); set {
		return 0, false, nil
	}
	return defaultGCPercent, true, nil
}

// applyGCPercent sets the GOGC gcPercent decides on.
func applyGCPercent(flagSet bool, flagValue int) error {
	p, ok, err := gcPercent(flagSet, flagValue, os.LookupEnv)
	if err != nil || !ok {
		return err
	}
	debug.SetGCPercent(p)
	return nil
}
