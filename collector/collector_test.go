package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

const (
	testKey = "app-test-key-1234567890"
	wfID    = "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345"
)

// t0 is a fixed creation time for runs in exact-output tests.
var t0 = time.Unix(1705407629, 0).UTC()

type fixture struct {
	srv *difytest.Server
	exp *Exporter
	reg *prometheus.Registry
	// clock is the exporter's clock, moved by tests.
	mu    sync.Mutex
	clock time.Time
}

func (f *fixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

// newFixture starts a simulated Dify with one workflow app and an
// exporter for it; change tweaks the app config.
func newFixture(t testing.TB, change func(*AppConfig)) *fixture {
	t.Helper()
	f := &fixture{srv: difytest.NewServer(), clock: time.Now().UTC()}
	t.Cleanup(f.srv.Close)
	f.srv.SetClock(f.now) // Dify's host clock is the exporter's
	f.srv.AddApp(testKey, difytest.App{Name: "Translator", Mode: "workflow"})
	cfg := f.appConfig(t, "translator", testKey)
	if change != nil {
		change(&cfg)
	}
	f.exp = New([]AppConfig{cfg}, WithClock(f.now))
	f.reg = prometheus.NewPedanticRegistry()
	f.reg.MustRegister(f.exp)
	return f
}

func (f *fixture) appConfig(t testing.TB, name, key string) AppConfig {
	t.Helper()
	c, err := client.New(client.Config{URL: f.srv.URL(), APIKey: key, Timeout: 5 * time.Second, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return AppConfig{Name: name, API: c, MaxRuns: 1000, Retention: time.Hour, Concurrency: 4}
}

func (f *fixture) refresh(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.exp.Refresh(ctx)
}

// finishedRun is a run as Dify's documentation shows it.
func finishedRun(id, status string) difytest.Run {
	return difytest.Run{
		ID: id, WorkflowID: wfID, Status: status,
		Inputs: map[string]any{"query": "Translate this"}, Outputs: map[string]any{"result": "Traduisez"},
		TotalSteps: 3, TotalTokens: 150, CreatedAt: t0, FinishedAt: t0.Add(2 * time.Second), ElapsedTime: 1.25,
	}
}

// putPaused adds a run waiting for human input: unlike a running run, it
// keeps the tokens and steps it had at the pause (docs/dify-releases.md).
func putPaused(f *fixture, id string) difytest.Run {
	r := finishedRun(id, "paused")
	r.FinishedAt = time.Time{}
	f.srv.PutRun(testKey, r)
	return r
}

// putRunning adds a run that is still going (no finished_at).
func putRunning(f *fixture, id string) difytest.Run {
	r := finishedRun(id, "running")
	r.FinishedAt = time.Time{}
	f.srv.PutRun(testKey, r)
	return r
}

func runID(i int) string { return fmt.Sprintf("fb47b2e6-5e43-4f90-be01-%012x", i) }

func withRuns(ids ...string) func(*AppConfig) {
	return func(c *AppConfig) { c.RunIDs = ids }
}

// runSeries is the exact exposition of one run, as the contract defines it.
// Dify's run row gets its numbers only at a pause or the finish: a running
// run reads 0 tokens, steps and seconds; a paused one keeps its tokens and
// steps, with 0 seconds.
func runSeries(id, status string, finished bool) string {
	var b strings.Builder
	l := fmt.Sprintf(`app="translator",run_id="%s",workflow_id="%s"`, id, wfID)
	elapsed, steps, tokens := "1.25", 3, 150
	switch status {
	case "running":
		elapsed, steps, tokens = "0", 0, 0
	case "paused":
		elapsed = "0"
	}
	fmt.Fprintf(&b, "dify_workflow_run_created_timestamp_seconds{%s} 1.705407629e+09\n", l)
	fmt.Fprintf(&b, "dify_workflow_run_elapsed_seconds{%s} %s\n", l, elapsed)
	if finished {
		fmt.Fprintf(&b, "dify_workflow_run_finished_timestamp_seconds{%s} 1.705407631e+09\n", l)
	}
	for _, s := range []string{"partial-succeeded", "paused", "failed", "running", "stopped", "succeeded"} {
		v := 0
		if s == status {
			v = 1
		}
		fmt.Fprintf(&b, "dify_workflow_run_status{app=\"translator\",run_id=\"%s\",status=\"%s\",workflow_id=\"%s\"} %d\n", id, s, wfID, v)
	}
	fmt.Fprintf(&b, "dify_workflow_run_steps{%s} %d\n", l, steps)
	fmt.Fprintf(&b, "dify_workflow_run_tokens{%s} %d\n", l, tokens)
	return b.String()
}

func TestStatusOneHotAndGaugeValues(t *testing.T) {
	for _, status := range []string{"running", "succeeded", "failed", "stopped", "partial-succeeded", "paused"} {
		t.Run(status, func(t *testing.T) {
			id := runID(1)
			f := newFixture(t, withRuns(id))
			r := finishedRun(id, status)
			if status == "running" || status == "paused" {
				r.FinishedAt = time.Time{}
			}
			f.srv.PutRun(testKey, r)
			f.refresh(t)
			names := []string{"dify_workflow_run_created_timestamp_seconds", "dify_workflow_run_elapsed_seconds",
				"dify_workflow_run_finished_timestamp_seconds", "dify_workflow_run_status",
				"dify_workflow_run_steps", "dify_workflow_run_tokens", "dify_workflow_runs", "dify_up"}
			want := "# HELP dify_up 1 if the last refresh reached the app's Dify API with a valid key.\n# TYPE dify_up gauge\ndify_up{app=\"translator\"} 1\n" +
				helpAndType() + runSeries(id, status, r.FinishedAt != time.Time{}) + runsByStatus(map[string]int{status: 1})
			if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), names...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func helpAndType() string {
	return `# HELP dify_workflow_run_created_timestamp_seconds Unix time the workflow run was created.
# TYPE dify_workflow_run_created_timestamp_seconds gauge
# HELP dify_workflow_run_elapsed_seconds Elapsed time of the workflow run in seconds (Dify's elapsed_time).
# TYPE dify_workflow_run_elapsed_seconds gauge
# HELP dify_workflow_run_finished_timestamp_seconds Unix time the workflow run finished; absent while it has not.
# TYPE dify_workflow_run_finished_timestamp_seconds gauge
# HELP dify_workflow_run_status Status of the workflow run: 1 for its current status, 0 for the others.
# TYPE dify_workflow_run_status gauge
# HELP dify_workflow_run_steps Steps executed by the workflow run (Dify's total_steps).
# TYPE dify_workflow_run_steps gauge
# HELP dify_workflow_run_tokens Total tokens used by the workflow run (Dify's total_tokens).
# TYPE dify_workflow_run_tokens gauge
`
}

func runsByStatus(n map[string]int) string {
	var b strings.Builder
	b.WriteString("# HELP dify_workflow_runs Tracked workflow runs in each status.\n# TYPE dify_workflow_runs gauge\n")
	for _, s := range []string{"failed", "partial-succeeded", "paused", "running", "stopped", "succeeded"} {
		fmt.Fprintf(&b, "dify_workflow_runs{app=\"translator\",status=\"%s\"} %d\n", s, n[s])
	}
	return b.String()
}

func TestUnknownStatusSetsAllZeroAndIsCounted(t *testing.T) {
	id := runID(1)
	f := newFixture(t, withRuns(id))
	r := finishedRun(id, "scheduled")
	r.FinishedAt = time.Time{}
	f.srv.PutRun(testKey, r)
	f.refresh(t)
	f.refresh(t)
	for _, s := range client.Statuses {
		if got := value(t, f.reg, "dify_workflow_run_status", map[string]string{"status": string(s)}); got != 0 {
			t.Errorf("status %s = %v, want 0 for an unknown status", s, got)
		}
	}
	if got := testutil.ToFloat64(f.exp.counters.runErrors.WithLabelValues("translator", "unknown_status")); got != 1 {
		t.Errorf("unknown_status errors = %v, want 1 (counted once per run, not per scrape)", got)
	}
}

// value returns the value of the one gathered series with this name and
// these labels (a subset), failing the test if there is none.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok, err := lookup(g, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// lookup is the value of the first series of name with labels (a
// histogram's sample count); ok is false when there is none.
func lookup(g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool, err error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, false, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true, nil
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true, nil
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true, nil
			}
		}
	}
	return 0, false, nil
}

func TestTerminalRunFetchedOnceRunningEveryScrape(t *testing.T) {
	done, running := runID(1), runID(2)
	f := newFixture(t, withRuns(done, running))
	f.srv.PutRun(testKey, finishedRun(done, "succeeded"))
	putRunning(f, running)
	for range 5 {
		f.refresh(t)
	}
	// 1 fetch of the finished run + 5 of the running one.
	if got := f.srv.Requests(difytest.EndpointRun); got != 6 {
		t.Errorf("run detail requests over 5 scrapes = %d, want 6", got)
	}
	// The running run finishes: the next scrape shows it, and counts it.
	f.srv.PutRun(testKey, finishedRun(running, "failed"))
	f.refresh(t)
	if got := value(t, f.reg, "dify_workflow_run_status", map[string]string{"run_id": running, "status": "failed"}); got != 1 {
		t.Errorf("status failed = %v after the run finished, want 1", got)
	}
	if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "failed"}); got != 1 {
		t.Errorf("finished_total{failed} = %v, want 1", got)
	}
	// The run that had finished before the exporter started is not counted.
	if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"}); got != 0 {
		t.Errorf("finished_total{succeeded} = %v, want 0 (finished before start)", got)
	}
	if got := value(t, f.reg, "dify_workflow_tokens_total", nil); got != 150 {
		t.Errorf("tokens_total = %v, want 150", got)
	}
	f.refresh(t)
	if got := f.srv.Requests(difytest.EndpointRun); got != 7 {
		t.Errorf("run detail requests = %d, want 7 (no fetch once both are terminal)", got)
	}
}

