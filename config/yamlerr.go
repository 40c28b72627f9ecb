package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/client"
)

// posError is an error found while decoding a node, with its position.
type posError struct {
	line, col int
	msg       string
}

func (e *posError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// tree is the file's node tree, used to put errors in context.
type tree struct {
	top      *yaml.Node // the top mapping, nil if none
	defaults *yaml.Node // the defaults mapping, nil if none
	apps     *yaml.Node // the apps sequence, nil if none
}

func newTree(root *yaml.Node) *tree {
	t := &tree{}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return t
	}
	t.top = root
	t.defaults = asKind(valueNode(root, "defaults"), yaml.MappingNode)
	t.apps = asKind(valueNode(root, "apps"), yaml.SequenceNode)
	return t
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func asKind(n *yaml.Node, k yaml.Kind) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != k {
		return nil
	}
	return n
}

// app returns the mapping node of apps[i], or nil.
func (t *tree) app(i int) *yaml.Node {
	if t.apps == nil || i < 0 || i >= len(t.apps.Content) {
		return nil
	}
	return asKind(t.apps.Content[i], yaml.MappingNode)
}

// pair returns the key and value nodes at path in nested mappings.
func pair(m *yaml.Node, path ...string) (k, v *yaml.Node) {
	for _, p := range path {
		m = asKind(m, yaml.MappingNode)
		if m == nil {
			return nil, nil
		}
		k, v = nil, nil
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == p {
				k, v = m.Content[i], m.Content[i+1]
			}
		}
		if k == nil {
			return nil, nil
		}
		m = v
	}
	return k, v
}

func keyNode(m *yaml.Node, path ...string) *yaml.Node {
	k, _ := pair(m, path...)
	return k
}

func valueNode(m *yaml.Node, path ...string) *yaml.Node {
	_, v := pair(m, path...)
	return deref(v)
}

func linePrefix(n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d: ", n.Line)
}

func atLine(n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", n.Line)
}

func before(n *yaml.Node, line, col int) bool {
	return n.Line < line || n.Line == line && n.Column <= col
}

// locate describes what is at a position: the section ("defaults",
// `app "x" (apps[1])`, or "" for the top level) and the field path inside it.
func (t *tree) locate(line, col int) (section string, path []string) {
	if t.top == nil {
		return "", nil
	}
	k, v := lastBefore(t.top, line, col)
	if k == nil {
		return "", nil
	}
	switch {
	case k.Value == "defaults" && asKind(v, yaml.MappingNode) != nil:
		return "defaults", descend(deref(v), line, col)
	case k.Value == "apps" && t.apps != nil && deref(v) == t.apps:
		idx := -1
		for i, it := range t.apps.Content {
			if before(it, line, col) {
				idx = i
			}
		}
		if idx < 0 {
			return "", []string{"apps"}
		}
		section = fmt.Sprintf("apps[%d]", idx)
		if name := valueNode(t.app(idx), "name"); name != nil && name.Kind == yaml.ScalarNode && nameRE.MatchString(name.Value) {
			section = fmt.Sprintf("app %q", name.Value)
		}
		if m := t.app(idx); m != nil {
			return section, descend(m, line, col)
		}
		return section, nil
	}
	return "", append([]string{k.Value}, descend(deref(v), line, col)...)
}

// keyColumn finds the column of the mapping key named name on the line, for
// errors that give only a line; without one it returns the line's end.
func (t *tree) keyColumn(line int, name string) int {
	col := 1 << 30
	if t.top == nil {
		return col
	}
	budget := 100000
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n == nil || n.Line > line || budget <= 0 {
			return false
		}
		budget--
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i]; k.Line == line && k.Value == name {
					col = k.Column
					return true
				}
			}
		}
		for _, c := range n.Content { // aliases are not followed
			if walk(c) {
				return true
			}
		}
		return false
	}
	walk(t.top)
	return col
}

func lastBefore(m *yaml.Node, line, col int) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if before(m.Content[i], line, col) {
			k, v = m.Content[i], m.Content[i+1]
		}
	}
	return k, v
}

func descend(n *yaml.Node, line, col int) []string {
	var path []string
	for depth := 0; n != nil && depth < 32; depth++ {
		switch n.Kind {
		case yaml.MappingNode:
			k, v := lastBefore(n, line, col)
			if k == nil {
				return path
			}
			path = append(path, k.Value)
			n = deref(v)
		case yaml.SequenceNode:
			idx := -1
			for i, it := range n.Content {
				if before(it, line, col) {
					idx = i
				}
			}
			if idx < 0 || len(path) == 0 {
				return path
			}
			path[len(path)-1] += "[" + strconv.Itoa(idx) + "]"
			n = deref(n.Content[idx])
		default:
			return path
		}
		if n == nil || !before(n, line, col) {
			return path
		}
	}
	return path
}

