package collector

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/dify-exporter/dify_exporter/client"
)

// inspectApp is an app with n known tracked runs, a tenth running, and
// the inspector's rings full.
func inspectApp(b *testing.B, n int) *App {
	now := time.Now()
	a := newApp(AppConfig{Name: "t", API: nopAPI{}, MaxRuns: n, Discovery: true}, newCounters(), func() time.Time { return now }, log.NewNopLogger())
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i*2654435761%(1<<32), i)
		r, err := a.store.add(id, SourceDiscovered, 0)
		if err != nil || r == nil {
			b.Fatal(err)
		}
		st := client.StatusSucceeded
		if i%10 == 0 {
			st = client.StatusRunning
		}
		r.run = client.Run{ID: id, WorkflowID: "wf", Status: st, TotalTokens: int64(i), CreatedAt: now}
		r.known, r.refreshedAt = true, instantOf(now)
		if st.Terminal() {
			a.store.markTerminal(id, r, now)
		}
	}
	for i := range keptDepartures + 10 {
		a.store.depart(fmt.Sprintf("gone-%d", i), WhyExpired, "")
	}
	// A refresh's end counts the runs, and fills its record.
	for gen := range uint64(keptRefreshes) {
		a.beginRefresh(context.Background(), gen+1)
		a.mu.Lock()
		a.endRefresh(&refreshState{})
		a.mu.Unlock()
	}
	return a
}

// BenchmarkInspect measures what the pages ask of an app at 100,000 runs:
// the landing page's overview and refreshes, a lookup page, and one
// refresh's count of its runs.
//
//	go test -run '^$' -bench Inspect ./collector/
func BenchmarkInspect(b *testing.B) {
	a := inspectApp(b, 100000)
	b.Run("overview", func(b *testing.B) {
		for b.Loop() {
			a.Overview()
		}
	})
	b.Run("refreshes", func(b *testing.B) {
		for b.Loop() {
			a.Refreshes()
		}
	})
	b.Run("count-at-refresh-end", func(b *testing.B) {
		for b.Loop() {
			a.mu.Lock()
			a.countRuns()
			a.mu.Unlock()
		}
	})
	b.Run("lookup-page", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.LookupRuns(RunQuery{Limit: 100, Status: "running"}); err != nil {
				b.Fatal(err)
			}
		}
	})
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

// BenchmarkInspectorMemory reports the most an app's inspector keeps:
// every departure, run error and refresh log slot full (the set of runs
// the logs cover is not counted: it is at most the tracked runs).
//
//	go test -run '^$' -bench InspectorMemory ./collector/
func BenchmarkInspectorMemory(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		now := time.Now()
		a := newApp(AppConfig{Name: "t", API: nopAPI{}}, newCounters(), func() time.Time { return now }, log.NewNopLogger())
		for gen := range uint64(keptRefreshes) {
			a.beginRefresh(context.Background(), gen+1)
			for i := range maxRefreshLines + 10 {
				a.insp.noteCall(client.EndpointRun, "200")
				a.insp.noteError(fmt.Errorf("run detail: HTTP 500 for the %dth time, a long message from Dify that fills the log", i))
			}
			a.mu.Lock()
			a.endRefresh(&refreshState{})
			a.mu.Unlock()
		}
		for i := range keptDepartures {
			a.store.depart(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), WhyEvicted, "oldest finished run")
		}
		for i := range keptRunErrors {
			a.noteRunError(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), errors.New("run detail: HTTP 500: Internal Server Error"))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/1024, "KiB/app")
		runtime.KeepAlive(a)
	}
}
