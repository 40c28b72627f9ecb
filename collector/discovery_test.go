package collector

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

func withDiscovery(max int) func(*AppConfig) {
	return func(c *AppConfig) {
		c.Discovery, c.Lookback, c.MaxRuns = true, time.Hour, max
	}
}

// putLoggedRuns adds n finished runs created 250 ms apart, ending a
// minute before now, and returns their IDs oldest first.
func putLoggedRuns(s *difytest.Server, now time.Time, n int, status string) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = difytest.NewRunID()
		created := now.Add(-time.Minute - time.Duration(n-i)*250*time.Millisecond)
		s.PutRun(testKey, difytest.Run{
			ID: ids[i], WorkflowID: wfID, Status: status, TotalSteps: 2, TotalTokens: 10 + i,
			CreatedAt: created, FinishedAt: created.Add(time.Second), ElapsedTime: 0.5,
		})
	}
	return ids
}

func TestDiscoveryAcrossPages(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	ids := putLoggedRuns(f.srv, f.now(), 250, "succeeded")
	f.refresh(t)

	if got := f.srv.Requests(difytest.EndpointLogs); got != 3 {
		t.Errorf("log pages read = %d, want 3 for 250 runs", got)
	}
	// All runs share one workflow version: one detail call teaches its
	// workflow ID to the 249 others.
	if got := f.srv.Requests(difytest.EndpointRun); got != 1 {
		t.Errorf("run detail calls = %d, want 1", got)
	}
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 250 {
		t.Fatalf("runs exposed = %d, want 250", n)
	}
	for _, i := range []int{0, 99, 100, 249} {
		l := map[string]string{"run_id": ids[i], "workflow_id": wfID}
		if got := value(t, f.reg, "dify_workflow_run_tokens", l); got != float64(10+i) {
			t.Errorf("run %d tokens = %v, want %d", i, got, 10+i)
		}
		if got := value(t, f.reg, "dify_workflow_run_status", map[string]string{"run_id": ids[i], "status": "succeeded"}); got != 1 {
			t.Errorf("run %d succeeded = %v, want 1", i, got)
		}
	}
	if got := value(t, f.reg, "dify_exporter_tracked_runs", map[string]string{"source": "discovered"}); got != 250 {
		t.Errorf("tracked discovered = %v, want 250", got)
	}
	// They all finished before the exporter started: nothing is counted.
	if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"}); got != 0 {
		t.Errorf("finished_total = %v, want 0 for runs finished before start", got)
	}
}

func TestDiscoverySteadyStateCalls(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	start := f.now()
	putLoggedRuns(f.srv, start, 50, "succeeded")
	// A run still going that is older than the next window: it needs a
	// detail call every refresh.
	old := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: old, WorkflowID: wfID, Status: "running", CreatedAt: f.now().Add(-30 * time.Minute)})
	f.refresh(t)
	f.srv.ResetRequests()

	f.advance(10 * time.Minute)
	newRun := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: newRun, WorkflowID: wfID, Status: "running", CreatedAt: f.now()})
	f.refresh(t)
	// One log page holds the new run and, 51 rows down, the old one: the
	// page read for discovery refreshes both, so no detail call is needed.
	if got := f.srv.Requests(difytest.EndpointLogs); got != 1 {
		t.Errorf("log pages = %d, want 1", got)
	}
	if got := f.srv.Requests(difytest.EndpointRun); got != 0 {
		t.Errorf("run detail calls = %d, want 0 (the old running run's row is on the page)", got)
	}
	q := f.srv.LastRequest(difytest.EndpointLogs).URL.Query()
	after, err := time.Parse(time.RFC3339, q.Get("created_at__after"))
	if err != nil {
		t.Fatalf("created_at__after %q: %v", q.Get("created_at__after"), err)
	}
	// The window reaches down to the old running run's row (30 minutes
	// before the first refresh); the filter is a coarse bound, a minute
	// lower.
	wantAfter := start.Add(-30*time.Minute - time.Minute)
	if d := after.Sub(wantAfter); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("created_at__after = %v, want about %v", after, wantAfter)
	}

	// The new run finishes after the exporter started: it is counted once.
	r, _ := f.srv.Run(testKey, newRun)
	r.Status, r.FinishedAt, r.TotalTokens, r.ElapsedTime = "succeeded", f.now(), 42, 7
	f.srv.PutRun(testKey, r)
	f.refresh(t)
	f.refresh(t)
	if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"}); got != 1 {
		t.Errorf("finished_total = %v, want 1", got)
	}
	if got := value(t, f.reg, "dify_workflow_tokens_total", nil); got != 42 {
		t.Errorf("tokens_total = %v, want 42", got)
	}
	if got := value(t, f.reg, "dify_workflow_run_duration_seconds", nil); got != 1 {
		t.Errorf("duration observations = %v, want 1", got)
	}
}

