// Package client is the Go client of Skiff: an idempotent, batching
// producer, a consumer, and topic and cluster administration.
//
// A Client discovers the cluster from any of the brokers it is given and
// keeps one gRPC connection per broker; producers and consumers built from
// it share those connections. Everything is safe for concurrent use and
// context-aware; there is no global state, so one program may talk to
// several clusters.
//
//	cl, err := client.New(ctx, client.Config{Brokers: []string{"127.0.0.1:9400"}})
//	...
//	p, err := cl.NewProducer(client.ProducerConfig{})
//	p.Produce(ctx, &client.Record{Topic: "orders", Key: []byte("k"), Value: []byte("v")},
//		func(r *client.Record, err error) { ... })
//	err = p.Flush(ctx)
//
// Records travel as Kafka RecordBatch v2 batches (package record), built
// once by the producer and checked end to end by the consumer's CRC check.
// Keys are partitioned with murmur2 exactly as Kafka's default partitioner
// does, so a key lands on the partition Kafka would choose.
//
// Errors are values to branch on: ErrUnknownTopic, ErrTopicExists,
// *NotLeaderError, *OffsetOutOfRangeError, *InvalidArgumentError,
// ErrIndeterminate and the others in errors.go, all usable with errors.Is
// and errors.As.
//
// The package depends only on package record, the generated protocol
// package and gRPC: a program importing it pulls in no server code.
package client
