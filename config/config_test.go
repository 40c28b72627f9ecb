package config

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/dify-exporter/dify_exporter/client"
)

// secret is the fake key that some bad testdata files carry inline.
const secret = "Zx9SecretSecretSecret42"

var flagDefaults = Defaults{
	URL:         "https://api.dify.ai/v1",
	Runs:        RunLimits{Retention: time.Hour, Max: 1000},
	Timeout:     10 * time.Second,
	Concurrency: 8,
	Discovery:   Discovery{Lookback: time.Hour},
}

// withoutHTTP returns apps with HTTPClientConfig cleared, for comparing the
// rest with DeepEqual.
func withoutHTTP(apps []App) []App {
	out := make([]App, len(apps))
	for i, a := range apps {
		a.HTTPClientConfig = promconfig.HTTPClientConfig{}
		out[i] = a
	}
	return out
}

func TestLoadGood(t *testing.T) {
	proxy, _ := url.Parse("http://proxy.internal:3128")
	tests := []struct {
		file string
		want []App
		http []promconfig.HTTPClientConfig
	}{
		{
			file: "testdata/good.yml",
			want: []App{{
				Name:       "translator",
				URL:        "http://dify.internal/v1",
				APIKeyFile: "/etc/dify_exporter/translator.key",
				RunIDs:     []string{"fb47b2e6-5e43-4f90-be01-d5c5a088d156", "0b8e4a5c-1d2f-4a6b-9c3d-7e8f9a0b1c2d"},
				RunIDsFile: "/var/lib/dify_exporter/translator.ids",
				Discovery:  Discovery{WorkflowLogs: true, Lookback: time.Hour},
				Runs:       RunLimits{Retention: 30 * time.Minute, Max: 5000},
				Timeout:    5 * time.Second, Concurrency: 4, RateLimit: 2.5,
			}, {
				Name:      "support-bot",
				URL:       "https://api.dify.ai/v1",
				APIKeyEnv: "SUPPORT_BOT_KEY",
				Discovery: Discovery{Lookback: time.Hour},
				Runs:      RunLimits{Retention: time.Hour, Max: 1000},
				Timeout:   10 * time.Second, Concurrency: 8,
			}},
			http: []promconfig.HTTPClientConfig{{
				TLSConfig:       promconfig.TLSConfig{CAFile: "/etc/ssl/dify-ca.pem"},
				ProxyConfig:     promconfig.ProxyConfig{ProxyURL: promconfig.URL{URL: proxy}},
				FollowRedirects: false, EnableHTTP2: true,
			}, promconfig.DefaultHTTPClientConfig},
		},
		{
			file: "testdata/defaults.yml",
			want: []App{{
				Name:      "inherits",
				URL:       "http://dify.example.com/v1",
				APIKeyEnv: "SHARED_KEY",
				Discovery: Discovery{WorkflowLogs: true, Lookback: 2 * time.Hour},
				Runs:      RunLimits{Retention: 2 * time.Hour, Max: 200},
				Timeout:   3 * time.Second, Concurrency: 2, RateLimit: 1,
			}, {
				Name:       "overrides_.1",
				URL:        "https://other.example.com/v1",
				APIKeyFile: filepath.Join("testdata", "keys", "overrides.key"), // relative to the file
				Discovery:  Discovery{WorkflowLogs: true, Lookback: 0},
				Runs:       RunLimits{Retention: 2 * time.Hour, Max: 7},
				Timeout:    time.Minute, Concurrency: 16, RateLimit: 0,
			}},
			http: []promconfig.HTTPClientConfig{
				{FollowRedirects: true, EnableHTTP2: false},
				promconfig.DefaultHTTPClientConfig,
			},
		},
		{
			file: "testdata/minimal.yml",
			want: []App{{
				Name:      "only",
				URL:       "https://api.dify.ai/v1",
				APIKeyEnv: "ONLY_KEY",
				Discovery: Discovery{Lookback: time.Hour},
				Runs:      RunLimits{Retention: time.Hour, Max: 1000},
				Timeout:   10 * time.Second, Concurrency: 8,
			}},
			http: []promconfig.HTTPClientConfig{promconfig.DefaultHTTPClientConfig},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			c, err := Load(tt.file, flagDefaults)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := withoutHTTP(c.Apps); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("apps:\n got %+v\nwant %+v", got, tt.want)
			}
			for i, h := range tt.http {
				if !reflect.DeepEqual(c.Apps[i].HTTPClientConfig, h) {
					t.Errorf("apps[%d].http_client_config:\n got %+v\nwant %+v", i, c.Apps[i].HTTPClientConfig, h)
				}
			}
			if err := checkInvariants(c); err != "" {
				t.Error(err)
			}
		})
	}
}

