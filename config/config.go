// Package config loads and validates the exporter's configuration file
// (--config.file). Decoding is strict: unknown keys, wrong types, inline API
// keys and invalid values are refused with one line that names the file, the
// app, the field and (where known) the YAML line. A Config returned without
// error is fully validated, so a reload can swap it in as is; a bad file
// keeps the old one.
//
// Parse never reads key files or the environment, so a file can be checked
// (--config.check) on a machine that does not hold the keys; CheckKeys does
// that part when the exporter starts.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/client"
)

// Defaults are the values an app gets when neither the app nor the file's
// `defaults:` section sets them. They come from the command-line flags.
type Defaults struct {
	URL         string
	Runs        RunLimits
	Timeout     time.Duration
	Concurrency int
	RateLimit   float64
	Discovery   Discovery
	TimeOffset  TimeOffset
}

// TimeOffset is what is added to the times Dify serves: measured (Auto,
// the zero value) or fixed. See docs/clocks.md.
type TimeOffset struct {
	Fixed    bool
	Duration time.Duration
}

// String is the flag and YAML form: "auto" or a signed duration.
func (t TimeOffset) String() string {
	if !t.Fixed {
		return "auto"
	}
	return t.Duration.String()
}

// ParseTimeOffset reads "auto", "0" or a signed duration such as "8h",
// "-5h" or "5h45m".
func ParseTimeOffset(s string) (TimeOffset, error) {
	switch s = strings.TrimSpace(s); s {
	case "auto", "":
		return TimeOffset{}, nil
	case "0":
		return TimeOffset{Fixed: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d.Abs() > 24*time.Hour {
		return TimeOffset{}, fmt.Errorf("want auto, 0 or a duration within a day like 8h, -5h or 5h45m, got %s", shorten(s))
	}
	return TimeOffset{Fixed: true, Duration: d}, nil
}

// RunLimits bound the discovered and registered runs an app keeps.
type RunLimits struct {
	// Retention is how long a terminal run stays exposed.
	Retention time.Duration
	// Max is the most runs an app tracks.
	Max int
}

// Discovery configures run discovery from the workflow logs API.
type Discovery struct {
	WorkflowLogs bool
	// Lookback is how far back discovery reaches on start.
	Lookback time.Duration
}

// App is one Dify app, with defaults merged in and every field validated.
type App struct {
	// Name is the `app` label; unique and matching [a-zA-Z0-9_.-]+.
	Name string
	// URL is the service API base, e.g. https://api.dify.ai/v1, without a
	// trailing slash.
	URL string
	// Exactly one of APIKeyFile and APIKeyEnv is set.
	APIKeyFile string
	APIKeyEnv  string
	// RunIDs are validated, lower-cased and deduplicated.
	RunIDs     []string
	RunIDsFile string
	Discovery  Discovery
	Runs       RunLimits
	Timeout    time.Duration
	// Concurrency is the number of parallel requests.
	Concurrency int
	// RateLimit is in requests per second; 0 means no limit.
	RateLimit        float64
	HTTPClientConfig promconfig.HTTPClientConfig
	TimeOffset       TimeOffset
}

// Config is a loaded, validated configuration file.
type Config struct {
	Apps []App
}

// maxConfigSize bounds what Load reads.
const maxConfigSize = 16 << 20

// Load reads and parses the file at path. Errors start with the path.
// Relative paths in the file (api_key_file, run_ids_file and the files of
// http_client_config) are taken relative to the file's directory, as
// Prometheus does.
func Load(path string, d Defaults) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%s: file is larger than %d MiB", path, maxConfigSize>>20)
	}
	c, err := Parse(data, d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for i := range c.Apps {
		a := &c.Apps[i]
		a.APIKeyFile = joinDir(dir, a.APIKeyFile)
		a.RunIDsFile = joinDir(dir, a.RunIDsFile)
		a.HTTPClientConfig.SetDirectory(dir)
	}
	return c, nil
}

func joinDir(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Parse decodes and validates a configuration. Errors are one line and do
// not name a file (Load adds it).
func Parse(data []byte, d Defaults) (*Config, error) {
	c, err := parse(data, d)
	if err != nil {
		return nil, errors.New(redact(err.Error()))
	}
	return c, nil
}

func parse(data []byte, d Defaults) (*Config, error) {
	// The node tree gives positions for the errors found after decoding.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(data, err)
	}
	tree := newTree(&root)

	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: want apps: with at least one app")
		}
		return nil, tree.decodeError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("the file holds more than one YAML document (---): want one")
	}

	// Every error of the file is reported, not only the first.
	var errs errorList
	if raw.Defaults != nil {
		errs.add(checkCommon(&raw.Defaults.rawCommon, tree.defaults, "defaults"))
	}
	if len(raw.Apps) == 0 {
		errs.add(fmt.Errorf("%sno apps: want apps: with at least one app", linePrefix(keyNode(tree.top, "apps"))))
	}
	c := &Config{Apps: make([]App, 0, len(raw.Apps))}
	seen := map[string]int{}
	for i := range raw.Apps {
		ra := &raw.Apps[i]
		an := tree.app(i)
		a, err := buildApp(ra, raw.Defaults, d, tree, an, i)
		if err != nil {
			errs.add(err)
			continue
		}
		if j, ok := seen[a.Name]; ok {
			errs.add(fmt.Errorf("%sapp %q (apps[%d]) has the same name as apps[%d]%s: names must be unique",
				linePrefix(keyNode(an, "name")), a.Name, i, j, atLine(keyNode(tree.app(j), "name"))))
			continue
		}
		seen[a.Name] = i
		c.Apps = append(c.Apps, a)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// rawCommon holds the fields that an app and the defaults share. Pointers
// tell "not set" from a zero value.
type rawCommon struct {
	URL              *string       `yaml:"url"`
	APIKey           *refused      `yaml:"api_key"` // always refused; its value is never kept
	APIKeyFile       *string       `yaml:"api_key_file"`
	APIKeyEnv        *string       `yaml:"api_key_env"`
	Discovery        *rawDiscovery `yaml:"discovery"`
	Runs             *rawRuns      `yaml:"runs"`
	Timeout          *duration     `yaml:"timeout"`
	Concurrency      *integer      `yaml:"concurrency"`
	RateLimit        *float64      `yaml:"rate_limit"`
	HTTPClientConfig *httpConfig   `yaml:"http_client_config"`
	TimeOffset       *timeOffset   `yaml:"time_offset"`
}

type rawDefaults struct {
	rawCommon `yaml:",inline"`
}

type rawApp struct {
	Name       *string  `yaml:"name"`
	RunIDs     []string `yaml:"run_ids"`
	RunIDsFile *string  `yaml:"run_ids_file"`
	rawCommon  `yaml:",inline"`
}

type rawConfig struct {
	Defaults *rawDefaults `yaml:"defaults"`
	Apps     []rawApp     `yaml:"apps"`
}

type rawRuns struct {
	Retention *duration `yaml:"retention"`
	Max       *integer  `yaml:"max"`
}

type rawDiscovery struct {
	WorkflowLogs *bool     `yaml:"workflow_logs"`
	Lookback     *duration `yaml:"lookback"`
}

// duration is a Prometheus-style duration (90s, 30m, 1h, 1d) whose errors
// carry the YAML position.
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error { return collect(d.unmarshal(n)) }

func (d *duration) unmarshal(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &posError{line: n.Line, col: n.Column, msg: "want a duration like 90s, 30m or 1h, got " + kindName(n)}
	}
	md, err := model.ParseDuration(n.Value)
	if err != nil {
		return &posError{line: n.Line, col: n.Column, msg: fmt.Sprintf("want a duration like 90s, 30m or 1h, got %s", shorten(n.Value))}
	}
	*d = duration(md)
	return nil
}

