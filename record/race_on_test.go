//go:build race

package record

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts through pooled codec buffers are not meaningful.
const raceEnabled = true
