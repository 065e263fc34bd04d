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
// Requests of different partitions are written concurrently. Requests of
// one partition are written one after the other: Replica.Produce offers no
// way to learn when a batch has entered Raft's queue, and starting them
// concurrently would let a later batch overtake an earlier one (an
// idempotent producer's batch would then fail with a sequence gap, and
// offsets would not follow request order).
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
			fifo.submit(partKey{req.Topic, req.Partition}, func() {
				defer func() { <-slots }()
				if ctx.Err() != nil {
					return // the stream is ending: nobody would read the answer
				}
				send(s.produceStreamOne(ctx, req))
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

// produceStreamOne writes one stream request and builds its response.
func (s *Server) produceStreamOne(ctx context.Context, req *skiffpb.ProduceRequest) (resp *skiffpb.ProduceResponse) {
	var err error
	func() {
		defer s.recoverTo(produceStreamMethod, &err)
		resp, err = s.produce(ctx, req)
	}()
	code := codes.OK
	if err != nil {
		st := s.status(err)
		code = st.Code()
		if code == codes.Unknown {
			s.logger.Warn("produce failed with an unclassified error", "method", produceStreamMethod, "error", err)
		}
		resp = &skiffpb.ProduceResponse{Topic: req.Topic, Partition: req.Partition, CorrelationId: req.CorrelationId, Error: errorStatus(st)}
	}
	s.metrics.streamMessages.WithLabelValues(produceStreamMethod, code.String()).Inc()
	return resp
}
