package collector

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// Tests of the refresh engine against the simulated Dify, per release.

func withVersion(f *fixture, v string) *fixture {
	f.srv.SetServerVersion(v)
	return f
}

// status is the exposed status of a run, "" if it has no series.
func status(f *fixture, id string) string {
	for _, s := range statusLabels {
		if got, ok, _ := lookup(f.reg, "dify_workflow_run_status", map[string]string{"run_id": id, "status": s}); ok && got == 1 {
			return s
		}
	}
	return ""
}

// What discovery sees of a running run depends on when the release writes
// its log row; either way its finish shows on the next refresh.
func TestRunningRunsPerRelease(t *testing.T) {
	for _, tc := range []struct {
		version     string
		seesRunning bool
		note        string
	}{
		{"1.10.1", false, "appear only once they finish"},
		{"1.11.0", true, ""},
		{"1.13.0", true, ""},
		{"1.14.1", true, ""},
	} {
		t.Run(tc.version, func(t *testing.T) {
			f := withVersion(newFixture(t, withDiscovery(1000)), tc.version)
			f.refresh(t)
			id := difytest.NewRunID()
			f.srv.PutRun(testKey, difytest.Run{ID: id, WorkflowID: wfID, Status: "running", CreatedAt: f.now()})
			f.advance(15 * time.Second)
			f.refresh(t)
			if got := status(f, id); (got == "running") != tc.seesRunning {
				t.Errorf("status = %q, want running seen = %v", got, tc.seesRunning)
			}
			if st := f.exp.App("translator").Status(); (st.Note != "") != (tc.note != "") || !strings.Contains(st.Note, tc.note) {
				t.Errorf("note = %q, want one containing %q", st.Note, tc.note)
			}
			if st := f.exp.App("translator").Status(); st.ServerVersion != tc.version {
				t.Errorf("server version = %q, want %q", st.ServerVersion, tc.version)
			}
			if got, _, _ := lookup(f.reg, "dify_server_info", map[string]string{"version": tc.version}); got != 1 {
				t.Errorf("dify_server_info{version=%q} = %v, want 1", tc.version, got)
			}
			r, _ := f.srv.Run(testKey, id)
			r.Status, r.FinishedAt, r.TotalTokens, r.TotalSteps, r.ElapsedTime = "succeeded", f.now(), 77, 4, 12
			f.srv.PutRun(testKey, r)
			f.advance(15 * time.Second)
			f.refresh(t)
			if got := status(f, id); got != "succeeded" {
				t.Errorf("status after it finished = %q, want succeeded on the next refresh", got)
			}
			if got := finished(t, f); got != 1 {
				t.Errorf("finished_total = %v, want 1", got)
			}
			if got := value(t, f.reg, "dify_workflow_tokens_total", nil); got != 77 {
				t.Errorf("tokens_total = %v, want 77", got)
			}
		})
	}
}

// Counters stay exact at 200 new runs a second and a 15 s scrape interval,
// with the default cap of 1,000 tracked runs far below the 3,000 runs a
// scrape brings: a finish is counted whether or not its run is tracked.
func TestCountersExactUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates three minutes of 200 runs a second")
	}
	for _, version := range []string{"1.10.1", "1.13.0"} {
		t.Run(version, func(t *testing.T) {
			f := withVersion(newFixture(t, withDiscovery(1000)), version)
			f.refresh(t) // the exporter starts before the runs
			sim := difytest.NewSimulator(f.srv, difytest.SimConfig{Key: testKey, NewRuns: 200, Seed: 42})
			for sec := 1; sec <= 180; sec++ {
				f.advance(time.Second)
				sim.Step(f.now())
				if sec%15 == 0 {
					f.refresh(t)
				}
			}
			want := map[string]int{}
			var tokens int
			for _, id := range sim.RunIDs() {
				r, _ := f.srv.Run(testKey, id)
				if client.Status(r.Status).Terminal() {
					want[r.Status]++
					tokens += r.TotalTokens
				}
			}
			for _, s := range client.Statuses {
				if !s.Terminal() {
					continue
				}
				got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": string(s)})
				if int(got) != want[string(s)] {
					t.Errorf("finished_total{%s} = %v, want %d", s, got, want[string(s)])
				}
			}
			if got := value(t, f.reg, "dify_workflow_tokens_total", nil); int(got) != tokens {
				t.Errorf("tokens_total = %v, want %d", got, tokens)
			}
			if st := f.exp.App("translator").Status(); st.Tracked > 1000 {
				t.Errorf("tracked = %d, over the cap", st.Tracked)
			}
		})
	}
}

