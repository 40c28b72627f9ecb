package collector

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// Fairness on the logs path: when the pages a refresh needs do not all
// fit in a scrape, the pass cut short resumes where it stopped, so every
// unfinished run is refreshed within ceil(calls needed / calls per scrape)
// scrapes, however old its row. See docs/performance-fairness.md.

// putSpreadRuns logs n runs created 200 ms apart up to a minute ago, every
// fifth of them still running, and returns the running ones oldest first.
func putSpreadRuns(f *fixture, n int) []string {
	var unfinished []string
	end := f.now().Add(-time.Minute)
	for i := range n {
		id := difytest.NewRunID()
		created := end.Add(-time.Duration(n-i) * 200 * time.Millisecond)
		r := difytest.Run{ID: id, WorkflowID: wfID, Status: "succeeded", TotalTokens: 10, TotalSteps: 2,
			CreatedAt: created, FinishedAt: created.Add(time.Second), ElapsedTime: 1}
		if i%5 == 0 {
			r.Status, r.FinishedAt, r.ElapsedTime = "running", time.Time{}, 0
			unfinished = append(unfinished, id)
		}
		f.srv.PutRun(testKey, r)
	}
	return unfinished
}

// finishRuns finishes the runs given, now.
func finishRuns(f *fixture, ids []string) {
	for _, id := range ids {
		r, _ := f.srv.Run(testKey, id)
		r.Status, r.FinishedAt, r.ElapsedTime, r.TotalTokens = "succeeded", f.now(), 3, 30
		f.srv.PutRun(testKey, r)
	}
}

// callBudget lets a refresh make a fixed number of calls to Dify, then
// ends it as a scrape's deadline would: counted calls, not time, so that
// what fits in a scrape is the same on any machine.
type callBudget struct {
	API
	mu       sync.Mutex
	left     int
	cancel   context.CancelFunc
	inflight atomic.Int32
	logsPeak atomic.Int32
}

func (b *callBudget) arm(calls int, cancel context.CancelFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left, b.cancel = calls, cancel
}

func (b *callBudget) take(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left <= 0 {
		if b.cancel != nil {
			b.cancel()
		}
		return context.Cause(ctx)
	}
	b.left--
	return nil
}

func (b *callBudget) Run(ctx context.Context, id string) (client.Run, error) {
	if err := b.take(ctx); err != nil {
		return client.Run{}, err
	}
	return b.API.Run(ctx, id)
}

func (b *callBudget) WorkflowLogs(ctx context.Context, q client.LogsQuery) (client.LogPage, error) {
	if err := b.take(ctx); err != nil {
		return client.LogPage{}, err
	}
	n := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	for peak := b.logsPeak.Load(); n > peak && !b.logsPeak.CompareAndSwap(peak, n); peak = b.logsPeak.Load() {
	}
	return b.API.WorkflowLogs(ctx, q)
}

// refreshWithin refreshes the app with a budget of calls.
func refreshWithin(a *App, b *callBudget, calls int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.arm(calls, cancel)
	a.refresh(ctx)
}

// 10,000 runs, 2,000 of them running, spread through 100 log pages; a
// scrape has time for 87 calls (as 100 ms calls one after another do in
// 10 s). Read from the newest each time, the oldest pages were never
// reached; resumed, every page is read at least every second scrape.
func TestLogsPathIsFair(t *testing.T) {
	for _, concurrency := range []int{1, 8} {
		t.Run(fmt.Sprintf("concurrency=%d", concurrency), func(t *testing.T) {
			f := withVersion(newFixture(t, withDiscovery(20000)), "1.13.3")
			budget := &callBudget{}
			cfg := f.exp.App("translator").cfg
			budget.API, cfg.API, cfg.Concurrency = cfg.API, budget, concurrency
			f.exp.SetApps([]AppConfig{cfg})
			a := f.exp.App("translator")
			unfinished := putSpreadRuns(f, 10000)
			refreshWithin(a, budget, 1000) // the first look, whole
			if got := value(t, f.reg, "dify_exporter_refresh_age_seconds", nil); got != 0 {
				t.Fatalf("refresh age after the first look = %v, want 0", got)
			}

			const interval = 15 * time.Second
			oldest := unfinished[:50]
			finishRuns(f, oldest)
			shownAt := 0
			for scrape := 1; scrape <= 6; scrape++ {
				f.advance(interval)
				putSpreadRuns(f, 5) // a few new rows a scrape
				refreshWithin(a, budget, 87)
				shown := 0
				succeeded := runsIn(t, f, "succeeded")
				for _, id := range oldest {
					if succeeded[id] {
						shown++
					}
				}
				if shown == len(oldest) && shownAt == 0 {
					shownAt = scrape
				}
				// Every run is refreshed at least every second scrape:
				// none is older than one interval when a scrape ends.
				if age := value(t, f.reg, "dify_exporter_refresh_age_seconds", nil); age > interval.Seconds() {
					t.Errorf("scrape %d: refresh age %v s, want at most %v s", scrape, age, interval.Seconds())
				}
			}
			if shownAt == 0 || shownAt > 2 {
				t.Errorf("the 50 oldest running runs' finish shown at scrape %d, want within 2 (0: never)", shownAt)
			}
			if peak := int(budget.logsPeak.Load()); peak > concurrency {
				t.Errorf("%d log pages read at once, over the concurrency of %d", peak, concurrency)
			}
		})
	}
}

