// Command soak runs the exporter against a simulated Dify with a high run
// rate for a while, scraping it every second as Prometheus does (scrape
// timeout header, gzip), while hostile clients hold idle keep-alive
// connections, drip request bodies and never read /metrics answers. It
// reports the exporter's memory, goroutines and file descriptors over
// time. It is not part of CI:
//
//	go run ./tools/soak -duration 10m
//
// The idle connections need file descriptors on both sides: Go raises the
// soft RLIMIT_NOFILE to the hard one, so the hard limit (ulimit -Hn) must
// exceed -idle-conns plus a few hundred.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
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
	idleConns := flag.Int("idle-conns", 5000, "keep-alive connections that make one request and then idle (reopened when closed)")
	drippers := flag.Int("drippers", 20, "clients dripping a registration body a byte a second")
	neverReaders := flag.Int("never-readers", 20, "clients asking for /metrics and never reading it")
	maxConns := flag.Int("max-connections", 6000, "the exporter's --web.max-connections")
	scrapeTimeout := flag.Duration("scrape-timeout", 10*time.Second, "the scrape timeout sent, and the bound of an on-time scrape")
	prefill := flag.Int("prefill", 0, "finished runs logged over the last 50 minutes before the exporter starts (with -runs-per-step=0: a steady exporter of that many finished runs)")
	flag.Parse()
	raiseFileLimit()

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
	for i := range *prefill {
		at := time.Now().Add(-50 * time.Minute).Add(time.Duration(i) * 50 * time.Minute / time.Duration(*prefill))
		srv.PutRun(key, difytest.Run{Status: "succeeded", CreatedAt: at, FinishedAt: at.Add(time.Second),
			TotalTokens: 100 + i%1000, TotalSteps: 3, ElapsedTime: 1})
	}
	sim := difytest.NewSimulator(srv, difytest.SimConfig{Key: key, NewRuns: *runsPerStep, Seed: 1, Retain: 20000})
	if *runsPerStep > 0 {
		sim.Start(context.Background(), *step)
		defer sim.Stop()
	}

	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		log.Fatal(err)
	}
	addr := freeAddr()
	lookback := 5 * time.Minute
	if *prefill > 0 {
		lookback = time.Hour
	}
	cmd := exec.Command(bin, "--dify.url="+srv.URL(), "--dify.api-key-file="+keyFile, "--dify.app-name=soak",
		"--discovery.workflow-logs", "--discovery.lookback="+lookback.String(), "--runs.max="+fmt.Sprint(*maxRuns),
		"--runs.retention="+retention.String(), "--web.listen-address="+addr, "--log.level=warn",
		"--web.enable-registration", "--web.max-connections="+fmt.Sprint(*maxConns))
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

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var held atomic.Int64
	for i := range *idleConns {
		go idleClient(ctx, addr, &held, time.Duration(i)*time.Millisecond)
	}
	for range *drippers {
		go dripper(ctx, addr)
	}
	for range *neverReaders {
		go neverReader(ctx, addr, *scrapeTimeout)
	}

	fmt.Printf("soak: %v, %d runs started every %v (%.0f/s), --runs.max=%d, --runs.retention=%v, scraping every 1s (timeout %v, gzip)\n",
		*duration, *runsPerStep, *step, float64(*runsPerStep)/step.Seconds(), *maxRuns, *retention, *scrapeTimeout)
	fmt.Printf("hostile clients: %d idle keep-alive, %d dripping bodies, %d never reading /metrics; --web.max-connections=%d\n",
		*idleConns, *drippers, *neverReaders, *maxConns)
	fmt.Printf("%8s %8s %8s %8s %8s %8s %10s %12s %12s %10s %6s\n", "elapsed", "rss_MiB", "heap_MiB", "gorout", "fds", "idle", "tracked", "scrape_ms", "max_ms", "series", "late")
	start := time.Now()
	next := start
	var scrapes, failures, late int
	var maxTook time.Duration
	lastReport := start
	for time.Since(start) < *duration {
		time.Sleep(time.Until(next))
		next = next.Add(time.Second)
		t0 := time.Now()
		m, series, err := scrape("http://"+addr+"/metrics", *scrapeTimeout)
		took := time.Since(t0)
		scrapes++
		maxTook = max(maxTook, took)
		if err != nil {
			failures++
			log.Printf("scrape failed after %v: %v", took.Truncate(time.Millisecond), err)
			continue
		}
		if took > *scrapeTimeout {
			late++
		}
		if time.Since(lastReport) >= *report {
			lastReport = time.Now()
			fmt.Printf("%8s %8.1f %8.1f %8.0f %8d %8d %10.0f %12.1f %12.1f %10d %6d\n", time.Since(start).Truncate(time.Second),
				m["process_resident_memory_bytes"]/(1<<20), m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_goroutines"],
				openFDs(cmd.Process.Pid), held.Load(), m["dify_exporter_tracked_runs"], float64(took.Microseconds())/1000,
				float64(maxTook.Microseconds())/1000, series, late)
		}
	}
	fmt.Printf("scrapes: %d, failed: %d, late (> %v): %d, slowest %v, simulated runs: %d\n",
		scrapes, failures, *scrapeTimeout, late, maxTook.Truncate(time.Millisecond), len(sim.RunIDs()))
}

// idleClient makes one request on a connection and then holds it idle
// until the exporter closes it, then does it again.
func idleClient(ctx context.Context, addr string, held *atomic.Int64, delay time.Duration) {
	time.Sleep(delay) // not all at once: the listen backlog is finite
	for ctx.Err() == nil {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "GET /-/healthy HTTP/1.1\r\nHost: soak\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			held.Add(1)
			br.ReadByte() // blocks until the exporter closes the connection
			held.Add(-1)
		}
		c.Close()
		time.Sleep(time.Second)
	}
}

// dripper posts a registration body a byte a second, until cut off.
func dripper(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		fmt.Fprintf(c, "POST /api/v1/runs HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
		for ctx.Err() == nil {
			time.Sleep(time.Second)
			if _, err := c.Write([]byte(" ")); err != nil {
				break
			}
		}
		c.Close()
	}
}

// neverReader asks for /metrics with a small receive buffer and never
// reads the answer, until the exporter closes the connection.
func neverReader(ctx context.Context, addr string, timeout time.Duration) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for ctx.Err() == nil {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: soak\r\nX-Prometheus-Scrape-Timeout-Seconds: %g\r\n\r\n", timeout.Seconds())
		// Wait, unread, until the exporter gives up on the connection.
		for ctx.Err() == nil {
			time.Sleep(5 * time.Second)
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
		}
		c.Close()
	}
}

// openFDs counts the file descriptors of process pid.
func openFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// raiseFileLimit lifts the soft limit on open files to the hard one (Go
// does so since 1.19; said here because the soak depends on it).
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	l.Cur = l.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	fmt.Printf("open files limit: %d\n", l.Max)
}

// scrape returns the sum of each metric family's samples and the number
// of series.
func scrape(url string, timeout time.Duration) (map[string]float64, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	// As Prometheus asks; setting Accept-Encoding turns off the
	// transport's transparent decompression.
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprint(timeout.Seconds()))
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, 0, err
		}
		body = gz
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bufio.NewReader(body))
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

var scrapeClient = &http.Client{Timeout: time.Minute}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
