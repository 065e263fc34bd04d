package membership

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a slog.Handler that keeps records, safe for memberlist's
// goroutines that may log after the test.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
	notify  chan struct{} // receives after every record (buffered 1)
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, rec)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) find(level slog.Level, substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.Level == level && strings.Contains(rec.Message, substr) {
			return true
		}
	}
	return false
}

func TestMemberlistLogLevelsMapToSlog(t *testing.T) {
	rec := newRecorder()
	l := log.New(&logWriter{logger: slog.New(rec)}, "", 0)
	l.Printf("[DEBUG] memberlist: stream connection")
	l.Printf("[INFO] memberlist: Marking n3 as failed")
	l.Printf("[WARN] memberlist: Refuting a suspect message")
	l.Printf("[ERR] memberlist: Conflicting address for n3")
	l.Printf("no tag at all")
	for _, want := range []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "stream connection"},
		{slog.LevelInfo, "Marking n3 as failed"},
		{slog.LevelWarn, "Refuting a suspect message"},
		{slog.LevelError, "Conflicting address for n3"},
		{slog.LevelInfo, "no tag at all"},
	} {
		if !rec.find(want.level, want.msg) {
			t.Errorf("no %v record %q", want.level, want.msg)
		}
	}
	if rec.find(slog.LevelWarn, "memberlist:") {
		t.Error("the memberlist: prefix was kept")
	}
}

func TestJoinLoopGivesUpAfterJoinTimeout(t *testing.T) {
	rec := newRecorder()
	seed := fmt.Sprintf("127.0.0.1:%d", reservePorts(t, 1)[0]) // nobody listens
	cfg := testConfig(testMeta("quitter", 0), seed)
	cfg.JoinRetryInterval = 20 * time.Millisecond
	cfg.JoinTimeout = 100 * time.Millisecond
	cfg.Logger = slog.New(rec)
	start(t, cfg)
	deadline := time.After(5 * time.Second)
	for !rec.find(slog.LevelError, "giving up joining") {
		select {
		case <-rec.notify:
		case <-deadline:
			t.Fatal("join loop did not give up")
		}
	}
	if !rec.find(slog.LevelWarn, "no other node reachable") {
		t.Error("the first failed attempt was not a warning")
	}
}
