package collector

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// chatflowFixture is a fixture whose app is a chatflow on release v: its
// runs are in no log an app key can read, only registration brings them.
func chatflowFixture(t *testing.T, v string, change func(*AppConfig)) *fixture {
	t.Helper()
	f := newFixture(t, change)
	f.srv.SetServerVersion(v)
	f.srv.AddApp(testKey, difytest.App{Name: "Support", Mode: "advanced-chat"})
	return f
}

func registerAll(t *testing.T, f *fixture, from string, ids []string) {
	t.Helper()
	for i, id := range ids {
		if err := f.exp.RegisterFrom("translator", from, id); err != nil {
			t.Fatalf("registration %d of %d from %s: %v", i+1, len(ids), from, err)
		}
	}
}

func runningRuns(f *fixture, from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = runID(from + i)
		putRunning(f, ids[i])
	}
	return ids
}

// exposedRunning counts the runs of ids exposed with status running.
func exposedRunning(t *testing.T, f *fixture, ids []string) int {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "dify_workflow_run_status" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["status"] == "running" && m.GetGauge().GetValue() == 1 {
				running[l["run_id"]] = true
			}
		}
	}
	n := 0
	for _, id := range ids {
		if running[id] {
			n++
		}
	}
	return n
}

// A chatflow's batch of running runs is accepted up to the cap (1,000 by
// default), all of it exposed after the next refresh, one detail call each.
func TestRegistrationBatchUpToTheCap(t *testing.T) {
	for _, v := range []string{"1.3.1", "1.9.0", difytest.DefaultVersion} {
		t.Run(v, func(t *testing.T) {
			f := chatflowFixture(t, v, nil)
			ids := runningRuns(f, 0, 500)
			registerAll(t, f, "addr:10.0.0.7", ids)
			f.refresh(t)
			if got := f.srv.Requests(difytest.EndpointRun); got != 500 {
				t.Errorf("detail calls = %d, want 500: one per registered run", got)
			}
			if got := exposedRunning(t, f, ids); got != 500 {
				t.Errorf("runs exposed running = %d, want 500", got)
			}
			more := runningRuns(f, 500, 500)
			registerAll(t, f, "addr:10.0.0.7", more)
			if err := f.exp.RegisterFrom("translator", "addr:10.0.0.7", runID(1000)); !errors.Is(err, ErrCapFull) {
				t.Errorf("registration 1,001 with 1,000 running: err = %v, want ErrCapFull", err)
			}
		})
	}
}

// One client floods junk IDs while another registers its real runs:
// every real one gets in and is exposed, each junk ID costs one detail
// call at most, and once refuted it costs none.
func TestRegistrationJunkFloodFromAnotherClient(t *testing.T) {
	for _, tc := range []struct {
		name       string
		concurrent bool
	}{{"cap filled first", false}, {"interleaved", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := chatflowFixture(t, difytest.DefaultVersion, nil)
			real := runningRuns(f, 0, 30)
			var junk []string
			var mu sync.Mutex
			flood := func() {
				for range 5000 {
					id := difytest.NewRunID()
					if f.exp.RegisterFrom("translator", "addr:192.0.2.66", id) == nil {
						mu.Lock()
						junk = append(junk, id)
						mu.Unlock()
					}
				}
			}
			if tc.concurrent {
				var wg sync.WaitGroup
				wg.Go(flood)
				registerAll(t, f, "user:support-bot", real)
				wg.Wait()
			} else {
				flood()
				registerAll(t, f, "user:support-bot", real)
			}
			st := f.exp.App("translator").Status()
			if st.Tracked != 1000 {
				t.Errorf("tracked = %d after the flood, want the cap 1000", st.Tracked)
			}
			f.refresh(t)
			if got := f.srv.Requests(difytest.EndpointRun); got != 1000 {
				t.Errorf("detail calls = %d, want 1000: one per tracked run, 970 of them junk", got)
			}
			if got := exposedRunning(t, f, real); got != 30 {
				t.Errorf("real runs exposed = %d, want all 30", got)
			}
			if st := f.exp.App("translator").Status(); st.Tracked != 30 {
				t.Errorf("tracked = %d after the refresh, want 30: junk goes with its 404", st.Tracked)
			}
			// The junk again: what Dify refuted is refused without a call;
			// what the real runs evicted before its check is taken again.
			refused, again := 0, 0
			for _, id := range junk {
				switch err := f.exp.RegisterFrom("translator", "addr:192.0.2.66", id); {
				case errors.Is(err, ErrRefuted):
					refused++
				case err == nil:
					again++
				}
			}
			if refused != 970 || refused+again != len(junk) {
				t.Errorf("re-registered junk: %d refused, %d taken of %d; want the 970 Dify answered 404 for refused, the rest taken",
					refused, again, len(junk))
			}
			f.srv.ResetRequests()
			f.refresh(t)
			if got := f.srv.Requests(difytest.EndpointRun); got != 30+again {
				t.Errorf("detail calls = %d, want %d: the real runs and the junk never checked, no junk again", got, 30+again)
			}
		})
	}
}

