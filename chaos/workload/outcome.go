package workload

import (
	"errors"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

// outcomeOf classifies a failed send for the history: FailEvent when the
// record certainly was not written, IndeterminateEvent otherwise.
//
// beforeReturn says the callback ran before Producer.Produce returned: the
// producer fails a record synchronously only when it could not even buffer
// it (no metadata, no producer id, the context ended), so it was never sent.
// After that, the client does not say whether an earlier attempt of the
// same batch may have reached the log (a batch that timed out and was then
// refused as out of sequence, say), so only refusals that no attempt could
// have passed count as definite: the batch itself was invalid. Everything
// else (delivery timeouts, a producer closed with batches in flight,
// abandoned batches) is indeterminate, which the checker allows either way.
// Calling too much indeterminate weakens the aborted-read check; calling too
// much definite would report aborted reads that are not there.
func outcomeOf(err error, beforeReturn bool) string {
	var ia *client.InvalidArgumentError
	switch {
	case beforeReturn:
		return history.FailEvent
	case errors.As(err, &ia), errors.Is(err, client.ErrTooLarge):
		return history.FailEvent
	default:
		return history.IndeterminateEvent
	}
}