func TestGoneRunsDroppedAndCounted(t *testing.T) {
	for _, era := range []struct {
		name string
		era  difytest.Era
	}{{"404 on newest Dify", difytest.EraNewest}, {"null 200 on era C", difytest.EraC}, {"null 200 on era A", difytest.EraA}} {
		t.Run(era.name, func(t *testing.T) {
			missing, present := runID(1), runID(2)
			f := newFixture(t, withRuns(missing, present))
			f.srv.SetEra(era.era)
			f.srv.PutRun(testKey, finishedRun(present, "succeeded"))
			f.refresh(t)
			f.refresh(t)
			f.refresh(t)
			if got := f.srv.Requests(difytest.EndpointRun); got != 2 {
				t.Errorf("run requests = %d, want 2: a gone run is not retried", got)
			}
			if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": "not_found"}); got != 1 {
				t.Errorf("not_found errors = %v, want 1", got)
			}
			if got := value(t, f.reg, "dify_up", nil); got != 1 {
				t.Errorf("dify_up = %v, want 1", got)
			}
			if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 1 {
				t.Errorf("run series = %d, want 1 (the gone run has none)", n)
			}
		})
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*difytest.Server)
		reason string
		up     float64
		stale  float64
	}{
		{"revoked key", func(s *difytest.Server) { s.RevokeKey(testKey) }, "unauthorized", 0, 1},
		{"disabled app", func(s *difytest.Server) { s.DisableApp(testKey, "The app's API service has been disabled.") }, "forbidden", 0, 1},
		{"server error", func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 500}) }, "server_error", 0, 1},
		{"malformed body", func(s *difytest.Server) {
			s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: `{"id": "fb47`})
		}, "bad_response", 0, 1},
		{"rate limited", func(s *difytest.Server) {
			s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: "1"})
		}, "rate_limited", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			running := runID(1)
			f := newFixture(t, withRuns(running))
			putPaused(f, running)
			f.refresh(t)
			tc.break_(f.srv)
			f.refresh(t)
			if got := value(t, f.reg, "dify_up", nil); got != tc.up {
				t.Errorf("dify_up = %v, want %v", got, tc.up)
			}
			if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": tc.reason}); got < 1 {
				t.Errorf("errors{reason=%q} = %v, want >= 1", tc.reason, got)
			}
			if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != tc.stale {
				t.Errorf("stale runs = %v, want %v", got, tc.stale)
			}
			// Last good values are still served.
			if got := value(t, f.reg, "dify_workflow_run_tokens", map[string]string{"run_id": running}); got != 150 {
				t.Errorf("tokens = %v, want the last good 150", got)
			}
			if st := f.exp.App("translator").Status(); st.LastError == "" || strings.Contains(st.LastError, testKey) {
				t.Errorf("last error %q: want a message without the key", st.LastError)
			}
		})
	}
}

