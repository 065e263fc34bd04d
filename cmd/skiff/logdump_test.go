package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/record"
)

func writeTestLog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	lg, err := log.Open(dir, log.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		b, err := record.Encode(record.BatchOptions{}, []record.Record{
			{Timestamp: 1000, Key: []byte("k"), Value: []byte("hello")},
			{Timestamp: 1001, Value: []byte{0xff, 0xfe}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lg.Append(b, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLogDumpJSONListsEveryBatch(t *testing.T) {
	dir := writeTestLog(t)
	var out bytes.Buffer
	if err := dumpLog(&out, dir, true, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out.String())
	}
	for i, line := range lines {
		var s batchSummary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		if s.BaseOffset != int64(2*i) || s.LastOffset != int64(2*i+1) || !s.CRCValid || s.Records != 2 {
			t.Fatalf("batch %d: %+v", i, s)
		}
		if len(s.Contents) != 2 || s.Contents[0].Value != "hello" || s.Contents[0].Key != "k" || !s.Contents[1].Base64 {
			t.Fatalf("batch %d records: %+v", i, s.Contents)
		}
	}
}

func TestLogDumpReportsCorruptBatchWithoutChangingFiles(t *testing.T) {
	dir := writeTestLog(t)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0x55 // damage the last batch's records
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := dumpLog(&out, dir, false, false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "crc mismatch"); got != 1 {
		t.Fatalf("want exactly one CRC error line, got %d:\n%s", got, out.String())
	}
	after, _ := os.ReadFile(segs[0])
	if !bytes.Equal(after, data) {
		t.Fatal("dump modified the segment file")
	}
}

func TestLogDumpOnEmptyDirSaysWhatIsWrong(t *testing.T) {
	err := dumpLog(&bytes.Buffer{}, t.TempDir(), false, false)
	if err == nil || !strings.Contains(err.Error(), "no segment files") {
		t.Fatalf("got %v", err)
	}
}