// where joins a section and a field path for a message.
func where(section string, path []string) string {
	f := strings.Join(path, ".")
	switch {
	case section == "" && f == "":
		return "top level"
	case section == "":
		return f
	case f == "":
		return section
	}
	return section + ": " + f
}

var (
	reUnknown   = regexp.MustCompile(`^line (\d+): field (.*) not found in type (\S+)$`)
	reUnmarshal = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `.*`)? into (.+)$")
	reDupKey    = regexp.MustCompile(`^line (\d+): mapping key (.*) already defined at line (\d+)$`)
	reSyntax    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// syntaxError rewrites an error of the YAML parser, naming the line at
// fault. The parser's own line is where the enclosing block starts (the
// line of "apps:" for a bad key deep inside an app), counted from 0, and it
// keeps the line it failed at to itself; so the line is found by parsing
// ever longer prefixes of the file (see faultLine).
func syntaxError(data []byte, err error) error {
	msg := problem(err)
	if n := faultLine(data, msg); n > 0 {
		return fmt.Errorf("invalid YAML at line %d: %s", n, msg)
	}
	if m := reSyntax.FindStringSubmatch(oneLine(err.Error())); m != nil {
		return fmt.Errorf("invalid YAML at or after line %s: %s", m[1], msg)
	}
	return fmt.Errorf("invalid YAML: %s", msg)
}

// problem is the parser's message without its "yaml: line N: " prefix.
func problem(err error) string {
	s := oneLine(err.Error())
	if m := reSyntax.FindStringSubmatch(s); m != nil {
		return m[2]
	}
	return strings.TrimPrefix(s, "yaml: ")
}

// maxBisect bounds the files whose faulty line is searched for: each step
// parses the file again.
const maxBisect = 1 << 20

// faultLine returns the first line whose inclusion makes the file fail to
// parse with msg: the first n such that the first n lines fail with msg and
// the first n-1 do not, found by bisection. It returns 0 if it cannot tell.
func faultLine(data []byte, msg string) int {
	if len(data) > maxBisect {
		return 0
	}
	var ends []int // ends[i] is the offset just past line i+1
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(n int) bool {
		var root yaml.Node
		err := yaml.Unmarshal(data[:ends[n-1]], &root)
		return err != nil && problem(err) == msg
	}
	lo, hi := 0, len(ends) // the first lo lines parse; the first hi lines fail
	if !fails(hi) {
		return 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// decodeError rewrites an error of the strict decoder into one readable line.
func (t *tree) decodeError(err error) error {
	var pe *posError
	if errors.As(err, &pe) {
		sec, path := t.locate(pe.line, pe.col)
		return fmt.Errorf("line %d: %s: %s", pe.line, where(sec, path), pe.msg)
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("invalid config: %s", strings.TrimPrefix(oneLine(err.Error()), "yaml: "))
	}
	var errs errorList
	for _, e := range te.Errors {
		if rest, ok := strings.CutPrefix(e, posMarker); ok {
			var line, col int
			if f := strings.SplitN(rest, " ", 3); len(f) == 3 {
				if _, err := fmt.Sscanf(rest, "%d %d", &line, &col); err == nil {
					sec, path := t.locate(line, col)
					errs.add(fmt.Errorf("line %d: %s: %s", line, where(sec, path), f[2]))
					continue
				}
			}
		}
		errs.add(errors.New(t.rewrite(e)))
	}
	return errs.err()
}

// posMarker starts a posError carried through yaml.v3 as a TypeError's message.
const posMarker = "\x00pos "

// collect turns a posError into a yaml.TypeError: yaml.v3 gathers those and decodes the rest
// of the file, where any other error of an unmarshaler stops it and hides the errors after.
func collect(err error) error {
	var pe *posError
	if errors.As(err, &pe) {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("%s%d %d %s", posMarker, pe.line, pe.col, pe.msg)}}
	}
	return err
}

// errorList gathers the errors of a file, each once, to report them all in one line.
type errorList struct {
	msgs []string
	seen map[string]bool
}