func TestParseKeepsRelativePaths(t *testing.T) {
	b, err := os.ReadFile("testdata/defaults.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b, flagDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Apps[1].APIKeyFile; got != "keys/overrides.key" {
		t.Errorf("Parse: api_key_file = %q, want it as written", got)
	}
}

func TestLoadRelativeHTTPFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yml")
	writeFile(t, p, "apps:\n  - name: a\n    api_key_file: a.key\n    run_ids_file: ids/a.ids\n    http_client_config:\n      tls_config: {ca_file: ca.pem}\n")
	c, err := Load(p, flagDefaults)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Apps[0]
	if a.APIKeyFile != filepath.Join(dir, "a.key") || a.RunIDsFile != filepath.Join(dir, "ids/a.ids") || a.HTTPClientConfig.TLSConfig.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("relative paths not joined with the file's directory: %q %q %q", a.APIKeyFile, a.RunIDsFile, a.HTTPClientConfig.TLSConfig.CAFile)
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file string
		want string // a fragment of the error
	}{
		{"bad-unknown-key.yml", `line 4: app "translator": unknown field "timeuot" (want one of: name, run_ids,`},
		{"bad-unknown-nested.yml", `line 6: app "translator": runs: unknown field "maximum" (want one of: retention, max)`},
		{"bad-unknown-top.yml", `line 1: top level: unknown field "app" (want one of: defaults, apps)`},
		{"bad-unknown-http.yml", `line 6: app "translator": http_client_config.tls_config: unknown field "ca_fil" (want one of: ca,`},
		{"bad-run-ids-in-defaults.yml", `line 2: defaults: unknown field "run_ids"`},
		{"bad-duplicate-app.yml", `line 6: app "translator" (apps[2]) has the same name as apps[0] (line 2)`},
		{"bad-duplicate-key.yml", `line 5: app "translator": key "timeout" is given twice (first at line 4)`},
		{"bad-inline-key.yml", `line 3: app "translator": api_key is not allowed: API keys live in files or the environment`},
		{"bad-inline-key-defaults.yml", `line 2: defaults: api_key is not allowed: API keys live in files or the environment`},
		{"bad-key-in-env-field.yml", `line 3: app "translator": api_key_env holds what looks like an API key`},
		{"bad-key-in-file-field.yml", `line 3: app "translator": api_key_file holds what looks like an API key`},
		{"bad-key-in-number-field.yml", `line 4: app "translator": concurrency: want an integer, got a string`},
		{"bad-both-key-sources.yml", `line 4: app "translator": both api_key_file and api_key_env are set: want exactly one`},
		{"bad-no-key-source.yml", `line 2: app "translator": no API key source: set api_key_file or api_key_env`},
		{"bad-url.yml", `line 3: app "translator": url "ftp://dify.internal/v1": want scheme http or https`},
		{"bad-url-nohost.yml", `line 3: app "translator": url "http:///v1" has no host`},
		{"bad-url-userinfo.yml", `line 3: app "translator": url "https://dify.internal/v1" carries user info`},
		{"bad-run-id.yml", `line 6: app "translator": run_ids[1]: invalid run ID "../../etc/passwd"`},
		{"bad-types.yml", `line 4: app "translator": concurrency: want an integer, got a string`},
		{"bad-types-runs.yml", `line 4: app "translator": runs: want a mapping {retention: ..., max: ...}, got an integer`},
		{"bad-duration.yml", `line 4: app "translator": runs.retention: want a duration like 90s, 30m or 1h, got "10 minutes"`},
		{"bad-timeout-zero.yml", `line 4: app "translator": timeout must be > 0, got 0s`},
		{"bad-max-zero-defaults.yml", `line 2: app "translator": runs.max must be >= 1, got 0 (set in defaults:)`},
		{"bad-concurrency.yml", `line 4: app "translator": concurrency must be >= 1, got 0`},
		{"bad-rate-limit.yml", `line 4: app "translator": rate_limit must be a finite number >= 0`},
		{"bad-rate-limit-nan.yml", `got NaN`},
		{"bad-name.yml", `line 2: apps[0]: name "trans lator" is invalid`},
		{"bad-no-name.yml", `line 2: apps[0]: name is missing`},
		{"bad-no-apps.yml", `line 3: no apps: want apps: with at least one app`},
		{"bad-empty.yml", `the file is empty`},
		// Issue 10: syntax errors name the line at fault, not where the
		// enclosing block starts.
		{"bad-syntax.yml", `: invalid YAML at line 3: did not find expected '-' indicator`},
		{"bad-syntax-indent.yml", `: invalid YAML at line 7: did not find expected '-' indicator`},
		{"bad-syntax-nested.yml", `: invalid YAML at line 7: did not find expected key`},
		{"bad-syntax-tab.yml", `: invalid YAML at line 6: found a tab character that violates indentation`},
		{"bad-syntax-colon.yml", `: invalid YAML at line 6: mapping values are not allowed in this context`},
		{"bad-syntax-flow.yml", `: invalid YAML at line 4: did not find expected ',' or ']'`},
		{"bad-syntax-quote.yml", `: invalid YAML at line 4: found unexpected end of stream`},
		{"bad-syntax-alias.yml", `: invalid YAML at line 4: unknown anchor 'nope' referenced`},
		{"bad-two-docs.yml", `more than one YAML document`},
		{"bad-http-auth.yml", `line 4: app "translator": http_client_config: authorization is not allowed`},
		{"bad-http-basic-auth.yml", `line 2: app "translator": http_client_config: basic_auth is not allowed: the exporter authenticates with the app's API key (api_key_file or api_key_env) (set in defaults:)`},
		{"bad-http-bearer.yml", `http_client_config: bearer_token/bearer_token_file is not allowed`},
		{"bad-http-validate.yml", `line 4: app "translator": http_client_config: if no_proxy is configured, proxy_url must also be configured`},
		{"bad-float-for-int.yml", `line 4: app "translator": concurrency: want an integer, got a number`},
		{"bad-http-proxy-password.yml", `line 5: app "translator": http_client_config: invalid URL: net/url: invalid userinfo`},
		{"bad-http-tls-version.yml", `line 5: app "translator": http_client_config: unknown TLS version: TLS99`},
		{"bad-http-unknown-deep.yml", `line 6: app "translator": http_client_config.http_headers.X-Team: unknown field "valuez"`},
		{"bad-name-looks-like-key.yml", `line 2: apps[0]: name looks like an API key: the name is the app label`},
		{"bad-http-header.yml", `http_client_config: setting header "Authorization" is not allowed`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			p := filepath.Join("testdata", tt.file)
			c, err := Load(p, flagDefaults)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, p+": ") {
				t.Errorf("error does not start with the file name: %s", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, "hunter2") {
				t.Errorf("error leaks a secret: %s", msg)
			}
		})
	}
	// Every bad file in testdata has a case.
	files, _ := filepath.Glob("testdata/bad-*.yml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const app = "apps:\n  - name: a\n    api_key_env: K\n"
	tests := []struct{ doc, want string }{
		{app + "    runs: {max: '5'}\n", `line 4: app "a": runs.max: want an integer, got a string`},
		{app + "    concurrency: [1]\n", `line 4: app "a": concurrency: want an integer, got a list`},
		{app + "    concurrency: 99999999999999999999\n", `line 4: app "a": concurrency: want an integer`},
		{app + "    timeout: 10\n", `line 4: app "a": timeout: want a duration like 90s, 30m or 1h, got "10"`},
		{app + "    timeout: {s: 1}\n", `line 4: app "a": timeout: want a duration like 90s, 30m or 1h, got a mapping`},
		{app + "    url: http://h/v1?x=1\n", `has a query or fragment`},
		{app + "    url: http://h/v1#\n", `has a query or fragment`},
		{app + "    url: 'http://:80/v1'\n", `has no host`},
		{app + "    run_ids: fb47b2e6-5e43-4f90-be01-d5c5a088d156\n", `line 4: app "a": run_ids: want a list of strings, got a string`},
		{app + "    api_key_env: 'A B'\n", `key "api_key_env" is given twice`},
		{"apps:\n  - name: a\n    api_key_env: 'A=B'\n", `api_key_env "A=B" is not an environment variable name`},
		{"apps:\n  - name: a\n    api_key_file: ''\n", `line 3: app "a": api_key_file is empty`},
		{app + "    run_ids_file: ' '\n", `line 4: app "a": run_ids_file is empty`},
		{"apps:\n  - a\n", `line 2: apps[0]: want an app`},
		{"apps: {name: a}\n", `want a list of apps, got a mapping`},
		{"- a\n", `line 1: top level: want a mapping with defaults: and apps:, got a list`},
		{"defaults: {api_key_env: K, api_key_file: /k}\napps: [{name: a}]\n", `line 1: defaults: both api_key_file and api_key_env are set`},
		{"apps:\n  - name: a\n    api_key_env: K\n  - name: b\n    api_key_env: K\n    runs: {retention: 1h, maxx: 3}\n", `line 6: app "b": runs: unknown field "maxx"`},
		{"apps:\n  - name: a\n    api_key_env: K\n    http_client_config:\n      oauth2:\n        client_id: x\n        tls_config: {bogus: 1}\n", `line 7: app "a": http_client_config.oauth2.tls_config: unknown field "bogus" (want one of: ca, cert, key, ca_file,`},
		{app + "    http_client_config: {oauth2: {client_id: x, token_url: 'http://t'}}\n", `http_client_config: oauth2 is not allowed`},
		{app + "    http_client_config: {follow_redirects: maybe}\n", `line 4: app "a": http_client_config.follow_redirects: want true or false, got a string`},
		{app + "    api_key: ~\n", `line 4: app "a": api_key is not allowed`},
		{app + "    rate_limit: fast\n", `line 4: app "a": rate_limit: want a number, got a string`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.doc), flagDefaults)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q):\n got %v\nwant %s", tt.doc, err, tt.want)
		}
	}
}

