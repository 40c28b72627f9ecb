package pages

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
)

// benchRuns is the number of tracked runs the page benchmarks hold.
const benchRuns = 100000

// benchFixture is app t tracking benchRuns runs discovered from the logs
// (a tenth of them running) after one refresh, and twenty refreshes
// recorded.
func benchFixture(b *testing.B) *fixture {
	f := newFixture(b, "", collector.AppConfig{Discovery: true, Lookback: 24 * time.Hour, MaxRuns: benchRuns, Retention: 24 * time.Hour})
	now := time.Now()
	for i := range benchRuns {
		created := now.Add(-time.Minute - time.Duration(benchRuns-i)*250*time.Millisecond)
		r := difytest.Run{ID: difytest.NewRunID(), WorkflowID: testWorkflowID, Status: "succeeded", TotalSteps: 2, TotalTokens: 10 + i,
			CreatedAt: created, FinishedAt: created.Add(time.Second), ElapsedTime: 0.5}
		if i%10 == 0 {
			r.Status, r.FinishedAt = "running", time.Time{}
		}
		f.dify.PutRun(testKey, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f.exp.Refresh(ctx)
	for range 20 {
		f.refresh(b)
	}
	if got := f.exp.App(testName).Status().Tracked; got != benchRuns {
		b.Fatalf("tracked %d runs, want %d", got, benchRuns)
	}
	return f
}

// BenchmarkPages serves each page at 100,000 tracked runs: the run
// lookup's first page and a page deep in the IDs, filtered by status, and
// a full run ID (goals: under 50 ms); the landing page (goal: under 10 ms).
//
//	go test -run '^$' -bench Pages -benchtime 20x ./server/pages/
func BenchmarkPages(b *testing.B) {
	f := benchFixture(b)
	page, err := f.exp.App(testName).LookupRuns(collector.RunQuery{Limit: 1})
	if err != nil || len(page.Runs) != 1 {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, target string }{
		{"landing", "/"},
		{"runs-first-page", "/runs?app=t"},
		{"runs-deep-page", "/runs?app=t&after=8"},
		{"runs-status-running", "/runs?app=t&status=running"},
		{"runs-json", "/runs?app=t&format=json"},
		{"run-by-id", "/runs?app=t&run_id=" + page.Runs[0].RunID},
		{"refreshes-json", "/refreshes?app=t&format=json"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				f.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, bc.target, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d", bc.target, w.Code)
				}
			}
		})
	}
}