func (l *errorList) add(err error) {
	if err == nil {
		return
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	if m := err.Error(); !l.seen[m] {
		l.seen[m] = true
		l.msgs = append(l.msgs, m)
	}
}

// err is nil without errors; past five, the rest are counted.
func (l *errorList) err() error {
	msgs := l.msgs
	switch {
	case len(msgs) == 0:
		return nil
	case len(msgs) > 5:
		msgs = append(msgs[:5:5], fmt.Sprintf("and %d more errors", len(msgs)-5))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (t *tree) rewrite(e string) string {
	e = oneLine(e)
	if m := reUnknown.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		sec, path := t.locate(line, t.keyColumn(line, m[2]))
		if len(path) > 0 {
			path = path[:len(path)-1]
		}
		msg := fmt.Sprintf("line %d: %s: unknown field %s", line, where(sec, path), shorten(m[2]))
		known := knownFields(m[3])
		if known == "" && len(path) > 0 {
			// Types that decode through a local "plain" type are known by
			// their key.
			last := path[len(path)-1]
			if i := strings.LastIndex(last, "."); i >= 0 {
				last = last[i+1:]
			}
			if t, ok := fieldsByKey[last]; ok {
				known = strings.Join(yamlFields(t), ", ")
			}
		}
		if known != "" {
			msg += " (want one of: " + known + ")"
		}
		return msg
	}
	if m := reUnmarshal.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		sec, path := t.locate(line, 1<<30)
		want, got := wantName(m[3]), tagName(m[2])
		if want == got {
			return fmt.Sprintf("line %d: %s: %s out of range", line, where(sec, path), want)
		}
		return fmt.Sprintf("line %d: %s: want %s, got %s", line, where(sec, path), want, got)
	}
	if m := reDupKey.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		name, err := strconv.Unquote(m[2])
		if err != nil {
			name = m[2]
		}
		sec, path := t.locate(line, t.keyColumn(line, name))
		if len(path) > 0 {
			path = path[:len(path)-1]
		}
		return fmt.Sprintf("line %s: %s: key %s is given twice (first at line %s)", m[1], where(sec, path), m[2], m[3])
	}
	return e
}

// fieldTypes are the types whose unknown-field errors list the known fields.
var fieldTypes = map[string]reflect.Type{}

func init() {
	for _, v := range []any{rawConfig{}, rawDefaults{}, rawApp{}, rawRuns{}, rawDiscovery{}, plainHTTPClientConfig{}} {
		t := reflect.TypeOf(v)
		fieldTypes[t.String()] = t
	}
	for _, v := range []any{promconfig.TLSConfig{}, promconfig.ProxyConfig{}} {
		t := reflect.TypeOf(v)
		fieldTypes["config."+t.Name()] = t
	}
}

// fieldsByKey finds the fields of prometheus/common types by their key.
var fieldsByKey = map[string]reflect.Type{
	"tls_config":         reflect.TypeOf(promconfig.TLSConfig{}),
	"http_client_config": reflect.TypeOf(plainHTTPClientConfig{}),
}

func knownFields(typ string) string {
	t, ok := fieldTypes[strings.TrimPrefix(typ, "*")]
	if !ok {
		return ""
	}
	return strings.Join(yamlFields(t), ", ")
}

func yamlFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			if f.Type.Kind() == reflect.Struct {
				out = append(out, yamlFields(f.Type)...)
			}
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == "api_key" { // accepted only to refuse it clearly
			continue
		}
		out = append(out, name)
	}
	return out
}

func wantName(typ string) string {
	typ = strings.TrimPrefix(typ, "*")
	switch typ {
	case "int", "int64", "uint", "uint64", "int32":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "[]string":
		return "a list of strings"
	case "config.rawConfig":
		return "a mapping with defaults: and apps:"
	case "[]config.rawApp":
		return "a list of apps"
	case "config.rawApp":
		return "an app (a mapping with name:, url:, api_key_file: ...)"
	case "config.rawDefaults":
		return "a mapping of app fields"
	case "config.rawRuns":
		return "a mapping {retention: ..., max: ...}"
	case "config.rawDiscovery":
		return "a mapping {workflow_logs: ..., lookback: ...}"
	case "config.plainHTTPClientConfig":
		return "a mapping (prometheus/common http_client_config)"
	}
	if i := strings.LastIndex(typ, "."); i >= 0 {
		typ = typ[i+1:]
	}
	return "a value of type " + typ
}

func tagName(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a value tagged " + shorten(tag)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	parts := strings.Split(s, "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, " ")
}

// shorten quotes s for a message, secrets redacted and then cut to a
// readable length, with invalid UTF-8 and control characters escaped.
func shorten(s string) string {
	const max = 48
	s = redact(s)
	if len(s) <= max {
		return strconv.Quote(s)
	}
	n := len(s)
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s), n)
}

func redact(s string) string {
	return client.RedactKeys(s)
}