// Runs Dify has not confirmed are evicted before finished runs: another
// client's registration takes the flood's newest junk, not a finished run.
func TestRegistrationEvictsJunkBeforeFinishedRuns(t *testing.T) {
	f := newFixture(t, func(c *AppConfig) { c.MaxRuns = 10 })
	done := make([]string, 5)
	for i := range done {
		done[i] = runID(i)
		f.srv.PutRun(testKey, finishedRun(done[i], "succeeded"))
	}
	registerAll(t, f, "user:bot", done)
	f.refresh(t)
	var junk []string
	for range 5 {
		junk = append(junk, difytest.NewRunID())
	}
	registerAll(t, f, "user:flood", junk)
	late := runID(100)
	putRunning(f, late)
	registerAll(t, f, "user:bot", []string{late})
	runs := f.exp.App("translator").store.runs
	for _, id := range done {
		if _, ok := runs[id]; !ok {
			t.Errorf("finished run %s evicted while junk was tracked", id)
		}
	}
	if _, ok := runs[junk[4]]; ok {
		t.Errorf("the flood's newest junk ID is still tracked")
	}
	for _, id := range junk[:4] {
		if _, ok := runs[id]; !ok {
			t.Errorf("junk %s evicted, want only the newest", id)
		}
	}
}

// On releases that log at start, a workflow run's own log row confirms
// it: a batch of registered runs costs one detail call per workflow
// version, not one per run.
func TestRegistrationVerifiedByItsLogRow(t *testing.T) {
	f := newFixture(t, withDiscovery(1000))
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = runID(i)
		r := finishedRun(ids[i], "running")
		r.CreatedAt, r.FinishedAt = f.now().Add(-time.Minute), time.Time{}
		f.srv.PutRun(testKey, r)
	}
	registerAll(t, f, "user:bot", ids)
	f.refresh(t)
	if got := f.srv.Requests(difytest.EndpointRun); got != 1 {
		t.Errorf("detail calls = %d, want 1: the logs confirm the runs, one call teaches their workflow ID", got)
	}
	if got := exposedRunning(t, f, ids); got != 50 {
		t.Errorf("registered runs exposed = %d, want 50", got)
	}
	for _, id := range ids {
		if r := f.exp.App("translator").store.runs[id]; r.unverified {
			t.Fatalf("run %s still unverified after its log row was read", id)
		}
	}
}