type timeOffset TimeOffset

func (t *timeOffset) UnmarshalYAML(n *yaml.Node) error { return collect(t.unmarshal(n)) }

func (t *timeOffset) unmarshal(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &posError{line: n.Line, col: n.Column, msg: "time_offset: want auto, 0 or a duration like 8h or -5h, got " + kindName(n)}
	}
	v, err := ParseTimeOffset(n.Value)
	if err != nil {
		return &posError{line: n.Line, col: n.Column, msg: "time_offset: " + err.Error()}
	}
	*t = timeOffset(v)
	return nil
}

// refused accepts any value and keeps only that it was given: a field that
// exists to be refused with a clear message, without holding its value.
type refused struct{}

func (r *refused) UnmarshalYAML(*yaml.Node) error { return nil }

// plainHTTPClientConfig has the fields of promconfig.HTTPClientConfig but not
// its UnmarshalYAML, which would validate without a position.
type plainHTTPClientConfig promconfig.HTTPClientConfig

// httpConfig decodes an http_client_config with prometheus/common's
// defaults. yaml.v3 cannot decode a node strictly, so the keys are checked
// against the struct first (checkKnown), with their positions; the config is
// validated after merging.
type httpConfig struct {
	cfg promconfig.HTTPClientConfig
}

func (h *httpConfig) UnmarshalYAML(n *yaml.Node) error { return collect(h.unmarshal(n)) }