func TestChatAppKeyIsNotWorkflowApp(t *testing.T) {
	f := newFixture(t, nil)
	chatKey := "app-chat-key"
	f.srv.AddApp(chatKey, difytest.App{Name: "Chat", Mode: "chat"})
	cfg := f.appConfig(t, "chat", chatKey)
	cfg.RunIDs = []string{runID(1)}
	f.exp.SetApps([]AppConfig{cfg})
	f.refresh(t)
	if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"app": "chat", "reason": "not_workflow_app"}); got != 1 {
		t.Errorf("not_workflow_app = %v, want 1", got)
	}
	if got := value(t, f.reg, "dify_up", map[string]string{"app": "chat"}); got != 0 {
		t.Errorf("dify_up = %v, want 0", got)
	}
	if st := f.exp.App("chat").Status(); !strings.Contains(st.LastError, "not a workflow") {
		t.Errorf("last error %q should say the app is not a workflow app", st.LastError)
	}
}

func TestHangingAPIStopsAtTheDeadline(t *testing.T) {
	running := runID(1)
	f := newFixture(t, withRuns(running))
	putRunning(f, running)
	f.refresh(t)
	f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	f.exp.Refresh(ctx)
	// A correctness bound, not a speed goal: the refresh must give up at
	// the deadline rather than at the client's 5 s timeout.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("refresh took %v with a 300ms deadline", d)
	}
	if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 1 {
		t.Errorf("stale = %v, want 1", got)
	}
	if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": "timeout"}); got != 1 {
		t.Errorf("timeout errors = %v, want 1", got)
	}
	f.srv.ClearFaults()
	f.refresh(t)
	if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 0 {
		t.Errorf("stale = %v after recovery, want 0", got)
	}
}

