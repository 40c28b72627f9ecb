// Command soak runs the exporter against a simulated Dify with a high run
// rate for a while, scraping it every second, and reports its memory and
// goroutines over time. It is not part of CI:
//
//	go run ./tools/soak -duration 10m
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	runsPerStep := flag.Int("runs-per-step", 20, "runs the simulator starts per step")
	step := flag.Duration("step", 200*time.Millisecond, "simulator step")
	report := flag.Duration("report", 30*time.Second, "report interval")
	maxRuns := flag.Int("runs-max", 5000, "the exporter's --runs.max")
	retention := flag.Duration("retention", 2*time.Minute, "the exporter's --runs.retention")
	flag.Parse()

	dir, err := os.MkdirTemp("", "dify-soak")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "dify_exporter")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		log.Fatal("build: ", err)
	}

	const key = "app-soak-key-0000000000000000"
	srv := difytest.NewServer()
	defer srv.Close()
	srv.AddApp(key, difytest.App{Name: "Soak", Mode: "workflow"})
	sim := difytest.NewSimulator(srv, difytest.SimConfig{Key: key, NewRuns: *runsPerStep, Seed: 1, Retain: 20000})
	sim.Start(context.Background(), *step)
	defer sim.Stop()

	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		log.Fatal(err)
	}
	addr := freeAddr()
	cmd := exec.Command(bin, "--dify.url="+srv.URL(), "--dify.api-key-file="+keyFile, "--dify.app-name=soak",
		"--discovery.workflow-logs", "--discovery.lookback=5m", "--runs.max="+fmt.Sprint(*maxRuns),
		"--runs.retention="+retention.String(), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()
	for ready := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(ready) {
			log.Fatal("the exporter did not start")
		}
	}

	fmt.Printf("soak: %v, %d runs started every %v (%.0f/s), --runs.max=%d, --runs.retention=%v, scraping every 1s\n",
		*duration, *runsPerStep, *step, float64(*runsPerStep)/step.Seconds(), *maxRuns, *retention)
	fmt.Printf("%8s %10s %10s %8s %10s %12s %10s %8s\n", "elapsed", "rss_MiB", "heap_MiB", "gorout", "tracked", "scrape_ms", "series", "errors")
	start := time.Now()
	next := start
	var scrapes, failures int
	lastReport := start
	for time.Since(start) < *duration {
		time.Sleep(time.Until(next))
		next = next.Add(time.Second)
		t0 := time.Now()
		m, series, err := scrape("http://" + addr + "/metrics")
		took := time.Since(t0)
		scrapes++
		if err != nil {
			failures++
			continue
		}
		if time.Since(lastReport) >= *report {
			lastReport = time.Now()
			fmt.Printf("%8s %10.1f %10.1f %8.0f %10.0f %12.1f %10d %8.0f\n", time.Since(start).Truncate(time.Second),
				m["process_resident_memory_bytes"]/(1<<20), m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_goroutines"],
				m["dify_exporter_tracked_runs"], float64(took.Microseconds())/1000, series, m["dify_exporter_run_errors_total"])
		}
	}
	fmt.Printf("scrapes: %d, failed: %d, simulated runs: %d\n", scrapes, failures, len(sim.RunIDs()))
}

// scrape returns the sum of each metric family's samples and the number
// of series.
func scrape(url string) (map[string]float64, int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		return nil, 0, err
	}
	sums := map[string]float64{}
	series := 0
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			series++
			switch {
			case m.Gauge != nil:
				sums[name] += m.GetGauge().GetValue()
			case m.Counter != nil:
				sums[name] += m.GetCounter().GetValue()
			}
		}
	}
	return sums, series, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
