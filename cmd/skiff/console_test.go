package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/record"
)

// startDevNode runs one plaintext node in process the way `skiff dev`
// does.
func startDevNode(t *testing.T) *cluster.Node {
	t.Helper()
	cfg := cluster.LoopbackConfig(filepath.Join(t.TempDir(), "n0"), "n0", 1)
	cfg.MetaVoters = 1
	return runTestNode(t, cfg)
}

// consoleData fills a cluster with what the console pages must show: two
// topics, a consumer group that stopped at offset 4 of orders/0 (lag 6),
// and a share group with one dead letter.
func consoleData(t *testing.T, ctx context.Context, cl *client.Client) {
	t.Helper()
	for _, tc := range []struct {
		name  string
		parts int
	}{{"orders", 3}, {"jobs", 1}} {
		if _, err := cl.CreateTopic(ctx, tc.name, tc.parts, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, err := cl.NewProducer(client.ProducerConfig{Partitioner: client.ManualPartitioner()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range 10 {
		r := &client.Record{Topic: "orders", Partition: 0, Key: []byte(fmt.Sprintf("order-%d", i)), Value: []byte(fmt.Sprintf("total=%d", 10*i)),
			Headers: []record.Header{{Key: "source", Value: []byte("web")}}}
		if err := p.ProduceSync(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ProduceSync(ctx, &client.Record{Topic: "jobs", Partition: 0, Key: []byte("job-7"), Value: []byte("poison-pill")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ResetGroupOffsets(ctx, "billing", "orders", client.ResetSpec{To: client.At(4)}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AlterShareGroup(ctx, "workers", map[string]string{"max.deliveries": "1"}, false); err != nil {
		t.Fatal(err)
	}
	sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "workers", Topics: []string{"jobs"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(context.Background())
	for rejected := false; !rejected; {
		recs, err := sc.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := r.Reject(ctx, "cannot parse poison-pill"); err != nil {
				t.Fatal(err)
			}
			rejected = true
		}
	}
	waitFor(t, 30*time.Second, "the dead letter", func() bool {
		dls, err := cl.ListDeadLetters(ctx, "workers", "jobs")
		return err == nil && len(dls) == 1
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chromium returns Debian's chromium, failing the test when it is missing
// (a prerequisite of `make test`, like the Python client's packages).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is missing: apt-get install chromium")
	return ""
}

// dumpDOM loads url in headless Chromium, runs its scripts and returns
// the DOM it rendered. With SKIFF_CONSOLE_SCREENSHOTS=DIR it also saves a
// screenshot there.
func dumpDOM(t *testing.T, bin, profile, u, shot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile}
	out, err := exec.CommandContext(ctx, bin, append(args, "--dump-dom", u)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v", u, err)
	}
	if dir := os.Getenv("SKIFF_CONSOLE_SCREENSHOTS"); dir != "" {
		cmd := exec.CommandContext(ctx, bin, append(args, "--window-size=1280,900", "--screenshot="+filepath.Join(dir, shot+".png"), u)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Logf("screenshot %s: %v\n%s", shot, err, b)
		}
	}
	return string(out)
}

// TestConsolePagesInHeadlessChromium loads every page of the web console
// of a dev node with data in it in a real browser and checks what it
// rendered.
func TestConsolePagesInHeadlessChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and a browser")
	}
	bin := chromium(t)
	node := startDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Brokers: []string{node.Metadata().Brokers["n0"].GRPCAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	consoleData(t, ctx, cl)
	base := "http://" + node.HTTPAddr() + "/ui/"
	profile := t.TempDir()

	pages := []struct {
		path, shot string
		want       []string // regular expressions over the rendered DOM
	}{
		{"", "cluster", []string{`id="health"><b>healthy</b>`, `<tr data-node="n0"><td>n0</td>`, `id="topic-count">\d+<`}},
		{"topics", "topics", []string{
			`<tr data-topic="orders"><td><a href="/ui/topics/orders">orders</a></td><td class="partitions">3</td>`,
			`<tr data-topic="jobs"><td><a href="/ui/topics/jobs">jobs</a></td><td class="partitions">1</td>`,
		}},
		{"topics/orders", "topic", []string{`data-topic="orders" data-partitions="3"`, `<tr data-partition="0"><td>0</td><td class="">n0</td>`}},
		{"topics/orders/messages?partition=0&from=3&max=2", "messages", []string{
			`<tr data-offset="3"><td>3</td>.*order-3.*total=30.*<div>source=<span title="3 bytes">web</span></div>`, `<tr data-offset="4">`,
		}},
		{"topics/orders/messages?partition=0&from=@2000-01-01T00:00:00Z&max=1", "messages-time", []string{`<tr data-offset="0"><td>0</td>.*order-0`}},
		{"topics/orders/messages?partition=0&from=@2100-01-01T00:00:00Z", "messages-future", []string{`<tr><td colspan="5">No records from there.</td></tr>`}},
		{"topics/orders/messages?partition=0&from=3&max=1&format=hex", "messages-hex", []string{
			`<code class="hex"[^>]*>` + fmt.Sprintf("%x", "total=30") + `</code>`,
		}},
		{"groups", "groups", []string{`<tr data-group="billing">.*<td class="lag">6</td><td class="lag-seconds">(\d+h)?(\d+m)?\d+s</td>`}},
		{"groups/billing", "group", []string{
			`<b id="total-lag">6</b>`,
			`<tr data-tp="orders/0"><td>orders</td><td>0</td><td>4</td><td>10</td><td class="lag">6</td><td class="lag-seconds">(\d+h)?(\d+m)?\d+s</td>`,
		}},
		{"shares", "shares", []string{`<tr data-share="workers">`}},
		{"shares/workers", "share", []string{
			`<tr data-dlq-offset="0" class="dlq-pending"><td>jobs.dlq.workers/0@0</td><td>jobs/0@0</td><td>pending</td><td>1</td><td>cannot parse poison-pill</td><td><code>job-7</code></td><td><code>poison-pill</code></td>`,
			`href="/ui/shares/workers/dlq\?action=redrive&amp;topic=jobs&amp;offsets=0"`,
		}},
		{"shares/workers/dlq?action=discard&topic=jobs&offsets=0", "confirm", []string{
			`<form method="post" action="/ui/shares/workers/dlq" id="confirm">`, `<button type="submit" class="danger" id="confirm-button">Yes, discard</button>`,
		}},
	}
	for _, pg := range pages {
		dom := dumpDOM(t, bin, profile, base+pg.path, pg.shot)
		for _, w := range pg.want {
			if !regexp.MustCompile(w).MatchString(dom) {
				t.Errorf("/ui/%s: rendered DOM lacks %s\n%s", pg.path, w, mainOf(dom))
			}
		}
	}
	// Viewing the confirmation changed nothing.
	dls, err := cl.ListDeadLetters(ctx, "workers", "jobs")
	if err != nil || len(dls) != 1 || dls[0].State != "pending" {
		t.Fatalf("dead letters after the confirmation page: %+v, %v", dls, err)
	}
}

func mainOf(dom string) string {
	i, j := strings.Index(dom, "<main"), strings.Index(dom, "</main>")
	if i < 0 || j < i {
		return dom
	}
	return dom[i : j+7]
}

// TestConsoleHonoursAPIAuthorization runs the console of a node with
// authentication on (skiff dev --secure): it asks for credentials, shows
// each user what the ACLs let them describe, and lets only a user with
// alter rights on the share group resolve its dead letters, and only
// through the signed confirmation.
func TestConsoleHonoursAPIAuthorization(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	node, certDir, base := startDevSecureNodeOf(t)
	admin := append(append([]string{}, base...), "--tls-cert-file", filepath.Join(certDir, "admin.crt"), "--tls-key-file", filepath.Join(certDir, "admin.key"))
	run := func(stdin string, args ...string) {
		t.Helper()
		if out, err := executeIn(t, stdin, append(args, admin...)...); err != nil {
			t.Fatalf("skiff %v: %v\n%s", args, err, out)
		}
	}
	for _, u := range []string{"reader", "operator", "nobody"} {
		run(u+"-password-1\n", "user", "create", u, "--password-stdin")
	}
	// Dead letters show their records, so seeing them takes read on the
	// topic; a redrive writes to it.
	for _, u := range []string{"reader", "operator"} {
		run("", "acl", "add", "--principal", "User:"+u, "--topic", "*", "--operation", "read")
		run("", "acl", "add", "--principal", "User:"+u, "--group", "*", "--operation", "describe")
	}
	run("", "acl", "add", "--principal", "User:operator", "--group", "workers", "--operation", "alter")
	run("", "acl", "add", "--principal", "User:operator", "--topic", "jobs", "--operation", "write")

	tlsCfg, err := certs.ClientTLS(certs.ClientFiles{CAFile: filepath.Join(certDir, "ca.crt"),
		CertFile: filepath.Join(certDir, "admin.crt"), KeyFile: filepath.Join(certDir, "admin.key")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	brokers := base[1]
	cl, err := client.New(ctx, client.Config{Brokers: []string{brokers}, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	consoleData(t, ctx, cl)
	httpAddr := node.HTTPAddr()
	caOnly, err := certs.ClientTLS(certs.ClientFiles{CAFile: filepath.Join(certDir, "ca.crt"), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: caOnly}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	uiURL := "https://" + httpAddr + "/ui/"
	get := func(user, pass, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", uiURL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// No credentials, or wrong ones: a Basic challenge.
	for _, c := range [][2]string{{"", ""}, {"reader", "wrong-password"}, {"ghost", "reader-password-1"}} {
		req, _ := http.NewRequest("GET", uiURL+"topics", nil)
		if c[0] != "" {
			req.SetBasicAuth(c[0], c[1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("%q: status %d, WWW-Authenticate %q; want 401 with a Basic challenge", c[0], resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// A user without ACLs sees no topics and may not open the group.
	if code, body := get("nobody", "nobody-password-1", "topics"); code != 200 || strings.Contains(body, `data-topic="orders"`) {
		t.Fatalf("nobody's topics: %d, lists orders: %v", code, strings.Contains(body, `data-topic="orders"`))
	}
	if code, _ := get("nobody", "nobody-password-1", "shares/workers"); code != http.StatusForbidden {
		t.Fatalf("nobody's share group page: %d, want 403", code)
	}
	// The reader sees everything, dead letter included.
	if code, body := get("reader", "reader-password-1", "topics"); code != 200 || !strings.Contains(body, `data-topic="orders"`) {
		t.Fatalf("reader's topics: %d\n%s", code, body)
	}
	if code, body := get("reader", "reader-password-1", "shares/workers"); code != 200 || !strings.Contains(body, `class="dlq-pending"`) {
		t.Fatalf("reader's share group page: %d\n%s", code, body)
	}

	// confirm returns the signed form a user's confirmation posts.
	confirm := func(user, pass string) url.Values {
		t.Helper()
		code, body := get(user, pass, "shares/workers/dlq?action=redrive&topic=jobs&offsets=0")
		if code != 200 {
			t.Fatalf("%s's confirmation page: %d\n%s", user, code, body)
		}
		f := url.Values{}
		for _, m := range regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
			f.Set(m[1], m[2])
		}
		if f.Get("token") == "" || f.Get("action") != "redrive" {
			t.Fatalf("confirmation form: %v", f)
		}
		return f
	}
	post := func(user, pass string, f url.Values, origin string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", uiURL+"shares/workers/dlq", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.SetBasicAuth(user, pass)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pending := func() bool {
		t.Helper()
		dls, err := cl.ListDeadLetters(ctx, "workers", "jobs")
		if err != nil || len(dls) != 1 {
			t.Fatalf("dead letters: %+v, %v", dls, err)
		}
		return dls[0].State == "pending"
	}

	// The reader may look but not act: the API refuses the redrive.
	if code, body := post("reader", "reader-password-1", confirm("reader", "reader-password-1"), ""); code != http.StatusForbidden || !pending() {
		t.Fatalf("reader's redrive: %d, still pending %v\n%s", code, pending(), body)
	}
	of := confirm("operator", "operator-password-1")
	// A form signed for another user, tampered with, or posted from
	// another site is refused before the API is asked.
	if code, _ := post("operator", "operator-password-1", confirm("reader", "reader-password-1"), ""); code != http.StatusBadRequest || !pending() {
		t.Fatalf("operator posting the reader's form: %d", code)
	}
	tampered := url.Values{}
	for k, v := range of {
		tampered[k] = v
	}
	tampered.Set("all", "1")
	tampered.Set("offsets", "")
	if code, _ := post("operator", "operator-password-1", tampered, ""); code != http.StatusBadRequest || !pending() {
		t.Fatalf("tampered form: %d", code)
	}
	if code, _ := post("operator", "operator-password-1", of, "https://evil.example"); code != http.StatusBadRequest || !pending() {
		t.Fatalf("cross-site post: %d", code)
	}
	// The operator, with alter on the group and write on its topic, redrives it.
	if code, body := post("operator", "operator-password-1", of, "https://"+httpAddr); code != 200 || !strings.Contains(body, "Redriven 1 dead letters") {
		t.Fatalf("operator's redrive: %d\n%s", code, body)
	}
	if pending() {
		t.Fatal("the dead letter is still pending after the operator's redrive")
	}
}