// runsIn is the set of runs exposed in a status, from one gather.
func runsIn(t testing.TB, f *fixture, status string) map[string]bool {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "dify_workflow_run_status" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["status"] == status && m.GetGauge().GetValue() == 1 {
				in[labels["run_id"]] = true
			}
		}
	}
	return in
}

// slowDify answers every endpoint after latency.
func slowDify(f *fixture, latency time.Duration) {
	for _, e := range []difytest.Endpoint{difytest.EndpointRun, difytest.EndpointLogs, difytest.EndpointInfo, difytest.EndpointIndex} {
		f.srv.SetFault(e, difytest.Fault{Latency: latency})
	}
}

// scrapeFairness runs six 15 s scrapes with a 10 s deadline after the 50
// oldest unfinished runs finish, and reports the scrape at which all 50
// showed it, the largest refresh age and the longest scrape.
func scrapeFairness(b *testing.B, f *fixture, oldest []string) {
	finishRuns(f, oldest)
	shownAt, maxAge, longest := 0, 0.0, time.Duration(0)
	for scrape := 1; scrape <= 6; scrape++ {
		f.advance(15 * time.Second)
		start := time.Now()
		f.refresh(b) // 10 s deadline
		longest = max(longest, time.Since(start))
		succeeded := runsIn(b, f, "succeeded")
		shown := 0
		for _, id := range oldest {
			if succeeded[id] {
				shown++
			}
		}
		if shown == len(oldest) && shownAt == 0 {
			shownAt = scrape
		}
		age, _, err := lookup(f.reg, "dify_exporter_refresh_age_seconds", nil)
		if err != nil {
			b.Fatal(err)
		}
		maxAge = max(maxAge, age)
	}
	b.ReportMetric(float64(shownAt), "scrapes-to-show-50-oldest")
	b.ReportMetric(maxAge, "max-refresh-age-s")
	b.ReportMetric(longest.Seconds(), "longest-scrape-s")
}

// BenchmarkSlowDifyFairness: a Dify answering every call in 100 ms (logs
// path: 10,000 runs, 2,000 running through 100 log pages) or 30 ms
// (chatflow: 2,000 registered running runs, detail calls only), a 10 s
// scrape timeout, --dify.concurrency's default of 8. Figures for
// docs/performance-fairness.md.
//
//	go test -run '^$' -bench SlowDifyFairness -benchtime 1x ./collector/
func BenchmarkSlowDifyFairness(b *testing.B) {
	b.Run("logs=10000,running=2000,latency=100ms", func(b *testing.B) {
		for b.Loop() {
			f := withVersion(newFixture(b, withDiscovery(20000)), "1.13.3")
			cfg := f.exp.App("translator").cfg
			cfg.Concurrency = 8
			f.exp.SetApps([]AppConfig{cfg})
			unfinished := putSpreadRuns(f, 10000)
			slowDify(f, 100*time.Millisecond)
			f.refresh(b) // the first look
			scrapeFairness(b, f, unfinished[:50])
		}
	})
	b.Run("chatflow,running=2000,latency=30ms", func(b *testing.B) {
		for b.Loop() {
			f := newFixture(b, nil)
			f.srv.AddApp(testKey, difytest.App{Name: "Support", Mode: "advanced-chat"})
			cfg := f.exp.App("translator").cfg
			cfg.MaxRuns, cfg.Concurrency = 20000, 8
			f.exp.SetApps([]AppConfig{cfg})
			ids := make([]string, 2000)
			for i := range ids {
				ids[i] = runID(i)
				putRunning(f, ids[i])
				if err := f.exp.Register("translator", ids[i]); err != nil {
					b.Fatal(err)
				}
			}
			slowDify(f, 30*time.Millisecond)
			f.refresh(b) // learns them
			scrapeFairness(b, f, ids[:50])
		}
	})
}
