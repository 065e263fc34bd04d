package consumergroup

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// shareExported remembers the counter values last exported as metrics, so
// that replicated lifetime counters become Prometheus counter increments.
type shareExported struct {
	acked, redeliveries int64
}

// ShareRecordState is what ShareInspect tells about one record.
type ShareRecordState struct {
	State          string
	DeliveryCount  int32
	LockHolder     string
	LockUntil      time.Time
	VisibleAt      time.Time
	KeyQuarantined bool
	Key            []byte
	LastError      string
	FirstDelivery  time.Time
	LastDelivery   time.Time
	StartOffset    int64
	BlockedBy      string
}

// Record states ShareInspect reports.
const (
	InspectAvailable    = "available"
	InspectAcquired     = "acquired"
	InspectAcknowledged = "acknowledged"
	InspectDead         = "dead"
	InspectDeadLettered = "dead-lettered"
	InspectNotDelivered = "not-delivered-yet"
	InspectBelowStart   = "below-start"
)

func unixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ShareInspect describes one record of a share-partition without acquiring
// it.
func (c *Coordinator) ShareInspect(ctx context.Context, group string, tp TopicPartition, offset int64) (ShareRecordState, error) {
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return ShareRecordState{}, err
	}
	term, err := s.shareBegin(ctx)
	if err != nil {
		return ShareRecordState{}, err
	}
	defer s.shares.mu.Unlock()
	s.mu.Lock()
	g := s.shareGroup(group)
	if g == nil {
		s.mu.Unlock()
		return ShareRecordState{}, fmt.Errorf("%w: share group %s", ErrGroupNotFound, group)
	}
	cfg := g.config()
	s.mu.Unlock()
	f, err := c.shareFeed(ctx, s, term, s.shares.rt(group), group, tp, true)
	if err != nil {
		return ShareRecordState{}, fmt.Errorf("%w: %s/%d in group %s: %v", ErrUnknownRecord, tp.Topic, tp.Partition, group, err)
	}
	now := c.cfg.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := g.partition(tp.Topic, tp.Partition)
	out := ShareRecordState{StartOffset: sp.Start, State: InspectNotDelivered}
	if offset < sp.Start {
		out.State = InspectBelowStart
		return out, nil
	}
	fr, known := f.get(offset)
	if !known {
		if fr, err = f.readOne(ctx, c.host, tp.Topic, tp.Partition, offset); err != nil {
			return ShareRecordState{}, fmt.Errorf("%w: %s/%d@%d", ErrUnknownRecord, tp.Topic, tp.Partition, offset)
		}
	}
	out.Key = fr.rec.Key
	if q := sp.Quarantine[string(fr.rec.Key)]; q != nil && cfg.KeyOrdered && !fr.keyNull() {
		out.KeyQuarantined = offset != q.RedriveOffset
	}
	if r := sp.Recs[offset]; r != nil {
		out.DeliveryCount, out.LastError = r.Deliveries, r.LastError
		out.FirstDelivery, out.LastDelivery = unixMs(r.FirstDelivery), unixMs(r.LastDelivery)
		switch r.State {
		case recAvailable:
			out.State = InspectAvailable
			if r.AvailableAt > now {
				out.VisibleAt = unixMs(r.AvailableAt)
			}
		case recAcquired:
			out.State, out.LockHolder, out.LockUntil = InspectAcquired, r.Owner, unixMs(r.LockUntil)
			if r.LockUntil <= now {
				out.State = InspectAvailable
			}
		case recAcked:
			out.State = InspectAcknowledged
		case recDead:
			out.State = InspectDead
		case recDeadLettered:
			out.State = InspectDeadLettered
		}
	}
	if fr.notBefore > now && out.VisibleAt.Before(unixMs(fr.notBefore)) {
		out.VisibleAt = unixMs(fr.notBefore)
	}
	out.BlockedBy = blockedWindow
	walkShare(sp, f, cfg, now, func(o int64, why string) bool {
		if o == offset {
			out.BlockedBy = why
			return false
		}
		return true
	})
	if g.Paused && out.BlockedBy == "" {
		out.BlockedBy = "the group is paused: " + g.PausedReason
	}
	return out, nil
}

// ShareMemberDescription describes one member of a share group.
type ShareMemberDescription struct {
	MemberID, ClientID, ClientHost string
	InFlight                       int
	LastSeen                       time.Time
}

