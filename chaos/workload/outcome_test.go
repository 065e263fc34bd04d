package workload

import (
	"context"
	"fmt"
	"testing"

	"github.com/skiff-mq/skiff/chaos/history"
	"github.com/skiff-mq/skiff/client"
)

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		beforeReturn bool
		want         string
	}{
		{"not buffered: context ended", context.Canceled, true, history.FailEvent},
		{"not buffered: unknown topic", fmt.Errorf("produce: %w", client.ErrUnknownTopic), true, history.FailEvent},
		{"invalid batch", &client.InvalidArgumentError{Field: "batch", Reason: "bad"}, false, history.FailEvent},
		{"too large", fmt.Errorf("x: %w", client.ErrTooLarge), false, history.FailEvent},
		{"delivery timeout", fmt.Errorf("x: %w", client.ErrDeliveryTimeout), false, history.IndeterminateEvent},
		{"indeterminate", fmt.Errorf("x: %w", client.ErrIndeterminate), false, history.IndeterminateEvent},
		{"closed with batches in flight", fmt.Errorf("x: %w", client.ErrClosed), false, history.IndeterminateEvent},
		{"out of order after a timeout", fmt.Errorf("x: %w", client.ErrOutOfOrderSequence), false, history.IndeterminateEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcomeOf(tt.err, tt.beforeReturn); got != tt.want {
				t.Fatalf("outcomeOf(%v, %v) = %s, want %s", tt.err, tt.beforeReturn, got, tt.want)
			}
		})
	}
}