// A refresh started by a scrape with a long deadline must not make a
// concurrent scrape with a short one report a hanging Dify as healthy.
func TestShortScrapeDuringHangReportsItsOwnView(t *testing.T) {
	paused := runID(1)
	f := newFixture(t, withRuns(paused))
	putPaused(f, paused)
	f.refresh(t)
	if got := value(t, f.reg, "dify_up", nil); got != 1 {
		t.Fatalf("dify_up = %v before the hang", got)
	}
	f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Hang: true})
	long, cancelLong := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancelLong()
	done := make(chan struct{})
	go func() { f.exp.Refresh(long); close(done) }()
	time.Sleep(50 * time.Millisecond) // the long one leads
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	f.exp.Refresh(short)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("short scrape took %v, past its deadline", d)
	}
	if got := value(t, f.reg, "dify_up", nil); got != 0 {
		t.Errorf("dify_up = %v in the short scrape's view of a hanging Dify, want 0", got)
	}
	if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 1 {
		t.Errorf("stale = %v in the short scrape's view, want 1", got)
	}
	if got := value(t, f.reg, "dify_workflow_run_tokens", nil); got != 150 {
		t.Errorf("tokens = %v, want the last good 150", got)
	}
	<-done
}

// Without usable logs (a chatflow), unfinished runs are fetched one by
// one, least recently refreshed first: when the deadline cuts a refresh
// short, the next one goes on where it stopped.
func TestDetailCallsAreFair(t *testing.T) {
	f := newFixture(t, func(c *AppConfig) { c.Concurrency = 4 })
	f.srv.AddApp(testKey, difytest.App{Name: "Support", Mode: "advanced-chat"})
	const n = 60
	for i := range n {
		id := runID(i)
		putPaused(f, id)
		if err := f.exp.Register("translator", id); err != nil {
			t.Fatal(err)
		}
	}
	f.refresh(t) // learns them all
	f.srv.ResetRequests()
	f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 20 * time.Millisecond})
	counts := map[string]int{}
	for range 8 {
		f.advance(time.Second)
		refreshCounting(f, 120*time.Millisecond, counts)
	}
	lo, hi := math.MaxInt, 0
	for i := range n {
		c := counts[runID(i)]
		lo, hi = min(lo, c), max(hi, c)
	}
	if lo == 0 || hi-lo > 2 {
		t.Errorf("refreshes per run range %d..%d over 8 cut-short refreshes, want every run refreshed and at most 2 apart", lo, hi)
	}
	if age := value(t, f.reg, "dify_exporter_refresh_age_seconds", nil); age <= 0 {
		t.Errorf("refresh age = %v, want the oldest run's data age", age)
	}
}