// SharePartitionDescription is one share-partition's state.
type SharePartitionDescription struct {
	TopicPartition
	StartOffset      int64
	HighWatermark    int64 // -1 unknown
	InFlight         int
	Available        int64
	Acked            int64
	Redeliveries     int64
	DeadLettered     int64
	Lag              int64
	OldestUnackedAge time.Duration
	LagAge           time.Duration
	QuarantinedKeys  [][]byte
}

// ShareGroupDescription is DescribeShareGroup's answer.
type ShareGroupDescription struct {
	Group        string
	Config       map[string]string
	Paused       bool
	PausedReason string
	Members      []ShareMemberDescription
	Partitions   []SharePartitionDescription
}

// DescribeShareGroup describes a share group: settings, members and the
// state of every share-partition.
func (c *Coordinator) DescribeShareGroup(ctx context.Context, group string) (ShareGroupDescription, error) {
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return ShareGroupDescription{}, err
	}
	s.shares.mu.Lock()
	defer s.shares.mu.Unlock()
	return c.describeShare(ctx, s, group, true)
}

// shareGroup returns a group's committed state (nil if it has none);
// s.mu must be held.
func (s *shard) shareGroup(group string) *shareGroupState { return s.table.shares[group] }

// describeShare needs s.shares.mu held (it reads the feeds).
func (c *Coordinator) describeShare(ctx context.Context, s *shard, group string, withHW bool) (ShareGroupDescription, error) {
	now := c.cfg.Now()
	s.mu.Lock()
	g := s.shareGroup(group)
	if g == nil {
		s.mu.Unlock()
		return ShareGroupDescription{}, fmt.Errorf("%w: share group %s", ErrGroupNotFound, group)
	}
	d := ShareGroupDescription{Group: group, Config: maps.Clone(g.Config), Paused: g.Paused, PausedReason: g.PausedReason}
	inFlight := map[string]int{}
	var rt *shareRuntime
	if st := s.shares.groups; st != nil {
		rt = st[group]
	}
	var tps []TopicPartition
	for _, k := range slices.Sorted(maps.Keys(g.Partitions)) {
		sp := g.Partitions[k]
		tp := parseTPKey(k)
		tps = append(tps, tp)
		pd := SharePartitionDescription{TopicPartition: tp, StartOffset: sp.Start, HighWatermark: -1,
			Acked: sp.Acked, Redeliveries: sp.Redeliveries, DeadLettered: sp.DeadLettered}
		var oldestAcq int64
		doneInWindow := int64(0)
		for _, r := range sp.Recs {
			switch {
			case r.State == recAcquired && r.LockUntil > now.UnixMilli():
				pd.InFlight++
				inFlight[r.Owner]++
				if oldestAcq == 0 || r.FirstDelivery < oldestAcq {
					oldestAcq = r.FirstDelivery
				}
			case r.done():
				doneInWindow++
			}
		}
		if oldestAcq > 0 {
			pd.OldestUnackedAge = now.Sub(time.UnixMilli(oldestAcq))
		}
		for k := range sp.Quarantine {
			pd.QuarantinedKeys = append(pd.QuarantinedKeys, []byte(k))
		}
		if rt != nil {
			if f := rt.feeds[k]; f != nil {
				if fr, ok := f.get(sp.Start); ok {
					pd.LagAge = now.Sub(time.UnixMilli(fr.rec.Timestamp))
				}
				pd.HighWatermark = f.hw
			}
		}
		pd.Lag = doneInWindow // corrected below once the high watermark is known
		d.Partitions = append(d.Partitions, pd)
	}
	if rt != nil {
		for _, id := range slices.Sorted(maps.Keys(rt.members)) {
			m := rt.members[id]
			d.Members = append(d.Members, ShareMemberDescription{MemberID: id, ClientID: m.clientID, ClientHost: m.clientHost,
				InFlight: inFlight[id], LastSeen: m.lastSeen})
		}
	}
	s.mu.Unlock()
	var hws map[TopicPartition]int64
	if withHW {
		hws = c.host.HighWatermarks(ctx, tps)
	}
	for i := range d.Partitions {
		pd := &d.Partitions[i]
		if hw, ok := hws[pd.TopicPartition]; ok {
			pd.HighWatermark = hw
		}
		doneInWindow := pd.Lag
		pd.Lag = 0
		if pd.HighWatermark >= 0 {
			pd.Lag = max(0, pd.HighWatermark-pd.StartOffset-doneInWindow)
			pd.Available = max(0, pd.Lag-int64(pd.InFlight))
		}
		if pd.Lag == 0 {
			pd.LagAge = 0
		}
	}
	return d, nil
}

