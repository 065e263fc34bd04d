package rpc

import (
	"fmt"
	"strconv"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// Server-wide limits that protect a node from one client. They are node
// configuration (Config), not cluster metadata: set the same values on
// every node.
const (
	// RequestEnvelopeBytes is the room a request needs beyond its record
	// batch: the protobuf framing of a ProduceRequest, and the per-record
	// framing when it carries plain records instead of a batch.
	RequestEnvelopeBytes = 1 << 20
	// MaxRequestBytesCeiling is the largest Config.MaxRecvMsgBytes: a batch
	// as large as any topic may ever allow (metadata.MaxMaxMessageBytes, 64
	// MiB) with its envelope. Allowing more would only admit requests no
	// topic accepts.
	MaxRequestBytesCeiling = metadata.MaxMaxMessageBytes + RequestEnvelopeBytes
	// DefaultTopicMessageBytesLimit is the largest max.message.bytes a
	// topic may have on a server with the default request limit: eight
	// times the topics' default. gRPC allocates a request's announced size
	// before it is read, so the limit bounds what a hostile client makes a
	// node allocate per call; an operator who needs larger batches raises
	// --max-request-bytes on every node.
	DefaultTopicMessageBytesLimit = 8 << 20
	// DefaultMaxRequestBytes is Config.MaxRecvMsgBytes's default, derived
	// from the largest max.message.bytes it lets topics have
	// (DefaultTopicMessageBytesLimit) plus the envelope: 9 MiB.
	DefaultMaxRequestBytes = DefaultTopicMessageBytesLimit + RequestEnvelopeBytes
	// MinMaxRequestBytes is the smallest Config.MaxRecvMsgBytes: a topic
	// with the default max.message.bytes must still take its largest
	// batch.
	MinMaxRequestBytes = metadata.DefaultMaxMessageBytes + RequestEnvelopeBytes
	// DefaultMaxConcurrentStreams is Config.MaxConcurrentStreams's
	// default.
	DefaultMaxConcurrentStreams = 1024
	// MaxConcurrentStreamsCeiling bounds Config.MaxConcurrentStreams.
	MaxConcurrentStreamsCeiling = 1 << 20
)

// Validate reports a limit out of its documented range, naming the
// `skiff server` flag that sets it. Zero fields are valid: they take their
// defaults.
func (c Config) Validate() error {
	if v := c.MaxRecvMsgBytes; v != 0 && (v < MinMaxRequestBytes || v > MaxRequestBytesCeiling) {
		return fmt.Errorf("--max-request-bytes %d: must be in [%d, %d] (the largest max.message.bytes a topic may have, %d, plus %d bytes of envelope)",
			v, MinMaxRequestBytes, MaxRequestBytesCeiling, metadata.MaxMaxMessageBytes, RequestEnvelopeBytes)
	}
	if v := c.MaxConcurrentStreams; v != 0 && (v < 1 || v > MaxConcurrentStreamsCeiling) {
		return fmt.Errorf("--max-concurrent-streams %d: must be in [1, %d]", v, MaxConcurrentStreamsCeiling)
	}
	return nil
}

// MaxTopicMessageBytes is the largest max.message.bytes this server lets a
// topic be created or altered with: a batch of that size must fit in one
// request (MaxRecvMsgBytes) with its envelope.
func (s *Server) MaxTopicMessageBytes() int {
	return s.cfg.MaxRecvMsgBytes - RequestEnvelopeBytes
}

// checkTopicMessageBytes refuses a max.message.bytes value (from a
// CreateTopic's configs or an AlterTopicConfig's set) that this server
// could not receive a batch of. A value that does not parse is left to the
// metadata's own validation, which names the problem.
func (s *Server) checkTopicMessageBytes(field string, configs map[string]string) error {
	v, ok := configs["max.message.bytes"]
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	if limit := s.MaxTopicMessageBytes(); n > int64(limit) {
		return invalid(field+".max.message.bytes",
			"%d exceeds %d, the most this server accepts: --max-request-bytes is %d, of which %d are kept for the request envelope; choose a smaller value or raise --max-request-bytes on every node",
			n, limit, s.cfg.MaxRecvMsgBytes, RequestEnvelopeBytes)
	}
	return nil
}