func TestRetentionExpiresDiscoveredRuns(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	listed := difytest.NewRunID()
	f.srv.PutRun(testKey, finishedRun(listed, "failed"))
	f.exp.App("translator").SetRunIDs(SourceStatic, []string{listed})
	putLoggedRuns(f.srv, f.now(), 5, "succeeded")
	f.refresh(t)
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 6 {
		t.Fatalf("runs = %d, want 6", n)
	}
	f.advance(59 * time.Minute)
	f.refresh(t)
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 6 {
		t.Fatalf("runs after 59m = %d, want 6 (retention is 1h)", n)
	}
	f.advance(2 * time.Minute)
	f.refresh(t)
	// Discovered runs went; the listed one stays as long as it is listed.
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 1 {
		t.Fatalf("runs after 61m = %d, want 1", n)
	}
}

func TestCapKeepsNewestAndUnfinished(t *testing.T) {
	f := newFixture(t, withDiscovery(100))
	running := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: running, WorkflowID: wfID, Status: "running", CreatedAt: f.now().Add(-50 * time.Minute)})
	ids := putLoggedRuns(f.srv, f.now(), 250, "succeeded")
	f.refresh(t)
	app := f.exp.App("translator")
	if st := app.Status(); st.Tracked != 100 {
		t.Fatalf("tracked = %d, want the cap 100", st.Tracked)
	}
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_status"); n != 600 {
		t.Errorf("status series = %d, want 600", n)
	}
	// The running run and the newest finished ones are kept.
	if got := value(t, f.reg, "dify_workflow_run_status", map[string]string{"run_id": running, "status": "running"}); got != 1 {
		t.Errorf("running run not kept")
	}
	if got := value(t, f.reg, "dify_workflow_run_tokens", map[string]string{"run_id": ids[249]}); got != 259 {
		t.Errorf("newest run tokens = %v, want 259", got)
	}
}

func TestRegistrationCap(t *testing.T) {
	f := newFixture(t, func(c *AppConfig) { c.MaxRuns = 10 })
	var ids []string
	for range 10 {
		id := difytest.NewRunID()
		ids = append(ids, id)
		if err := f.exp.Register("translator", id); err != nil {
			t.Fatal(err)
		}
	}
	extra := difytest.NewRunID()
	if err := f.exp.Register("translator", extra); !errors.Is(err, ErrCapFull) {
		t.Fatalf("11th registration: err = %v, want ErrCapFull", err)
	}
	for _, id := range ids {
		f.srv.PutRun(testKey, finishedRun(id, "succeeded"))
	}
	f.refresh(t)
	if err := f.exp.Register("translator", extra); err != nil {
		t.Fatalf("registration once runs finished: %v, want the oldest finished run evicted", err)
	}
	for _, tc := range []struct{ app, id, want string }{
		{"nope", difytest.NewRunID(), `unknown app "nope"`},
		{"translator", "../../v1/info", "invalid run ID"},
		{"translator", "fb47b2e6-5e43-4f90-be01-d5c5a088d15?", "invalid run ID"},
	} {
		err := f.exp.Register(tc.app, tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%q, %q) = %v, want an error containing %q", tc.app, tc.id, err, tc.want)
		}
	}
}

