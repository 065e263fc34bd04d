package membership

import (
	"context"
	"errors"
	"fmt"
	"github.com/hashicorp/memberlist"
	"testing"
	"time"
)

func isField(err error, field string) bool {
	var fe *FieldError
	return errors.As(err, &fe) && fe.Field == field
}

func TestSingleNodeSeesItself(t *testing.T) {
	meta := testMeta("solo", 0)
	m := start(t, testConfig(meta))
	local := m.Local()
	if local.Meta != withMetaVersion(meta) || local.Addr != m.Addr() || local.State != StateAlive || local.Since.IsZero() {
		t.Fatalf("Local() = %+v", local)
	}
	if got := m.Members(); len(got) != 1 || got[0] != local {
		t.Fatalf("Members() = %s", describe(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.WaitForMembers(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

func TestWaitForMembersHonoursContext(t *testing.T) {
	m := start(t, testConfig(testMeta("waiter", 0)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.WaitForMembers(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForMembers = %v, want deadline exceeded", err)
	}
}

// TestSlowSubscriberDoesNotBlock drives far more events than a subscriber
// buffers past one that never reads: the producer never waits for it, a
// reader that keeps up sees every event, and the stuck one holds the newest
// EventBuffer events. The producer paces itself on the reader (never more
// than half a buffer ahead) because a reader that falls a whole buffer
// behind loses events by design, and a loaded machine can delay any reader.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	meta := testMeta("busy", 0)
	m := start(t, testConfig(meta))
	stuck, _ := m.Subscribe()
	reader, unsubscribe := m.Subscribe()
	defer unsubscribe()

	const n = 3 * EventBuffer
	progress := make(chan int, n)
	go func() {
		defer close(progress)
		count := 0
		for ev := range reader {
			if ev.Type != EventUpdated {
				continue
			}
			count++
			progress <- count
			if count == n {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := 0
	waitFor := func(want int) {
		for seen < want {
			select {
			case got, ok := <-progress:
				if !ok {
					t.Fatalf("reader stopped after %d updates, want %d", seen, want)
				}
				seen = got
			case <-ctx.Done():
				t.Fatalf("reading subscriber starved: saw %d updates, want %d", seen, want)
			}
		}
	}
	for i := range n {
		meta.Rack = fmt.Sprintf("r%03d", i)
		if err := m.UpdateMeta(ctx, meta); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if (i+1)%(EventBuffer/2) == 0 {
			waitFor(i + 1)
		}
	}
	waitFor(n)
	if len(stuck) != EventBuffer {
		t.Fatalf("stuck subscriber holds %d events, want %d", len(stuck), EventBuffer)
	}
	for i := n - EventBuffer; i < n; i++ {
		ev := <-stuck
		if want := fmt.Sprintf("r%03d", i); ev.Member.Meta.Rack != want {
			t.Fatalf("stuck subscriber has %q where the newest events say %q", ev.Member.Meta.Rack, want)
		}
	}
}

func TestUnsubscribeClosesOnlyThatChannel(t *testing.T) {
	m := start(t, testConfig(testMeta("subs", 0)))
	a, unsubA := m.Subscribe()
	b, unsubB := m.Subscribe()
	defer unsubB()
	unsubA()
	unsubA() // idempotent
	if _, ok := <-a; ok {
		t.Fatal("unsubscribed channel still open")
	}
	meta := testMeta("subs", 0)
	meta.Rack = "moved"
	if err := m.UpdateMeta(context.Background(), meta); err != nil {
		t.Fatal(err)
	}
	if ev := <-b; ev.Type != EventUpdated || ev.Member.Meta.Rack != "moved" {
		t.Fatalf("remaining subscriber got %+v", ev)
	}
}

func TestShutdownIsIdempotentAndClosesEverything(t *testing.T) {
	m, err := Start(context.Background(), testConfig(testMeta("closer", 0)))
	if err != nil {
		t.Fatal(err)
	}
	events, unsubscribe := m.Subscribe()
	changed := m.Changed()
	for range 2 {
		if err := m.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	unsubscribe() // after close: harmless
	if _, ok := <-events; ok {
		t.Error("subscription not closed by Shutdown")
	}
	<-changed // closed
	ctx := context.Background()
	if err := m.Leave(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Shutdown = %v, want ErrClosed (not a memberlist panic)", err)
	}
	if err := m.UpdateMeta(ctx, testMeta("closer", 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateMeta after Shutdown = %v", err)
	}
	if err := m.WaitForMembers(ctx, 2); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitForMembers after Shutdown = %v", err)
	}
	if late, _ := m.Subscribe(); late != nil {
		if _, ok := <-late; ok {
			t.Error("Subscribe after Shutdown returned an open channel")
		}
	}
}

func TestLeaveAloneReturnsPromptly(t *testing.T) {
	m, err := Start(context.Background(), testConfig(testMeta("alone", 0)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx); err != nil {
		t.Fatalf("second Leave = %v", err)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatalf("Shutdown after Leave = %v", err)
	}
	if s := m.Local().State; s != StateLeft {
		t.Fatalf("Local().State after Leave = %v", s)
	}
}

// TestShutdownStopsTheJoinLoop: a node whose seed never answers keeps
// retrying, and Shutdown still returns promptly and waits for the loop.
func TestShutdownStopsTheJoinLoop(t *testing.T) {
	// A seed that refuses connections: a reserved port nobody listens on.
	seed := fmt.Sprintf("127.0.0.1:%d", reservePorts(t, 1)[0])
	m, err := Start(context.Background(), testConfig(testMeta("lonely", 0), seed))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
}

func TestForeignMemberlistNodesAreIgnored(t *testing.T) {
	m := start(t, testConfig(testMeta("guard", 0)))
	// A node whose meta is not ours is refused by the alive filter.
	d := &delegate{m: m}
	if err := d.NotifyAlive(foreignNode("intruder", []byte("not-skiff"))); err == nil {
		t.Error("foreign meta admitted")
	}
	good, _ := encodeMeta(testMeta("impostor", 1), false)
	if err := d.NotifyAlive(foreignNode("other-name", good)); err == nil {
		t.Error("meta whose id differs from the node name admitted")
	}
	if err := d.NotifyAlive(foreignNode("impostor", good)); err != nil {
		t.Errorf("valid node refused: %v", err)
	}
}

func foreignNode(name string, meta []byte) *memberlist.Node {
	return &memberlist.Node{Name: name, Meta: meta}
}
