package log

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecovery damages the last segment of a synced log in arbitrary ways
// (cut, overwrite, append garbage, to data and journal) and checks that Open
// never fails or panics on it and recovers a prefix of what was appended,
// byte for byte, with the matching LastIndex. `go test` runs the seeds; run
// `go test -fuzz FuzzRecovery ./log` to search further.
func FuzzRecovery(f *testing.F) {
	f.Add(uint16(0), []byte{}, uint16(0), []byte{}, uint16(0))
	f.Add(uint16(37), []byte{0xff, 0x00, 0x12}, uint16(5), []byte{1}, uint16(3))
	f.Add(uint16(600), []byte("garbage after the data"), uint16(24), []byte{0, 0, 0}, uint16(0))
	f.Add(uint16(200), []byte{}, uint16(60), bytes.Repeat([]byte{0}, 48), uint16(100))

	f.Fuzz(func(t *testing.T, dataCut uint16, dataTail []byte, journalCut uint16, journalTail []byte, flip uint16) {
		dir := t.TempDir()
		cfg := smallConfig(nil)
		cfg.SegmentBytes = 900
		l := mustOpen(t, dir, cfg)
		var batches [][]byte
		for i := 0; i < 9; i++ {
			b := testBatch(1+i%3, 60+i*17, int64(i), int64(i), byte(i))
			mustAppend(t, l, b, uint64(i+1))
			batches = append(batches, b)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		segs := l.Segments()
		l.Close()
		last := segs[len(segs)-1]

		damage := func(path string, cut uint16, tail []byte) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if int(cut) < len(b) {
				b = b[:len(b)-int(cut)]
			}
			if len(b) > 0 && flip > 0 {
				b[int(flip)%len(b)] ^= byte(flip >> 8)
			}
			if err := os.WriteFile(path, append(b, tail...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		damage(last.DataPath, dataCut, dataTail)
		damage(last.JournalPath, journalCut, journalTail)

		r, err := Open(dir, cfg)
		if err != nil {
			t.Fatalf("Open after damage: %v", err)
		}
		defer r.Close()
		got := readAll(t, r)
		if len(got) > len(batches) {
			t.Fatalf("%d batches recovered from %d appended", len(got), len(batches))
		}
		for i := range got {
			if !bytes.Equal(got[i], batches[i]) {
				t.Fatalf("batch %d differs after recovery", i)
			}
		}
		wantIndex := uint64(len(got))
		if r.LastIndex() != wantIndex {
			t.Fatalf("LastIndex = %d with %d batches", r.LastIndex(), len(got))
		}
		if _, err := r.Append(testBatch(1, 5, 0, 0, 0), wantIndex+1); err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, resetMarkerName)); err == nil {
			t.Fatal("stray reset marker")
		}
	})
}
