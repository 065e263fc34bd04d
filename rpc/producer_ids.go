package rpc

import (
	"context"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// producerIDCatchUp bounds how long a produce naming a producer id this
// node's metadata has not seen allocated waits for the metadata to catch
// up: InitProducerId may have been answered by another node a moment ago.
const producerIDCatchUp = 2 * time.Second

// checkProducerID refuses a batch whose producer id the cluster never
// allocated: idempotence state is kept per producer id, and ids made up by
// a client would let it grow that state without bound or collide with
// another producer's sequence numbers.
func (s *Server) checkProducerID(ctx context.Context, batch []byte) error {
	h, err := record.ParseHeader(batch)
	if err != nil || h.ProducerID < 0 {
		return nil // not idempotent (or refused later as malformed)
	}
	if h.ProducerID < s.node.Metadata().NextProducerID {
		return nil
	}
	wait, cancel := context.WithTimeout(ctx, producerIDCatchUp)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-wait.Done():
			return invalid("batch.producer_id", "producer id %d was never allocated: call InitProducerId (idempotent producers get their id from it)", h.ProducerID)
		case <-t.C:
		}
		if h.ProducerID < s.node.Metadata().NextProducerID {
			return nil
		}
	}
}