func TestConcurrentScrapesShareOneRefresh(t *testing.T) {
	running := runID(1)
	f := newFixture(t, withRuns(running))
	putRunning(f, running)
	f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 200 * time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.refresh(t)
			if _, err := f.reg.Gather(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := f.srv.Requests(difytest.EndpointRun); got != 1 {
		t.Errorf("run requests for 8 concurrent scrapes = %d, want 1", got)
	}
}

func TestMetricsPassPromlint(t *testing.T) {
	f := newFixture(t, withRuns(runID(1)))
	f.srv.PutRun(testKey, finishedRun(runID(1), "succeeded"))
	f.refresh(t)
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestFailingAppDoesNotBreakOthers(t *testing.T) {
	f := newFixture(t, withRuns(runID(1)))
	f.srv.PutRun(testKey, finishedRun(runID(1), "succeeded"))
	otherKey := "app-other-key"
	f.srv.AddApp(otherKey, difytest.App{Name: "Other", Mode: "workflow"})
	f.srv.PutRun(otherKey, finishedRun(runID(2), "failed"))
	other := f.appConfig(t, "other", otherKey)
	other.RunIDs = []string{runID(2)}
	first := f.exp.App("translator").cfg
	f.exp.SetApps([]AppConfig{first, other})
	f.srv.DisableApp(otherKey, "The app's API service has been disabled.")
	f.refresh(t)
	if got := value(t, f.reg, "dify_up", map[string]string{"app": "other"}); got != 0 {
		t.Errorf("dify_up{other} = %v, want 0 for the disabled app", got)
	}
	if got := value(t, f.reg, "dify_up", map[string]string{"app": "translator"}); got != 1 {
		t.Errorf("dify_up{translator} = %v, want 1", got)
	}
	if got := value(t, f.reg, "dify_workflow_run_tokens", map[string]string{"app": "translator"}); got != 150 {
		t.Errorf("translator's run tokens = %v, want 150", got)
	}
	if st := f.exp.App("other").Status(); !strings.Contains(st.LastError, "disabled") {
		t.Errorf("other's last error %q should carry Dify's message", st.LastError)
	}
}

func TestReloadKeepsStateOfUnchangedApps(t *testing.T) {
	f := newFixture(t, withRuns(runID(1)))
	f.srv.PutRun(testKey, finishedRun(runID(1), "succeeded"))
	f.srv.PutRun(testKey, finishedRun(runID(2), "failed"))
	f.refresh(t)
	cfg := f.exp.App("translator").cfg
	cfg.RunIDs = []string{runID(1), runID(2)}
	f.exp.SetApps([]AppConfig{cfg})
	f.refresh(t)
	// runID(1) was kept (finished, not fetched again); runID(2) is new.
	if got := f.srv.Requests(difytest.EndpointRun); got != 2 {
		t.Errorf("run requests = %d, want 2 (the kept run is not fetched again)", got)
	}
	cfg.RunIDs = []string{runID(2)}
	f.exp.SetApps([]AppConfig{cfg})
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 1 {
		t.Errorf("run series after removing a listed ID = %d, want 1", n)
	}
	f.exp.SetApps(nil)
	if n := testutil.CollectAndCount(f.exp, "dify_up"); n != 0 {
		t.Errorf("dify_up series after removing the app = %d, want 0", n)
	}
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_runs_finished_total"); n != 0 {
		t.Errorf("counter series of a removed app = %d, want 0", n)
	}
}

// TestConcurrentScrapesReloadsAndRegistrations runs everything that can
// happen at once, for the race detector to judge.
func TestConcurrentScrapesReloadsAndRegistrations(t *testing.T) {
	f := newFixture(t, withDiscovery(200))
	sim := difytest.NewSimulator(f.srv, difytest.SimConfig{Key: testKey, NewRuns: 3, Seed: 7})
	cfg := f.exp.App("translator").cfg
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	loop := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				fn(i)
			}
		}()
	}
	loop(func(int) { sim.Step(time.Now()); time.Sleep(5 * time.Millisecond) })
	for range 3 {
		loop(func(int) {
			c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			f.exp.Refresh(c)
			cancel()
			if _, err := f.reg.Gather(); err != nil {
				t.Error(err)
			}
		})
	}
	loop(func(i int) {
		c := cfg
		c.RunIDs = []string{runID(i % 5)}
		if i%7 == 0 {
			c.Fingerprint = fmt.Sprint(i) // a changed app starts afresh
		}
		f.exp.SetApps([]AppConfig{c})
		time.Sleep(10 * time.Millisecond)
	})
	loop(func(i int) {
		err := f.exp.Register("translator", fmt.Sprintf("00000000-0000-4000-8000-%012x", i))
		if err != nil && !errors.Is(err, ErrCapFull) && !errors.Is(err, ErrRefuted) && !strings.Contains(err.Error(), "unknown app") {
			t.Error(err)
		}
	})
	wg.Wait()
	if st := f.exp.App("translator").Status(); st.Tracked > 200+5 {
		t.Errorf("tracked %d runs, more than the cap 200 plus 5 listed", st.Tracked)
	}
}

