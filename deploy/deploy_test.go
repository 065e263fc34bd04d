// Package deploy_test checks the files operators deploy next to Skiff:
// the Grafana dashboard (grafana/skiff.json) and the Prometheus alert
// rules (prometheus/alerts.yml; their behaviour is tested by promtool in
// prometheus/alerts_test.yml, `make test-alerts`). Every query must parse
// and name only metrics a running node exports.
package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc"
)

// promtool returns Debian's promtool, failing the test when it is missing
// (a prerequisite of `make test`).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	t.Fatal("promtool is missing: apt-get install prometheus")
	return ""
}

type dashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *datasource        `json:"datasource"`
	Targets    []target           `json:"targets"`
	Panels     []panel            `json:"panels"` // a collapsed row's
	GridPos    map[string]float64 `json:"gridPos"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

// grafanaVars are the Grafana variables a query may use, with a value
// that makes it plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// query is one PromQL expression of the dashboard and where it is.
type query struct {
	where, expr string
}

func loadDashboard(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "skiff.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/skiff.json: %v", err)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("the dashboard has no datasource variable (templating: name datasource, type datasource, query prometheus)")
	}
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %d %q: datasource %+v, want the ${datasource} variable", p.ID, p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				e := grafanaVars.Replace(tg.Expr)
				if strings.Contains(e, "$") {
					t.Errorf("panel %d %q: query %q uses an undefined variable", p.ID, p.Title, tg.Expr)
				}
				out = append(out, query{where: fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, tg.RefID), expr: e})
			}
		}
	}
	walk(d.Panels)
	if len(out) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(out))
	}
	return out
}

// metricNames returns the metric names a PromQL expression selects:
// what is left after removing strings, label matchers, ranges, grouping
// clauses, function calls, keywords and numbers.
func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\b[a-zA-Z_]+\s*\(`),
		regexp.MustCompile(`\b(?:and|or|unless|bool|offset)\b`),
		regexp.MustCompile(`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`),
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var names []string
	for _, n := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(expr, -1) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func TestMetricNamesOfAQuery(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (topic) (rate(skiff_topic_produced_bytes_total{topic!~"__.*"}[5m]))`, []string{"skiff_topic_produced_bytes_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[1m]))) / b or vector(0)`, []string{"a_bucket", "b"}},
		{`up{job="skiff"} == 0 and on (instance) c > 1e9`, []string{"up", "c"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	qs := loadDashboard(t)
	// promtool parses expressions of recording rules: one rule per query.
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, q := range qs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: q.expr})
	}
	b, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules (the dashboard's %d queries): %v\n%s", len(qs), err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(qs)); !strings.Contains(string(out), want) {
		t.Fatalf("promtool: %s, want %q", out, want)
	}
}

// TestQueriesNameOnlyExportedMetrics scrapes a node that has served
// produce, fetch, a consumer group and a share group with a dead letter,
// and checks that every metric the dashboard and the alert rules name is
// among those it exports (up is Prometheus's own).
func TestQueriesNameOnlyExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	named := map[string][]string{} // metric -> where
	for _, q := range loadDashboard(t) {
		for _, n := range metricNames(q.expr) {
			named[n] = append(named[n], q.where)
		}
	}
	alerts, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range regexp.MustCompile(`\bskiff_[a-z0-9_]+`).FindAllString(string(alerts), -1) {
		named[n] = append(named[n], "prometheus/alerts.yml")
	}
	delete(named, "up")

	node, cl := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exercise(t, ctx, cl)

	// Some series appear only once a periodic refresh ran (group lag every
	// second in a loopback node, share-group gauges every tick).
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		exported := exportedNames(t, node)
		missing = missing[:0]
		for n := range named {
			if !exported[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(missing)
	for _, n := range missing {
		t.Errorf("%s is not exported by the server (named by %s)", n, strings.Join(named[n], "; "))
	}
}

func exportedNames(t *testing.T, node *cluster.Node) map[string]bool {
	t.Helper()
	mfs, err := node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		out[n] = true
		if mf.GetType().String() == "HISTOGRAM" {
			out[n+"_bucket"], out[n+"_sum"], out[n+"_count"] = true, true, true
		}
	}
	return out
}

func startNode(t *testing.T) (*cluster.Node, *client.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.LoopbackConfig(t.TempDir(), "n0", 1)
	cfg.MetaVoters = 1
	cfg.GRPCAddr = ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := cluster.Start(ctx, cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := rpc.NewServer(node)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Stop(sctx)
		<-served
		node.Close(sctx)
	})
	if err := node.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(ctx, client.Config{Brokers: []string{cfg.GRPCAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return node, cl
}

// exercise makes the node export what only traffic creates: per-topic
// counters, request and stream counters, group offsets and lag, share
// group gauges and a dead letter.
func exercise(t *testing.T, ctx context.Context, cl *client.Client) {
	t.Helper()
	if _, err := cl.CreateTopic(ctx, "orders", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "orders", Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)
	co, err := cl.NewConsumer(client.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	if err := co.Assign(ctx, "orders", 0, client.Earliest()); err != nil {
		t.Fatal(err)
	}
	if _, err := co.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ResetGroupOffsets(ctx, "billing", "orders", client.ResetSpec{To: client.At(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AlterShareGroup(ctx, "workers", map[string]string{"max.deliveries": "3"}, false); err != nil {
		t.Fatal(err)
	}
	sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "workers", Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(context.Background())
	// The first record goes to the dead-letter topic, the second is
	// released once and acked when it comes back.
	released := map[int64]bool{}
	for acked := false; !acked; {
		recs, err := sc.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			switch {
			case r.Offset == 0:
				err = r.Reject(ctx, "test")
			case r.Offset == 1 && !released[1]:
				released[1] = true
				err = r.Release(ctx, 0)
			default:
				err = r.Ack(ctx)
				acked = acked || r.Offset == 1
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// A member in a consumer group (skiff_group_members).
	gc, err := cl.NewGroupConsumer(client.GroupConsumerConfig{Group: "live", Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close(context.Background()) })
	// Poll joins; it returns records or waits for them (a new group may
	// start at the end of the log), so each call is short.
	for len(gc.Assignment()) == 0 {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := gc.Poll(pctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("group consumer never got partitions: %v", err)
		}
	}
}