func TestParseNoKeyValueEver(t *testing.T) {
	// Wherever a key-looking value goes, it is never echoed.
	key := "app-" + secret
	docs := []string{
		"apps:\n  - name: a\n    api_key: " + key + "\n",
		"apps:\n  - name: " + key + "x y\n    api_key_env: K\n",
		"apps:\n  - name: a\n    api_key_env: K\n    " + key + ": 1\n",
		"apps:\n  - name: a\n    api_key_env: K\n    timeout: " + key + "\n",
		"apps:\n  - name: a\n    api_key_env: K\n    run_ids: [" + key + "]\n",
		"apps:\n  - name: a\n    api_key_env: K\n    url: http://" + key + "\n    runs: {max: 0}\n",
		"apps:\n  - name: a\n    api_key_env: K\n    url: " + key + "\n",
		"apps:\n  - name: a\n    api_key_env: K\n    http_client_config: {bearer_token: " + key + "}\n",
		"apps:\n  - name: a\n    api_key_env: K\n    http_client_config: {http_headers: {X-Key: {secrets: [" + key + "]}, Authorization: {secrets: [" + key + "]}}}\n",
		key + "\n",
		"apps: " + key + "\n",
	}
	for _, d := range docs {
		_, err := Parse([]byte(d), flagDefaults)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", d)
			continue
		}
		if strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("Parse(%q): error leaks the key: %v", d, err)
		}
	}
}

