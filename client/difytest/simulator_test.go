package difytest

import (
	"context"
	"reflect"
	"testing"
	"time"
)

var terminal = map[string]bool{"succeeded": true, "failed": true, "stopped": true, "partial-succeeded": true}

func TestSimulatorLifecycle(t *testing.T) {
	for _, seed := range []int64{0, 1, 42} {
		t.Run("seed", func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			const key = "app-sim"
			s.AddApp(key, App{Name: "Sim", Mode: "workflow"})
			sim := NewSimulator(s, SimConfig{Key: key, Seed: seed})
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			seen := map[string]bool{}
			frozen := map[string]Run{} // terminal runs as first seen
			lifetimes := map[string]int{}
			for step := range 50 {
				now := start.Add(time.Duration(step) * 10 * time.Second)
				sim.Step(now)
				for _, id := range sim.RunIDs() {
					r, ok := s.Run(key, id)
					if !ok {
						t.Fatalf("run %s missing", id)
					}
					seen[r.Status] = true
					lifetimes[id]++
					if f, ok := frozen[id]; ok {
						if !reflect.DeepEqual(f, r) {
							t.Fatalf("finished run changed:\n%+v\n%+v", f, r)
						}
						continue
					}
					switch {
					case terminal[r.Status]:
						if r.FinishedAt.IsZero() || r.FinishedAt.Before(r.CreatedAt) {
							t.Errorf("%s %s: finished_at %v, created %v", id, r.Status, r.FinishedAt, r.CreatedAt)
						}
						if wall := r.FinishedAt.Sub(r.CreatedAt).Seconds(); r.ElapsedTime > wall || r.ElapsedTime < 0 {
							t.Errorf("%s: elapsed %v outside [0, %v]", id, r.ElapsedTime, wall)
						}
						if (r.Status == "failed") != (r.Error != "") {
							t.Errorf("%s %s with error %q", id, r.Status, r.Error)
						}
						frozen[id] = r
						if lifetimes[id] < 2 {
							t.Errorf("%s finished in the step it started", id)
						}
					case r.Status == "running" || r.Status == "paused":
						if !r.FinishedAt.IsZero() {
							t.Errorf("%s %s has finished_at", id, r.Status)
						}
					default:
						t.Errorf("unexpected status %q", r.Status)
					}
				}
			}
			for _, st := range []string{"running", "paused", "succeeded", "failed", "stopped", "partial-succeeded"} {
				if !seen[st] {
					t.Errorf("seed %d: status %s never seen (seen %v)", seed, st, seen)
				}
			}
			if n := len(sim.RunIDs()); n != 50 {
				t.Errorf("%d runs, want 50", n)
			}
			if len(frozen) < 40 {
				t.Errorf("only %d of 50 runs finished", len(frozen))
			}
			// The logs list every run, newest first.
			p, _ := getLogs(t, s, key, map[string][]string{"limit": {"100"}})
			if p.Total != 50 || p.Data[0].WorkflowRun.ID != sim.RunIDs()[49] {
				t.Errorf("logs total %d", p.Total)
			}
		})
	}
}

func TestSimulatorDeterministic(t *testing.T) {
	statuses := func() []string {
		s := NewServer()
		defer s.Close()
		s.AddApp("app-sim", App{Mode: "workflow"})
		sim := NewSimulator(s, SimConfig{Key: "app-sim", Seed: 7, NewRuns: 3})
		for i := range 20 {
			sim.Step(t0.Add(time.Duration(i) * time.Second))
		}
		var out []string
		for _, id := range sim.RunIDs() {
			r, _ := s.Run("app-sim", id)
			out = append(out, r.Status)
		}
		return out
	}
	a, b := statuses(), statuses()
	if len(a) != 60 || !reflect.DeepEqual(a, b) {
		t.Errorf("not deterministic:\n%v\n%v", a, b)
	}
}

func TestSimulatorRetain(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddApp("app-sim", App{Mode: "workflow"})
	sim := NewSimulator(s, SimConfig{Key: "app-sim", Retain: 10})
	for i := range 100 {
		sim.Step(t0.Add(time.Duration(i) * time.Second))
	}
	ids := sim.RunIDs()
	finished := 0
	for _, id := range ids {
		r, ok := s.Run("app-sim", id)
		if !ok {
			t.Fatalf("listed run %s is gone", id)
		}
		if terminal[r.Status] {
			finished++
		}
	}
	if finished != 10 || len(ids) > 20 {
		t.Errorf("%d finished of %d kept", finished, len(ids))
	}
}

func TestSimulatorStartStop(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddApp("app-sim", App{Mode: "workflow"})
	sim := NewSimulator(s, SimConfig{Key: "app-sim"})
	ctx, cancel := context.WithCancel(context.Background())
	sim.Start(ctx, 5*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for len(sim.RunIDs()) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("simulator did not step")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	sim.Stop() // waits for the loop to end
	n := len(sim.RunIDs())
	time.Sleep(30 * time.Millisecond)
	if len(sim.RunIDs()) != n {
		t.Error("simulator kept stepping after cancel")
	}
	// Start again, and Stop without cancelling the context.
	sim.Start(context.Background(), 5*time.Millisecond)
	sim.Stop()
	sim.Stop()
}

func TestSimulatorOnReleases(t *testing.T) {
	for _, c := range []struct {
		version      string
		pauses       bool
		listsRunning bool
	}{
		{"1.1.3", false, false},
		{"1.10.1", false, false},
		{"1.12.1", false, true},
		{"1.13.0", true, true},
	} {
		t.Run(c.version, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			s.SetServerVersion(c.version)
			s.AddApp("app-sim", App{Mode: "workflow"})
			sim := NewSimulator(s, SimConfig{Key: "app-sim", Seed: 3, NewRuns: 4})
			paused, unfinished := false, 0
			for i := range 40 {
				sim.Step(t0.Add(time.Duration(i) * 10 * time.Second))
				for _, id := range sim.RunIDs() {
					r, _ := s.Run("app-sim", id)
					paused = paused || r.Status == "paused"
				}
			}
			for _, id := range sim.RunIDs() {
				if r, _ := s.Run("app-sim", id); !terminal[r.Status] {
					unfinished++
				}
			}
			if paused != c.pauses {
				t.Errorf("a run paused: %v, want %v", paused, c.pauses)
			}
			p, _ := getLogs(t, s, "app-sim", map[string][]string{"limit": {"100"}})
			listed := 0
			for _, d := range p.Data {
				if !terminal[d.WorkflowRun.Status] {
					listed++
				}
			}
			if want := 160 - unfinished; !c.listsRunning && (p.Total != want || listed != 0) {
				t.Errorf("logs list %d runs (%d unfinished), want the %d finished only", p.Total, listed, want)
			}
			if c.listsRunning && (p.Total != 160 || unfinished == 0) {
				t.Errorf("logs list %d runs, want all 160 (%d unfinished)", p.Total, unfinished)
			}
		})
	}
}
