package rpc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/acl"
	"github.com/skiff-mq/skiff/record"
	pb "github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fakeClock is the enforcer's clock in unit tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestEnforcer(t *testing.T, quotas map[string]metadata.Quota) (*quotaEnforcer, *fakeClock, *prometheus.Registry) {
	t.Helper()
	st := metadata.NewState()
	st.Quotas = quotas
	reg := prometheus.NewRegistry()
	e := newQuotaEnforcer(func() *metadata.State { return st }, 30*time.Second, make(chan struct{}), &metrics{reg: reg})
	clk := &fakeClock{t: time.Unix(1000, 0)}
	e.now = clk.now
	return e, clk, reg
}

func TestQuotaEnforcerCharges(t *testing.T) {
	e, clk, reg := newTestEnforcer(t, map[string]metadata.Quota{
		"User:alice": {ProduceBytesPerSec: 1000},
		"User:*":     {RequestsPerSec: 2},
		"User:carol": {}, // exempt from the default
		"User:dave":  {FetchBytesPerSec: 2000},
	})
	// alice: her own quota replaces the default, so requests are free.
	if d := e.charge("User:alice", costs{kindRequests: 1, kindProduce: 1000}); d != 0 {
		t.Fatalf("within the burst: delay %v", d)
	}
	if d := e.charge("User:alice", costs{kindRequests: 1, kindProduce: 500}); d != 500*time.Millisecond {
		t.Fatalf("500 bytes over at 1000/s: delay %v, want 500ms", d)
	}
	if d := e.charge("User:alice", costs{kindRequests: 1, kindProduce: 1_000_000}); d != 30*time.Second {
		t.Fatalf("a huge debt: delay %v, want the 30s cap", d)
	}
	// bob gets the User:* default: 2 requests a second, burst 2.
	for i, want := range []time.Duration{0, 0, 500 * time.Millisecond} {
		if d := e.charge("User:bob", costs{kindRequests: 1}); d != want {
			t.Fatalf("bob's request %d: delay %v, want %v", i, d, want)
		}
	}
	// dave: fetched bytes are charged when they are served, produced
	// bytes and requests are free for him.
	if d := e.charge("User:dave", costs{kindRequests: 1, kindProduce: 1 << 20, kindFetch: 2000}); d != 0 {
		t.Fatalf("dave within the fetch burst: delay %v", d)
	}
	if d := e.charge("User:dave", costs{kindRequests: 1, kindFetch: 3000}); d != 1500*time.Millisecond {
		t.Fatalf("dave 3000 bytes over at 2000/s: delay %v, want 1.5s", d)
	}
	for _, p := range []string{"User:carol", "Node:n1"} {
		for range 10 {
			if d := e.charge(p, costs{kindRequests: 1, kindProduce: 1 << 30}); d != 0 {
				t.Fatalf("%s is unlimited but was delayed %v", p, d)
			}
		}
	}
	if got := testutil.ToFloat64(e.throttled.WithLabelValues("User:bob", "request")); got != 1 {
		t.Fatalf("bob's throttled requests metric %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.throttleSeconds.WithLabelValues("User:alice")); got != 30.5 {
		t.Fatalf("alice's throttle seconds %v, want 30.5", got)
	}
	if got := testutil.ToFloat64(e.throttled.WithLabelValues("User:dave", "fetch")); got != 1 {
		t.Fatalf("dave's throttled fetches metric %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.throttleSeconds.WithLabelValues("User:dave")); got != 1.5 {
		t.Fatalf("dave's throttle seconds %v, want 1.5", got)
	}
	if n, err := testutil.GatherAndCount(reg, "skiff_quota_throttle_seconds_total", "skiff_quota_throttled_requests_total"); err != nil || n != 6 {
		t.Fatalf("registered series %d (%v), want 6 (seconds and requests of alice, bob and dave)", n, err)
	}

	// Buckets of idle principals are forgotten once full; alice is still in
	// debt after a minute and is kept.
	if len(e.buckets) != 3 {
		t.Fatalf("%d buckets, want alice's produce, bob's requests and dave's fetch", len(e.buckets))
	}
	clk.t = clk.t.Add(quotaSweepEvery)
	e.charge("User:carol", costs{kindRequests: 1})
	if _, ok := e.buckets[bucketKey{"User:bob", kindRequests}]; ok || len(e.buckets) != 1 {
		t.Fatalf("after a sweep: %v, want only alice's bucket", e.buckets)
	}
}

// throttleMS is the delay a response header or trailer announced.
func throttleMS(t *testing.T, md grpcmd.MD) time.Duration {
	t.Helper()
	v := md.Get(ThrottleHeader)
	if len(v) == 0 {
		return 0
	}
	ms, err := strconv.Atoi(v[0])
	if err != nil {
		t.Fatalf("%s: %q", ThrottleHeader, v[0])
	}
	return time.Duration(ms) * time.Millisecond
}

func TestProduceQuotaThrottlesWithoutFailing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and takes seconds")
	}
	an := startAuthNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := an.admin.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "q", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := an.admin.CreateACLs(ctx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{
		{Principal: "User:*", ResourceType: string(acl.Topic), Name: "q", Operation: string(acl.All)},
	}}); err != nil {
		t.Fatal(err)
	}
	var producer pb.ProducerClient
	var consumer pb.ConsumerClient
	waitProduce(t, ctx, pb.NewProducerClient(an.userConn(t, "alice", "alice-password"))) // the partition has a leader

	const rate = 200_000 // 200 KB/s
	// One attempt: measure alice's unthrottled pace, set the quota, send
	// about 5 s worth beyond the burst and measure her pace under it. A
	// pace above the quota fails at once. A pace below it, or most
	// responses unthrottled though she outpaced the quota before, means
	// the machine slowed her down during the run (the test cannot tell
	// the quota from the load): that attempt is inconclusive and tried
	// again, at most three times in all.
	type sentRecord struct {
		i, size int
		key     string
	}
	// Each attempt is a principal of its own, so that it starts with a
	// full burst: the last attempt's bucket is empty when it ends, and
	// refills only in a second.
	var kept map[int64]sentRecord // offset -> record, of the conclusive attempt
	var inconclusive []string
	var principal string
	for attempt := range 3 {
		user := fmt.Sprintf("alice-%d", attempt+1)
		principal = "User:" + user
		conn := an.userConn(t, user, user+"-password")
		producer, consumer = pb.NewProducerClient(conn), pb.NewConsumerClient(conn)
		size := 10_000
		natural := naturalRate(t, 20, func(i int) int64 {
			req := &pb.ProduceRequest{Topic: "q", Records: []*pb.Record{{Key: []byte("warm"), Value: quotaValue(i, size)}}}
			if _, err := producer.Produce(ctx, req); err != nil {
				t.Fatal(err)
			}
			return produceBytes(req)
		})
		// Slow fsyncs can make each request so slow that 10 KB records
		// never reach the quota; the time per request hardly depends on
		// its size, so larger records outpace the quota again.
		if natural < 3*rate {
			size = min(int(float64(size)*3*rate/natural)+1, 256<<10)
			t.Logf("records of %d bytes, to outpace the quota", size)
		}
		n := 6 * rate / size
		if _, err := an.admin.SetQuota(ctx, &pb.SetQuotaRequest{Quota: &pb.Quota{Principal: principal, ProduceBytesPerSec: rate}}); err != nil {
			t.Fatal(err)
		}
		var sent int64
		throttled := 0
		offsets := map[int64]sentRecord{}
		start := time.Now()
		for i := range n {
			key := fmt.Sprintf("%d-%d", attempt, i)
			req := &pb.ProduceRequest{Topic: "q", Records: []*pb.Record{{Key: []byte(key), Value: quotaValue(i, size)}}}
			var hdr grpcmd.MD
			resp, err := producer.Produce(ctx, req, grpc.Header(&hdr))
			if err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
			offsets[resp.BaseOffset] = sentRecord{i: i, size: size, key: key}
			sent += produceBytes(req)
			if throttleMS(t, hdr) > 0 {
				throttled++
			}
		}
		elapsed := time.Since(start)
		// The first second's worth is the burst; the rest is paid at the rate.
		measured := float64(sent-rate) / elapsed.Seconds()
		t.Logf("attempt %d: %d bytes in %v: %.0f B/s beyond the burst (quota %d), %d of %d responses throttled", attempt+1, sent, elapsed.Round(time.Millisecond), measured, rate, throttled, n)
		if measured > rate*1.2 {
			t.Fatalf("measured %.0f B/s, more than 20%% above the quota of %d", measured, rate)
		}
		switch {
		case measured < rate*0.8:
			inconclusive = append(inconclusive, fmt.Sprintf("%.0f B/s, below the quota: alice was slower than it", measured))
			continue
		case natural >= 2*rate && throttled < n/2:
			inconclusive = append(inconclusive, fmt.Sprintf("only %d of %d responses carried %s though alice sent %.0f B/s unthrottled", throttled, n, ThrottleHeader, natural))
			continue
		case throttled == 0:
			t.Fatalf("no response carried %s", ThrottleHeader)
		}
		kept = offsets
		break
	}
	if kept == nil {
		t.Fatalf("three attempts could not measure the quota: %v", inconclusive)
	}

	// Every record is there, intact (read as alice: her fetches are free).
	got := 0
	for offset := range kept {
		resp, err := consumer.Fetch(ctx, &pb.FetchRequest{Topic: "q", Offset: offset, MaxBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for batch, err := range record.Batches(resp.Batches) {
			if err != nil {
				t.Fatal(err)
			}
			_, recs, err := record.Decode(batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset != offset {
					continue
				}
				want := kept[offset]
				if string(r.Key) != want.key || !bytes.Equal(r.Value, quotaValue(want.i, want.size)) {
					t.Fatalf("record at offset %d is not record %s", r.Offset, want.key)
				}
				found = true
			}
		}
		if found {
			got++
		}
	}
	if got != len(kept) {
		t.Fatalf("read %d records, want %d", got, len(kept))
	}

	// Deleting the quota lifts the throttle at once (the debt goes with it).
	if _, err := an.admin.DeleteQuota(ctx, &pb.DeleteQuotaRequest{Principal: principal}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 20 {
		var hdr grpcmd.MD
		if _, err := producer.Produce(ctx, &pb.ProduceRequest{Topic: "q", Records: []*pb.Record{{Value: quotaValue(i, 10_000)}}}, grpc.Header(&hdr)); err != nil {
			t.Fatal(err)
		}
		if d := throttleMS(t, hdr); d > 0 {
			t.Fatalf("throttled %v after the quota was deleted", d)
		}
	}
	t.Logf("20 unthrottled produces in %v", time.Since(start).Round(time.Millisecond))
}

// fetchValue is record i of the fetch quota test: its number, then size
// bytes, so that a record read back can be told from every other.
func fetchValue(i, size int) []byte {
	return append(fmt.Appendf(nil, "record-%06d:", i), quotaValue(i, size)...)
}

// TestFetchQuotaThrottlesWithoutFailing is the produce test's twin for
// --fetch-bytes-per-sec, over Fetch and ShareFetch: the records are served
// in full and the answer is held back, so that a consumer reads at the
// quota (within 20% over the run), every record arrives intact, and the
// throttle is announced in skiff-throttle-ms and counted in
// skiff_quota_throttle_seconds_total.
func TestFetchQuotaThrottlesWithoutFailing(t *testing.T) {
	an := startAuthNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	const (
		rate         = 200_000 // 200 KB/s
		size         = 10_000  // bytes of a record's value
		perBatch     = 10      // records of a produce call, so of a fetched batch and of a share fetch
		naturalCalls = 5
		// Records for the share group's three attempts: each consumes its
		// unthrottled calls' records and six times the quota's worth.
		total = 3 * (naturalCalls*perBatch + 6*rate/size + 2*perBatch)
	)
	if _, err := an.admin.CreateTopic(ctx, &pb.CreateTopicRequest{Name: "fq", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	adminConn := dialAs(t, an.addr, credentials.NewTLS(clientTLS(t, an.dir, an.dir, "admin")), "")
	for i := 0; i < total; i += perBatch {
		req := &pb.ProduceRequest{Topic: "fq"}
		for j := i; j < i+perBatch; j++ {
			// Keys of their own: a key-ordered share group delivers one
			// record of a key at a time.
			req.Records = append(req.Records, &pb.Record{Key: fmt.Appendf(nil, "k%d", j), Value: fetchValue(j, size)})
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("records %d.. written", i), func() bool {
			_, err := pb.NewProducerClient(adminConn).Produce(ctx, req)
			if err != nil && i > 0 {
				t.Fatalf("produce records %d..: %v", i, err)
			}
			return err == nil // the first waits for a leader
		})
	}
	waitCoordinating(t, ctx, pb.NewGroupsClient(adminConn), "fq-share")
	if _, err := an.admin.CreateACLs(ctx, &pb.CreateACLsRequest{Bindings: []*pb.AclBinding{
		{Principal: "User:*", ResourceType: string(acl.Topic), Name: "fq", Operation: string(acl.Read)},
		{Principal: "User:*", ResourceType: string(acl.Group), Name: "fq-share", Operation: string(acl.Read)},
	}}); err != nil {
		t.Fatal(err)
	}
	// intact fails the test unless the record at offset is the one written there.
	intact := func(t *testing.T, offset int64, value []byte) {
		t.Helper()
		if offset < 0 || offset >= total || !bytes.Equal(value, fetchValue(int(offset), size)) {
			t.Fatalf("record at offset %d is not the one written there (%d bytes)", offset, len(value))
		}
	}

	// fetchCall makes one call, checks the records it returns and
	// returns the bytes the server meters for it.
	type fetchCall func(t *testing.T, hdr *grpcmd.MD) int64
	var next int64                // where Fetch reads next
	delivered := map[int64]bool{} // what ShareFetch delivered
	kinds := []struct {
		name string
		// attempt starts an attempt over conn: its calls, and what
		// settles it at the end.
		attempt func(conn *grpc.ClientConn) (fetchCall, func(t *testing.T))
		// done checks what the attempts read together.
		done func(t *testing.T)
	}{
		{"Fetch", func(conn *grpc.ClientConn) (fetchCall, func(*testing.T)) {
			consumer := pb.NewConsumerClient(conn)
			return func(t *testing.T, hdr *grpcmd.MD) int64 {
				t.Helper()
				resp, err := consumer.Fetch(ctx, &pb.FetchRequest{Topic: "fq", Offset: next, MaxBytes: 1}, grpc.Header(hdr))
				if err != nil {
					t.Fatalf("fetch at %d: %v", next, err)
				}
				for batch, err := range record.Batches(resp.Batches) {
					if err != nil {
						t.Fatal(err)
					}
					_, recs, err := record.Decode(batch)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range recs {
						intact(t, r.Offset, r.Value)
						next = r.Offset + 1
					}
				}
				if next >= total {
					next = 0 // read them again
				}
				return int64(len(resp.Batches))
			}, func(*testing.T) {}
		}, func(*testing.T) {}},
		{"ShareFetch", func(conn *grpc.ClientConn) (fetchCall, func(*testing.T)) {
			shares := pb.NewShareGroupsClient(conn)
			var member string
			var acks []*pb.ShareAck
			checkAcks := func(t *testing.T, results []*pb.ShareAckResult) {
				t.Helper()
				for _, r := range results {
					if r.ErrorReason != "" {
						t.Fatalf("ack of offset %d: %s %s", r.Offset, r.ErrorReason, r.Error)
					}
				}
			}
			call := func(t *testing.T, hdr *grpcmd.MD) int64 {
				t.Helper()
				req := &pb.ShareFetchRequest{Group: "fq-share", MemberId: member, Topics: []string{"fq"}, MaxRecords: perBatch, Acks: acks}
				resp, err := shares.ShareFetch(ctx, req, grpc.Header(hdr))
				for joining := time.Now().Add(30 * time.Second); member == "" && retryableJoin(err) && time.Now().Before(joining); {
					time.Sleep(20 * time.Millisecond)
					resp, err = shares.ShareFetch(ctx, req, grpc.Header(hdr))
				}
				if err != nil {
					t.Fatalf("share fetch: %v", err)
				}
				checkAcks(t, resp.AckResults)
				member, acks = resp.MemberId, nil
				var n int64
				for _, r := range resp.Records {
					intact(t, r.Offset, r.Value)
					if delivered[r.Offset] {
						t.Fatalf("offset %d delivered again after it was acknowledged", r.Offset)
					}
					delivered[r.Offset] = true
					acks = append(acks, &pb.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset})
					n += int64(proto.Size(r))
				}
				return n
			}
			// The member acknowledges what it holds before the next
			// attempt's member takes over.
			settle := func(t *testing.T) {
				t.Helper()
				if len(acks) == 0 {
					return
				}
				resp, err := shares.ShareAcknowledge(ctx, &pb.ShareAckRequest{Group: "fq-share", MemberId: member, Acks: acks})
				if err != nil {
					t.Fatalf("share acknowledge: %v", err)
				}
				checkAcks(t, resp.Results)
			}
			return call, settle
		}, func(t *testing.T) {
			// The records come in order of their offsets from the
			// start: none was skipped.
			t.Helper()
			for o := range int64(len(delivered)) {
				if !delivered[o] {
					t.Fatalf("%d records delivered, but not offset %d", len(delivered), o)
				}
			}
		}},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			// As for produce: an attempt the machine's load made
			// inconclusive (a pace below the quota, or hardly any answer
			// held back although the consumer outpaced the quota
			// unthrottled) is tried again, at most three times in all; a
			// pace more than 20% above the quota fails at once. Each
			// attempt is a principal of its own, so that it starts with a
			// full burst: the last attempt's bucket is empty when the
			// attempt ends, and refills only in a second.
			var inconclusive []string
			for attempt := range 3 {
				user := fmt.Sprintf("%s-%d", strings.ToLower(kind.name), attempt+1)
				principal := "User:" + user
				call, settle := kind.attempt(an.userConn(t, user, user+"-password"))
				seconds := an.srv.quota.throttleSeconds.WithLabelValues(principal)
				natural := naturalRate(t, naturalCalls, func(int) int64 {
					var hdr grpcmd.MD
					n := call(t, &hdr)
					if d := throttleMS(t, hdr); d > 0 {
						t.Fatalf("throttled %v without a quota", d)
					}
					return n
				})
				if _, err := an.admin.SetQuota(ctx, &pb.SetQuotaRequest{Quota: &pb.Quota{Principal: principal, FetchBytesPerSec: rate}}); err != nil {
					t.Fatal(err)
				}
				before := testutil.ToFloat64(seconds)
				var got int64
				var announced time.Duration
				calls, throttled := 0, 0
				start := time.Now()
				for got < 6*rate {
					var hdr grpcmd.MD
					n := call(t, &hdr)
					if n == 0 {
						t.Fatalf("call %d returned no records", calls)
					}
					got += n
					calls++
					if d := throttleMS(t, hdr); d > 0 {
						throttled++
						announced += d
					}
				}
				elapsed := time.Since(start)
				settle(t)
				counted := time.Duration((testutil.ToFloat64(seconds) - before) * float64(time.Second))
				// The first second's worth is the burst; the rest is paid at the rate.
				measured := float64(got-rate) / elapsed.Seconds()
				t.Logf("attempt %d: %d bytes in %d calls in %v: %.0f B/s beyond the burst (quota %d), %d throttled, %v announced, %v counted",
					attempt+1, got, calls, elapsed.Round(time.Millisecond), measured, rate, throttled, announced, counted.Round(time.Millisecond))
				if measured > rate*1.2 {
					t.Fatalf("measured %.0f B/s, more than 20%% above the quota of %d", measured, rate)
				}
				// Each header says its delay in whole milliseconds (at
				// least 1); the metric counts the delays themselves.
				if slack := time.Duration(throttled) * time.Millisecond; counted < announced-slack || counted > announced+slack {
					t.Fatalf("skiff_quota_throttle_seconds_total grew by %v, but the headers announced %v", counted, announced)
				}
				switch {
				case measured < rate*0.8:
					inconclusive = append(inconclusive, fmt.Sprintf("%.0f B/s, below the quota: %s was slower than it", measured, user))
					continue
				case natural >= 2*rate && throttled < calls/2:
					inconclusive = append(inconclusive, fmt.Sprintf("only %d of %d responses carried %s though %s read %.0f B/s unthrottled",
						throttled, calls, ThrottleHeader, user, natural))
					continue
				case throttled == 0:
					t.Fatalf("no response carried %s", ThrottleHeader)
				}
				if got := testutil.ToFloat64(an.srv.quota.throttled.WithLabelValues(principal, "fetch")); got != float64(throttled) {
					t.Fatalf("skiff_quota_throttled_requests_total{kind=fetch} is %v, but %d responses were throttled", got, throttled)
				}
				inconclusive = nil
				break
			}
			if inconclusive != nil {
				t.Fatalf("three attempts could not measure the quota: %v", inconclusive)
			}
			kind.done(t)
		})
	}
}

func TestRequestQuotaThrottlesEveryCall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and takes seconds")
	}
	an := startAuthNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The User:* default applies to alice, who has no quota of her own.
	const rate, n = 10, 40 // 10 calls/s: well below what one client does alone, even under -race
	// Each attempt connects and authenticates (TLS, password hashing)
	// before the clock runs and sees how fast alice calls unthrottled on
	// this machine now; as in the produce test, an attempt the machine's
	// load made inconclusive is tried again, at most three times in all,
	// by a user of its own: the last attempt's bucket is empty when it
	// ends, and a new user's starts with a full burst.
	var inconclusive []string
	for attempt := range 3 {
		if attempt > 0 {
			if _, err := an.admin.DeleteQuota(ctx, &pb.DeleteQuotaRequest{Principal: "User:*"}); err != nil {
				t.Fatal(err)
			}
		}
		user := fmt.Sprintf("alice-%d", attempt+1)
		alice := pb.NewAdminClient(an.userConn(t, user, user+"-password"))
		natural := naturalRate(t, 10, func(int) int64 {
			if _, err := alice.Metadata(ctx, &pb.MetadataRequest{}); err != nil {
				t.Fatal(err)
			}
			return 1
		})
		if _, err := an.admin.SetQuota(ctx, &pb.SetQuotaRequest{Quota: &pb.Quota{Principal: "User:*", RequestsPerSec: rate}}); err != nil {
			t.Fatal(err)
		}
		throttled := 0
		start := time.Now()
		for i := range n {
			var hdr grpcmd.MD
			if _, err := alice.Metadata(ctx, &pb.MetadataRequest{}, grpc.Header(&hdr)); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if throttleMS(t, hdr) > 0 {
				throttled++
			}
		}
		elapsed := time.Since(start)
		measured := float64(n-rate) / elapsed.Seconds()
		t.Logf("attempt %d: %d calls in %v: %.1f/s beyond the burst (quota %d), %d throttled", attempt+1, n, elapsed.Round(time.Millisecond), measured, rate, throttled)
		if measured > rate*1.2 {
			t.Fatalf("measured %.1f calls/s, more than 20%% above the quota of %d", measured, rate)
		}
		if measured < rate*0.8 {
			inconclusive = append(inconclusive, fmt.Sprintf("%.1f calls/s, below the quota: alice was slower than it", measured))
			continue
		}
		if natural >= 2*rate && throttled < n-rate-1 {
			inconclusive = append(inconclusive, fmt.Sprintf("%d of %d calls throttled, want about %d (unthrottled, alice called %.1f/s)", throttled, n, n-rate, natural))
			continue
		}
		if throttled == 0 {
			t.Fatal("no call was throttled")
		}
		inconclusive = nil
		break
	}
	if inconclusive != nil {
		t.Fatalf("three attempts could not measure the quota: %v", inconclusive)
	}
	lq, err := an.admin.ListQuotas(ctx, &pb.ListQuotasRequest{})
	if err != nil || len(lq.Quotas) != 1 || lq.Quotas[0].Principal != "User:*" || lq.Quotas[0].RequestsPerSec != rate {
		t.Fatalf("ListQuotas: %v %v", lq, err)
	}
}

// waitProduce produces one record, retrying until the partition has a
// leader.
func waitProduce(t *testing.T, ctx context.Context, p pb.ProducerClient) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if _, err = p.Produce(ctx, &pb.ProduceRequest{Topic: "q", Records: []*pb.Record{{Value: []byte("first")}}}); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal(fmt.Errorf("first produce: %w", err))
}

// quotaValue is the value of the quota tests' record i: size bytes of i.
func quotaValue(i, size int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }

// naturalRate runs call n times and returns the units per second it did:
// the pace of an unthrottled client on this machine as loaded now.
func naturalRate(t *testing.T, n int, call func(i int) int64) float64 {
	t.Helper()
	var units int64
	start := time.Now()
	for i := range n {
		units += call(i)
	}
	rate := float64(units) / time.Since(start).Seconds()
	t.Logf("unthrottled: %.1f units/s", rate)
	return rate
}