func (h *httpConfig) unmarshal(n *yaml.Node) error {
	budget := maxCheckedNodes
	if err := checkKnown(n, reflect.TypeOf(plainHTTPClientConfig{}), 0, &budget); err != nil {
		return err
	}
	h.cfg = promconfig.DefaultHTTPClientConfig
	err := n.Decode((*plainHTTPClientConfig)(&h.cfg))
	var te *yaml.TypeError
	if err == nil || errors.As(err, &te) {
		return err
	}
	// Errors of prometheus/common's own unmarshalers carry no position.
	// Column-1 places the error on http_client_config itself, not on its
	// first key.
	return &posError{line: n.Line, col: n.Column - 1, msg: hideURL(oneLine(err.Error()))}
}

// integer is an int that refuses what is not a YAML integer (yaml.v3 would
// truncate 1.5 to 1).
type integer int

func (i *integer) UnmarshalYAML(n *yaml.Node) error { return collect(i.unmarshal(n)) }

func (i *integer) unmarshal(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		got := kindName(n)
		if n.Kind == yaml.ScalarNode {
			got = tagName(n.ShortTag())
		}
		return &posError{line: n.Line, col: n.Column, msg: "want an integer, got " + got}
	}
	var v int64
	if err := n.Decode(&v); err != nil || int64(int(v)) != v {
		return &posError{line: n.Line, col: n.Column, msg: "integer out of range"}
	}
	*i = integer(v)
	return nil
}

// hideURL drops the URL that net/url quotes in its errors: it may hold a
// password.
var parseQuoted = regexp.MustCompile(`parse "(?:[^"\\]|\\.)*":\s*`)

func hideURL(s string) string { return parseQuoted.ReplaceAllString(s, "invalid URL: ") }

// maxCheckedNodes bounds the work of checkKnown, which follows aliases.
const maxCheckedNodes = 10000

// checkKnown refuses mapping keys that the struct type t (or what it holds)
// does not have, naming the key's line.
func checkKnown(n *yaml.Node, t reflect.Type, depth int, budget *int) error {
	n = deref(n)
	if n == nil || depth > 16 {
		return nil
	}
	if *budget--; *budget < 0 {
		return &posError{line: n.Line, col: n.Column, msg: "http_client_config is too large or too deeply aliased"}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields, rest := structFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value == "<<" {
				continue
			}
			ft, ok := fields[k.Value]
			switch {
			case ok:
			case rest != nil:
				ft = rest
			default:
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t)}}
			}
			if err := checkKnown(n.Content[i+1], ft, depth+1, budget); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := checkKnown(n.Content[i], t.Elem(), depth+1, budget); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, it := range n.Content {
			if err := checkKnown(it, t.Elem(), depth+1, budget); err != nil {
				return err
			}
		}
	}
	return nil
}

