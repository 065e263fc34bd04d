package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/record"
)

// exampleBrokers returns the addresses of the in-process test cluster the
// examples run against; a real program lists its own brokers.
func exampleBrokers() []string {
	c := sharedCluster(panicTB{})
	return c.brokers()
}

// Produce a few records and read them back.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Brokers: exampleBrokers()})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateTopic(ctx, "greetings", 1, 3, nil); err != nil {
		log.Fatal(err)
	}
	defer cl.DeleteTopic(context.Background(), "greetings") // clean up after the example

	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	err = p.ProduceSync(ctx,
		&client.Record{Topic: "greetings", Key: []byte("en"), Value: []byte("hello")},
		&client.Record{Topic: "greetings", Key: []byte("fr"), Value: []byte("bonjour"),
			Headers: []record.Header{{Key: "lang", Value: []byte("French")}}},
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}

	co, err := cl.NewConsumer(client.ConsumerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer co.Close()
	if err := co.Assign(ctx, "greetings", 0, client.Earliest()); err != nil {
		log.Fatal(err)
	}
	recs, err := co.Poll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("offset %d: %s=%s %d headers\n", r.Offset, r.Key, r.Value, len(r.Headers))
	}
	// Output:
	// offset 0: en=hello 0 headers
	// offset 1: fr=bonjour 1 headers
}

// Produce asynchronously; callbacks report each record's offset.
func ExampleProducer_Produce() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Brokers: exampleBrokers()})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateTopic(ctx, "orders", 3, 3, nil); err != nil {
		log.Fatal(err)
	}
	defer cl.DeleteTopic(context.Background(), "orders") // clean up after the example
	p, err := cl.NewProducer(client.ProducerConfig{Linger: 10 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := &client.Record{Topic: "orders", Key: []byte("customer-42"), Value: fmt.Appendf(nil, "order %d", i)}
		p.Produce(ctx, r, func(r *client.Record, err error) {
			if err != nil {
				log.Printf("order not written: %v", err)
				return
			}
			// Records with the same key land on one partition, in order.
			fmt.Printf("%s -> partition %d offset %d\n", r.Value, r.Partition, r.Offset)
		})
	}
	// Close delivers everything accepted so far.
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// order 0 -> partition 0 offset 0
	// order 1 -> partition 0 offset 1
	// order 2 -> partition 0 offset 2
}

// Errors are values to branch on.
func ExampleClient_DescribeTopic() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Brokers: exampleBrokers()})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.DescribeTopic(ctx, "no-such-topic")
	fmt.Println(errors.Is(err, client.ErrUnknownTopic))

	_, err = cl.CreateTopic(ctx, "bad/name", 1, 1, nil)
	var invalid *client.InvalidArgumentError
	fmt.Println(errors.As(err, &invalid), invalid.Field)
	// Output:
	// true
	// true name
}

// KeyPartitioner places a key where Kafka's default partitioner would.
func ExampleKeyPartitioner() {
	p := client.KeyPartitioner()
	for _, key := range []string{"customer-42", "customer-7", "abc"} {
		part, _ := p.Partition(&client.Record{Topic: "orders", Key: []byte(key)}, 3)
		fmt.Println(key, part)
	}
	// Output:
	// customer-42 0
	// customer-7 1
	// abc 0
}
