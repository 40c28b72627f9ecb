package validate

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/dashboards"
)

var (
	composeFile = filepath.Join(repoRoot, "deploy", "compose", "docker-compose.exporter.yaml")
	difyCompose = filepath.Join("testdata", "dify", "docker", "docker-compose.yaml")
)

// ours are the services deploy/compose adds to Dify's.
var ours = []string{"dify-exporter", "prometheus", "alertmanager", "grafana"}

// loadCompose loads the stand-in for Dify's compose file with ours on top, as
// `docker compose -f docker-compose.yaml -f .../docker-compose.exporter.yaml` does from
// Dify's docker/ directory, with env as the only environment.
func loadCompose(t *testing.T, env ...string) (*types.Project, error) {
	t.Helper()
	dify, err := filepath.Abs(difyCompose)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{dify, composeFile},
		cli.WithWorkingDirectory(filepath.Dir(dify)), cli.WithEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func composeProject(t *testing.T) *types.Project {
	t.Helper()
	key := filepath.Join(t.TempDir(), "app-key.txt")
	if err := os.WriteFile(key, []byte("app-placeholder\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := loadCompose(t, "DIFY_EXPORTER_DIR="+repoRoot, "DIFY_EXPORTER_API_KEY_FILE="+key)
	if err != nil {
		t.Fatalf("load %s over Dify's compose file: %v", composeFile, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flagValue returns the value of --name=value in a command.
func flagValue(cmd []string, name string) (string, bool) {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestComposeNeedsItsVariables(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k")
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"DIFY_EXPORTER_API_KEY_FILE=" + key}, "DIFY_EXPORTER_DIR"},
		{[]string{"DIFY_EXPORTER_DIR=" + repoRoot}, "DIFY_EXPORTER_API_KEY_FILE"},
	} {
		_, err := loadCompose(t, tc.env...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
}

func TestComposeProject(t *testing.T) {
	p := composeProject(t)
	if p.Name != "docker" {
		t.Errorf("project name %q: merged into Dify's project it must stay Dify's (\"docker\"); set no name:", p.Name)
	}
	for _, n := range ours {
		s := service(t, p, n)
		// Dify's API and our services meet on Dify's default network.
		if _, ok := s.Networks["default"]; !ok {
			t.Errorf("service %s: not on the default network (networks %v)", n, s.Networks)
		}
		if s.Image == "" || (s.Image != "dify_exporter:local" && !strings.Contains(s.Image, ":")) {
			t.Errorf("service %s: image %q, want a pinned tag", n, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("service %s: volume %q not declared", n, v.Source)
				}
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s: bind mount source of %s: %v", n, v.Target, err)
			}
			if !v.ReadOnly {
				t.Errorf("service %s: bind mount %s is writable; mount the checkout's files :ro", n, v.Target)
			}
		}
	}
	if _, ok := service(t, p, "api").Networks["default"]; !ok {
		t.Fatal("stand-in Dify api service is not on the default network")
	}

	exp := service(t, p, "dify-exporter")
	if exp.Build == nil || exp.Build.Context != repoRoot {
		t.Errorf("dify-exporter build %+v: want the checkout %s as context", exp.Build, repoRoot)
	} else if _, err := os.Stat(filepath.Join(exp.Build.Context, "Dockerfile")); err != nil {
		t.Error(err)
	}
	if u, _ := flagValue(exp.Command, "dify.url"); u != "http://api:5001/v1" {
		t.Errorf("--dify.url=%q, want Dify's API service http://api:5001/v1", u)
	}
	if _, ok := exp.DependsOn["api"]; !ok {
		t.Errorf("dify-exporter depends on %v, want api", exp.DependsOn)
	}
	keyFile, _ := flagValue(exp.Command, "dify.api-key-file")
	mounted := false
	for _, s := range exp.Secrets {
		target := s.Target
		if target == "" {
			target = s.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		if target == keyFile {
			if sec, ok := p.Secrets[s.Source]; !ok || sec.File == "" {
				t.Errorf("secret %s: not a file secret", s.Source)
			}
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("--dify.api-key-file=%q is no secret of the service (secrets %+v)", keyFile, exp.Secrets)
	}
	for _, a := range exp.Command {
		if strings.Contains(a, "api-key=") {
			t.Errorf("arg %q: the key must come from the secret file", a)
		}
	}
	if !exp.ReadOnly {
		t.Error("dify-exporter: read_only root file system expected")
	}
}

func TestComposeHostPorts(t *testing.T) {
	p := composeProject(t)
	seen := map[string]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.Published == "" {
				continue
			}
			if other, dup := seen[port.Published]; dup {
				t.Errorf("host port %s published by %s and %s", port.Published, other, name)
			}
			seen[port.Published] = name
			if slices.Contains(ours, name) && port.HostIP != "127.0.0.1" {
				t.Errorf("service %s publishes %s on %q; default to 127.0.0.1 (MONITORING_BIND_ADDRESS)", name, port.Published, port.HostIP)
			}
		}
	}
	for _, n := range ours {
		if len(service(t, p, n).Ports) == 0 {
			t.Errorf("service %s publishes no port", n)
		}
	}
}

// mounted lays out, under a temporary directory, the files the service's bind mounts put in
// its container, and returns that directory: a path inside the container is root+path.
func mounted(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	root := t.TempDir()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		fi, err := os.Stat(v.Source)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() {
			copyFile(t, v.Source, filepath.Join(root, v.Target))
			continue
		}
		entries, err := os.ReadDir(v.Source)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				copyFile(t, filepath.Join(v.Source, e.Name()), filepath.Join(root, v.Target, e.Name()))
			}
		}
	}
	return root
}

// containerPort is the port a service listens on, from its --web.listen-address or the default.
func containerPort(s types.ServiceConfig, def string) string {
	if a, ok := flagValue(s.Command, "web.listen-address"); ok {
		if _, port, err := net.SplitHostPort(a); err == nil {
			return port
		}
	}
	return def
}

func TestComposePrometheus(t *testing.T) {
	promtool := tool(t, "promtool", "apt-get install prometheus")
	p := composeProject(t)
	prom := service(t, p, "prometheus")
	cfgPath, ok := flagValue(prom.Command, "config.file")
	if !ok {
		t.Fatal("prometheus: no --config.file")
	}
	root := mounted(t, prom)
	cfg := filepath.Join(root, cfgPath)
	// Also loads the rule files the config names, resolved as Prometheus resolves them in the
	// container: only files mounted there are found.
	out := run(t, promtool, "check", "config", cfg)
	if !strings.Contains(out, "rules found") {
		t.Errorf("promtool check config checked no rule file:\n%s", out)
	}
	var c struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	// The rules loaded are the repository's.
	rules, err := os.ReadFile(filepath.Join(repoRoot, "alerts", "dify.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rf := range c.RuleFiles {
		if got, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), rf)); err == nil && bytes.Equal(got, rules) {
			found = true
		}
	}
	if !found {
		t.Errorf("rule_files %v: none is alerts/dify.rules.yml as mounted", c.RuleFiles)
	}
	exporter := "dify-exporter:" + containerPort(service(t, p, "dify-exporter"), "9866")
	scraped := false
	for _, sc := range c.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, exporter) {
				scraped = true
				if sc.JobName != "dify_exporter" {
					t.Errorf("job %q scrapes %s; the alert rules expect job=\"dify_exporter\"", sc.JobName, exporter)
				}
			}
		}
	}
	if !scraped {
		t.Errorf("no scrape config targets %s", exporter)
	}
	am := "alertmanager:" + containerPort(service(t, p, "alertmanager"), "9093")
	if len(c.Alerting.Alertmanagers) != 1 || len(c.Alerting.Alertmanagers[0].StaticConfigs) != 1 ||
		!slices.Equal(c.Alerting.Alertmanagers[0].StaticConfigs[0].Targets, []string{am}) {
		t.Errorf("alerting %+v: want the alertmanager service %s", c.Alerting, am)
	}
}