// One undecodable log entry is skipped and counted; it never blocks the
// window. A page with more entries than asked for is refused.
func TestPoisonedAndOversizedLogPages(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	f.refresh(t)
	good := difytest.NewRunID()
	page := func(entries ...string) string {
		return `{"page":1,"limit":100,"total":` + fmt.Sprint(len(entries)) + `,"has_more":false,"data":[` + strings.Join(entries, ",") + `]}`
	}
	entry := func(id, created string) string {
		return `{"id":"` + difytest.NewRunID() + `","workflow_run":{"id":"` + id + `","version":"v1","status":"succeeded","total_tokens":5,"total_steps":1,"elapsed_time":1.5,"created_at":` + created + `,"finished_at":` + created + `},"created_at":` + created + `}`
	}
	now := fmt.Sprint(f.now().Unix())
	f.srv.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 200, Times: 1,
		Body: page(entry("not-a-uuid", now), entry(difytest.NewRunID(), `"garbage"`), entry(good, now))})
	f.srv.PutRun(testKey, difytest.Run{ID: good, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now()})
	f.advance(15 * time.Second)
	f.refresh(t)
	if got := status(f, good); got != "succeeded" {
		t.Errorf("the good entry beside two poisoned ones: status %q, want succeeded", got)
	}
	if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": "bad_response"}); got != 2 {
		t.Errorf("bad_response = %v, want 2 (one per poisoned entry)", got)
	}
	if got := value(t, f.reg, "dify_up", nil); got != 1 {
		t.Errorf("dify_up = %v, want 1", got)
	}
	if got := finished(t, f); got != 1 {
		t.Errorf("finished_total = %v, want 1", got)
	}

	// 20,000 short entries (under the 4 MiB body cap) where 100 were
	// asked for: refused before any is taken in.
	var many []string
	for range 20000 {
		many = append(many, `{"workflow_run":{"id":"`+difytest.NewRunID()+`","status":"succeeded"},"created_at":`+now+`}`)
	}
	f.srv.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 200, Times: 1, Body: page(many...)})
	f.advance(15 * time.Second)
	f.refresh(t)
	if st := f.exp.App("translator").Status(); st.Tracked != 1 || !strings.Contains(st.LastError, "more than the limit") {
		t.Errorf("after an oversized page: tracked %d, last error %q; want 1 and the limit named", st.Tracked, st.LastError)
	}
	if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": "bad_response"}); got != 3 {
		t.Errorf("bad_response = %v, want 3", got)
	}
}

// putRecentRuns logs n runs, one every 100 ms up to now, the newest
// unfinished of them still running (or paused), the rest finished; it
// returns the IDs, newest first.
func putRecentRuns(f *fixture, n, unfinished int) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = difytest.NewRunID()
		at := f.now().Add(-time.Duration(i+1) * 100 * time.Millisecond)
		r := difytest.Run{ID: ids[i], WorkflowID: wfID, Status: "succeeded", TotalTokens: 10, TotalSteps: 2,
			CreatedAt: at, FinishedAt: at.Add(50 * time.Millisecond), ElapsedTime: 0.05}
		if i < unfinished {
			r.Status, r.FinishedAt = "running", time.Time{}
			if i%3 == 0 {
				r.Status = "paused"
			}
		}
		f.srv.PutRun(testKey, r)
	}
	return ids
}

