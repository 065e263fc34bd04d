package rpc

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

const produceStreamMethod = "skiff.v1.Producer/ProduceStream"

// produceStream serves ProduceStream: many requests in flight on one
// stream, each answered with its correlation id, in request order per
// partition. A failed request is answered with an ErrorStatus and the
// stream goes on.
//
// Requests of one partition are handed to Raft one after the other, in
// arrival order (Replica.ProduceAsync returns once a batch is queued, so
// this is quick), and then wait for their commits concurrently: Raft
// pipelines them. Each response is sent only after the previous response of
// its partition, so acks come back in request order per partition.
//
// At most StreamInFlight requests are read and unanswered; the stream
// reads no more until one is answered, so gRPC flow control holds back a
// client sending faster than the cluster writes.
func (s *Server) produceStream(stream grpc.BidiStreamingServer[skiffpb.ProduceRequest, skiffpb.ProduceResponse]) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	var (
		tasks   sync.WaitGroup
		fifo    = newPartitionFIFO(&tasks)
		chain   = newResponseChain()
		slots   = make(chan struct{}, s.cfg.StreamInFlight)
		reqs    = make(chan *skiffpb.ProduceRequest)
		recvErr = make(chan error, 1)
		sendMu  sync.Mutex // stream.Send is not safe for concurrent use
	)
	// Recv blocks until the client sends or the handler returns, so it runs
	// in its own goroutine, letting the handler end on shutdown. Stop
	// waits for it (it ends once the handler has returned).
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		// Recv runs the interceptors' per-message work (authorization,
		// quotas) on this goroutine, out of reach of the handler's panic
		// recovery: a panic here ends the stream with INTERNAL instead.
		var panicked error
		defer func() {
			if panicked != nil {
				recvErr <- panicked
			}
		}()
		defer s.recoverTo("ProduceStream", &panicked)
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	send := func(resp *skiffpb.ProduceResponse) {
		sendMu.Lock()
		err := stream.Send(resp)
		sendMu.Unlock()
		if err != nil {
			cancel(err)
		}
	}
	for {
		select {
		case req := <-reqs:
			k := partKey{req.Topic, req.Partition}
			fifo.submit(k, func() {
				if ctx.Err() != nil {
					<-slots
					return // the stream is ending: nobody would read the answer
				}
				wait := s.startProduceStreamOne(ctx, req)
				prev, mine := chain.next(k)
				tasks.Add(1)
				go func() {
					defer tasks.Done()
					defer func() { <-slots }()
					defer chain.finish(k, mine)
					resp := wait(ctx)
					select {
					case <-prev:
					case <-ctx.Done():
						return
					}
					send(resp)
				}()
			})
		case err := <-recvErr:
			tasks.Wait()
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			tasks.Wait()
			return context.Cause(ctx)
		case <-s.shutdown:
			// Answer what was accepted, then hang up: the client resends
			// anything unanswered to the new leader.
			tasks.Wait()
			return errShuttingDown
		}
	}
}

// startProduceStreamOne hands one stream request to Raft and returns the
// function that waits for it and builds its response.
func (s *Server) startProduceStreamOne(ctx context.Context, req *skiffpb.ProduceRequest) func(context.Context) *skiffpb.ProduceResponse {
	var wait produceWaiter
	var startErr error
	func() {
		defer s.recoverTo(produceStreamMethod, &startErr)
		wait = s.startProduce(ctx, req)
	}()
	return func(ctx context.Context) (resp *skiffpb.ProduceResponse) {
		err := startErr
		if err == nil {
			func() {
				defer s.recoverTo(produceStreamMethod, &err)
				resp, err = wait(ctx)
			}()
		}
		code := codes.OK
		if err != nil {
			st := s.status(ctx, err)
			code = st.Code()
			if code == codes.Unknown {
				s.logger.Warn("produce failed with an unclassified error", "method", produceStreamMethod, "error", err)
			}
			resp = &skiffpb.ProduceResponse{Topic: req.Topic, Partition: req.Partition, CorrelationId: req.CorrelationId, Error: errorStatus(st)}
		}
		s.metrics.streamMessages.WithLabelValues(produceStreamMethod, code.String()).Inc()
		return resp
	}
}

// responseChain orders a stream's responses per partition: each response
// waits for the one before it in its partition.
type responseChain struct {
	mu   sync.Mutex
	last map[partKey]chan struct{} // guarded by mu: the newest response's done channel
}

func newResponseChain() *responseChain {
	return &responseChain{last: map[partKey]chan struct{}{}}
}

// next returns the channel the new response waits on and its own channel.
func (c *responseChain) next(k partKey) (prev <-chan struct{}, mine chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.last[k]
	if !ok {
		p = make(chan struct{})
		close(p)
	}
	mine = make(chan struct{})
	c.last[k] = mine
	return p, mine
}

// finish marks a response sent (or abandoned) and forgets the partition
// once its newest response is done.
func (c *responseChain) finish(k partKey, mine chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(mine)
	if c.last[k] == mine {
		delete(c.last, k)
	}
}
