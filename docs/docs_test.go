package docs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/config"
)

// root is the repository's top directory.
const root = ".."

// exporterBin is the exporter, built once for the tests that run it.
var exporterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dify_exporter_docs")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "dify_exporter")
	build := exec.Command("go", "build", "-o", exporterBin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the exporter: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// readDoc returns a file of the repository.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// repoFiles lists the repository's files (relative, slash-separated), without .git.
func repoFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.Name() == ".git" { // a directory, or in a worktree a file naming one
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// prose returns a Markdown file's lines outside fenced code blocks; code lines are "".
func prose(md string) []string {
	lines := strings.Split(md, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			lines[i] = ""
		} else if in {
			lines[i] = ""
		}
	}
	return lines
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`^#{1,6}\s+(.*)$`)
	slugDrop  = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// anchors returns the anchors GitHub gives a Markdown file's headings.
func anchors(md string) map[string]bool {
	a := map[string]bool{}
	for _, l := range prose(md) {
		if m := headingRE.FindStringSubmatch(l); m != nil {
			slug := strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
			for n := 0; ; n++ { // a repeated heading gets -1, -2, ...
				s := slug
				if n > 0 {
					s = fmt.Sprintf("%s-%d", slug, n)
				}
				if !a[s] {
					a[s] = true
					break
				}
			}
		}
	}
	return a
}

func TestAnchors(t *testing.T) {
	got := anchors("# Dify releases: what each lets the exporter see\n## What Dify's API does, release by release\n" +
		"```\n# not a heading\n```\n### The `--demo` flag\n## Notes\n## Notes\n")
	for _, want := range []string{"dify-releases-what-each-lets-the-exporter-see", "what-difys-api-does-release-by-release",
		"the---demo-flag", "notes", "notes-1"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a comment in a code block became an anchor")
	}
}

// TestLinks: every relative link of every Markdown file names a file or directory of the
// repository, and an anchor that its target has.
func TestLinks(t *testing.T) {
	checked := 0
	for _, f := range repoFiles(t) {
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		md := readDoc(t, f)
		for n, l := range prose(md) {
			for _, m := range linkRE.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				file, anchor, _ := strings.Cut(target, "#")
				where := fmt.Sprintf("%s:%d: link %s", f, n+1, target)
				path := filepath.Join(root, filepath.Dir(f), file)
				if file == "" {
					path = filepath.Join(root, f)
				}
				st, err := os.Stat(path)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if anchor == "" {
					continue
				}
				if st.IsDir() || !strings.HasSuffix(path, ".md") {
					t.Errorf("%s: an anchor into something other than Markdown", where)
					continue
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !anchors(string(b))[anchor] {
					t.Errorf("%s: no heading gives #%s", where, anchor)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d links checked; is the link pattern broken?", checked)
	}
}

// TestNoOutsideReferences: no file names the notes the exporter was designed from, which users
// do not have; facts belong in these docs.
func TestNoOutsideReferences(t *testing.T) {
	// Spelled in pieces so that this file does not match itself.
	banned := []string{"shared" + "/", "DESIGN" + ".md", "dify-api" + ".md", "/work" + "/"}
	for _, f := range repoFiles(t) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(b, 0) {
			continue // binary
		}
		for n, l := range strings.Split(string(b), "\n") {
			for _, w := range banned {
				if strings.Contains(l, w) {
					t.Errorf("%s:%d names %q, which is not in the repository: %s", f, n+1, w, strings.TrimSpace(l))
				}
			}
		}
	}
}

// TestREADME: the README is a first-run path that starts with the commands, and CI runs its
// test command.
func TestREADME(t *testing.T) {
	readme := readDoc(t, "README.md")
	if len(readme) > 15*1024 {
		t.Errorf("README.md is %d bytes; keep it a first-run path under 15 KiB and put reference in docs/", len(readme))
	}
	var commands []string
	in := false
	for _, l := range strings.Split(readme, "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
		case strings.HasPrefix(l, "```"):
			in = false
		case in:
			commands = append(commands, l)
		}
	}
	if len(commands) < 3 || commands[0] != "go run . --demo" || !strings.HasPrefix(commands[1], "go run . --dify.url=") ||
		commands[2] != "go test -race -count=1 ./..." {
		t.Errorf("README's first commands are %q; want the demo, a real Dify, then the test command", commands[:min(3, len(commands))])
	}
	if ci := readDoc(t, ".ci/run"); !strings.Contains(ci, "\ngo test -race -count=1 ./...\n") {
		t.Error(".ci/run does not run the README's test command")
	}
}

// TestVersionsAgree: VERSION is the one version; the changelog's newest entry, the Helm chart,
// the Kubernetes image tag and every image tag the docs print say the same.
func TestVersionsAgree(t *testing.T) {
	v := strings.TrimSpace(readDoc(t, "VERSION"))
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
		t.Fatalf("VERSION %q is not MAJOR.MINOR.PATCH", v)
	}
	if m := regexp.MustCompile(`(?m)^## (\S+)`).FindStringSubmatch(readDoc(t, "CHANGELOG.md")); m == nil || m[1] != v {
		t.Errorf("CHANGELOG.md's newest entry is %v, want %s", m, v)
	}
	var chart struct {
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal([]byte(readDoc(t, "deploy/helm/dify-exporter/Chart.yaml")), &chart); err != nil {
		t.Fatal(err)
	}
	if chart.Version != v || chart.AppVersion != v {
		t.Errorf("Chart.yaml: version %s, appVersion %s; want %s", chart.Version, chart.AppVersion, v)
	}
	stamp := regexp.MustCompile(`(?:newTag: "?|dify_exporter:)v?(\d+\.\d+\.\d+)`)
	found := 0
	for _, f := range repoFiles(t) {
		if !strings.HasSuffix(f, ".md") && !strings.HasSuffix(f, ".yaml") && f != "Dockerfile" {
			continue
		}
		for n, l := range strings.Split(readDoc(t, f), "\n") {
			for _, m := range stamp.FindAllStringSubmatch(l, -1) {
				found++
				if m[1] != v {
					t.Errorf("%s:%d stamps %s, VERSION says %s", f, n+1, m[1], v)
				}
			}
		}
	}
	if found < 2 {
		t.Errorf("%d version stamps found; the Kubernetes image tag alone should be one", found)
	}
}

// helpFlags parses kingpin's --help: each flag and its default ("" for none, "off" for a
// boolean).
func helpFlags(t *testing.T, help string) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`^\s{2,8}(?:-\w, )?--(\[no-\])?([\w.-]+)(?:=(\S+))?`)
	flags := map[string]string{}
	for _, l := range strings.Split(help, "\n") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		def := strings.Trim(m[3], `"`)
		switch {
		case m[1] != "":
			def = "off"
		case strings.ToUpper(def) == def && strings.ContainsAny(def, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
			def = "" // a placeholder such as CONFIG.FILE
		}
		flags[m[2]] = def
	}
	return flags
}