// observeShares refreshes the share metrics of a led shard.
func (c *Coordinator) observeShares(s *shard) {
	if !s.stillLeads() {
		return
	}
	s.mu.Lock()
	groups := slices.Sorted(maps.Keys(s.table.shares))
	s.mu.Unlock()
	s.shares.mu.Lock()
	defer s.shares.mu.Unlock()
	for _, group := range groups {
		d, err := c.describeShare(context.Background(), s, group, false)
		if err != nil {
			continue
		}
		var inFlight, avail, lag, acked, redel int64
		var oldest, lagAge time.Duration
		for _, p := range d.Partitions {
			inFlight += int64(p.InFlight)
			avail += p.Available
			lag += p.Lag
			acked += p.Acked
			redel += p.Redeliveries
			oldest = max(oldest, p.OldestUnackedAge)
			lagAge = max(lagAge, p.LagAge)
		}
		m := c.metrics
		m.shareInFlight.WithLabelValues(group).Set(float64(inFlight))
		m.shareAvailable.WithLabelValues(group).Set(float64(avail))
		m.shareLag.WithLabelValues(group).Set(float64(lag))
		m.shareLagSeconds.WithLabelValues(group).Set(lagAge.Seconds())
		m.shareOldestUnack.WithLabelValues(group).Set(oldest.Seconds())
		paused := 0.0
		if d.Paused {
			paused = 1
		}
		m.sharePaused.WithLabelValues(group).Set(paused)
		s.mu.Lock()
		if st := s.shares.groups; st != nil {
			if rt := st[group]; rt != nil {
				if acked > rt.exported.acked {
					m.shareAcked.WithLabelValues(group).Add(float64(acked - rt.exported.acked))
				}
				if redel > rt.exported.redeliveries {
					m.shareRedeliveries.WithLabelValues(group).Add(float64(redel - rt.exported.redeliveries))
				}
				rt.exported = shareExported{acked: acked, redeliveries: redel}
			}
		}
		s.mu.Unlock()
	}
}

// AlterShareGroup changes a share group's settings (unknown keys and bad
// values are refused) and, with resume, lifts a flood-breaker pause. It
// returns the settings in effect.
func (c *Coordinator) AlterShareGroup(ctx context.Context, group string, set map[string]string, resume bool) (map[string]string, error) {
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return nil, err
	}
	term, err := s.shareBegin(ctx)
	if err != nil {
		return nil, err
	}
	var base map[string]string
	if g := s.shares.state(group); g != nil {
		base = g.Config
	}
	merged, err := mergeShareConfig(base, set)
	if err != nil {
		s.shares.mu.Unlock()
		return nil, err
	}
	cmds := []shareCmd{&shareConfigCmd{Group: group, Config: merged}}
	if resume {
		cmds = append(cmds, &shareResumeCmd{Group: group})
		s.shares.rt(group).dlqTimes = nil
	}
	op, err := s.submit(term, cmds)
	s.shares.mu.Unlock()
	if err == nil {
		err = op.wait(ctx)
	}
	if err != nil {
		return nil, err
	}
	return merged, nil
}

// DeadLetterInfo is one dead letter with its payload.
type DeadLetterInfo struct {
	TopicPartition
	Offset        int64
	DLQTopic      string
	DLQPartition  int32
	DLQOffset     int64
	State         string
	DeliveryCount int32
	LastError     string
	FirstDelivery time.Time
	LastDelivery  time.Time
	RedriveOffset int64
	Record        *record.Record // nil when the dead-letter topic no longer has it
}

// ListDeadLetters lists a share group's dead letters of topic (all when
// empty), with their payloads read from the dead-letter topic.
func (c *Coordinator) ListDeadLetters(ctx context.Context, group, topic string) ([]DeadLetterInfo, error) {
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	g := s.shareGroup(group)
	if g == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: share group %s", ErrGroupNotFound, group)
	}
	var dls []deadLetter
	for _, d := range g.DeadLetters {
		if topic == "" || d.Topic == topic {
			dls = append(dls, *d)
		}
	}
	s.mu.Unlock()
	out := make([]DeadLetterInfo, 0, len(dls))
	for _, d := range dls {
		info := DeadLetterInfo{TopicPartition: TopicPartition{Topic: d.Topic, Partition: d.Partition}, Offset: d.Offset,
			DLQTopic: d.DLQTopic, DLQPartition: d.DLQPartition, DLQOffset: d.DLQOffset, State: d.State,
			DeliveryCount: d.Deliveries, LastError: d.LastError, FirstDelivery: unixMs(d.FirstDelivery),
			LastDelivery: unixMs(d.LastDelivery), RedriveOffset: d.RedriveOffset}
		if r, err := c.readOne(ctx, d.DLQTopic, d.DLQPartition, d.DLQOffset); err == nil {
			info.Record = r
		}
		out = append(out, info)
	}
	return out, nil
}

