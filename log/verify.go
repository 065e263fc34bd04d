package log

import (
	"fmt"

	"github.com/skiff-mq/skiff/record"
)

// parallelVerifyBytes is the batch size from which Append checks the CRC on
// another goroutine while the data is written, instead of before. CRC-32C
// runs at about 25 GB/s and writing to the page cache at 3-4 GB/s, so
// checking a 1 MiB batch first adds about a sixth to its append time; in
// parallel it adds nothing. Smaller batches are checked inline: their
// pwrite is too short for the scheduler to run the check beside it (a
// goroutine only gets the writer's processor back after the syscall has
// blocked for a sysmon tick), so the hand-off would only add cost.
//
// A batch that fails the check is never given a journal entry or published:
// the bytes written for it lie past the committed end, where the next append
// overwrites them and recovery would cut them.
const parallelVerifyBytes = 512 << 10

// verifyBatch checks that batch is exactly one intact v2 batch: record.Verify,
// split in two for large batches. It returns the header and, for a large
// batch, a pending CRC check that the caller must wait for before it trusts
// the batch and before it returns (the check reads the caller's slice).
func verifyBatch(batch []byte) (record.BatchHeader, *crcCheck, error) {
	var h record.BatchHeader
	var err error
	if len(batch) < parallelVerifyBytes {
		h, err = record.Verify(batch)
	} else {
		h, err = record.ParseHeader(batch)
	}
	if err != nil {
		return h, nil, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if h.Size() != len(batch) {
		return h, nil, fmt.Errorf("%w: %d bytes after the batch", ErrInvalidBatch, len(batch)-h.Size())
	}
	if len(batch) < parallelVerifyBytes {
		return h, nil, nil
	}
	return h, startCRCCheck(batch, h.CRC), nil
}

// crcCheck is a CRC-32C computation running on its own goroutine. It reads
// only the bytes the CRC covers (from the attributes on), so stamping the base
// offset meanwhile does not race with it.
type crcCheck struct {
	done chan bool
	ok   bool
}

func startCRCCheck(batch []byte, want uint32) *crcCheck {
	c := &crcCheck{done: make(chan bool, 1)}
	go func() { c.done <- record.Checksum(batch) == want }()
	return c
}

// wait returns the outcome; it may be called more than once.
func (c *crcCheck) wait() error {
	if c.done != nil {
		c.ok = <-c.done
		c.done = nil
	}
	if !c.ok {
		return fmt.Errorf("%w: %w", ErrInvalidBatch, &record.FormatError{Field: "crc", Err: record.ErrCRCMismatch})
	}
	return nil
}