// TestFlagsReference: the flags table of docs/configuration-and-flags.md has every flag of
// --help, no other, each with --help's default.
func TestFlagsReference(t *testing.T) {
	out, err := exec.Command(exporterBin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	help := helpFlags(t, string(out))
	delete(help, "help")
	delete(help, "version")
	if len(help) < 25 {
		t.Fatalf("only %d flags read from --help:\n%s", len(help), out)
	}
	rowRE := regexp.MustCompile("^\\| `--([\\w.-]+)` \\|([^|]*)\\|")
	doc := map[string]string{}
	for _, l := range strings.Split(readDoc(t, "docs/configuration-and-flags.md"), "\n") {
		if m := rowRE.FindStringSubmatch(l); m != nil {
			doc[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
		}
	}
	for name, def := range help {
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("--%s (default %q) is not in the flags table", name, def)
		case d != def:
			t.Errorf("--%s: the table says default %q, --help %q", name, d, def)
		}
	}
	for name := range doc {
		if _, ok := help[name]; !ok {
			t.Errorf("the flags table has --%s, which --help does not list", name)
		}
	}
}

// TestConfigExample: the example config file of the docs is one the exporter accepts.
func TestConfigExample(t *testing.T) {
	md := readDoc(t, "docs/configuration-and-flags.md")
	_, after, ok := strings.Cut(md, "## Configuration file")
	if !ok {
		t.Fatal("no Configuration file section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the Configuration file section")
	}
	cfg, err := config.Parse([]byte(block), config.Defaults{URL: "https://api.dify.ai/v1",
		Runs: config.RunLimits{Retention: time.Hour, Max: 1000}, Timeout: 10 * time.Second, Concurrency: 8,
		Discovery: config.Discovery{Lookback: time.Hour}})
	if err != nil {
		t.Fatalf("the documented config: %v", err)
	}
	if len(cfg.Apps) != 2 {
		t.Errorf("%d apps parsed from the example, which shows 2", len(cfg.Apps))
	}
}

// documentedMetrics returns the metric names in the first column of docs/metrics.md's tables,
// and which of them are marked conditional.
func documentedMetrics(t *testing.T) (names map[string]bool) {
	t.Helper()
	rowRE := regexp.MustCompile("^\\| `(dify_\\w+)` \\|(.*)$")
	names = map[string]bool{}
	for _, l := range strings.Split(readDoc(t, "docs/metrics.md"), "\n") {
		if m := rowRE.FindStringSubmatch(l); m != nil {
			names[m[1]] = strings.Contains(m[2], "conditional")
		}
	}
	return names
}

// TestMetricsReference scrapes the exporter running against the simulated Dify (--demo) and
// compares the dify_* families it exposes with docs/metrics.md: each exposed family is
// documented, each documented one is exposed or marked conditional.
func TestMetricsReference(t *testing.T) {
	families := scrapeDemo(t)
	doc := documentedMetrics(t)
	if len(doc) < 15 {
		t.Fatalf("only %d metrics read from docs/metrics.md", len(doc))
	}
	for name := range families {
		if _, ok := doc[name]; !ok && strings.HasPrefix(name, "dify_") {
			t.Errorf("%s is exposed but not in docs/metrics.md", name)
		}
	}
	for name, conditional := range doc {
		if _, ok := families[name]; !ok && !conditional {
			t.Errorf("docs/metrics.md lists %s, which the exporter does not expose (mark it conditional if it appears only sometimes)", name)
		}
	}
}

// scrapeDemo runs the exporter with --demo and returns its metric families once it has
// exposed finished runs.
func scrapeDemo(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, exporterBin, "--demo", "--web.listen-address=127.0.0.1:0", "--refresh.min-interval=0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addrRE := regexp.MustCompile(`msg="?Listening on"? .*address=([0-9.:]+)`)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("the exporter did not listen within 30 s")
	}
	var families map[string]bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		parsed, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		families = map[string]bool{}
		for name := range parsed {
			families[name] = true
		}
		if families["dify_workflow_run_finished_timestamp_seconds"] && families["dify_server_info"] {
			return families
		}
	}
	t.Fatalf("no finished run or server info exposed within 30 s; families: %v", families)
	return nil
}
