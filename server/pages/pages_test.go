package pages

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
)

const (
	testKey  = "app-pagestestkey00000000000000"
	testName = "t"
	// testWorkflowID is a workflow ID in Dify's shape (a UUID).
	testWorkflowID = "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345"
)

// clock is the exporter's clock in a test; it moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is one app "t" on a simulated Dify, with the pages in front.
type fixture struct {
	dify  *difytest.Server
	exp   *collector.Exporter
	clock *clock
	h     http.Handler
}

func newFixture(t testing.TB, release string, cfg collector.AppConfig) *fixture {
	t.Helper()
	f := &fixture{dify: difytest.NewServer(), clock: &clock{t: time.Now()}}
	t.Cleanup(f.dify.Close)
	if release != "" {
		f.dify.SetServerVersion(release)
	}
	f.dify.AddApp(testKey, difytest.App{Name: "Pages", Mode: "workflow"})
	api, err := client.New(client.Config{URL: f.dify.URL(), APIKey: testKey, MaxRetries: -1,
		Observe: func(endpoint, code string) { f.exp.RequestObserver(testName)(endpoint, code) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.CloseIdleConnections)
	cfg.Name, cfg.API = testName, api
	f.exp = collector.New([]collector.AppConfig{cfg}, collector.WithClock(f.clock.now))
	mux := http.NewServeMux()
	Register(mux, Config{Exporter: f.exp, LastReload: func() ReloadStatus { return ReloadStatus{LoadedAt: f.clock.now()} },
		ShownConfig: func() string { return "apps:\n- name: t\n" }, Telemetry: "/metrics", Version: "test", Now: f.clock.now})
	f.h = mux
	return f
}

func (f *fixture) refresh(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.exp.Refresh(ctx)
}

func (f *fixture) put(r difytest.Run) string {
	if r.ID == "" {
		r.ID = difytest.NewRunID()
	}
	if r.WorkflowID == "" {
		r.WorkflowID = testWorkflowID
	}
	f.dify.PutRun(testKey, r)
	return r.ID
}

func (f *fixture) get(t testing.TB, target string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w.Code, w.Body.String()
}

// lookup asks the JSON twin for one run of app t.
func (f *fixture) lookup(t testing.TB, id string) collector.RunPage {
	t.Helper()
	code, body := f.get(t, "/runs?app=t&format=json&run_id="+id)
	if code != http.StatusOK {
		t.Fatalf("lookup %s: %d %s", id, code, body)
	}
	var out struct {
		Apps []struct {
			App string `json:"app"`
			collector.RunPage
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("lookup %s: %v in %s", id, err, body)
	}
	if len(out.Apps) != 1 || out.Apps[0].App != testName {
		t.Fatalf("lookup %s with ?app=t answered for %+v", id, out.Apps)
	}
	return out.Apps[0].RunPage
}

// parse parses a page; it fails the test on a page that is not HTML.
func parse(t testing.TB, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, c string) bool {
	return slices.Contains(strings.Fields(attr(n, "class")), c)
}

// find returns the elements for which match holds, in document order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	}
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// cell is the text of the run row's cell of class c.
func cell(row *html.Node, c string) string {
	cells := find(row, func(n *html.Node) bool { return n.Data == "td" && hasClass(n, c) })
	if len(cells) == 0 {
		return ""
	}
	return text(cells[0])
}

// runRow is the run lookup's row for id, or nil.
func runRow(doc *html.Node, id string) *html.Node {
	rows := find(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-run-id") == id })
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}

// Each state a tracked run can be in, as the lookup shows it in HTML and
// in JSON: its sources, status and how it is kept current.
func TestRunStates(t *testing.T) {
	type state struct {
		id       string
		sources  []string
		status   string
		kept     collector.Kept
		keptText string // on the HTML page
		due      bool   // a DueAt is set
		expires  bool   // an ExpiresAt is set
		workflow string
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (*fixture, state)
	}{
		{"static run not fetched yet", func(t *testing.T) (*fixture, state) {
			id := difytest.NewRunID()
			f := newFixture(t, "", collector.AppConfig{RunIDs: []string{id}})
			return f, state{id: id, sources: []string{"static"}, kept: collector.KeptNew, keptText: "not fetched yet"}
		}},
		{"static running run, discovery off: a detail call each refresh", func(t *testing.T) (*fixture, state) {
			id := difytest.NewRunID()
			f := newFixture(t, "", collector.AppConfig{RunIDs: []string{id}})
			f.put(difytest.Run{ID: id, WorkflowID: testWorkflowID, Status: "running", TotalTokens: 42, TotalSteps: 3})
			f.refresh(t)
			return f, state{id: id, sources: []string{"static"}, status: "running", kept: collector.KeptByDetail,
				keptText: "a detail call each refresh", workflow: testWorkflowID}
		}},
		{"static finished run: kept while listed", func(t *testing.T) (*fixture, state) {
			id := difytest.NewRunID()
			f := newFixture(t, "", collector.AppConfig{RunIDs: []string{id}})
			f.put(difytest.Run{ID: id, Status: "succeeded", FinishedAt: time.Now()})
			f.refresh(t)
			return f, state{id: id, sources: []string{"static"}, status: "succeeded", kept: collector.KeptFinished,
				keptText: "kept while listed", workflow: testWorkflowID}
		}},
		{"static run Dify does not have", func(t *testing.T) (*fixture, state) {
			id := difytest.NewRunID()
			f := newFixture(t, "", collector.AppConfig{RunIDs: []string{id}})
			f.refresh(t)
			return f, state{id: id, sources: []string{"static"}, kept: collector.KeptGone, keptText: "Dify answered 404"}
		}},
		{"registered run Dify has not confirmed", func(t *testing.T) (*fixture, state) {
			f := newFixture(t, "", collector.AppConfig{})
			id := difytest.NewRunID()
			if err := f.exp.Register(testName, id); err != nil {
				t.Fatal(err)
			}
			return f, state{id: id, sources: []string{"registered"}, kept: collector.KeptUnverified, keptText: "has not confirmed it exists"}
		}},
		{"discovered running run: covered by the log pages", func(t *testing.T) (*fixture, state) {
			f := newFixture(t, "", collector.AppConfig{Discovery: true, Lookback: time.Hour})
			id := f.put(difytest.Run{Status: "running", CreatedAt: time.Now().Add(-time.Minute), TotalTokens: 5})
			f.refresh(t)
			f.clock.add(time.Minute)
			f.refresh(t) // plans with the run known
			return f, state{id: id, sources: []string{"discovered"}, status: "running", kept: collector.KeptByLogs,
				keptText: "covered by the log pages", workflow: testWorkflowID}
		}},
		{"discovered finished run: expires by retention", func(t *testing.T) (*fixture, state) {
			f := newFixture(t, "", collector.AppConfig{Discovery: true, Lookback: time.Hour})
			id := f.put(difytest.Run{Status: "failed", CreatedAt: time.Now().Add(-2 * time.Minute), FinishedAt: time.Now().Add(-time.Minute)})
			f.refresh(t)
			return f, state{id: id, sources: []string{"discovered"}, status: "failed", kept: collector.KeptFinished,
				keptText: "retention drops it at", expires: true, workflow: testWorkflowID}
		}},
		{"registered running run on a release that logs at finish", func(t *testing.T) (*fixture, state) {
			f := newFixture(t, "1.10.1", collector.AppConfig{Discovery: true, Lookback: time.Hour})
			id := f.put(difytest.Run{Status: "running", CreatedAt: time.Now().Add(-time.Minute)})
			if err := f.exp.Register(testName, id); err != nil {
				t.Fatal(err)
			}
			f.refresh(t)
			return f, state{id: id, sources: []string{"registered"}, status: "running", kept: collector.KeptAwaitingLogRow,
				keptText: "waiting for its log row", due: true, workflow: testWorkflowID}
		}},
		{"run listed and registered", func(t *testing.T) (*fixture, state) {
			id := difytest.NewRunID()
			f := newFixture(t, "", collector.AppConfig{RunIDs: []string{id}})
			f.put(difytest.Run{ID: id, Status: "paused"})
			if err := f.exp.Register(testName, id); err != nil {
				t.Fatal(err)
			}
			f.refresh(t)
			return f, state{id: id, sources: []string{"static", "registered"}, status: "paused", kept: collector.KeptByDetail,
				keptText: "a detail call each refresh", workflow: testWorkflowID}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, want := tc.setup(t)
			page := f.lookup(t, want.id)
			if len(page.Runs) != 1 || page.Untracked != nil {
				t.Fatalf("JSON lookup of a tracked run: %+v", page)
			}
			got := page.Runs[0]
			if got.RunID != want.id || !slices.Equal(got.Sources, want.sources) || got.Status != want.status || got.Kept != want.kept ||
				got.WorkflowID != want.workflow || got.DueAt.IsZero() == want.due || got.ExpiresAt.IsZero() == want.expires {
				t.Errorf("JSON: got %+v\nwant %+v", got, want)
			}

			code, body := f.get(t, "/runs?app=t&run_id="+want.id)
			if code != http.StatusOK {
				t.Fatalf("HTML lookup: %d", code)
			}
			doc := parse(t, body)
			row := runRow(doc, want.id)
			if row == nil {
				t.Fatalf("no row for %s in\n%s", want.id, body)
			}
			if s := cell(row, "sources"); s != strings.Join(want.sources, ", ") {
				t.Errorf("sources cell %q, want %v", s, want.sources)
			}
			if s := cell(row, "status"); want.status != "" && !strings.HasPrefix(s, want.status) {
				t.Errorf("status cell %q, want %q", s, want.status)
			}
			if attr(row, "data-kept") != string(want.kept) || !strings.Contains(cell(row, "kept"), want.keptText) {
				t.Errorf("kept: %s %q, want %s %q", attr(row, "data-kept"), cell(row, "kept"), want.kept, want.keptText)
			}
			// Dify's values are text, never markup.
			if s := cell(row, "workflow"); s != want.workflow {
				t.Errorf("workflow cell %q, want %q", s, want.workflow)
			}
			if n := find(doc, func(n *html.Node) bool { return n.Data == "script" }); len(n) > 0 {
				t.Errorf("a <script> element on the page: a Dify value was not escaped")
			}
		})
	}
}

// Each reason a run is not tracked, as the lookup of its full ID says it.
func TestUntrackedReasons(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T) (*fixture, string)
		why    collector.Why
		text   string // on the HTML page
		dated  bool
		detail string
		shard  int
	}{
		{"never seen", func(t *testing.T) (*fixture, string) {
			return newFixture(t, "", collector.AppConfig{}), difytest.NewRunID()
		}, collector.WhyNeverSeen, "never seen", false, "", 0},
		{"registration refused", func(t *testing.T) (*fixture, string) {
			f := newFixture(t, "", collector.AppConfig{MaxRuns: 10})
			for range 10 {
				if err := f.exp.Register(testName, difytest.NewRunID()); err != nil {
					t.Fatal(err)
				}
			}
			id := difytest.NewRunID()
			if err := f.exp.Register(testName, id); !errors.Is(err, collector.ErrCapFull) {
				t.Fatalf("11th registration with the cap full of running runs: %v", err)
			}
			return f, id
		}, collector.WhyRefused, "registration was refused", true, collector.ErrCapFull.Error(), 0},
		{"404 from Dify", func(t *testing.T) (*fixture, string) {
			f := newFixture(t, "", collector.AppConfig{})
			id := difytest.NewRunID()
			if err := f.exp.Register(testName, id); err != nil {
				t.Fatal(err)
			}
			f.refresh(t)
			return f, id
		}, collector.WhyNotFound, "Dify answered 404", true, "", 0},
		{"expired by retention", func(t *testing.T) (*fixture, string) {
			f := newFixture(t, "", collector.AppConfig{Retention: time.Minute})
			id := f.put(difytest.Run{Status: "succeeded", FinishedAt: time.Now()})
			if err := f.exp.Register(testName, id); err != nil {
				t.Fatal(err)
			}
			f.refresh(t)
			if p := f.lookup(t, id); len(p.Runs) != 1 {
				t.Fatalf("the run is not tracked after its first refresh: %+v", p)
			}
			f.clock.add(2 * time.Minute)
			f.refresh(t)
			return f, id
		}, collector.WhyExpired, "expired by retention", true, "", 0},
		{"evicted by the cap", func(t *testing.T) (*fixture, string) {
			f := newFixture(t, "", collector.AppConfig{MaxRuns: 1})
			id := f.put(difytest.Run{Status: "succeeded", FinishedAt: time.Now()})
			if err := f.exp.Register(testName, id); err != nil {
				t.Fatal(err)
			}
			f.refresh(t)
			if err := f.exp.Register(testName, difytest.NewRunID()); err != nil {
				t.Fatal(err)
			}
			return f, id
		}, collector.WhyEvicted, "evicted by the cap", true, "oldest finished run", 0},
		{"removed from the list", func(t *testing.T) (*fixture, string) {
			id := difytest.NewRunID()
			f := newFixture(t, "", collector.AppConfig{RunIDs: []string{id}})
			f.exp.App(testName).SetRunIDs(collector.SourceStatic, nil)
			return f, id
		}, collector.WhyUnlisted, "removed from the run list", true, "", 0},
		{"another shard's run", func(t *testing.T) (*fixture, string) {
			f := newFixture(t, "", collector.AppConfig{Shard: 0, TotalShards: 2})
			// Which IDs replica 0 refuses, asked of another exporter with
			// the same sharding, so that this one never saw the ID.
			probe := collector.New([]collector.AppConfig{{Name: "p", API: nopAPI{}, Shard: 0, TotalShards: 2}})
			for {
				id := difytest.NewRunID()
				if err := probe.Register("p", id); errors.Is(err, collector.ErrOtherShard) {
					return f, id
				}
			}
		}, collector.WhyOtherShard, "belongs to shard 1", false, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, id := tc.setup(t)
			page := f.lookup(t, id)
			if len(page.Runs) != 0 || page.Untracked == nil {
				t.Fatalf("JSON lookup of an untracked run: %+v", page)
			}
			u := page.Untracked
			if u.RunID != id || u.Why != tc.why || u.At.IsZero() == tc.dated || u.Detail != tc.detail || u.Shard != tc.shard {
				t.Errorf("JSON: %+v, want why %s, dated %v, detail %q, shard %d", *u, tc.why, tc.dated, tc.detail, tc.shard)
			}
			_, body := f.get(t, "/runs?app=t&run_id="+id)
			p := find(parse(t, body), func(n *html.Node) bool { return hasClass(n, "untracked") })
			if len(p) != 1 || attr(p[0], "data-why") != string(tc.why) || !strings.Contains(text(p[0]), tc.text) {
				t.Errorf("HTML: want one .untracked saying %q (%s), got %d in\n%s", tc.text, tc.why, len(p), body)
			}
		})
	}
}

// nopAPI is a Dify that is never called.
type nopAPI struct{}

func (nopAPI) Run(context.Context, string) (client.Run, error) {
	return client.Run{}, errors.New("unused")
}
func (nopAPI) WorkflowLogs(context.Context, client.LogsQuery) (client.LogPage, error) {
	return client.LogPage{}, errors.New("unused")
}
func (nopAPI) Info(context.Context) (client.AppInfo, error) {
	return client.AppInfo{}, errors.New("unused")
}
func (nopAPI) Server(context.Context) (client.ServerInfo, error) {
	return client.ServerInfo{}, errors.New("unused")
}
func (nopAPI) SeenVersion() string { return "" }

// Pages of the lookup follow each other in run ID order, with no run
// twice or left out, and the last says there is no next.
func TestRunPaging(t *testing.T) {
	var ids []string
	for range 25 {
		ids = append(ids, difytest.NewRunID())
	}
	f := newFixture(t, "", collector.AppConfig{RunIDs: ids})
	var seen []string
	target := "/runs?app=t&limit=10&format=json"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages of 10 for 25 runs")
		}
		_, body := f.get(t, target)
		var out struct {
			Apps []collector.RunPage `json:"apps"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Apps) != 1 {
			t.Fatalf("%v: %s", err, body)
		}
		p := out.Apps[0]
		if p.Matched != 25 {
			t.Errorf("matched %d, want 25", p.Matched)
		}
		for _, r := range p.Runs {
			seen = append(seen, r.RunID)
		}
		if p.Next == "" {
			break
		}
		target = "/runs?app=t&limit=10&format=json&after=" + p.Next
	}
	slices.Sort(ids)
	if !slices.Equal(seen, ids) {
		t.Errorf("pages gave\n%v\nwant\n%v", seen, ids)
	}
	// The HTML page links to the next page with the same filter.
	_, body := f.get(t, "/runs?app=t&limit=10&status=new")
	next := find(parse(t, body), func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "next") })
	if len(next) != 1 || !strings.Contains(attr(next[0], "href"), "status=new") || !strings.Contains(attr(next[0], "href"), "after="+ids[9]) {
		t.Errorf("next link: %v", next)
	}
}

// Bad lookups say what was wrong.
func TestLookupErrors(t *testing.T) {
	f := newFixture(t, "", collector.AppConfig{})
	for _, tc := range []struct {
		target string
		code   int
		says   string
	}{
		{"/runs?app=nope", http.StatusNotFound, `unknown app "nope"`},
		{"/runs?app=t&status=done", http.StatusBadRequest, `status "done"`},
		{"/runs?app=t&limit=0", http.StatusBadRequest, "limit must be"},
		{"/refreshes?app=t&id=x", http.StatusBadRequest, "refresh number"},
		{"/refreshes?app=t&id=99", http.StatusNotFound, "no longer kept"},
		{"/refreshes", http.StatusNotFound, "want ?app=NAME"},
	} {
		code, body := f.get(t, tc.target)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.target, code, body, tc.code, tc.says)
		}
	}
}

// The landing page shows each app's runs by source and status and its
// last refreshes, each with what it cost Dify and a link to its log; the
// log holds the refresh's requests at debug level.
func TestLandingAndRefreshLog(t *testing.T) {
	f := newFixture(t, "", collector.AppConfig{Discovery: true, Lookback: time.Hour})
	f.put(difytest.Run{Status: "running", CreatedAt: time.Now().Add(-time.Minute)})
	f.put(difytest.Run{Status: "succeeded", CreatedAt: time.Now().Add(-time.Minute), FinishedAt: time.Now()})
	gone := difytest.NewRunID()
	if err := f.exp.Register(testName, gone); err != nil {
		t.Fatal(err)
	}
	f.refresh(t)

	_, body := f.get(t, "/")
	doc := parse(t, body)
	sec := find(doc, func(n *html.Node) bool { return attr(n, "id") == "app-t" })
	if len(sec) != 1 {
		t.Fatalf("no section for app t:\n%s", body)
	}
	counts := text(sec[0])
	rows := find(sec[0], func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "refresh") })
	if len(rows) != 1 {
		t.Fatalf("%d refresh rows after one refresh", len(rows))
	}
	row := text(rows[0])
	for _, want := range []string{"scrape (timeout", "logs 200 ×1", "run 200 ×1", "run 404 ×1", "info 200 ×1"} {
		if !strings.Contains(row, want) {
			t.Errorf("refresh row %q lacks %q", row, want)
		}
	}
	if !strings.Contains(counts, "Tracked runs0020") {
		// static, file, discovered, registered: the registered run left on its 404.
		t.Errorf("sources row: %q", counts)
	}

	// The JSON twin says the same.
	_, js := f.get(t, "/refreshes?app=t&format=json")
	var list struct {
		App       string              `json:"app"`
		Refreshes []collector.Refresh `json:"refreshes"`
	}
	if err := json.Unmarshal([]byte(js), &list); err != nil || len(list.Refreshes) != 1 {
		t.Fatalf("%v %s", err, js)
	}
	r := list.Refreshes[0]
	if r.LogPages != 1 || r.DetailCalls != 2 || r.RunsChanged != 2 || r.RunsDeparted != 1 || r.Tracked != 2 || r.Running || !r.Up || r.Timeout <= 0 {
		t.Errorf("refresh record %+v", r)
	}

	link := find(rows[0], func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "log") })
	if len(link) != 1 {
		t.Fatalf("no log link in %q", row)
	}
	code, logPage := f.get(t, "/"+attr(link[0], "href"))
	if code != http.StatusOK {
		t.Fatalf("log page %s: %d", attr(link[0], "href"), code)
	}
	pre := find(parse(t, logPage), func(n *html.Node) bool { return attr(n, "id") == "log" })
	if len(pre) != 1 {
		t.Fatalf("no log on\n%s", logPage)
	}
	log := text(pre[0])
	for _, want := range []string{"Refresh started", "level=debug msg=\"Dify request\" endpoint=logs code=200", "endpoint=run code=404",
		"run_id=" + gone + " why=not_found", `msg="Refresh ended" up=true`} {
		if !strings.Contains(log, want) {
			t.Errorf("refresh log lacks %q:\n%s", want, log)
		}
	}
}

// A scrape within the minimum interval is counted on the refresh it
// reused, and makes no record of its own.
func TestReuseCounted(t *testing.T) {
	c := &clock{t: time.Now()}
	exp := collector.New([]collector.AppConfig{{Name: testName, API: nopAPI{}}}, collector.WithClock(c.now), collector.WithMinInterval(time.Minute))
	exp.Refresh(context.Background())
	exp.Refresh(context.Background())
	exp.Refresh(context.Background())
	list := exp.App(testName).Refreshes()
	if len(list) != 1 || list[0].Reused != 2 || list[0].Timeout != 0 {
		t.Errorf("three refreshes within the minimum interval: %+v", list)
	}
}

// The configuration page shows the configuration and a failed reload.
func TestConfigPage(t *testing.T) {
	mux := http.NewServeMux()
	failed := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	Register(mux, Config{Exporter: collector.New(nil), ShownConfig: func() string { return "apps:\n- name: <b>x</b>\n" },
		LastReload: func() ReloadStatus {
			return ReloadStatus{LoadedAt: failed.Add(-time.Hour), FailedAt: failed, Err: "bad: <i>"}
		}})
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/config", nil))
	doc := parse(t, w.Body.String())
	pre := find(doc, func(n *html.Node) bool { return attr(n, "id") == "config" })
	if len(pre) != 1 || text(pre[0]) != "apps:\n- name: <b>x</b>" {
		t.Errorf("config shown: %v in\n%s", pre, w.Body)
	}
	f := find(doc, func(n *html.Node) bool { return attr(n, "id") == "reload-failed" })
	if len(f) != 1 || !strings.Contains(text(f[0]), "2025-01-02 03:04:05 UTC") || !strings.Contains(text(f[0]), "bad: <i>") {
		t.Errorf("failed reload: %v", f)
	}
}
