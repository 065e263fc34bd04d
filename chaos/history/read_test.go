package history

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriterReadRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	want := []Event{
		{Time: t0, Type: SendEvent, Process: "p1", Topic: "t", Value: "v1", Seq: 1},
		{Time: t0.Add(time.Millisecond), Type: AckEvent, Process: "p1", Topic: "t", Partition: 2, Offset: 7, Value: "v1"},
		{Time: t0.Add(2 * time.Millisecond), Type: CommitEvent, Process: "c1", Topic: "t", Partition: 2, Offset: 8, Group: "g"},
		{Time: t0.Add(3 * time.Millisecond), Type: FaultEvent, Value: FaultStart, Detail: "kill n1"},
	}
	for _, e := range want {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("writer did not buffer: %d bytes before Close", buf.Len())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(want[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) {
			t.Fatalf("event %d time %v, want %v", i, got[i].Time, want[i].Time)
		}
		got[i].Time = want[i].Time
		if got[i] != want[i] {
			t.Fatalf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestWriterIsSafeForConcurrentUseAndStampsTime(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if err := w.Write(Event{Type: SendEvent, Process: fmt.Sprint("p", p), Value: fmt.Sprint(p, "-", i), Seq: int64(i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 800 {
		t.Fatalf("read %d events, want 800", len(got))
	}
	for _, e := range got {
		if e.Time.IsZero() {
			t.Fatalf("event without time: %+v", e)
		}
	}
}

func TestReadNamesBadLine(t *testing.T) {
	in := `{"type":"send","value":"a"}

{"type":"ack","value":"a","offset":0}
{"type":"read",
`
	_, err := Read(strings.NewReader(in))
	var le *LineError
	if !errors.As(err, &le) || le.Line != 4 {
		t.Fatalf("error %v, want a LineError on line 4", err)
	}
	if !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("error %q does not name the line", err)
	}
}

func TestReadAcceptsMissingFinalNewline(t *testing.T) {
	got, err := Read(strings.NewReader(`{"type":"send","value":"a"}` + "\n" + `{"type":"fail","value":"a"}`))
	if err != nil || len(got) != 2 || got[1].Type != FailEvent {
		t.Fatalf("got %+v, %v", got, err)
	}
}
