package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrClosed is returned by Writer.Write after Close.
var ErrClosed = errors.New("history: writer closed")

// Writer appends events to a history as JSON lines. It is safe for
// concurrent use; events are buffered until Flush or Close. The Writer does
// not own the underlying io.Writer: closing that is the caller's job.
type Writer struct {
	mu     sync.Mutex // guards every field below
	buf    *bufio.Writer
	enc    *json.Encoder
	closed bool
	now    func() time.Time
}

// NewWriter returns a Writer that appends to w.
func NewWriter(w io.Writer) *Writer {
	buf := bufio.NewWriter(w)
	return &Writer{buf: buf, enc: json.NewEncoder(buf), now: time.Now}
}

// Write appends e as one line. A zero Time is replaced by the current time,
// so that callers can stamp events at the moment they are recorded.
func (w *Writer) Write(e Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if e.Time.IsZero() {
		e.Time = w.now()
	}
	if err := w.enc.Encode(&e); err != nil {
		return fmt.Errorf("history: write %s event: %w", e.Type, err)
	}
	return nil
}

// Flush writes buffered events to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("history: flush: %w", err)
	}
	return nil
}

// Close flushes buffered events; later writes fail with ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("history: flush: %w", err)
	}
	return nil
}