func TestComposeAlertmanager(t *testing.T) {
	amtool := tool(t, "amtool", "apt-get install prometheus-alertmanager")
	am := service(t, composeProject(t), "alertmanager")
	cfgPath, ok := flagValue(am.Command, "config.file")
	if !ok {
		t.Fatal("alertmanager: no --config.file")
	}
	cfg := filepath.Join(mounted(t, am), cfgPath)
	out := run(t, amtool, "check-config", cfg)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("amtool check-config:\n%s", out)
	}
}

// Grafana's provisioning file formats (the fields used here; unknown ones are an error).
type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaDashboards struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func decodeStrict(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// checkExemplarLink checks that a Prometheus datasource links an
// exemplar's run_id to the exporter's run page, at the address the Grafana
// service's environment gives (Grafana expands it; $$ is a literal $).
func checkExemplarLink(t *testing.T, grafana types.ServiceConfig, name string, jsonData map[string]any) {
	t.Helper()
	dests, _ := jsonData["exemplarTraceIdDestinations"].([]any)
	if len(dests) != 1 {
		t.Errorf("datasource %s: %d exemplarTraceIdDestinations, want 1 for run_id", name, len(dests))
		return
	}
	d, _ := dests[0].(map[string]any)
	want := "${DIFY_EXPORTER_PUBLIC_URL}/runs?run_id=$${__value.raw}"
	if d["name"] != "run_id" || d["url"] != want || d["datasourceUid"] != nil {
		t.Errorf("datasource %s: exemplar link %v, want run_id to %s", name, d, want)
	}
	if u := grafana.Environment["DIFY_EXPORTER_PUBLIC_URL"]; u == nil || !strings.HasPrefix(*u, "http://") {
		t.Errorf("grafana: DIFY_EXPORTER_PUBLIC_URL %v, want the exporter's URL", u)
	}
}

// TestComposePrometheusKeepsExemplars checks that the compose Prometheus
// stores the exemplars the dashboard shows.
func TestComposePrometheusKeepsExemplars(t *testing.T) {
	prom := service(t, composeProject(t), "prometheus")
	if v, _ := flagValue(prom.Command, "enable-feature"); !slices.Contains(strings.Split(v, ","), "exemplar-storage") {
		t.Errorf("prometheus: --enable-feature=%q, want exemplar-storage", v)
	}
}

func TestComposeGrafana(t *testing.T) {
	p := composeProject(t)
	g := service(t, p, "grafana")
	root := mounted(t, g)
	prov := filepath.Join(root, "etc", "grafana", "provisioning")

	dsFiles, _ := filepath.Glob(filepath.Join(prov, "datasources", "*.yml"))
	if len(dsFiles) == 0 {
		t.Fatal("no datasource provisioning file mounted at /etc/grafana/provisioning/datasources")
	}
	promURL := "http://prometheus:" + containerPort(service(t, p, "prometheus"), "9090")
	defaults := 0
	for _, f := range dsFiles {
		var ds grafanaDatasources
		decodeStrict(t, f, &ds)
		if ds.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", f, ds.APIVersion)
		}
		for _, d := range ds.Datasources {
			if d.IsDefault {
				defaults++
				// The dashboard's datasource variable (type prometheus) picks the default.
				if d.Type != "prometheus" || d.URL != promURL {
					t.Errorf("default datasource %s: type %s url %s, want prometheus at %s", d.Name, d.Type, d.URL, promURL)
				}
			}
			if d.Type == "prometheus" {
				checkExemplarLink(t, g, d.Name, d.JSONData)
			}
			if d.Type == "alertmanager" && d.URL != "http://alertmanager:"+containerPort(service(t, p, "alertmanager"), "9093") {
				t.Errorf("datasource %s: url %s is not the alertmanager service", d.Name, d.URL)
			}
		}
	}
	if defaults != 1 {
		t.Errorf("%d default datasources, want 1", defaults)
	}

	dbFiles, _ := filepath.Glob(filepath.Join(prov, "dashboards", "*.yml"))
	if len(dbFiles) == 0 {
		t.Fatal("no dashboard provisioning file mounted at /etc/grafana/provisioning/dashboards")
	}
	loaded := 0
	for _, f := range dbFiles {
		var db grafanaDashboards
		decodeStrict(t, f, &db)
		for _, pr := range db.Providers {
			if pr.Type != "file" || pr.Options.Path == "" {
				t.Errorf("%s: provider %s type %q path %q", f, pr.Name, pr.Type, pr.Options.Path)
				continue
			}
			jsons, _ := filepath.Glob(filepath.Join(root, pr.Options.Path, "*.json"))
			for _, j := range jsons {
				b, err := os.ReadFile(j)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(b, dashboards.Overview) {
					loaded++
				}
			}
		}
	}
	if loaded != 1 {
		t.Errorf("the dashboard is in %d provider paths, want 1", loaded)
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != nil {
		if b, err := os.ReadFile(filepath.Join(root, *home)); err != nil || !bytes.Equal(b, dashboards.Overview) {
			t.Errorf("home dashboard %s is not the mounted dashboard: %v", *home, err)
		}
	}
}