func TestParseDefaultsFromFlags(t *testing.T) {
	d := flagDefaults
	d.URL = ""
	_, err := Parse([]byte("apps:\n  - name: a\n    api_key_env: K\n"), d)
	if err == nil || !strings.Contains(err.Error(), `app "a": url is not set`) {
		t.Errorf("want url not set, got %v", err)
	}
	d = flagDefaults
	d.Runs.Max = 0
	_, err = Parse([]byte("apps:\n  - name: a\n    api_key_env: K\n"), d)
	if err == nil || !strings.Contains(err.Error(), "runs.max must be >= 1, got 0 (from flag --runs.max)") {
		t.Errorf("want runs.max from flag, got %v", err)
	}
	d = flagDefaults
	d.RateLimit = math.Inf(1)
	_, err = Parse([]byte("apps:\n  - name: a\n    api_key_env: K\n"), d)
	if err == nil || !strings.Contains(err.Error(), "(from flag --dify.rate-limit)") {
		t.Errorf("want rate_limit from flag, got %v", err)
	}
}

func TestParseKeySourceOverridesDefaultsAsAWhole(t *testing.T) {
	c, err := Parse([]byte("defaults: {api_key_env: SHARED}\napps:\n  - name: a\n    api_key_file: /k\n  - name: b\n"), flagDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Apps[0]; a.APIKeyFile != "/k" || a.APIKeyEnv != "" {
		t.Errorf("app a: file %q env %q", a.APIKeyFile, a.APIKeyEnv)
	}
	if b := c.Apps[1]; b.APIKeyFile != "" || b.APIKeyEnv != "SHARED" {
		t.Errorf("app b: file %q env %q", b.APIKeyFile, b.APIKeyEnv)
	}
}

func TestParseIsReentrant(t *testing.T) {
	// Parsing the same bytes twice gives equal configs (no shared state).
	b, _ := os.ReadFile("testdata/good.yml")
	c1, err1 := Parse(b, flagDefaults)
	c2, err2 := Parse(b, flagDefaults)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(c1, c2) {
		t.Errorf("two parses differ: %v %v", err1, err2)
	}
	c1.Apps[0].RunIDs[0] = "changed"
	if c2.Apps[0].RunIDs[0] == "changed" {
		t.Error("configs share slices")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yml", flagDefaults)
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yml") {
		t.Errorf("want an error naming the file, got %v", err)
	}
}

var invariantName = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// checkInvariants states what every config that Parse returns satisfies,
// independently of the code that enforces it. It returns "" when all hold.
func checkInvariants(c *Config) string {
	if c == nil || len(c.Apps) == 0 {
		return "no apps"
	}
	names := map[string]bool{}
	for _, a := range c.Apps {
		switch {
		case !invariantName.MatchString(a.Name):
			return "bad name " + a.Name
		case names[a.Name]:
			return "duplicate name " + a.Name
		case (a.APIKeyFile == "") == (a.APIKeyEnv == ""):
			return a.Name + ": not exactly one key source"
		case a.Runs.Retention <= 0, a.Runs.Max < 1, a.Timeout <= 0, a.Concurrency < 1,
			!(a.RateLimit >= 0), math.IsInf(a.RateLimit, 1), a.Discovery.Lookback < 0:
			return a.Name + ": a limit out of range"
		case a.HTTPClientConfig.Authorization != nil, a.HTTPClientConfig.BasicAuth != nil,
			a.HTTPClientConfig.OAuth2 != nil, a.HTTPClientConfig.BearerToken != "", a.HTTPClientConfig.BearerTokenFile != "":
			return a.Name + ": http_client_config carries authentication"
		case strings.HasSuffix(a.URL, "/"):
			return a.Name + ": url has a trailing slash"
		}
		names[a.Name] = true
		u, err := url.Parse(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return a.Name + ": bad url " + a.URL
		}
		ids := map[string]bool{}
		for _, id := range a.RunIDs {
			p, err := client.ParseRunID(id)
			if err != nil || p != id || ids[id] {
				return a.Name + ": bad or duplicate run ID " + id
			}
			ids[id] = true
		}
	}
	return ""
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apps: [{name: a, api_key_env: K, run_ids: [&x FB47B2E6-5E43-4F90-BE01-D5C5A088D156, *x]}]"))
	f.Add([]byte("defaults: &d {url: 'http://h/v1', api_key_env: K}\napps: [{<<: *d, name: a}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, flagDefaults)
		if err != nil {
			if c != nil {
				t.Fatal("config and error both returned")
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if msg := checkInvariants(c); msg != "" {
			t.Fatalf("invariant broken: %s\ninput: %q", msg, data)
		}
	})
}

func TestFromFlags(t *testing.T) {
	base := App{
		Name: "default", URL: "https://api.dify.ai/v1/", APIKeyEnv: "DIFY_API_KEY",
		RunIDs:    []string{"FB47B2E6-5E43-4F90-BE01-D5C5A088D156", "fb47b2e6-5e43-4f90-be01-d5c5a088d156"},
		Discovery: Discovery{Lookback: time.Hour}, Runs: RunLimits{Retention: time.Hour, Max: 1000},
		Timeout: 10 * time.Second, Concurrency: 8,
	}
	c, err := FromFlags(base)
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.URL = "https://api.dify.ai/v1"
	want.RunIDs = []string{"fb47b2e6-5e43-4f90-be01-d5c5a088d156"}
	want.HTTPClientConfig = promconfig.DefaultHTTPClientConfig
	if len(c.Apps) != 1 || !reflect.DeepEqual(c.Apps[0], want) {
		t.Errorf("got %+v\nwant %+v", c.Apps, want)
	}
	if msg := checkInvariants(c); msg != "" {
		t.Error(msg)
	}
	for _, tt := range []struct {
		edit func(*App)
		want string
	}{
		{func(a *App) { a.Name = "de fault" }, `--dify.app-name "de fault": want`},
		{func(a *App) { a.URL = "ftp://x" }, "--dify.url"},
		{func(a *App) { a.RunIDs = []string{"x?y=1"} }, `--dify.run-id: invalid run ID "x?y=1"`},
		{func(a *App) { a.APIKeyEnv = "" }, "want exactly one API key source"},
		{func(a *App) { a.APIKeyFile = "/k" }, "want exactly one API key source"},
		{func(a *App) { a.RateLimit = math.NaN() }, "--dify.rate-limit"},
		{func(a *App) { a.Timeout = 0 }, "--dify.timeout must be > 0"},
		{func(a *App) { a.HTTPClientConfig.BearerTokenFile = "/t" }, "http_client_config: bearer_token/bearer_token_file is not allowed"},
		// Issue 11: the key pasted as the app name would label every series.
		{func(a *App) { a.Name = "app-" + secret + "x" }, "--dify.app-name looks like an API key"},
		{func(a *App) { a.Name = "sk-proj-" + secret }, "--dify.app-name looks like an API key"},
	} {
		a := base
		a.RunIDs = nil
		tt.edit(&a)
		if _, err := FromFlags(a); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want %s", err, tt.want)
		}
	}
}

// Issue 11: a key given as the URL's user name (no password) was printed,
// since url.Redacted keeps the user name. The key here is not key-shaped,
// so only not printing user info keeps it out.
func TestURLUserInfoNeverShown(t *testing.T) {
	for _, tmpl := range []string{"http://%s@dify.internal/v1", "http://%s:@dify.internal/v1", "ftp://%s@dify.internal/v1", "http://%s@/v1", "http://%s@dify.internal/v1?x=1"} {
		u := fmt.Sprintf(tmpl, secret)
		doc := "apps:\n  - name: a\n    api_key_env: K\n    url: '" + u + "'\n"
		_, err := Parse([]byte(doc), flagDefaults)
		if err == nil || !strings.Contains(err.Error(), "line 4: app \"a\": url") {
			t.Errorf("Parse with url %q: got %v, want a url error", u, err)
		} else if strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("Parse with url %q: error leaks the user info: %v", u, err)
		}
		a := App{Name: "a", URL: u, APIKeyEnv: "K", Runs: RunLimits{Retention: time.Hour, Max: 1}, Timeout: time.Second, Concurrency: 1}
		_, err = FromFlags(a)
		if err == nil || !strings.Contains(err.Error(), "--dify.url") {
			t.Errorf("FromFlags with url %q: got %v, want a --dify.url error", u, err)
		} else if strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("FromFlags with url %q: error leaks the user info: %v", u, err)
		}
	}
}

// A file too large to search keeps the parser's own line, said as such.
func TestSyntaxErrorLargeFile(t *testing.T) {
	doc := "# " + strings.Repeat("x", maxBisect) + "\napps:\n  - name: a\n   api_key_env: K\n"
	_, err := Parse([]byte(doc), flagDefaults)
	if err == nil || !strings.Contains(err.Error(), "invalid YAML at or after line 2: did not find expected '-' indicator") {
		t.Errorf("got %v", err)
	}
}
