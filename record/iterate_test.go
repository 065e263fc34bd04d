package record

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fetchResponse concatenates n batches of one record each, with values
// "0", "1", ...
func fetchResponse(t *testing.T, n int) ([]byte, [][]byte) {
	t.Helper()
	var all []byte
	var batches [][]byte
	for i := range n {
		b, err := Encode(BatchOptions{Compression: allCodecs[i%len(allCodecs)]}, []Record{{Value: []byte{'0' + byte(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		SetBaseOffset(b, int64(i))
		batches = append(batches, b)
		all = append(all, b...)
	}
	return all, batches
}

func TestNextBatchSplitsConcatenatedBatches(t *testing.T) {
	all, want := fetchResponse(t, 5)
	rest := all
	for i := range want {
		batch, next, err := NextBatch(rest)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !bytes.Equal(batch, want[i]) {
			t.Fatalf("batch %d differs", i)
		}
		if cap(batch) != len(batch) {
			t.Fatalf("batch %d is not capped: appending would overwrite the next", i)
		}
		_, recs, err := Decode(batch)
		if err != nil || recs[0].Offset != int64(i) || recs[0].Value[0] != '0'+byte(i) {
			t.Fatalf("batch %d decodes to %v, %v", i, recs, err)
		}
		rest = next
	}
	if _, _, err := NextBatch(rest); err != io.EOF {
		t.Fatalf("after the last batch: %v, want io.EOF", err)
	}
}

// TestPartialTrailingBatch: a fetch response cut anywhere inside its last
// batch yields every whole batch, then ErrShortBuffer.
func TestPartialTrailingBatch(t *testing.T) {
	all, want := fetchResponse(t, 3)
	lastStart := len(all) - len(want[2])
	for cut := lastStart + 1; cut < len(all); cut++ {
		var got [][]byte
		var last error
		for batch, err := range Batches(all[:cut]) {
			if err != nil {
				last = err
				break
			}
			got = append(got, batch)
		}
		if len(got) != 2 {
			t.Fatalf("cut at %d: %d whole batches, want 2", cut, len(got))
		}
		if !errors.Is(last, ErrShortBuffer) {
			t.Fatalf("cut at %d: %v, want ErrShortBuffer", cut, last)
		}
	}
	// Cut exactly between batches there is no error at all.
	n := 0
	for _, err := range Batches(all[:lastStart]) {
		if err != nil {
			t.Fatalf("cut between batches: %v", err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("cut between batches: %d batches, want 2", n)
	}
}

func TestBatchesReportsGarbage(t *testing.T) {
	all, _ := fetchResponse(t, 2)
	garbage := append(bytes.Clone(all), bytes.Repeat([]byte{0xAB}, 70)...)
	var errs []error
	for _, err := range Batches(garbage) {
		errs = append(errs, err)
	}
	if len(errs) != 3 || errs[0] != nil || errs[1] != nil || errs[2] == nil || errors.Is(errs[2], ErrShortBuffer) {
		t.Fatalf("errors %v: want two batches, then a hard error that is not ErrShortBuffer", errs)
	}
}

func TestBatchesStopsWhenAsked(t *testing.T) {
	all, _ := fetchResponse(t, 4)
	n := 0
	for range Batches(all) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("ran %d iterations", n)
	}
}
