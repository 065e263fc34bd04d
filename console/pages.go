package console

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/client"
)

// maxListed bounds the groups a list page describes one by one.
const maxListed = 200

type clusterData struct {
	Info    client.ClusterInfo
	Healthy bool
}

func (c *Console) clusterPage(r *request) error {
	info, err := r.cl.DescribeCluster(r.ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(info.Brokers, func(a, b client.BrokerInfo) int { return cmp.Compare(a.ID, b.ID) })
	healthy := info.UnderReplicatedPartitions == 0 && info.OfflinePartitions == 0
	for _, b := range info.Brokers {
		if b.State != "alive" {
			healthy = false
		}
	}
	r.v.Title = "Cluster"
	r.v.Data = clusterData{Info: info, Healthy: healthy}
	return nil
}

type topicRow struct {
	client.TopicInfo
	Replication     int
	UnderReplicated int
	Leaderless      int
	Records         int64
}

func topicRowOf(t client.TopicInfo) topicRow {
	row := topicRow{TopicInfo: t}
	for _, p := range t.Partitions {
		row.Replication = max(row.Replication, len(p.Replicas))
		if len(p.InSync) < len(p.Replicas) {
			row.UnderReplicated++
		}
		if p.Leader == "" {
			row.Leaderless++
		}
		if p.HighWatermark >= 0 && p.LogStartOffset >= 0 {
			row.Records += p.HighWatermark - p.LogStartOffset
		}
	}
	return row
}

func (c *Console) topicsPage(r *request) error {
	topics, err := r.cl.ListTopics(r.ctx)
	if err != nil {
		return err
	}
	rows := make([]topicRow, 0, len(topics))
	for _, t := range topics {
		rows = append(rows, topicRowOf(t))
	}
	slices.SortFunc(rows, func(a, b topicRow) int { return cmp.Compare(a.Name, b.Name) })
	r.v.Title = "Topics"
	r.v.Data = rows
	return nil
}

type topicData struct {
	topicRow
	ConfigKeys []string
}

func (c *Console) topicPage(r *request) error {
	t, err := r.cl.DescribeTopic(r.ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	slices.SortFunc(t.Partitions, func(a, b client.PartitionInfo) int { return cmp.Compare(a.Partition, b.Partition) })
	r.v.Title = "Topic " + t.Name
	r.v.Section = "topics"
	r.v.Data = topicData{topicRow: topicRowOf(t), ConfigKeys: slices.Sorted(mapsKeys(t.Configs))}
	return nil
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Message browser limits: a page shows at most maxMessages records and
// waits at most browseWait for them.
const (
	defaultMessages = 20
	maxMessages     = 200
	browseWait      = 3 * time.Second
)

type messagesData struct {
	Topic      string
	Partitions []int32
	Partition  int32
	From       string
	Format     string
	Max        int
	Start, End int64
	Records    []messageRow
	Next       int64
}

type messageRow struct {
	Offset    int64
	Timestamp time.Time
	Key       shown
	Value     shown
	Headers   []headerRow
}

type headerRow struct {
	Key   string
	Value shown
}

func (c *Console) messagesPage(r *request) error {
	topic := r.PathValue("name")
	t, err := r.cl.DescribeTopic(r.ctx, topic)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := messagesData{Topic: t.Name, From: cmp.Or(q.Get("from"), "earliest"), Format: cmp.Or(q.Get("format"), "auto"), Max: defaultMessages}
	if !slices.Contains([]string{"auto", "text", "hex"}, d.Format) {
		return badRequest("format %q: want auto, text or hex", d.Format)
	}
	if s := q.Get("max"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxMessages {
			return badRequest("max %q: want 1 to %d", s, maxMessages)
		}
		d.Max = n
	}
	var part *client.PartitionInfo
	for i := range t.Partitions {
		d.Partitions = append(d.Partitions, t.Partitions[i].Partition)
	}
	slices.Sort(d.Partitions)
	if s := q.Get("partition"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return badRequest("partition %q is not a number", s)
		}
		d.Partition = int32(n)
	}
	for i := range t.Partitions {
		if t.Partitions[i].Partition == d.Partition {
			part = &t.Partitions[i]
		}
	}
	if part == nil {
		return fmt.Errorf("%w: topic %s has no partition %d", errNotFound, t.Name, d.Partition)
	}
	d.Start, d.End = part.LogStartOffset, part.HighWatermark
	from, err := parseFrom(d.From)
	if err != nil {
		return err
	}
	recs, err := browse(r, t.Name, d.Partition, from, d.End, d.Max)
	if err != nil {
		return err
	}
	d.Next = -1
	for _, rec := range recs {
		row := messageRow{Offset: rec.Offset, Timestamp: rec.Timestamp, Key: show(rec.Key, d.Format), Value: show(rec.Value, d.Format)}
		for _, h := range rec.Headers {
			row.Headers = append(row.Headers, headerRow{Key: h.Key, Value: show(h.Value, d.Format)})
		}
		d.Records = append(d.Records, row)
		d.Next = rec.Offset + 1
	}
	r.v.Title = "Messages of " + t.Name
	r.v.Section = "topics"
	r.v.Refresh = 0 // a browsed page stays put
	r.v.Data = d
	return nil
}

// parseFrom reads the browser's start (see client.ParseOffset).
func parseFrom(s string) (client.Offset, error) {
	o, err := client.ParseOffset(s)
	if err != nil {
		return client.Offset{}, badRequest("from: %v", err)
	}
	return o, nil
}

// browse reads up to max records of a partition from from, stopping at
// end (the high watermark when the page was asked for) or after
// browseWait.
func browse(r *request, topic string, partition int32, from client.Offset, end int64, max int) ([]*client.Record, error) {
	co, err := r.cl.NewConsumer(client.ConsumerConfig{MaxBytes: 256 << 10, MaxWait: 100 * time.Millisecond, AllowFollower: true})
	if err != nil {
		return nil, err
	}
	defer co.Close()
	if err := co.Assign(r.ctx, topic, partition, from); err != nil {
		return nil, err
	}
	var out []*client.Record
	ctx, cancel := context.WithTimeout(r.ctx, browseWait)
	defer cancel()
	for len(out) < max {
		if pos, _ := co.Position(topic, partition); pos >= end {
			break
		}
		recs, err := co.Poll(ctx)
		out = append(out, recs...)
		if err != nil {
			if ctx.Err() != nil && r.ctx.Err() == nil {
				break // show what arrived in time
			}
			return nil, err
		}
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

type groupRow struct {
	client.GroupListing
	Lag        int64
	LagSeconds float64
}

func (c *Console) groupsPage(r *request) error {
	groups, err := r.cl.ListGroups(r.ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(groups, func(a, b client.GroupListing) int { return cmp.Compare(a.Group, b.Group) })
	rows := make([]groupRow, 0, len(groups))
	for i, g := range groups {
		row := groupRow{GroupListing: g, Lag: -1, LagSeconds: -1}
		if i < maxListed {
			if d, err := r.cl.DescribeGroup(r.ctx, g.Group); err == nil {
				row.Lag = d.TotalLag()
				for _, s := range lagSeconds(r, d.Partitions) {
					row.LagSeconds = max(row.LagSeconds, s)
				}
			}
		}
		rows = append(rows, row)
	}
	r.v.Title = "Consumer groups"
	r.v.Data = rows
	return nil
}

type groupData struct {
	client.GroupDescription
	Partitions []groupPartRow
}

type groupPartRow struct {
	client.GroupPartition
	LagSeconds float64 // -1: unknown
}

func (c *Console) groupPage(r *request) error {
	d, err := r.cl.DescribeGroup(r.ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	secs := lagSeconds(r, d.Partitions)
	data := groupData{GroupDescription: d}
	for _, p := range d.Partitions {
		s, ok := secs[client.TopicPartition{Topic: p.Topic, Partition: p.Partition}]
		if !ok {
			s = -1
		}
		data.Partitions = append(data.Partitions, groupPartRow{GroupPartition: p, LagSeconds: s})
	}
	slices.SortFunc(data.Partitions, func(a, b groupPartRow) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	r.v.Title = "Group " + d.Group
	r.v.Section = "groups"
	r.v.Data = data
	return nil
}

type shareRow struct {
	Group    string
	DLQTopic string
}

func (c *Console) sharesPage(r *request) error {
	if g := r.URL.Query().Get("group"); g != "" {
		return redirect(r, "/ui/shares/"+url.PathEscape(g))
	}
	topics, err := r.cl.ListTopics(r.ctx)
	if err != nil {
		return err
	}
	var rows []shareRow
	for _, t := range topics {
		// Groups with the default dlq.topic ({topic}.dlq.{group}) show up
		// here once their first dead letter created the topic.
		if i := strings.LastIndex(t.Name, ".dlq."); i > 0 && i+5 < len(t.Name) {
			rows = append(rows, shareRow{Group: t.Name[i+5:], DLQTopic: t.Name})
		}
	}
	slices.SortFunc(rows, func(a, b shareRow) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.DLQTopic, b.DLQTopic))
	})
	r.v.Title = "Share groups"
	r.v.Data = rows
	return nil
}

type shareData struct {
	client.ShareGroupDescription
	ConfigKeys  []string
	DeadLetters []client.DeadLetter
	Pending     map[string]int // pending dead letters per source topic
	Topics      []string       // source topics with pending dead letters
}

func (c *Console) sharePage(r *request) error {
	group := r.PathValue("name")
	d, err := r.cl.DescribeShareGroup(r.ctx, group)
	if err != nil {
		return err
	}
	dls, err := r.cl.ListDeadLetters(r.ctx, group, "")
	if err != nil {
		return err
	}
	data := shareData{ShareGroupDescription: d, ConfigKeys: slices.Sorted(mapsKeys(d.Config)), DeadLetters: dls, Pending: map[string]int{}}
	for _, dl := range dls {
		if dl.State == "pending" {
			if data.Pending[dl.Topic] == 0 {
				data.Topics = append(data.Topics, dl.Topic)
			}
			data.Pending[dl.Topic]++
		}
	}
	slices.Sort(data.Topics)
	r.v.Title = "Share group " + group
	r.v.Section = "shares"
	r.v.Data = data
	return nil
}

// A dead-letter action names the group, redrive or discard, the source
// topic, and either offsets (DLQ offsets, comma-separated) or all=1.
type actionData struct {
	Group, Action, Topic, Offsets, All string
	Expires                            int64
	Token                              string
	Letters                            []client.DeadLetter
	Done                               int
}

func (c *Console) action(r *request, f url.Values) (actionData, []int64, error) {
	a := actionData{Group: r.PathValue("name"), Action: f.Get("action"), Topic: f.Get("topic"), Offsets: f.Get("offsets"), All: f.Get("all")}
	if a.Action != "redrive" && a.Action != "discard" {
		return a, nil, badRequest("action %q: want redrive or discard", a.Action)
	}
	if a.Topic == "" {
		return a, nil, badRequest("no topic: name the source topic of the dead letters")
	}
	var offsets []int64
	if a.All != "" {
		if a.All != "1" || a.Offsets != "" {
			return a, nil, badRequest("give offsets or all=1, not both")
		}
		return a, nil, nil
	}
	for _, s := range strings.Split(a.Offsets, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return a, nil, badRequest("offsets %q: want DLQ offsets separated by commas", a.Offsets)
		}
		offsets = append(offsets, n)
		if len(offsets) > 1000 {
			return a, nil, badRequest("at most 1000 offsets at once; use all=1")
		}
	}
	return a, offsets, nil
}

func (c *Console) confirmPage(r *request) error {
	q := r.URL.Query()
	a, offsets, err := c.action(r, q)
	if err != nil {
		return err
	}
	dls, err := r.cl.ListDeadLetters(r.ctx, a.Group, a.Topic)
	if err != nil {
		return err
	}
	for _, dl := range dls {
		if dl.State == "pending" && (a.All == "1" || slices.Contains(offsets, dl.DLQOffset)) {
			a.Letters = append(a.Letters, dl)
		}
	}
	f := url.Values{"group": {a.Group}, "action": {a.Action}, "topic": {a.Topic}, "offsets": {a.Offsets}, "all": {a.All}}
	a.Expires = time.Now().Add(actionTTL).Unix()
	a.Token = c.actionToken(r.user, f, a.Expires)
	r.v.Title = "Confirm " + a.Action
	r.v.Section = "shares"
	r.v.Refresh = 0
	r.v.Data = a
	return nil
}

func (c *Console) resolvePage(r *request) error {
	if err := sameOrigin(r); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("unreadable form: %v", err)
	}
	f := r.PostForm
	f.Set("group", r.PathValue("name"))
	if err := c.checkToken(r.user, f, time.Now()); err != nil {
		return err
	}
	a, offsets, err := c.action(r, f)
	if err != nil {
		return err
	}
	n, err := r.cl.ResolveDeadLetters(r.ctx, a.Group, a.Topic, offsets, a.All == "1", a.Action == "discard")
	if err != nil {
		return err
	}
	a.Done = n
	r.v.Title = "Dead letters " + a.Action
	r.v.Section = "shares"
	r.v.Refresh = 0
	r.v.Data = a
	return nil
}

// sameOrigin refuses a POST that a browser says came from another site.
func sameOrigin(r *request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return badRequest("actions are accepted only from the console's own pages")
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return badRequest("actions are accepted only from the console's own pages")
		}
	}
	return nil
}
