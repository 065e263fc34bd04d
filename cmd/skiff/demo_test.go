package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// testDemoProducer runs the example application's producer (what
// scripts/cluster.sh up --demo starts) for a few records: it creates its
// topic and writes keyed orders that a consumer reads back.
func testDemoProducer(t *testing.T, c *cli) {
	out := c.mustRun(t, "", "demo", "produce", "cli-demo.orders", "--count", "6", "--keys", "3", "--interval", "10ms", "--partitions", "2")
	if got := strings.Count(out, "-> cli-demo.orders/"); got != 6 {
		t.Fatalf("demo produce logged %d written orders, want 6:\n%s", got, out)
	}
	read := c.mustRun(t, "", "consume", "cli-demo.orders", "--from", "earliest", "--max", "6", "-o", "json")
	orders := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(read), "\n") {
		var rec struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("consume line %q: %v", line, err)
		}
		var v struct {
			Order    int    `json:"order"`
			Customer string `json:"customer"`
		}
		if err := json.Unmarshal([]byte(rec.Value), &v); err != nil {
			t.Fatalf("order %q: %v", rec.Value, err)
		}
		if v.Customer != rec.Key {
			t.Fatalf("order %d keyed %q for customer %q", v.Order, rec.Key, v.Customer)
		}
		orders[v.Order] = rec.Key
	}
	for n := 1; n <= 6; n++ {
		if want := fmt.Sprintf("customer-%d", n%3); orders[n] != want {
			t.Fatalf("orders read back %v: order %d should be keyed %s", orders, n, want)
		}
	}
	desc := c.mustRun(t, "", "topic", "describe", "cli-demo.orders", "-o", "json")
	var td struct {
		Partitions []json.RawMessage `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(desc), &td); err != nil || len(td.Partitions) != 2 {
		t.Fatalf("demo topic: %v, %s: want the 2 partitions asked for", err, desc)
	}
}
