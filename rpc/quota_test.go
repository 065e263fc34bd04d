package rpc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	grpcmd "google.golang.org/grpc/metadata"

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
	if n, err := testutil.GatherAndCount(reg, "skiff_quota_throttle_seconds_total", "skiff_quota_throttled_requests_total"); err != nil || n != 4 {
		t.Fatalf("registered series %d (%v), want 4 (seconds and requests of alice and bob)", n, err)
	}

	// Buckets of idle principals are forgotten once full; alice is still in
	// debt after a minute and is kept.
	if len(e.buckets) != 2 {
		t.Fatalf("%d buckets, want alice's produce and bob's requests", len(e.buckets))
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
		{Principal: "User:alice", ResourceType: string(acl.Topic), Name: "q", Operation: string(acl.All)},
	}}); err != nil {
		t.Fatal(err)
	}
	conn := an.userConn(t, "alice", "alice-password")
	producer, consumer := pb.NewProducerClient(conn), pb.NewConsumerClient(conn)
	waitProduce(t, ctx, producer) // the partition has a leader; unthrottled yet

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
	var kept map[int64]sentRecord // offset -> record, of the conclusive attempt
	var inconclusive []string
	for attempt := range 3 {
		if _, err := an.admin.DeleteQuota(ctx, &pb.DeleteQuotaRequest{Principal: "User:alice"}); err != nil && attempt > 0 {
			t.Fatal(err)
		}
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
		if _, err := an.admin.SetQuota(ctx, &pb.SetQuotaRequest{Quota: &pb.Quota{Principal: "User:alice", ProduceBytesPerSec: rate}}); err != nil {
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
	if _, err := an.admin.DeleteQuota(ctx, &pb.DeleteQuotaRequest{Principal: "User:alice"}); err != nil {
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

func TestRequestQuotaThrottlesEveryCall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and takes seconds")
	}
	an := startAuthNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The User:* default applies to alice, who has no quota of her own.
	const rate, n = 10, 40 // 10 calls/s: well below what one client does alone, even under -race
	alice := pb.NewAdminClient(an.userConn(t, "alice", "alice-password"))
	// Each attempt connects and authenticates (TLS, password hashing)
	// before the clock runs and sees how fast alice calls unthrottled on
	// this machine now; as in the produce test, an attempt the machine's
	// load made inconclusive is tried again, at most three times in all.
	var inconclusive []string
	for attempt := range 3 {
		if attempt > 0 {
			if _, err := an.admin.DeleteQuota(ctx, &pb.DeleteQuotaRequest{Principal: "User:*"}); err != nil {
				t.Fatal(err)
			}
		}
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
