package collector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

func finished(t *testing.T, f *fixture) float64 {
	return value(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"})
}

// Found in review: a registered run (posted while running) that finishes before the next scrape is never counted.
func TestRegisteredRunFinishingBeforeAScrapeIsCounted(t *testing.T) {
	f := newFixture(t, nil)
	f.refresh(t)
	id := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: id, WorkflowID: wfID, Status: "running", CreatedAt: f.now()})
	if err := f.exp.Register("translator", id); err != nil {
		t.Fatal(err)
	}
	f.srv.PutRun(testKey, difytest.Run{ID: id, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(2 * time.Second), TotalTokens: 5})
	f.refresh(t)
	if got := finished(t, f); got != 1 {
		t.Errorf("finished_total = %v, want 1 for a run registered while running", got)
	}
}

// Found in review: the same new run is counted when only discovered, but not when it was also registered.
func TestNewRunCountedWhetherRegisteredOrNot(t *testing.T) {
	for _, register := range []bool{false, true} {
		f := newFixture(t, withDiscovery(1000))
		f.refresh(t) // first look at the logs
		id := difytest.NewRunID()
		f.srv.PutRun(testKey, difytest.Run{ID: id, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second)})
		if register {
			if err := f.exp.Register("translator", id); err != nil {
				t.Fatal(err)
			}
		}
		f.refresh(t)
		if got := finished(t, f); got != 1 {
			t.Errorf("register=%v: finished_total = %v, want 1", register, got)
		}
	}
}

// Found in review: a registered (or listed) run later discovered has loggedAt 0: once it
// expires on a quiet app it is rediscovered and counted again, every retention.
func TestRegisteredAndDiscoveredRunCountedOnceAndExpires(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	f.refresh(t)
	id := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: id, WorkflowID: wfID, Status: "running", CreatedAt: f.now()})
	if err := f.exp.Register("translator", id); err != nil {
		t.Fatal(err)
	}
	f.refresh(t) // discovered too (tracked already), seen running
	f.srv.PutRun(testKey, difytest.Run{ID: id, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second), TotalTokens: 7})
	f.refresh(t)
	for range 3 {
		f.advance(61 * time.Minute)
		f.refresh(t)
	}
	if got := finished(t, f); got != 1 {
		t.Errorf("finished_total = %v, want 1", got)
	}
	if got := value(t, f.reg, "dify_workflow_tokens_total", nil); got != 7 {
		t.Errorf("tokens_total = %v, want 7", got)
	}
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 0 {
		t.Errorf("run series = %d after retention, want 0", n)
	}
}

// Found in review: a listed run answered 404 under a wrong key stays gone after a reload fixes the key.
func TestGoneListedRunRetriedAfterKeyChange(t *testing.T) {
	id := runID(1)
	f := newFixture(t, withRuns(id))
	otherKey := "app-other-key-0987654321"
	f.srv.AddApp(otherKey, difytest.App{Name: "Other", Mode: "workflow"})
	f.srv.PutRun(testKey, finishedRun(id, "succeeded"))
	wrong := f.appConfig(t, "translator", otherKey)
	wrong.RunIDs, wrong.Fingerprint = []string{id}, "wrong-key"
	f.exp.SetApps([]AppConfig{wrong})
	f.refresh(t) // 404 from the other app: gone
	right := f.appConfig(t, "translator", testKey)
	right.RunIDs, right.Fingerprint = []string{id}, "right-key"
	f.exp.SetApps([]AppConfig{right})
	f.refresh(t)
	f.refresh(t)
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 1 {
		t.Errorf("run series after fixing the key = %d, want 1", n)
	}
}

// Found in review: a gone listed run that is also registered stays tracked forever once unlisted.
func TestGoneRunGoesWhenUnlisted(t *testing.T) {
	id := runID(9)
	f := newFixture(t, withRuns(id))
	f.refresh(t) // 404: gone
	if err := f.exp.Register("translator", id); err != nil {
		t.Fatal(err)
	}
	cfg := f.appConfig(t, "translator", testKey)
	f.exp.SetApps([]AppConfig{cfg})
	for range 3 {
		f.advance(2 * time.Hour)
		f.refresh(t)
	}
	if got := value(t, f.reg, "dify_exporter_tracked_runs", map[string]string{"source": "registered"}); got != 0 {
		t.Errorf("tracked registered = %v, want 0 (a gone run past retention)", got)
	}
}

// Found in review: a reload that changes lookback: expired runs come back, and new runs finishing meanwhile are not counted.
func TestLookbackReloadKeepsCountingAndForgetting(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	f.refresh(t)
	old := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: old, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second)})
	f.refresh(t)
	f.advance(61 * time.Minute)
	nw := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: nw, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second)})
	f.refresh(t) // old expires, nw counted
	if got := finished(t, f); got != 2 {
		t.Fatalf("finished_total = %v, want 2", got)
	}
	cfg := f.exp.App("translator").cfg
	cfg.Lookback = 3 * time.Hour
	f.exp.SetApps([]AppConfig{cfg})
	f.advance(time.Minute)
	newer := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: newer, WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second)})
	f.refresh(t)
	if got := finished(t, f); got != 3 {
		t.Errorf("finished_total = %v, want 3 (the run finished after the reload)", got)
	}
	if n := testutil.CollectAndCount(f.exp, "dify_workflow_run_tokens"); n != 2 {
		t.Errorf("run series = %d, want 2: the expired run must not come back", n)
	}
}

type page2Fails struct{ API }

func (p page2Fails) WorkflowLogs(ctx context.Context, q client.LogsQuery) (client.LogPage, error) {
	if q.Page >= 2 {
		return client.LogPage{}, errors.New("timeout on page 2")
	}
	return p.API.WorkflowLogs(ctx, q)
}

// Found in review: while a later log page keeps failing, the watermark stays and
// store.forgotten grows with every eviction, never pruned. Now a failing page
// leaves a backlog that keeps what it must; once it is read, only the rows of
// the last overlap are remembered.
func TestForgottenStaysBoundedWhileDiscoveryFails(t *testing.T) {
	f := newFixture(t, withDiscovery(50))
	cfg := f.exp.App("translator").cfg
	healthy := cfg.API
	cfg.API = page2Fails{cfg.API}
	f.exp.SetApps([]AppConfig{cfg})
	f.refresh(t)
	for range 150 {
		f.srv.PutRun(testKey, difytest.Run{ID: difytest.NewRunID(), WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second)})
	}
	f.advance(time.Second)
	put := func(n int) {
		for range n {
			f.srv.PutRun(testKey, difytest.Run{ID: difytest.NewRunID(), WorkflowID: wfID, Status: "succeeded", CreatedAt: f.now(), FinishedAt: f.now().Add(time.Second)})
			f.advance(time.Second)
		}
	}
	sizes := func() (forgotten, tracked int) {
		a := f.exp.App("translator")
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.store.forgotten), len(a.store.runs)
	}
	for range 30 {
		put(20)
		f.refresh(t)
		if _, tracked := sizes(); tracked > 50 {
			t.Fatalf("tracked = %d, want at most the cap 50", tracked)
		}
	}
	cfg.API = healthy
	f.exp.SetApps([]AppConfig{cfg})
	for range 5 {
		put(20)
		f.refresh(t)
	}
	// 20 rows a refresh, one a second: the rows of the last two overlaps
	// (10 s each) and of one refresh at most.
	if n, tracked := sizes(); n > 40 || tracked > 50 {
		t.Errorf("after recovery: forgotten=%d tracked=%d, want at most 40 and 50", n, tracked)
	}
}