func TestRegistrationFloodStaysUnderCap(t *testing.T) {
	f := newFixture(t, func(c *AppConfig) { c.MaxRuns = 1000 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for w := range 8 {
		wg.Go(func() {
			for i := range 12500 {
				if f.exp.Register("translator", fmt.Sprintf("00000000-0000-4000-8000-%04x%08x", w, i)) == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// Real batches fill the cap; junk costs one detail call each, once.
	if accepted != 1000 {
		t.Errorf("accepted %d of 100000 registrations, want the cap 1000", accepted)
	}
	if st := f.exp.App("translator").Status(); st.Tracked != 1000 {
		t.Errorf("tracked = %d, want 1000", st.Tracked)
	}
	f.refresh(t)
	if got := f.srv.Requests(difytest.EndpointRun); got != 1000 {
		t.Errorf("detail calls = %d, want 1000: one per registration", got)
	}
	if st := f.exp.App("translator").Status(); st.Tracked != 0 {
		t.Errorf("tracked = %d after Dify refuted them all, want 0", st.Tracked)
	}
	// Dify knows none of them: they go, and real runs register again.
	real := difytest.NewRunID()
	putRunning(f, real)
	if err := f.exp.Register("translator", real); err != nil {
		t.Fatalf("registration after the junk was refuted: %v", err)
	}
}

func TestShardsSplitWithoutOverlapOrGap(t *testing.T) {
	const shards = 3
	var ids []string
	for i := range 300 {
		ids = append(ids, runID(i))
	}
	seen := map[string]int{}
	for shard := range shards {
		f := newFixture(t, func(c *AppConfig) { c.RunIDs, c.Shard, c.TotalShards = ids, shard, shards })
		n := 0
		for id := range f.exp.App("translator").store.runs {
			seen[id]++
			n++
		}
		if n < 50 || n > 150 {
			t.Errorf("shard %d has %d of 300 runs: a poor split", shard, n)
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("run %s is in %d shards, want exactly 1", id, seen[id])
		}
	}
}

func TestRefusedLogsMarkRunningRunsStale(t *testing.T) {
	f := newFixture(t, withDiscovery(100))
	running := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: running, WorkflowID: wfID, Status: "running", TotalTokens: 5, CreatedAt: f.now().Add(-time.Hour / 2)})
	putLoggedRuns(f.srv, f.now(), 3, "succeeded")
	f.refresh(t)
	f.srv.RevokeKey(testKey)
	f.srv.ResetRequests()
	f.refresh(t)
	if got := f.srv.Requests(difytest.EndpointRun); got != 0 {
		t.Errorf("run requests after the logs refused the key = %d, want 0", got)
	}
	if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 1 {
		t.Errorf("stale = %v, want 1 (the running run; finished ones are not stale)", got)
	}
	if got := testutil.ToFloat64(f.exp.counters.runErrors.WithLabelValues("translator", "timeout")); got != 0 {
		t.Errorf("timeouts = %v, want 0: the refresh was abandoned, not late", got)
	}
}

// A chatflow's runs are in no log an app key can read: discovery finds
// nothing (and says the app is up), registration brings them in.
func TestChatflowDiscoveryIsEmptyRegistrationWorks(t *testing.T) {
	f := newFixture(t, nil)
	chatKey := "app-chatflow-key"
	f.srv.AddApp(chatKey, difytest.App{Name: "Support bot", Mode: "advanced-chat"})
	id := difytest.NewRunID()
	r := finishedRun(id, "succeeded")
	f.srv.PutRun(chatKey, r)
	cfg := f.appConfig(t, "support-bot", chatKey)
	cfg.Discovery, cfg.Lookback = true, 24*time.Hour
	f.exp.SetApps([]AppConfig{cfg})
	f.refresh(t)
	if got := value(t, f.reg, "dify_up", map[string]string{"app": "support-bot"}); got != 1 {
		t.Errorf("dify_up = %v, want 1: an empty log is an answer", got)
	}
	if got := value(t, f.reg, "dify_exporter_tracked_runs", map[string]string{"source": "discovered"}); got != 0 {
		t.Errorf("discovered = %v, want 0 for a chatflow", got)
	}
	if err := f.exp.Register("support-bot", id); err != nil {
		t.Fatal(err)
	}
	f.refresh(t)
	if got := value(t, f.reg, "dify_workflow_run_status", map[string]string{"run_id": id, "status": "succeeded"}); got != 1 {
		t.Errorf("registered chatflow run status succeeded = %v, want 1", got)
	}
	if got := value(t, f.reg, "dify_app_info", map[string]string{"app": "support-bot"}); got != 1 {
		t.Errorf("app info missing")
	}
}

// Expired and evicted runs stay in the logs' overlap window on a quiet
// app; they must not come back, nor be counted again.
func TestExpiredRunsAreNotRediscovered(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"retention", 1000}, {"cap", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, withDiscovery(tc.max))
			f.refresh(t) // the first look at the logs: empty
			for i := range 3 {
				f.srv.PutRun(testKey, difytest.Run{ID: difytest.NewRunID(), WorkflowID: wfID, Status: "succeeded", TotalTokens: 10,
					CreatedAt: f.now().Add(time.Duration(i) * time.Second), FinishedAt: f.now().Add(time.Minute), ElapsedTime: 2})
			}
			for range 4 {
				f.refresh(t)
				f.advance(61 * time.Minute) // past retention
			}
			f.refresh(t)
			// Runs finished after the first look: counted once each; the cap
			// of 2 evicts one of them, which is still counted only once.
			if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"}); got != 3 {
				t.Errorf("finished_total = %v, want 3", got)
			}
			if got := value(t, f.reg, "dify_workflow_tokens_total", nil); got != 30 {
				t.Errorf("tokens_total = %v, want 30", got)
			}
			if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 0 {
				t.Errorf("run series = %d after retention, want 0", n)
			}
		})
	}
}