// The API cost of a steady refresh, per strategy (README, "How a scrape
// works"): counted calls, not time.
func TestSteadyRefreshCost(t *testing.T) {
	t.Run("logs at start: 3,000 runs, 600 unfinished", func(t *testing.T) {
		f := withVersion(newFixture(t, withDiscovery(5000)), "1.13.3")
		putRecentRuns(f, 3000, 600)
		f.refresh(t)
		for range 3 { // steady: a few new rows a refresh
			f.advance(15 * time.Second)
			putRecentRuns(f, 5, 0)
			f.srv.ResetRequests()
			f.refresh(t)
		}
		logs, runs := f.srv.Requests(difytest.EndpointLogs), f.srv.Requests(difytest.EndpointRun)
		t.Logf("steady refresh: %d log pages, %d detail calls", logs, runs)
		// The 600 unfinished rows and the new ones fit ceil(605/100) pages.
		if logs+runs > 7 {
			t.Errorf("steady refresh: %d log pages + %d detail calls, want at most 7 in all", logs, runs)
		}
		if age := value(t, f.reg, "dify_exporter_refresh_age_seconds", nil); age != 0 {
			t.Errorf("refresh age = %v, want 0: every unfinished run refreshed", age)
		}
	})
	t.Run("logs at finish: 200 registered running runs", func(t *testing.T) {
		f := withVersion(newFixture(t, withDiscovery(5000)), "1.10.1")
		for range 200 {
			id := difytest.NewRunID()
			putRunning(f, id)
			if err := f.exp.Register("translator", id); err != nil {
				t.Fatal(err)
			}
		}
		f.refresh(t) // one detail call each, to learn them
		f.srv.ResetRequests()
		for range 3 {
			f.advance(15 * time.Second)
			f.refresh(t)
		}
		if got := f.srv.Requests(difytest.EndpointRun); got != 0 {
			t.Errorf("detail calls over 3 steady refreshes = %d, want 0: no log row means not finished", got)
		}
		if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 0 {
			t.Errorf("stale = %v, want 0", got)
		}
		// A re-check falls due after a minute, in case a row was lost.
		f.advance(time.Minute)
		f.srv.ResetRequests()
		f.refresh(t)
		if got := f.srv.Requests(difytest.EndpointRun); got != 200 {
			t.Errorf("detail calls once the re-check fell due = %d, want 200", got)
		}
	})
	t.Run("logs at finish: a run whose row was lost is found by a re-check", func(t *testing.T) {
		f := withVersion(newFixture(t, withDiscovery(1000)), "1.10.1")
		id := difytest.NewRunID()
		putRunning(f, id)
		if err := f.exp.Register("translator", id); err != nil {
			t.Fatal(err)
		}
		f.refresh(t)
		r, _ := f.srv.Run(testKey, id)
		r.Status, r.FinishedAt, r.NoLogRow = "succeeded", f.now(), true
		f.srv.PutRun(testKey, r)
		for range 8 { // two minutes at 15 s
			f.advance(15 * time.Second)
			f.refresh(t)
		}
		if got := status(f, id); got != "succeeded" {
			t.Errorf("status = %q, want succeeded from a re-check", got)
		}
	})
}

// refreshCounting refreshes with the deadline given and adds one to the
// count of every run the refresh brought up to date.
func refreshCounting(f *fixture, deadline time.Duration, counts map[string]int) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	f.exp.Refresh(ctx)
	cancel()
	a := f.exp.App("translator")
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, r := range a.store.runs {
		if r.freshAt == a.gen {
			counts[id]++
		}
	}
}

// Before 0.8.2 Dify has no logs API: discovery asks for none and says so;
// registered runs are refreshed with detail calls.
func TestNoLogsAPIBefore082(t *testing.T) {
	f := withVersion(newFixture(t, withDiscovery(1000)), "0.8.1")
	id := difytest.NewRunID()
	putPaused(f, id)
	if err := f.exp.Register("translator", id); err != nil {
		t.Fatal(err)
	}
	f.refresh(t)
	f.refresh(t)
	if got := f.srv.Requests(difytest.EndpointLogs); got != 0 {
		t.Errorf("log requests = %d, want 0", got)
	}
	if got := status(f, id); got != "paused" {
		t.Errorf("registered run status = %q, want paused", got)
	}
	if got := value(t, f.reg, "dify_up", nil); got != 1 {
		t.Errorf("dify_up = %v, want 1", got)
	}
	if note := f.exp.App("translator").Status().Note; !strings.Contains(note, "no workflow logs API") {
		t.Errorf("note = %q", note)
	}
}

// A first refresh that fails says there is nothing to serve, not that it
// serves last good values.
func TestFirstFailureSaysNoValuesYet(t *testing.T) {
	var buf syncBuffer
	id := runID(1)
	f := newFixture(t, withRuns(id))
	cfg := f.exp.App("translator").cfg
	f.exp = New([]AppConfig{cfg}, WithClock(f.now), WithLogger(log.NewLogfmtLogger(&buf)))
	f.srv.RevokeKey(testKey)
	f.refresh(t)
	if out := buf.String(); !strings.Contains(out, "no values to serve yet") || strings.Contains(out, "serving last good values") {
		t.Errorf("first failure logged as:\n%s", out)
	}
}