// structFields maps the YAML keys of a struct to their types; rest is the
// element type of an inline map, which takes any other key.
func structFields(t reflect.Type) (fields map[string]reflect.Type, rest reflect.Type) {
	fields = map[string]reflect.Type{}
	if t == reflect.TypeOf(promconfig.URL{}) {
		return fields, nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		if strings.Contains(opts, "inline") {
			switch f.Type.Kind() {
			case reflect.Struct:
				sub, r := structFields(f.Type)
				for k, v := range sub {
					fields[k] = v
				}
				if r != nil {
					rest = r
				}
			case reflect.Map:
				rest = f.Type.Elem()
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, rest
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// nameLooksLikeKey reports whether an app name holds what is probably a
// pasted key: the name is a label on every metric, where a key must never
// be ("app-" and a lower-case word is a fine name).
func nameLooksLikeKey(name string) bool {
	return client.ContainsKey(name)
}

// keyLike reports whether a value meant to be a path or a variable name is
// an API key instead.
func keyLike(s string) bool {
	return client.IsKey(strings.TrimSpace(s))
}

const keysLive = "API keys live in files or the environment: put the key in a file and set api_key_file, or in an environment variable and set api_key_env"

// checkCommon refuses what is wrong in the app or defaults section itself,
// whatever the merge: inline keys and both key sources at once.
func checkCommon(rc *rawCommon, n *yaml.Node, where string) error {
	if rc.APIKey != nil || keyNode(n, "api_key") != nil { // even api_key: ~
		return fmt.Errorf("%s%s: api_key is not allowed: %s", linePrefix(keyNode(n, "api_key")), where, keysLive)
	}
	if rc.APIKeyFile != nil && keyLike(*rc.APIKeyFile) {
		return fmt.Errorf("%s%s: api_key_file holds what looks like an API key, not a path: %s", linePrefix(keyNode(n, "api_key_file")), where, keysLive)
	}
	if rc.APIKeyEnv != nil && keyLike(*rc.APIKeyEnv) {
		return fmt.Errorf("%s%s: api_key_env holds what looks like an API key, not a variable name: %s", linePrefix(keyNode(n, "api_key_env")), where, keysLive)
	}
	if rc.APIKeyFile != nil && rc.APIKeyEnv != nil {
		return fmt.Errorf("%s%s: both api_key_file and api_key_env are set: want exactly one", linePrefix(keyNode(n, "api_key_env")), where)
	}
	return nil
}

// origin tells where a merged value came from, for error messages.
type origin struct {
	node *yaml.Node // the key node in the app or defaults, nil for a flag
	in   string     // "" for the app itself, "defaults" or a flag name
}

func (o origin) String() string {
	switch {
	case o.in == "":
		return ""
	case o.node != nil:
		return " (set in " + o.in + ":)"
	default:
		return fmt.Sprintf(" (from flag %s)", o.in)
	}
}

type merger struct {
	app, defs *yaml.Node
}

// pick returns the origin of a field: the app's own key, the defaults' key,
// or the flag.
func (m merger) pick(inApp, inDefs bool, flag string, path ...string) origin {
	if inApp {
		return origin{node: keyNode(m.app, path...)}
	}
	if inDefs {
		return origin{node: keyNode(m.defs, path...), in: "defaults"}
	}
	return origin{in: flag}
}

func buildApp(ra *rawApp, rd *rawDefaults, d Defaults, t *tree, an *yaml.Node, i int) (App, error) {
	var a App
	// Name first: every other message names the app.
	if ra.Name == nil {
		return a, fmt.Errorf("%sapps[%d]: name is missing: every app needs a unique name (the app label)", linePrefix(an), i)
	}
	a.Name = *ra.Name
	if !nameRE.MatchString(a.Name) {
		return a, fmt.Errorf("%sapps[%d]: name %s is invalid: want letters, digits, '_', '.' and '-' only", linePrefix(keyNode(an, "name")), i, shorten(a.Name))
	}
	if nameLooksLikeKey(a.Name) {
		return a, fmt.Errorf("%sapps[%d]: name looks like an API key: the name is the app label, shown in every metric; %s", linePrefix(keyNode(an, "name")), i, keysLive)
	}
	where := fmt.Sprintf("app %q", a.Name)
	if err := checkCommon(&ra.rawCommon, an, where); err != nil {
		return a, err
	}
	var def rawCommon
	if rd != nil {
		def = rd.rawCommon
	}
	m := merger{app: an, defs: t.defaults}
	fail := func(o origin, format string, args ...any) error {
		return fmt.Errorf("%s%s: %s%s", linePrefix(o.node), where, fmt.Sprintf(format, args...), o)
	}

	// url
	a.URL = d.URL
	if def.URL != nil {
		a.URL = *def.URL
	}
	if ra.URL != nil {
		a.URL = *ra.URL
	}
	o := m.pick(ra.URL != nil, def.URL != nil, "--dify.url", "url")
	u, err := checkURL(a.URL)
	if err != nil {
		return a, fail(o, "url %v", err)
	}
	a.URL = u

	// Key source: the app's own choice replaces the defaults' as a whole.
	own := ra.APIKeyFile != nil || ra.APIKeyEnv != nil
	ks := &def
	if own {
		ks = &ra.rawCommon
	}
	switch {
	case ks.APIKeyFile != nil:
		a.APIKeyFile = *ks.APIKeyFile
		if strings.TrimSpace(a.APIKeyFile) == "" {
			return a, fail(m.pick(own, !own, "", "api_key_file"), "api_key_file is empty")
		}
	case ks.APIKeyEnv != nil:
		a.APIKeyEnv = *ks.APIKeyEnv
		if strings.TrimSpace(a.APIKeyEnv) == "" || strings.ContainsAny(a.APIKeyEnv, "= \t\r\n\x00") {
			return a, fail(m.pick(own, !own, "", "api_key_env"), "api_key_env %s is not an environment variable name", shorten(a.APIKeyEnv))
		}
	default:
		return a, fmt.Errorf("%s%s: no API key source: set api_key_file or api_key_env (in the app or in defaults:)", linePrefix(an), where)
	}

	// run_ids
	if len(ra.RunIDs) > 0 {
		seen := make(map[string]bool, len(ra.RunIDs))
		seq := valueNode(an, "run_ids")
		for j, s := range ra.RunIDs {
			id, err := client.ParseRunID(s)
			if err != nil {
				var n *yaml.Node
				if seq != nil && seq.Kind == yaml.SequenceNode && j < len(seq.Content) {
					n = seq.Content[j]
				}
				return a, fmt.Errorf("%s%s: run_ids[%d]: %v", linePrefix(n), where, j, err)
			}
			if !seen[id] {
				seen[id] = true
				a.RunIDs = append(a.RunIDs, id)
			}
		}
	}
	if ra.RunIDsFile != nil {
		a.RunIDsFile = *ra.RunIDsFile
		if strings.TrimSpace(a.RunIDsFile) == "" {
			return a, fail(m.pick(true, false, "", "run_ids_file"), "run_ids_file is empty")
		}
	}

	// discovery
	a.Discovery = d.Discovery
	var ad, dd rawDiscovery
	if def.Discovery != nil {
		dd = *def.Discovery
	}
	if ra.Discovery != nil {
		ad = *ra.Discovery
	}
	if dd.WorkflowLogs != nil {
		a.Discovery.WorkflowLogs = *dd.WorkflowLogs
	}
	if ad.WorkflowLogs != nil {
		a.Discovery.WorkflowLogs = *ad.WorkflowLogs
	}
	if dd.Lookback != nil {
		a.Discovery.Lookback = time.Duration(*dd.Lookback)
	}
	if ad.Lookback != nil {
		a.Discovery.Lookback = time.Duration(*ad.Lookback)
	}
	if a.Discovery.Lookback < 0 {
		return a, fail(m.pick(ad.Lookback != nil, dd.Lookback != nil, "--discovery.lookback", "discovery", "lookback"),
			"discovery.lookback must be >= 0, got %s", a.Discovery.Lookback)
	}

	// runs
	a.Runs = d.Runs
	var ar, dr rawRuns
	if def.Runs != nil {
		dr = *def.Runs
	}
	if ra.Runs != nil {
		ar = *ra.Runs
	}
	if dr.Retention != nil {
		a.Runs.Retention = time.Duration(*dr.Retention)
	}
	if ar.Retention != nil {
		a.Runs.Retention = time.Duration(*ar.Retention)
	}
	if dr.Max != nil {
		a.Runs.Max = int(*dr.Max)
	}
	if ar.Max != nil {
		a.Runs.Max = int(*ar.Max)
	}
	if a.Runs.Retention <= 0 {
		return a, fail(m.pick(ar.Retention != nil, dr.Retention != nil, "--runs.retention", "runs", "retention"),
			"runs.retention must be > 0, got %s", a.Runs.Retention)
	}
	if a.Runs.Max < 1 {
		return a, fail(m.pick(ar.Max != nil, dr.Max != nil, "--runs.max", "runs", "max"),
			"runs.max must be >= 1, got %d", a.Runs.Max)
	}

	// timeout, concurrency, rate_limit
	a.Timeout = d.Timeout
	if def.Timeout != nil {
		a.Timeout = time.Duration(*def.Timeout)
	}
	if ra.Timeout != nil {
		a.Timeout = time.Duration(*ra.Timeout)
	}
	if a.Timeout <= 0 {
		return a, fail(m.pick(ra.Timeout != nil, def.Timeout != nil, "--dify.timeout", "timeout"), "timeout must be > 0, got %s", a.Timeout)
	}
	a.Concurrency = d.Concurrency
	if def.Concurrency != nil {
		a.Concurrency = int(*def.Concurrency)
	}
	if ra.Concurrency != nil {
		a.Concurrency = int(*ra.Concurrency)
	}
	if a.Concurrency < 1 {
		return a, fail(m.pick(ra.Concurrency != nil, def.Concurrency != nil, "--dify.concurrency", "concurrency"),
			"concurrency must be >= 1, got %d", a.Concurrency)
	}
	a.RateLimit = d.RateLimit
	if def.RateLimit != nil {
		a.RateLimit = *def.RateLimit
	}
	if ra.RateLimit != nil {
		a.RateLimit = *ra.RateLimit
	}
	if !(a.RateLimit >= 0) || math.IsInf(a.RateLimit, 0) {
		return a, fail(m.pick(ra.RateLimit != nil, def.RateLimit != nil, "--dify.rate-limit", "rate_limit"),
			"rate_limit must be a finite number >= 0 (requests per second, 0 = off), got %v", a.RateLimit)
	}

	a.TimeOffset = d.TimeOffset
	if def.TimeOffset != nil {
		a.TimeOffset = TimeOffset(*def.TimeOffset)
	}
	if ra.TimeOffset != nil {
		a.TimeOffset = TimeOffset(*ra.TimeOffset)
	}

	// http_client_config: the app's replaces the defaults' as a whole.
	a.HTTPClientConfig = promconfig.DefaultHTTPClientConfig
	ho := origin{}
	switch {
	case ra.HTTPClientConfig != nil:
		a.HTTPClientConfig = ra.HTTPClientConfig.cfg
		ho = m.pick(true, false, "", "http_client_config")
	case def.HTTPClientConfig != nil:
		a.HTTPClientConfig = def.HTTPClientConfig.cfg
		ho = m.pick(false, true, "", "http_client_config")
	}
	if err := checkHTTPConfig(&a.HTTPClientConfig); err != nil {
		return a, fail(ho, "http_client_config: %v", err)
	}
	return a, nil
}

// checkURL validates and normalizes an API base URL. Its errors never echo
// user info (user info is refused first).
func checkURL(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", errors.New("is not set: give url: in the app or defaults:, or --dify.url (e.g. https://api.dify.ai/v1)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("is not a valid URL: want e.g. https://api.dify.ai/v1 or http://host/v1")
	}
	if u.User != nil {
		// Redacted would keep the user name, which may be a key.
		u.User = nil
		return "", fmt.Errorf("%s carries user info: credentials do not belong in the URL", shorten(u.String()))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%s: want scheme http or https", shorten(u.String()))
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("%s has no host: want e.g. https://api.dify.ai/v1", shorten(u.String()))
	}
	if u.RawQuery != "" || u.ForceQuery || strings.ContainsAny(s, "?#") {
		return "", fmt.Errorf("%s has a query or fragment: want the API base only", shorten(u.String()))
	}
	return strings.TrimRight(s, "/"), nil
}

// checkHTTPConfig validates an http_client_config and refuses any
// authentication: the exporter sends the app's key as the Bearer token.
func checkHTTPConfig(c *promconfig.HTTPClientConfig) error {
	const why = "is not allowed: the exporter authenticates with the app's API key (api_key_file or api_key_env)"
	switch {
	case c.Authorization != nil:
		return errors.New("authorization " + why)
	case c.BasicAuth != nil:
		return errors.New("basic_auth " + why)
	case c.BearerToken != "" || c.BearerTokenFile != "":
		return errors.New("bearer_token/bearer_token_file " + why)
	case c.OAuth2 != nil:
		return errors.New("oauth2 " + why)
	}
	return c.Validate()
}
