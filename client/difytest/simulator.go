package difytest

import (
	"context"
	"math/rand"
	"sync"
	"time"
)

// SimConfig configures a Simulator.
type SimConfig struct {
	// Key is the app key to put runs under (the app must exist).
	Key string
	// NewRuns is the number of runs started per Step (default 1).
	NewRuns int
	// Seed seeds math/rand, for determinism.
	Seed int64
	// Retain, if positive, keeps at most this many finished runs: older
	// finished runs are deleted (as Dify's log cleanup does), so a long
	// --demo stays bounded. 0 keeps every run.
	Retain int
}

// Simulator drives runs of one app through realistic lives: they start
// running, progress for a few steps (steps, tokens and elapsed time grow;
// the server serves them only from a pause or the end, as Dify does),
// some pause for human input and resume later (only on releases from
// 1.13.0, which have the Human Input node), and they end succeeded
// (most), failed (with an error), stopped or partial-succeeded. A finished
// run is never changed again. It works on every release the server
// imitates.
type Simulator struct {
	s   *Server
	cfg SimConfig

	mu       sync.Mutex
	rng      *rand.Rand
	active   []*simRun
	ids      []string
	finished []string // in finishing order, for Retain
	// lastStep is the previous Step's time: events of a step are spread
	// over the time since, as real runs are (they do not share an
	// instant; Dify's timestamps have microseconds).
	lastStep time.Time

	runMu  sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type simRun struct {
	run      Run
	life     int // steps of running left before it ends
	pauseFor int // steps left in the current pause
	last     time.Time
}

// NewSimulator returns a simulator putting runs into s under cfg.Key.
func NewSimulator(s *Server, cfg SimConfig) *Simulator {
	if cfg.NewRuns <= 0 {
		cfg.NewRuns = 1
	}
	return &Simulator{s: s, cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed))}
}

var simErrors = []string{
	"Node LLM run failed: [openai] Error: Rate limit reached for gpt-4o in organization on tokens per min (TPM).",
	"Node HTTP Request run failed: Reached maximum retries (3) for URL https://api.example.com/lookup",
	"Variable #1711528708197.output# not found",
	"Node Code run failed: TypeError: 'NoneType' object is not subscriptable",
}

var simQueries = []string{
	"Translate this to French", "Summarise the attached report", "Classify this ticket",
	"Extract the invoice total", "Draft a reply to the customer", "Übersetze das ins Englische",
}

// Step advances the simulation to now: it progresses every active run
// (maybe pausing, resuming or ending it), then starts NewRuns new runs
// with CreatedAt = now.
func (sim *Simulator) Step(now time.Time) {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	rng := sim.rng
	pauses := sim.s.current().pauses
	span := time.Second // the first step's runs started over the last second
	if !sim.lastStep.IsZero() {
		span = min(max(now.Sub(sim.lastStep), 0), time.Minute)
	}
	sim.lastStep = now
	// within is a moment since the last step (now on the first).
	within := func(frac float64) time.Time { return now.Add(-time.Duration(frac * float64(span))) }
	kept := sim.active[:0]
	for _, sr := range sim.active {
		r := &sr.run
		dt := now.Sub(sr.last).Seconds()
		if dt < 0 {
			dt = 0
		}
		sr.last = now
		if r.Status == "paused" {
			sr.pauseFor--
			if sr.pauseFor > 0 {
				kept = append(kept, sr)
				continue
			}
			r.Status = "running" // human input arrived; elapsed excludes the pause
			sim.s.PutRun(sim.cfg.Key, *r)
			kept = append(kept, sr)
			continue
		}
		// running: progress.
		r.TotalSteps += 1 + rng.Intn(3)
		r.TotalTokens += 20 + rng.Intn(600)
		r.ElapsedTime += dt * (0.5 + rng.Float64()*0.5)
		sr.life--
		switch {
		case sr.life <= 0:
			sim.finish(sr, within(rng.Float64()))
			continue
		case rng.Float64() < 0.12 && pauses:
			r.Status = "paused"
			sr.pauseFor = 1 + rng.Intn(3)
		}
		sim.s.PutRun(sim.cfg.Key, *r)
		kept = append(kept, sr)
	}
	clear(sim.active[len(kept):])
	sim.active = kept
	for i := range sim.cfg.NewRuns {
		sr := &simRun{
			run: Run{
				ID: NewRunID(), Status: "running", CreatedAt: within(float64(sim.cfg.NewRuns-1-i) / float64(sim.cfg.NewRuns)),
				Inputs: map[string]any{"query": simQueries[rng.Intn(len(simQueries))], "sys.user_id": "demo-user"},
			},
			life: 1 + rng.Intn(5),
			last: now,
		}
		sim.s.PutRun(sim.cfg.Key, sr.run)
		sim.active = append(sim.active, sr)
		sim.ids = append(sim.ids, sr.run.ID)
	}
}

// finish ends a run with a terminal status; called with sim.mu held.
func (sim *Simulator) finish(sr *simRun, now time.Time) {
	r := &sr.run
	p := sim.rng.Float64()
	switch {
	case p < 0.60:
		r.Status = "succeeded"
	case p < 0.75:
		r.Status = "failed"
		r.Error = simErrors[sim.rng.Intn(len(simErrors))]
	case p < 0.87:
		r.Status = "partial-succeeded"
	default:
		r.Status = "stopped"
	}
	if r.Status != "failed" {
		r.Outputs = map[string]any{"result": "simulated answer", "tokens": r.TotalTokens}
	}
	r.FinishedAt = now
	if wall := now.Sub(r.CreatedAt).Seconds(); r.ElapsedTime > wall {
		r.ElapsedTime = wall
	}
	sim.s.PutRun(sim.cfg.Key, *r)
	sim.finished = append(sim.finished, r.ID)
	if sim.cfg.Retain > 0 && len(sim.finished) > sim.cfg.Retain {
		drop := len(sim.finished) - sim.cfg.Retain
		gone := make(map[string]bool, drop)
		for _, id := range sim.finished[:drop] {
			sim.s.DeleteRun(sim.cfg.Key, id)
			gone[id] = true
		}
		sim.finished = append(sim.finished[:0], sim.finished[drop:]...)
		ids := sim.ids[:0]
		for _, id := range sim.ids {
			if !gone[id] {
				ids = append(ids, id)
			}
		}
		sim.ids = ids
	}
}

// Start calls Step with the server's clock (see Server.SetClock) every
// interval until ctx is done or Stop is
// called. It returns at once; starting again replaces the previous loop.
func (sim *Simulator) Start(ctx context.Context, every time.Duration) {
	sim.Stop()
	ctx, cancel := context.WithCancel(ctx)
	sim.runMu.Lock()
	sim.cancel = cancel
	sim.wg.Add(1)
	sim.runMu.Unlock()
	go func() {
		defer sim.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sim.Step(sim.s.now())
			}
		}
	}()
}

// Stop ends a loop begun by Start and waits for it.
func (sim *Simulator) Stop() {
	sim.runMu.Lock()
	cancel := sim.cancel
	sim.cancel = nil
	sim.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	sim.wg.Wait()
}

// RunIDs lists the IDs of the runs the simulator started (and has not
// deleted), oldest first.
func (sim *Simulator) RunIDs() []string {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	return append([]string(nil), sim.ids...)
}