func (c *Coordinator) readOne(ctx context.Context, topic string, p int32, o int64) (*record.Record, error) {
	f := &feed{base: o}
	fr, err := f.readOne(ctx, c.host, topic, p, o)
	if err != nil {
		return nil, err
	}
	r := fr.rec
	return &r, nil
}

// ResolveDeadLetters redrives (back to the source partition, delivered
// again before later records of its key) or discards pending dead letters
// of topic: those at dlqOffsets, or all. It returns how many it resolved.
func (c *Coordinator) ResolveDeadLetters(ctx context.Context, group, topic string, dlqOffsets []int64, all, discard bool) (int, error) {
	if topic == "" {
		return 0, invalidf("name the source topic")
	}
	if all == (len(dlqOffsets) > 0) {
		return 0, invalidf("name dead letters by their dlq offsets, or all of them (exactly one)")
	}
	s, err := c.shardFor(ctx, group)
	if err != nil {
		return 0, err
	}
	if _, err := s.shareBegin(ctx); err != nil {
		return 0, err
	}
	g := s.shares.state(group)
	if g == nil {
		s.shares.mu.Unlock()
		return 0, fmt.Errorf("%w: share group %s", ErrGroupNotFound, group)
	}
	want := map[int64]bool{}
	for _, o := range dlqOffsets {
		want[o] = true
	}
	var toResolve []deadLetter
	for _, d := range g.DeadLetters {
		if d.Topic != topic || d.State != dlPending {
			continue
		}
		if all || want[d.DLQOffset] {
			toResolve = append(toResolve, *d)
			delete(want, d.DLQOffset)
		}
	}
	s.shares.mu.Unlock()
	if len(want) > 0 {
		return 0, fmt.Errorf("%w: no pending dead letter of %s at dlq offsets %v in group %s", ErrUnknownRecord, topic, slices.Sorted(maps.Keys(want)), group)
	}
	if !discard {
		// Refused before anything is redriven, so that a refusal leaves
		// every dead letter as it was.
		for _, d := range toResolve {
			if err := refuseInternal(d.Topic, "dead letters cannot be redriven to it"); err != nil {
				return 0, err
			}
		}
	}
	n := 0
	for _, d := range toResolve {
		e := &shareResolveCmd{Group: group, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Action: actionDiscard}
		if !discard {
			r, err := c.readOne(ctx, d.DLQTopic, d.DLQPartition, d.DLQOffset)
			if err != nil {
				return n, fmt.Errorf("read dead letter %s/%d@%d: %w", d.DLQTopic, d.DLQPartition, d.DLQOffset, err)
			}
			copyRec := *r
			copyRec.Offset = 0
			copyRec.Headers = nil
			for _, h := range r.Headers {
				if len(h.Key) < 10 || h.Key[:10] != "skiff-dlq-" {
					copyRec.Headers = append(copyRec.Headers, h)
				}
			}
			copyRec.Headers = append(copyRec.Headers, record.Header{Key: HeaderRedrivenFrom,
				Value: fmt.Appendf(nil, "%s/%d@%d", d.Topic, d.Partition, d.Offset)})
			batch, err := record.Encode(record.BatchOptions{}, []record.Record{copyRec})
			if err != nil {
				return n, err
			}
			off, err := c.host.ProducePartition(ctx, d.Topic, d.Partition, batch)
			if err != nil {
				return n, fmt.Errorf("redrive to %s/%d: %w", d.Topic, d.Partition, err)
			}
			e.Action, e.RedriveOffset = actionRedrive, off
		}
		term, err := s.shareBegin(ctx)
		if err != nil {
			return n, err
		}
		op, err := s.submit(term, []shareCmd{e})
		s.shares.mu.Unlock()
		if err == nil {
			err = op.wait(ctx)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
