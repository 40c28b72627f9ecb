package pages

import (
	"bytes"
	"context"
	"flag"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
)

// screenshots, if set, is where the browser test also saves its PNGs
// (docs/img for the docs: go test ./server/pages -run Browser -screenshots ../../docs/img).
var screenshots = flag.String("screenshots", "", "directory to save the browser test's screenshots in")

// browser runs headless Chromium (Debian's chromium package).
type browser struct {
	bin, profile string
}

func newBrowser(t *testing.T) browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		msg := "chromium not found in PATH: install it with `apt-get install chromium`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this is an error)")
		}
		t.Skip(msg)
	}
	return browser{bin: bin, profile: t.TempDir()}
}

func (b browser) run(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + b.profile}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// load returns the DOM of page u as the browser built it.
func (b browser) load(t *testing.T, u string) *html.Node {
	t.Helper()
	dom := b.run(t, "--dump-dom", u)
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// shoot saves a screenshot of u as name.png.
func (b browser) shoot(t *testing.T, u, name string) {
	t.Helper()
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	path, err := filepath.Abs(filepath.Join(dir, name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, "--hide-scrollbars", "--window-size=1280,900", "--screenshot="+path, u)
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot of %s: not a PNG (%v)", u, err)
	}
}

// resolve makes a link on page base absolute.
func resolve(t *testing.T, base, href string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	h, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(h).String()
}

// An operator in a browser: from the landing page to an app's runs, to a
// registered run with its source and status, and to a refresh's log. A
// workflow_id made to run a script is refused by the client (Dify's IDs are
// UUIDs); the error that quotes it shows as text and runs nothing.
func TestBrowser(t *testing.T) {
	b := newBrowser(t)
	const pwn = `<script>document.body.setAttribute("data-pwned","1")</script><img src=x onerror="document.body.setAttribute('data-pwned','2')">`
	f := newFixture(t, "", collector.AppConfig{Discovery: true, Lookback: time.Hour, Retention: time.Hour})
	now := time.Now()
	registered := f.put(difytest.Run{WorkflowID: testWorkflowID, Version: "2025-03-01 10:00:00.000000", Status: "running", CreatedAt: now.Add(-3 * time.Minute), TotalTokens: 1200, TotalSteps: 4})
	hostileRun := f.put(difytest.Run{WorkflowID: pwn, Version: "2025-03-02 10:00:00.000000", Status: "running", CreatedAt: now.Add(-2 * time.Minute)})
	for _, id := range []string{registered, hostileRun} {
		if err := f.exp.Register(testName, id); err != nil {
			t.Fatal(err)
		}
	}
	f.put(difytest.Run{WorkflowID: "3c90c3cc-0d44-4b50-8888-8dd25736052a", Version: "2025-02-01 09:00:00.000000", Status: "succeeded", CreatedAt: now.Add(-10 * time.Minute), FinishedAt: now.Add(-8 * time.Minute), TotalTokens: 830, TotalSteps: 6})
	f.put(difytest.Run{WorkflowID: "3c90c3cc-0d44-4b50-8888-8dd25736052a", Version: "2025-02-01 09:00:00.000000", Status: "failed", CreatedAt: now.Add(-7 * time.Minute), FinishedAt: now.Add(-6 * time.Minute), TotalTokens: 95, TotalSteps: 2})
	f.put(difytest.Run{WorkflowID: "3c90c3cc-0d44-4b50-8888-8dd25736052a", Version: "2025-02-01 09:00:00.000000", Status: "running", CreatedAt: now.Add(-time.Minute), TotalTokens: 40, TotalSteps: 1})
	f.refresh(t)
	f.clock.add(15 * time.Second)
	f.refresh(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	home := srv.URL + "/"

	doc := b.load(t, home)
	links := find(doc, func(n *html.Node) bool {
		return n.Data == "a" && hasClass(n, "runs") && n.Parent != nil && n.Parent.Parent != nil && attr(n.Parent.Parent, "data-app") == testName
	})
	if len(links) != 1 {
		t.Fatalf("landing page: %d links to app t's runs", len(links))
	}
	runsURL := resolve(t, home, attr(links[0], "href"))
	logs := find(doc, func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "log") })
	if len(logs) == 0 {
		t.Fatalf("landing page: no refresh log link")
	}
	logURL := resolve(t, home, attr(logs[len(logs)-1], "href")) // the first refresh: its calls

	runs := b.load(t, runsURL)
	row := runRow(runs, registered)
	if row == nil {
		t.Fatalf("%s lists no row for the registered run %s", runsURL, registered)
	}
	if s := cell(row, "sources"); !strings.Contains(s, "registered") {
		t.Errorf("sources of the registered run: %q", s)
	}
	if s := cell(row, "status"); s != "running" {
		t.Errorf("status of the registered run: %q", s)
	}
	if s := cell(row, "workflow"); s != testWorkflowID {
		t.Errorf("workflow of the registered run: %q", s)
	}
	if hr := runRow(runs, hostileRun); hr == nil {
		t.Errorf("no row for the run with a hostile workflow_id")
	} else if s := cell(hr, "error"); !strings.Contains(s, `<script>document.body.setAttribute(\"data-pwned\"`) {
		t.Errorf("the hostile workflow_id's error shows as %q, want it quoted as text", s)
	}
	for _, n := range find(runs, func(n *html.Node) bool { return n.Data == "body" }) {
		if v := attr(n, "data-pwned"); v != "" {
			t.Errorf("the hostile workflow_id ran (data-pwned=%s)", v)
		}
	}
	if n := find(runs, func(n *html.Node) bool { return n.Data == "script" || n.Data == "img" }); len(n) > 0 {
		t.Errorf("the hostile workflow_id became %d elements", len(n))
	}

	log := find(b.load(t, logURL), func(n *html.Node) bool { return attr(n, "id") == "log" })
	if len(log) != 1 || !strings.Contains(text(log[0]), `msg="Dify request" endpoint=logs code=200`) {
		t.Errorf("%s: want the refresh's requests in #log, got %v", logURL, log)
	}

	b.shoot(t, home, "landing")
	b.shoot(t, runsURL, "runs")
	b.shoot(t, runsURL+"&run_id="+difytest.NewRunID(), "runs-untracked")
	b.shoot(t, logURL, "refresh-log")
	b.shoot(t, srv.URL+"/config", "config")
}
