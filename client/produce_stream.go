package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// produceStreams keeps one ProduceStream per broker, shared by every
// producer of the Client. The broker writes a stream's batches of one
// partition strictly in the order they arrive, so batches sent in sequence
// order are appended in that order even with several in flight; unary
// calls, handled concurrently, could overtake each other and come back as
// sequence gaps.
type produceStreams struct {
	c      *Client
	nextID atomic.Uint64

	mu    sync.Mutex // guards slots
	slots map[string]*streamSlot
}

// streamSlot holds one broker's current stream.
type streamSlot struct {
	mu     sync.Mutex // held while the stream is checked or opened
	stream *produceStream
}

// produceStream is one broker's stream: requests go out under sendMu, one
// goroutine receives and hands each response to the call waiting for its
// correlation id.
type produceStream struct {
	addr   string
	stream grpc.BidiStreamingClient[skiffpb.ProduceRequest, skiffpb.ProduceResponse]
	cancel context.CancelFunc
	sendMu sync.Mutex // Send is not safe for concurrent use

	mu      sync.Mutex // guards the fields below
	waiting map[uint64]chan streamResult
	err     error // set once the stream broke: every call fails with it
}

type streamResult struct {
	resp *skiffpb.ProduceResponse
	err  error
}

func newProduceStreams(c *Client) *produceStreams {
	return &produceStreams{c: c, slots: make(map[string]*streamSlot)}
}

// produce sends req on addr's stream and returns a function that waits
// for its response or ctx. Requests sent by one goroutine after one
// another reach the broker in that order.
func (ps *produceStreams) produce(ctx context.Context, addr string, req *skiffpb.ProduceRequest) func() (*skiffpb.ProduceResponse, error) {
	failed := func(err error) func() (*skiffpb.ProduceResponse, error) {
		return func() (*skiffpb.ProduceResponse, error) { return nil, err }
	}
	s, err := ps.get(addr)
	if err != nil {
		return failed(err)
	}
	id := ps.nextID.Add(1)
	ch := make(chan streamResult, 1)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return failed(err)
	}
	s.waiting[id] = ch
	s.mu.Unlock()

	// The request is copied rather than stamped in place: the caller may
	// retry it on another stream while this one still holds it.
	out := &skiffpb.ProduceRequest{Topic: req.Topic, Partition: req.Partition, Batch: req.Batch,
		Records: req.Records, Acks: req.Acks, CorrelationId: id}
	s.sendMu.Lock()
	err = s.stream.Send(out)
	s.sendMu.Unlock()
	if err != nil {
		// Send reports io.EOF for a stream the broker ended; the cause
		// comes from Recv, which breaks the stream and answers us.
		ps.c.log.Debug("produce stream send failed", "broker", addr, "err", err)
	}
	return func() (*skiffpb.ProduceResponse, error) {
		select {
		case r := <-ch:
			return r.resp, r.err
		case <-ctx.Done():
			s.mu.Lock()
			delete(s.waiting, id)
			s.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// get returns addr's stream, opening one if there is none or it broke.
// Opening waits for the connection, so it holds only that broker's slot:
// partitions led by other brokers go on sending meanwhile.
func (ps *produceStreams) get(addr string) (*produceStream, error) {
	ps.mu.Lock()
	slot := ps.slots[addr]
	if slot == nil {
		slot = &streamSlot{}
		ps.slots[addr] = slot
	}
	ps.mu.Unlock()

	slot.mu.Lock()
	defer slot.mu.Unlock()
	if s := slot.stream; s != nil {
		s.mu.Lock()
		broken := s.err != nil
		s.mu.Unlock()
		if !broken {
			return s, nil
		}
		slot.stream = nil
	}
	cc, err := ps.c.conn(addr)
	if err != nil {
		return nil, err
	}
	// The stream outlives the call that opened it: it ends with the client.
	sctx, cancel := context.WithCancel(ps.c.ctx)
	stream, err := skiffpb.NewProducerClient(cc).ProduceStream(sctx)
	if err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	s := &produceStream{addr: addr, stream: stream, cancel: cancel, waiting: make(map[uint64]chan streamResult)}
	slot.stream = s
	go s.receive(ps.c)
	return s, nil
}

// receive hands responses to their callers until the stream ends, then
// fails every call still waiting.
func (s *produceStream) receive(c *Client) {
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			err = fromStatus(err)
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.Canceled) {
				// However the stream ended (EOF from a stopping broker, a
				// reset connection), what was in flight may or may not be
				// written: the producer retries it with the same sequence.
				err = fmt.Errorf("%w: produce stream to %s ended: %w", ErrUnavailable, s.addr, err)
			}
			s.mu.Lock()
			s.err = err
			waiting := s.waiting
			s.waiting = nil
			s.mu.Unlock()
			for _, ch := range waiting {
				ch <- streamResult{err: err}
			}
			s.cancel()
			c.log.Debug("produce stream ended", "broker", s.addr, "err", err)
			return
		}
		s.mu.Lock()
		ch := s.waiting[resp.GetCorrelationId()]
		delete(s.waiting, resp.GetCorrelationId())
		s.mu.Unlock()
		if ch != nil {
			ch <- streamResult{resp: resp}
		}
	}
}

// close ends every stream. The client's context is already cancelled, so
// no stream can be opened after it.
func (ps *produceStreams) close() {
	ps.mu.Lock()
	slots := ps.slots
	ps.slots = make(map[string]*streamSlot)
	ps.mu.Unlock()
	for _, slot := range slots {
		slot.mu.Lock()
		if slot.stream != nil {
			slot.stream.cancel()
		}
		slot.mu.Unlock()
	}
}