func TestFailuresAreLoggedWhenTheyStartAndEnd(t *testing.T) {
	var buf syncBuffer
	id := runID(1)
	f := newFixture(t, withRuns(id))
	cfg := f.exp.App("translator").cfg
	f.exp = New([]AppConfig{cfg}, WithClock(f.now), WithLogger(log.NewLogfmtLogger(&buf)))
	r := finishedRun(id, "running")
	f.srv.PutRun(testKey, r)
	f.refresh(t)
	f.srv.RevokeKey(testKey)
	f.refresh(t)
	f.refresh(t)
	f.srv.AddApp(testKey, difytest.App{Name: "Translator", Mode: "workflow"})
	f.refresh(t)
	out := buf.String()
	if n := strings.Count(out, "Refresh failed"); n != 1 {
		t.Errorf("%d 'Refresh failed' lines, want 1 (logged when it starts, not every scrape):\n%s", n, out)
	}
	if !strings.Contains(out, "app=translator") || !strings.Contains(out, "Access token is invalid") {
		t.Errorf("the failure line should name the app and Dify's message:\n%s", out)
	}
	if !strings.Contains(out, "Refresh recovered") {
		t.Errorf("no recovery line:\n%s", out)
	}
	if strings.Contains(out, testKey) {
		t.Errorf("the key is in the log:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A scrape with little time (or a curl that gives up) must not spoil a
// concurrent scrape that has more.
func TestShortCallerDoesNotSpoilLongerScrape(t *testing.T) {
	running := runID(1)
	f := newFixture(t, withRuns(running))
	putRunning(f, running)
	f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 300 * time.Millisecond})
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { f.exp.Refresh(short); close(done) }()
	time.Sleep(10 * time.Millisecond) // let the short one lead
	long, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	f.exp.Refresh(long)
	<-done
	if got := value(t, f.reg, "dify_up", nil); got != 1 {
		t.Errorf("dify_up = %v after the longer scrape, want 1", got)
	}
	if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 0 {
		t.Errorf("stale = %v after the longer scrape, want 0", got)
	}
}

func TestReloadWithNewLimitsKeepsRegisteredRuns(t *testing.T) {
	f := newFixture(t, nil)
	id := runID(7)
	putRunning(f, id)
	if err := f.exp.Register("translator", id); err != nil {
		t.Fatal(err)
	}
	f.refresh(t)
	cfg := f.exp.App("translator").cfg
	cfg.MaxRuns, cfg.Retention, cfg.Fingerprint = 2000, 5*time.Minute, "rotated-key"
	f.exp.SetApps([]AppConfig{cfg})
	if st := f.exp.App("translator").Status(); st.Tracked != 1 {
		t.Errorf("tracked = %d after a reload that changed limits and key, want the registered run kept", st.Tracked)
	}
	f.srv.PutRun(testKey, finishedRun(id, "succeeded"))
	f.refresh(t)
	if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"}); got != 1 {
		t.Errorf("finished_total = %v, want 1: the run was seen running before the reload", got)
	}
}

func TestRemovedAppLeavesNoSeriesEvenMidRefresh(t *testing.T) {
	running := runID(1)
	f := newFixture(t, withRuns(running))
	putRunning(f, running)
	f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 200 * time.Millisecond, Status: 500})
	cfg := f.exp.App("translator").cfg
	// Count requests as main does, so that a late answer re-creates a series.
	cfg.API, _ = client.New(client.Config{URL: f.srv.URL(), APIKey: testKey, MaxRetries: -1, Observe: f.exp.RequestObserver("translator")})
	f.exp.SetApps([]AppConfig{cfg})
	done := make(chan struct{})
	go func() { f.refresh(t); close(done) }()
	time.Sleep(50 * time.Millisecond)
	f.exp.SetApps(nil) // removed while its refresh is in flight
	<-done
	f.refresh(t)
	if n := testutil.CollectAndCount(f.exp); n != 0 {
		t.Errorf("%d series left after the app was removed, want 0", n)
	}
}
