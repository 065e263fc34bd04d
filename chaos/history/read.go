package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
)

// LineError reports bad input at a 1-based line of a history.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("history: line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// All yields the events of the history in r in order, skipping blank lines.
// On bad input it yields one *LineError and stops.
func All(r io.Reader) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		br := bufio.NewReader(r)
		for line := 1; ; line++ {
			b, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(b)) > 0 {
				var e Event
				dec := json.NewDecoder(bytes.NewReader(b))
				if derr := dec.Decode(&e); derr != nil {
					yield(Event{}, &LineError{Line: line, Err: derr})
					return
				}
				if dec.More() {
					yield(Event{}, &LineError{Line: line, Err: errors.New("more than one JSON value")})
					return
				}
				if !yield(e, nil) {
					return
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Event{}, &LineError{Line: line, Err: err})
				return
			}
		}
	}
}

// Read returns every event of the history in r.
func Read(r io.Reader) ([]Event, error) {
	var events []Event
	for e, err := range All(r) {
		if err != nil {
			return events, err
		}
		events = append(events, e)
	}
	return events, nil
}
