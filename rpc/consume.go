package rpc

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// consumerService serves skiff.v1.Consumer.
type consumerService struct {
	skiffpb.UnimplementedConsumerServer
	s *Server
}

var _ skiffpb.ConsumerServer = (*consumerService)(nil)

const subscribeMethod = "skiff.v1.Consumer/Subscribe"

// fetchParams is a validated fetch.
type fetchParams struct {
	offset        int64
	maxBytes      int
	minBytes      int
	maxWait       time.Duration
	allowFollower bool
}

// Fetch reads whole batches from offset on, long-polling at the end of
// the log for up to max_wait_ms (capped by MaxFetchWait and by the call's
// deadline) until min_bytes have arrived.
func (c *consumerService) Fetch(ctx context.Context, req *skiffpb.FetchRequest) (*skiffpb.FetchResponse, error) {
	s := c.s
	if _, err := lookupPartition(s.node.MetadataWithTopic(ctx, req.Topic), req.Topic, req.Partition); err != nil {
		return nil, err
	}
	fp, err := s.fetchParams(req.Offset, req.MaxBytes, req.MinBytes, req.MaxWaitMs, req.AllowFollower)
	if err != nil {
		return nil, err
	}
	if err := checkFormat(req.Format); err != nil {
		return nil, err
	}
	r, err := s.replica(ctx, req.Topic, req.Partition)
	if err != nil {
		return nil, err
	}
	// Answer (possibly empty) before the caller's deadline rather than
	// fail it: a long poll that finds nothing is not an error. A quarter
	// of the time left (at most 1s) is kept for the answer's way back, so
	// that a busy machine still makes it.
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		fp.maxWait = min(fp.maxWait, left-min(left/4, time.Second))
	}
	pctx, cancel := s.shutdownContext(ctx)
	defer cancel()
	res, err := s.fetch(pctx, r, fp)
	if err != nil && ctx.Err() == nil && s.stopping() {
		err = nil // the server stops: answer with what there is
	}
	if err != nil {
		return nil, err
	}
	s.metrics.fetched(req.Topic, len(res.Batches))
	resp := &skiffpb.FetchResponse{Batches: res.Batches, HighWatermark: res.HighWatermark, LogStartOffset: res.LogStartOffset}
	if req.Format == skiffpb.FetchFormat_FETCH_FORMAT_RECORDS {
		if err := fillRecords(resp, req.Partition, req.Offset); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func (s *Server) fetchParams(offset int64, maxBytes, minBytes, maxWaitMs int32, allowFollower bool) (fetchParams, error) {
	switch {
	case offset < 0:
		return fetchParams{}, invalid("offset", "%d: must not be negative (use ListOffsets for the earliest or latest offset)", offset)
	case maxBytes < 0:
		return fetchParams{}, invalid("max_bytes", "%d: must not be negative (0 means %d)", maxBytes, DefaultFetchMaxBytes)
	case minBytes < 0:
		return fetchParams{}, invalid("min_bytes", "%d: must not be negative", minBytes)
	case maxWaitMs < 0:
		return fetchParams{}, invalid("max_wait_ms", "%d: must not be negative", maxWaitMs)
	}
	fp := fetchParams{offset: offset, maxBytes: int(maxBytes), minBytes: int(minBytes), allowFollower: allowFollower,
		maxWait: min(time.Duration(maxWaitMs)*time.Millisecond, s.cfg.MaxFetchWait)}
	if fp.maxBytes == 0 {
		fp.maxBytes = DefaultFetchMaxBytes
	}
	fp.maxBytes = min(fp.maxBytes, MaxFetchBytes)
	fp.minBytes = min(fp.minBytes, fp.maxBytes)
	return fp, nil
}

// fetch reads from r until it has minBytes, maxBytes is reached or maxWait
// has passed. The first read returns at least one whole batch if there is
// one (however large); later reads add only whole batches that fit.
func (s *Server) fetch(ctx context.Context, r *partition.Replica, fp fetchParams) (partition.FetchResult, error) {
	deadline := time.Now().Add(fp.maxWait)
	var out partition.FetchResult
	offset := fp.offset
	for first := true; ; first = false {
		wait := max(time.Until(deadline), 0)
		res, err := r.Fetch(ctx, partition.FetchRequest{Offset: offset, MaxBytes: fp.maxBytes - len(out.Batches), MaxWait: wait, AllowFollower: fp.allowFollower})
		if err != nil {
			if !first {
				// Committed data was read: answer with it; the next fetch
				// meets the error afresh.
				return out, nil
			}
			// The bounds come with a long poll cut short, which Fetch
			// answers when the server stops.
			out.HighWatermark, out.LogStartOffset = res.HighWatermark, res.LogStartOffset
			return out, err
		}
		data := res.Batches
		if !first {
			data = fitting(data, fp.maxBytes-len(out.Batches))
		}
		out.Batches = append(out.Batches, data...)
		out.HighWatermark, out.LogStartOffset = res.HighWatermark, res.LogStartOffset
		if len(out.Batches) >= fp.minBytes || len(out.Batches) >= fp.maxBytes || wait == 0 || (len(data) == 0 && len(res.Batches) > 0) {
			return out, nil
		}
		if len(data) > 0 {
			next, ok := nextOffset(data)
			if !ok {
				return out, nil
			}
			offset = next
		}
	}
}

// fitting returns the longest prefix of whole batches in data no larger
// than budget.
func fitting(data []byte, budget int) []byte {
	n := 0
	for batch, err := range record.Batches(data) {
		if err != nil || n+len(batch) > budget {
			break
		}
		n += len(batch)
	}
	return data[:n]
}

// nextOffset returns the offset after the last whole batch in data.
func nextOffset(data []byte) (int64, bool) {
	var next int64
	ok := false
	for batch, err := range record.Batches(data) {
		if err != nil {
			break
		}
		h, err := record.ParseHeader(batch)
		if err != nil {
			break
		}
		next, ok = h.NextOffset(), true
	}
	return next, ok
}

// Subscribe streams batches from offset on as they are written; gRPC flow
// control paces it (Send blocks while the client does not read). The
// stream ends with an error status when the replica can no longer serve
// (NotLeader after a leadership change, UNAVAILABLE on shutdown,
// OUT_OF_RANGE when retention passed the offset): resubscribe from the
// next offset, wherever the error points.
func (c *consumerService) Subscribe(req *skiffpb.SubscribeRequest, stream skiffpb.Consumer_SubscribeServer) error {
	s := c.s
	if _, err := lookupPartition(s.node.MetadataWithTopic(stream.Context(), req.Topic), req.Topic, req.Partition); err != nil {
		return err
	}
	fp, err := s.fetchParams(req.Offset, req.MaxBytes, 0, 0, req.AllowFollower)
	if err != nil {
		return err
	}
	if err := checkFormat(req.Format); err != nil {
		return err
	}
	r, err := s.replica(stream.Context(), req.Topic, req.Partition)
	if err != nil {
		return err
	}
	ctx, cancel := s.shutdownContext(stream.Context())
	defer cancel()
	offset := fp.offset
	for {
		res, err := r.Fetch(ctx, partition.FetchRequest{Offset: offset, MaxBytes: fp.maxBytes, MaxWait: s.cfg.SubscribeWait, AllowFollower: fp.allowFollower})
		if err != nil {
			if stream.Context().Err() == nil && s.stopping() {
				return errShuttingDown
			}
			return err
		}
		if len(res.Batches) == 0 {
			continue
		}
		next, ok := nextOffset(res.Batches)
		if !ok {
			return errors.New("subscribe: the log returned bytes that are not whole batches")
		}
		fetched := len(res.Batches)
		resp := &skiffpb.FetchResponse{Batches: res.Batches, HighWatermark: res.HighWatermark, LogStartOffset: res.LogStartOffset}
		if req.Format == skiffpb.FetchFormat_FETCH_FORMAT_RECORDS {
			if err := fillRecords(resp, req.Partition, offset); err != nil {
				return err
			}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		s.metrics.fetched(req.Topic, fetched)
		s.metrics.streamMessages.WithLabelValues(subscribeMethod, codes.OK.String()).Inc()
		offset = next
	}
}

// ListOffsets answers from the partition's leader: the log start offset,
// the high watermark, or the first offset at or after a timestamp.
func (c *consumerService) ListOffsets(ctx context.Context, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error) {
	s := c.s
	if _, err := lookupPartition(s.node.MetadataWithTopic(ctx, req.Topic), req.Topic, req.Partition); err != nil {
		return nil, err
	}
	switch req.Spec {
	case skiffpb.OffsetSpec_OFFSET_SPEC_LATEST, skiffpb.OffsetSpec_OFFSET_SPEC_EARLIEST:
	case skiffpb.OffsetSpec_OFFSET_SPEC_TIMESTAMP:
		if req.TimestampMs < 0 {
			return nil, invalid("timestamp_ms", "%d: must not be negative", req.TimestampMs)
		}
	default:
		return nil, invalid("spec", "unknown value %d", req.Spec)
	}
	r, err := s.replica(ctx, req.Topic, req.Partition)
	if err != nil {
		return nil, err
	}
	if !r.IsLeader() {
		return nil, leaderErr(r)
	}
	start, hw := r.Offsets()
	resp := &skiffpb.ListOffsetsResponse{LogStartOffset: start, HighWatermark: hw}
	switch req.Spec {
	case skiffpb.OffsetSpec_OFFSET_SPEC_LATEST:
		resp.Offset = hw
	case skiffpb.OffsetSpec_OFFSET_SPEC_EARLIEST:
		resp.Offset = start
	case skiffpb.OffsetSpec_OFFSET_SPEC_TIMESTAMP:
		if resp.Offset, err = r.FindOffset(req.TimestampMs); err != nil {
			return nil, err
		}
	}
	return resp, nil
}