// Dify's clock may be hours off (its timestamps assume a UTC server):
// runs that finished before the exporter started are never counted,
// whatever their finished_at says.
func TestCountingIgnoresDifyClock(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	for range 20 {
		f.srv.PutRun(testKey, difytest.Run{ID: difytest.NewRunID(), WorkflowID: wfID, Status: "failed",
			CreatedAt: f.now().Add(-30 * time.Minute), FinishedAt: f.now().Add(5 * time.Hour), TotalTokens: 100})
	}
	f.refresh(t)
	f.refresh(t)
	if got := value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "failed"}); got != 0 {
		t.Errorf("finished_total = %v, want 0 for runs logged before start", got)
	}
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 20 {
		t.Errorf("run series = %d, want 20 (exposed, just not counted)", n)
	}
}

func TestUnknownStatusOfDiscoveredRunCountedOnce(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	f.srv.PutRun(testKey, difytest.Run{ID: difytest.NewRunID(), WorkflowID: wfID, Status: "queued", CreatedAt: f.now().Add(-time.Minute)})
	for range 3 {
		f.refresh(t)
	}
	if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": "unknown_status"}); got != 1 {
		t.Errorf("unknown_status = %v, want 1", got)
	}
}

func TestRegistrationOfAnotherShardsRun(t *testing.T) {
	f0 := newFixture(t, func(c *AppConfig) { c.Shard, c.TotalShards = 0, 2 })
	f1 := newFixture(t, func(c *AppConfig) { c.Shard, c.TotalShards = 1, 2 })
	for i := range 20 {
		id := runID(i)
		err0, err1 := f0.exp.Register("translator", id), f1.exp.Register("translator", id)
		if (err0 == nil) == (err1 == nil) {
			t.Errorf("run %s: shard 0 says %v, shard 1 says %v; want exactly one to accept", id, err0, err1)
		}
		for _, err := range []error{err0, err1} {
			if err != nil && !errors.Is(err, ErrOtherShard) {
				t.Errorf("refusal %v, want ErrOtherShard", err)
			}
		}
	}
}
