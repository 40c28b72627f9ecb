package main

import (
	"context"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

const demoKey = "app-demo-not-a-secret"

// startDemo starts the in-process simulated Dify that --demo exports: a
// workflow app whose runs start, progress, pause, fail and finish.
func startDemo() (url, key string, stop func(), err error) {
	srv := difytest.NewServer()
	srv.AddApp(demoKey, difytest.App{Name: "Demo translator", Mode: "workflow", Description: "Simulated by dify_exporter --demo"})
	sim := difytest.NewSimulator(srv, difytest.SimConfig{Key: demoKey, NewRuns: 1, Seed: time.Now().UnixNano(), Retain: 2000})
	// Some history, so the first scrape already shows every status.
	now := time.Now()
	for i := 30; i > 0; i-- {
		sim.Step(now.Add(-time.Duration(i) * 10 * time.Second))
	}
	sim.Start(context.Background(), 2*time.Second)
	return srv.URL(), demoKey, func() { sim.Stop(); srv.Close() }, nil
}