// Scrapes within the minimum interval of a complete refresh reuse it; a
// later one refreshes.
func TestMinIntervalReusesARecentRefresh(t *testing.T) {
	id := runID(1)
	f := newFixture(t, withRuns(id))
	putPaused(f, id)
	f.exp = New([]AppConfig{f.exp.App("translator").cfg}, WithClock(f.now), WithMinInterval(5*time.Second))
	f.refresh(t)
	f.srv.ResetRequests()
	f.advance(3 * time.Second)
	f.refresh(t) // an HA partner's scrape, 3 s later
	if got := f.srv.Requests(difytest.EndpointRun); got != 0 {
		t.Errorf("detail calls 3 s after a refresh = %d, want 0", got)
	}
	f.advance(3 * time.Second)
	f.refresh(t)
	if got := f.srv.Requests(difytest.EndpointRun); got != 1 {
		t.Errorf("detail calls 6 s after = %d, want 1", got)
	}
}

// A proxy that hides GET /v1/ does not hide the release: every Dify
// answer names it in X-Version, and /v1/ is not asked again each refresh.
func TestReleaseFromXVersion(t *testing.T) {
	f := withVersion(newFixture(t, withDiscovery(1000)), "1.10.1")
	f.srv.SetFault(difytest.EndpointIndex, difytest.Fault{Status: 404})
	for range 3 {
		f.refresh(t)
		f.advance(15 * time.Second)
	}
	if got, _, _ := lookup(f.reg, "dify_server_info", map[string]string{"version": "1.10.1"}); got != 1 {
		t.Errorf("dify_server_info{version=\"1.10.1\"} = %v, want 1 from X-Version", got)
	}
	if st := f.exp.App("translator").Status(); !strings.Contains(st.Note, "appear only once they finish") {
		t.Errorf("note = %q: the release's limits are not known", st.Note)
	}
	if got := f.srv.Requests(difytest.EndpointIndex); got != 1 {
		t.Errorf("GET /v1/ asked %d times in 3 refreshes, want once", got)
	}
}

// A 429 with Retry-After is honoured across scrapes: the app makes no call
// until then, its runs show stale and dify_up says why; a 429 without one
// costs one try per call and no wait.
func TestRetryAfterAcrossScrapes(t *testing.T) {
	for _, tc := range []struct {
		name, retryAfter string
		waits            bool
	}{
		{"Retry-After 120", "120", true},
		{"no Retry-After", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := []string{runID(1), runID(2), runID(3)}
			f := newFixture(t, withRuns(ids...))
			for _, id := range ids {
				putPaused(f, id)
			}
			f.refresh(t)
			f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: tc.retryAfter, Times: 1})
			f.advance(15 * time.Second)
			f.refresh(t)
			if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got == 0 {
				t.Errorf("after a 429: no stale runs")
			}
			f.srv.ResetRequests()
			f.advance(15 * time.Second)
			f.refresh(t)
			calls := f.srv.Requests(difytest.EndpointRun) + f.srv.Requests(difytest.EndpointInfo) + f.srv.Requests(difytest.EndpointIndex)
			st := f.exp.App("translator").Status()
			if tc.waits {
				if calls != 0 || st.Up || !strings.Contains(st.LastError, "asked to wait until") {
					t.Errorf("15 s into a 120 s wait: %d calls, up %v, error %q; want none, down, the wait named", calls, st.Up, st.LastError)
				}
				if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 3 {
					t.Errorf("stale = %v while waiting, want 3", got)
				}
				f.advance(2 * time.Minute)
				f.refresh(t)
			}
			if got := f.srv.Requests(difytest.EndpointRun); got != 3 {
				t.Errorf("detail calls once the wait is over: %d, want 3", got)
			}
			if st := f.exp.App("translator").Status(); !st.Up || st.Stale != 0 {
				t.Errorf("after the wait: up %v, stale %d; want up and fresh", st.Up, st.Stale)
			}
		})
	}
}