func TestClaimsFairness(t *testing.T) {
	tests := []struct {
		name  string
		held  map[string]int // client → unverified runs, cap full
		from  string
		evict string // the client losing its newest, "" for none
	}{
		{"flooder gives way", map[string]int{"flood": 9, "bot": 1}, "bot", "flood"},
		{"newcomer", map[string]int{"flood": 10}, "bot", "flood"},
		{"flooder cannot evict itself", map[string]int{"flood": 9, "bot": 1}, "flood", ""},
		{"equal shares stay", map[string]int{"a": 5, "b": 5}, "a", ""},
		{"two more gives way", map[string]int{"a": 6, "b": 4}, "b", "a"},
		{"one more is no reason", map[string]int{"a": 5, "b": 4, "c": 1}, "b", ""},
		{"the biggest holder pays", map[string]int{"a": 3, "b": 5, "c": 2}, "c", "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(10, shardFilter{})
			newest := map[string]string{}
			i := 0
			for client, n := range tc.held {
				for range n {
					id := runID(i)
					i++
					if _, err := s.register(id, client, time.Now()); err != nil {
						t.Fatal(err)
					}
					newest[client] = id
				}
			}
			_, err := s.register(runID(99), tc.from, time.Now())
			if tc.evict == "" {
				if !errors.Is(err, ErrCapFull) {
					t.Errorf("err = %v, want ErrCapFull", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want %s's newest evicted", err, tc.evict)
			}
			if _, ok := s.runs[newest[tc.evict]]; ok {
				t.Errorf("%s's newest run still tracked", tc.evict)
			}
			if got, want := s.claims.held(tc.evict), tc.held[tc.evict]-1; got != want {
				t.Errorf("%s holds %d, want %d", tc.evict, got, want)
			}
		})
	}
}

// A run evicted and registered again, over and over, and runs confirmed
// while others wait: a client's queue stays bounded by what it holds.
func TestClaimsStayBounded(t *testing.T) {
	s := newStore(100, shardFilter{})
	for i := range 99 {
		s.register(runID(i), "flood", time.Now()) //nolint:errcheck
	}
	for round := range 10000 {
		if _, err := s.register(runID(1000+round%3), "bot", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.register(runID(200+round), "flood", time.Now()); err != nil && !errors.Is(err, ErrCapFull) {
			t.Fatal(err)
		}
		if round%2 == 0 {
			s.verified(s.runs[runID(1000+round%3)])
		}
		for id, r := range s.runs {
			if r.unverified && s.claims.by[id] == "bot" {
				s.delete(id)
			}
		}
	}
	for client, q := range s.claims.queues {
		if len(q.ids) > 2*q.held+16 {
			t.Errorf("%s: %d queue entries for %d runs held", client, len(q.ids), q.held)
		}
	}
	if len(s.claims.by) > s.max {
		t.Errorf("%d claims, more than the cap %d", len(s.claims.by), s.max)
	}
}

func TestRefutedRegistrationsStayBounded(t *testing.T) {
	s := newStore(10, shardFilter{})
	for i := range 5000 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
		r, err := s.register(id, "flood", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		s.drop(id, r)
	}
	if n := len(s.refuted); n > s.maxRefuted() {
		t.Errorf("%d refuted IDs remembered, more than %d", n, s.maxRefuted())
	}
	// The newest are the ones kept.
	if _, err := s.register("00000000-0000-4000-8000-000000001387", "flood", time.Now()); !errors.Is(err, ErrRefuted) {
		t.Errorf("the newest refuted ID: err = %v, want ErrRefuted", err)
	}
	if len(s.runs) != 0 || len(s.claims.by) != 0 || len(s.claims.queues) != 0 {
		t.Errorf("after every run was refuted: %d runs, %d claims, %d queues; want none", len(s.runs), len(s.claims.by), len(s.claims.queues))
	}
}

// Runs Dify has not confirmed queue for their detail call by registration
// time, behind runs refreshed before them: junk posted after a real run
// never pushes it back, however its IDs sort.
func TestUnconfirmedRunsQueueByRegistration(t *testing.T) {
	f := chatflowFixture(t, difytest.DefaultVersion, func(c *AppConfig) { c.MaxRuns = 5000 })
	old := runID(0)
	putRunning(f, old)
	registerAll(t, f, "user:bot", []string{old})
	f.refresh(t)
	f.advance(time.Second)
	junk := func(n int) {
		for range n {
			if err := f.exp.RegisterFrom("translator", "addr:192.0.2.66", difytest.NewRunID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	junk(1000)
	f.advance(time.Second)
	late := "ffffffff-ffff-4fff-bfff-ffffffffffff" // sorts after every junk ID
	putRunning(f, late)
	registerAll(t, f, "user:bot", []string{late})
	f.advance(time.Second)
	junk(1000)
	a := f.exp.App("translator")
	a.mu.Lock()
	p := a.plan(f.now(), false, capabilities{vis: noLogs})
	a.mu.Unlock()
	pos := map[string]int{}
	for i, id := range p.detail {
		pos[id] = i
	}
	if len(p.detail) != 2002 {
		t.Fatalf("%d detail calls planned, want 2002", len(p.detail))
	}
	if pos[old] != 0 {
		t.Errorf("the run refreshed before the flood is call %d, want 0", pos[old])
	}
	if pos[late] != 1001 {
		t.Errorf("the run registered between two floods is call %d, want 1001: after the 1,000 junk IDs before it, before the 1,000 after", pos[late])
	}
}

// BenchmarkRegistrationFloodManyClients registers 100,000 IDs, each from
// a client of its own (the worst case for the claims' bookkeeping),
// against a cap of 1,000, and reports the heap retained afterwards.
func BenchmarkRegistrationFloodManyClients(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		exp := New([]AppConfig{{Name: "flood", API: nil, MaxRuns: 1000}})
		accepted := 0
		for i := range 100000 {
			if exp.RegisterFrom("flood", fmt.Sprintf("addr:192.0.%d.%d", i/256%256, i%256), fmt.Sprintf("00000000-0000-4000-8000-%012x", i)) == nil {
				accepted++
			}
		}
		b.ReportMetric(float64(heapInUse()-before), "retained-B")
		b.ReportMetric(float64(accepted), "accepted")
		runtime.KeepAlive(exp)
	}
}
