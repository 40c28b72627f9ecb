package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
)

// Keys a server may echo: the configured one (not key-shaped: only the
// client knows it is a key) and key-shaped ones it does not know.
const (
	oddKey     = "Zq9-SECRETKEY-odd-shape-77"
	foreignApp = "app-Q1w2E3r4T5y6U7i8O9p0AsDf"
	foreignSK  = "sk-proj-AbCdEf0123456789_ghIJ-klmnOP"
)

// answer is one canned HTTP answer.
type answer struct {
	status int
	ct     string
	body   string
}

// cannedServer answers every request with a; its URL ends in /v1.
func cannedServer(t *testing.T, a answer) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.ct != "" {
			w.Header().Set("Content-Type", a.ct)
		}
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/v1"
}

// leaks reports which of the secrets, or any 10-byte piece of one, is in
// text: a key cut short is still a leak.
func leaks(text string, secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		for i := 0; i+10 <= len(s); i++ {
			if strings.Contains(text, s[i:i+10]) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// Issue 11, "keys in odd places": a key a server echoes inside a 200 answer
// (or any answer) must not reach an error's text, wherever the client
// quotes the server: a decoded value, a run ID, the Content-Type.
func TestKeyEchoedByServerNeverInErrors(t *testing.T) {
	pad := strings.Repeat("x", 24) + " " // puts the key across the 40-byte cut
	run := func(field, value string) string {
		return `{"id":"` + runID + `","status":"succeeded",` + field + `:"` + value + `"}`
	}
	type call func(*client.Client) error
	runCall := func(c *client.Client) error { _, err := c.Run(context.Background(), runID); return err }
	logsCall := func(c *client.Client) error {
		p, err := c.WorkflowLogs(context.Background(), client.LogsQuery{Limit: 100})
		if err == nil && p.SkipErr != nil {
			return p.SkipErr
		}
		return err
	}
	infoCall := func(c *client.Client) error { _, err := c.Info(context.Background()); return err }
	var cases []struct {
		name string
		a    answer
		call call
	}
	add := func(name string, a answer, c call) {
		cases = append(cases, struct {
			name string
			a    answer
			call call
		}{name, a, c})
	}
	for _, key := range []string{oddKey, foreignApp, foreignSK} {
		add("total_tokens "+key, answer{200, "application/json", run(`"total_tokens"`, key)}, runCall)
		add("total_tokens padded "+key, answer{200, "application/json", run(`"total_tokens"`, pad+key)}, runCall)
		add("created_at "+key, answer{200, "application/json", run(`"created_at"`, key)}, runCall)
		add("created_at padded "+key, answer{200, "application/json", run(`"finished_at"`, pad+key)}, runCall)
		add("elapsed_time "+key, answer{200, "application/json", run(`"elapsed_time"`, key)}, runCall)
		add("run id "+key, answer{200, "application/json", `{"id":"` + key + `"}`}, runCall)
		add("run id padded "+key, answer{200, "application/json", `{"id":"` + pad + key + `"}`}, runCall)
		add("Content-Type on 200 "+key, answer{200, "application/" + key, `not json`}, runCall)
		add("Content-Type padded on 200 "+key, answer{200, "application/x" + pad[:20] + key, `not json`}, runCall)
		add("Content-Type on 400 "+key, answer{400, "text/" + key, `nope`}, runCall)
		add("Content-Type on info "+key, answer{200, "application/" + key, `[`}, infoCall)
		add("envelope on 400 "+key, answer{400, "application/json", `{"code":"` + key + `","message":"` + pad + pad + key + `"}`}, runCall)
		add("logs entry run id "+key, answer{200, "application/json",
			`{"page":1,"limit":100,"total":1,"has_more":false,"data":[{"workflow_run":{"id":"` + key + `"},"created_at":1705407629}]}`}, logsCall)
		add("logs entry created_at "+key, answer{200, "application/json",
			`{"page":1,"limit":100,"total":1,"has_more":false,"data":[{"workflow_run":{"id":"` + runID + `"},"created_at":"` + pad + key + `"}]}`}, logsCall)
		add("logs page field "+key, answer{200, "application/json", `{"page":"` + key + `","data":[]}`}, logsCall)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(client.Config{URL: cannedServer(t, tc.a), APIKey: oddKey, MaxRetries: -1, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			if err == nil {
				t.Fatalf("no error for %+v", tc.a)
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", asError(t, err))} {
				if l := leaks(text, oddKey, foreignApp, foreignSK); l != nil {
					t.Errorf("error text leaks %q: %s", l, text)
				}
			}
		})
	}
}

func TestRedactKeys(t *testing.T) {
	tests := []struct{ in, want string }{
		{"token " + foreignApp + " refused", "token app-<redacted> refused"},
		{"token " + foreignSK + ".", "token sk-<redacted>."},
		{"sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "sk-<redacted>"},
		{"dataset-AbCdEfGhIjKlMnOpQrStUv", "dataset-<redacted>"},
		// Issue 16: keys of any length, cut short or not.
		{"key app-Hq7Tz2Lm9Wx", "key app-<redacted>"},
		{"key app-Hq7Tz2", "key app-<redacted>"},
		{"app-Hq7Tz2Lm9Wx4Rb6Nc1Vd8Kp3xyz0123", "app-<redacted>"},
		{"x_app-Hq7Tz2Lm9Wx4Rb6Nc1Vd8Kp3.", "x_app-<redacted>."},
		{"sk-Ab12cdEF", "sk-<redacted>"},
		{"Authorization: Bearer Zq9-odd.token_77", "Authorization: Bearer <redacted>"},
		{"authorization: bearer\t" + oddKey, "authorization: bearer <redacted>"},
		// URLs: user info dropped, query and fragment hidden, the rest kept.
		{"at https://u:pw@dify.example.com:8443/v1/info?a=1&key=x#frag, then", "at https://<redacted>@dify.example.com:8443/v1/info?<redacted>#<redacted>, then"},
		{"http://" + oddKey + "@h/v1", "http://<redacted>@h/v1"},
		{`"http://h/v1?token=abc"`, `"http://h/v1?<redacted>"`},
		{"http://h/v1#", "http://h/v1#"},
		{"http://h/v1?", "http://h/v1?"},
		{"(see http://h/v1?x=1)", "(see http://h/v1?<redacted>)"},
		// Not secrets: left as they are.
		{"desk-lamp", "desk-lamp"},
		{"app-translator", "app-translator"},
		{"app-customer-support", "app-customer-support"},
		{"app-v2", "app-v2"},
		{"sk-short", "sk-short"},
		{"sk-learn", "sk-learn"},
		{"Bearer of news", "Bearer of news"},
		{"dify info: 404 at http://127.0.0.1:8080/v1/info: not Dify's service API", "dify info: 404 at http://127.0.0.1:8080/v1/info: not Dify's service API"},
		{"https://api.dify.ai/v1", "https://api.dify.ai/v1"},
	}
	for _, tc := range tests {
		got := client.RedactKeys(tc.in)
		if got != tc.want {
			t.Errorf("RedactKeys(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := client.RedactKeys(got); again != got {
			t.Errorf("RedactKeys is not idempotent on %q: %q", got, again)
		}
		if client.ContainsKey(tc.in) != (got != tc.in) {
			t.Errorf("ContainsKey(%q) = %v", tc.in, client.ContainsKey(tc.in))
		}
	}
}

// Issue 11: a key given as the URL's user name (no password) was printed
// by u.Redacted, which keeps the user name.
func TestNewNeverPrintsUserInfo(t *testing.T) {
	for _, u := range []string{
		"http://" + oddKey + "@dify.example.com/v1",
		"http://" + foreignApp + "@dify.example.com/v1",
		"ftp://" + oddKey + "@dify.example.com/v1",
		"http://" + oddKey + "@/v1",
		"https://" + oddKey + "@dify.example.com/v1?x=1",
		"http://" + oddKey + ":@dify.example.com/v1",
	} {
		_, err := client.New(client.Config{URL: u, APIKey: foreignApp})
		if err == nil {
			t.Errorf("New(%q): no error", u)
			continue
		}
		if l := leaks(err.Error(), oddKey, foreignApp); l != nil {
			t.Errorf("New(%q) error leaks %q: %s", u, l, err)
		}
		if !strings.Contains(err.Error(), "dify.example.com") && !strings.Contains(err.Error(), "http:///v1") {
			t.Errorf("New(%q) error does not name the host: %s", u, err)
		}
	}
}

// logsBody is a logs page of n entries, entry(i) giving each one.
func logsBody(n int, entry func(i int) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"page":1,"limit":100,"total":%d,"has_more":false,"data":[`, n)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(entry(i))
	}
	b.WriteString("]}")
	return b.String()
}

func logEntry(id string) string {
	return `{"workflow_run":{"id":"` + id + `","status":"succeeded","total_tokens":1,"created_at":1705407629},"created_at":1705407629}`
}

// Issue 11, "logs that lie": a page with more entries than asked for is
// refused before its entries are decoded; one bad entry is skipped, not
// fatal to its page.
func TestWorkflowLogsHostilePages(t *testing.T) {
	good := func(i int) string { return logEntry(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)) }
	tests := []struct {
		name     string
		body     string
		limit    int
		wantErr  string // "" for a page
		entries  int
		skipped  int
		skipText string
	}{
		{name: "28,000 entries for limit 100", body: logsBody(28000, good), limit: 100,
			wantErr: "page has 28000 entries, more than the limit 100 asked for"},
		{name: "101 entries for limit 100", body: logsBody(101, good), limit: 100,
			wantErr: "page has 101 entries, more than the limit 100 asked for"},
		{name: "21 entries for Dify's default limit", body: logsBody(21, good),
			wantErr: "page has 21 entries, more than the limit 20 asked for"},
		{name: "too many entries, each undecodable: the count is checked first",
			body: logsBody(200, func(int) string { return `{"created_at":"never"}` }), limit: 100,
			wantErr: "page has 200 entries"},
		{name: "exactly the limit", body: logsBody(100, good), limit: 100, entries: 100},
		{name: "one run ID not a UUID", limit: 100, entries: 2, skipped: 1, skipText: "invalid run ID",
			body: logsBody(3, func(i int) string {
				if i == 1 {
					return logEntry("../../info")
				}
				return good(i)
			})},
		{name: "one bad log timestamp", limit: 100, entries: 2, skipped: 1, skipText: "unrecognised timestamp",
			body: logsBody(3, func(i int) string {
				if i == 0 {
					return strings.Replace(good(i), `"created_at":1705407629}`, `"created_at":"yesterday"}`, 1)
				}
				return good(i)
			})},
		{name: "one bad run timestamp and one bad count", limit: 100, entries: 1, skipped: 2, skipText: "entry 0",
			body: logsBody(3, func(i int) string {
				switch i {
				case 0:
					return strings.Replace(good(i), `"created_at":1705407629},`, `"created_at":"yesterday"},`, 1)
				case 2:
					return strings.Replace(good(i), `"total_tokens":1`, `"total_tokens":"lots"`, 1)
				}
				return good(i)
			})},
		{name: "an entry that is not an object", limit: 100, entries: 1, skipped: 1,
			body: logsBody(2, func(i int) string {
				if i == 0 {
					return `"surprise"`
				}
				return good(i)
			})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(client.Config{URL: cannedServer(t, answer{200, "application/json", tc.body}), APIKey: wfKey, MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.WorkflowLogs(context.Background(), client.LogsQuery{Limit: tc.limit})
			if tc.wantErr != "" {
				if client.KindOf(err) != client.KindBadResponse || !strings.Contains(fmt.Sprint(err), tc.wantErr) {
					t.Fatalf("got %d entries, error %v; want a bad_response %q", len(p.Entries), err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Entries) != tc.entries || p.Skipped != tc.skipped {
				t.Errorf("entries %d, skipped %d; want %d, %d", len(p.Entries), p.Skipped, tc.entries, tc.skipped)
			}
			if (p.SkipErr != nil) != (tc.skipped > 0) || tc.skipped > 0 && client.KindOf(p.SkipErr) != client.KindBadResponse {
				t.Errorf("SkipErr = %v with %d skipped", p.SkipErr, p.Skipped)
			}
			if !strings.Contains(fmt.Sprint(p.SkipErr), tc.skipText) {
				t.Errorf("SkipErr %q does not say %q", p.SkipErr, tc.skipText)
			}
		})
	}
}

// difyBehindNginx answers like a self-hosted Dify: its nginx sends /v1 to
// the API server and everything else to the web front end (an HTML 404,
// or the app's page at /); the API server answers an unknown route with
// werkzeug's JSON not_found.
func difyBehindNginx(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!DOCTYPE html><html><head><title>Dify</title></head><body><div id="__next"></div></body></html>`)
		case !strings.HasPrefix(p, "/v1/") && p != "/v1":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(404)
			fmt.Fprint(w, `<!DOCTYPE html><html><head><title>404: This page could not be found.</title></head><body><h1>404</h1></body></html>`)
		case p == "/v1/info":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"name":"Translator","mode":"workflow"}`)
		case p == "/v1/":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"welcome":"Dify OpenAPI","api_version":"v1","server_version":"1.14.1"}`)
		case p == "/v1/workflows/logs":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"page":1,"limit":20,"total":0,"has_more":false,"data":[]}`)
		case strings.HasPrefix(p, "/v1/workflows/run/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			fmt.Fprint(w, `{"code":"not_found","message":"Workflow run not found.","status":404}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			fmt.Fprint(w, `{"code":"not_found","message":"The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.","status":404}`)
		}
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// endpointCalls makes one call to each endpoint, by its name.
var endpointCalls = map[string]func(*client.Client) error{
	"run": func(c *client.Client) error { _, err := c.Run(context.Background(), runID); return err },
	"logs": func(c *client.Client) error {
		_, err := c.WorkflowLogs(context.Background(), client.LogsQuery{})
		return err
	},
	"info":  func(c *client.Client) error { _, err := c.Info(context.Background()); return err },
	"index": func(c *client.Client) error { _, err := c.Server(context.Background()); return err },
}

// Issue 10, "a Dify URL without /v1": told apart from a run Dify does not
// know, with a message that names the fix.
func TestWrongURL(t *testing.T) {
	host := difyBehindNginx(t)
	calls := endpointCalls
	tests := []struct {
		base, call string
		kind       client.Kind
		contains   []string
	}{
		{"", "info", client.KindWrongURL, []string{"dify info: 404 (an HTML page) at " + host + "/info: not Dify's service API", `missing "/v1"`, "want e.g. " + host + "/v1)"}},
		{"", "run", client.KindWrongURL, []string{"dify run: 404", host + "/workflows/run/" + runID, `missing "/v1"`}},
		{"/", "logs", client.KindWrongURL, []string{"dify logs: 404", host + "/workflows/logs:", `missing "/v1"`, "want e.g. " + host + "/v1)"}},
		{"", "index", client.KindWrongURL, []string{"dify index: 200 (an HTML page) at " + host + "/:", `missing "/v1"`}},
		{"/api", "info", client.KindWrongURL, []string{"want e.g. " + host + "/api/v1)"}},
		// A /v1 that is not the API's: the API server's unknown route.
		{"/v1/v1", "info", client.KindWrongURL, []string{"dify info: 404 (an unknown route) at " + host + "/v1/v1/info", "check the URL"}},
		{"/v1/v1", "run", client.KindWrongURL, []string{"unknown route", "check the URL"}},
		// The right URL: a run Dify does not know is not a wrong URL.
		{"/v1", "run", client.KindNotFound, []string{"Workflow run not found."}},
		{"/v1/", "run", client.KindNotFound, []string{"Workflow run not found."}},
	}
	for _, tc := range tests {
		t.Run(tc.base+" "+tc.call, func(t *testing.T) {
			c, err := client.New(client.Config{URL: host + tc.base, APIKey: wfKey, MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			err = calls[tc.call](c)
			if k := client.KindOf(err); k != tc.kind {
				t.Fatalf("kind %v (%v), want %v", k, err, tc.kind)
			}
			for _, want := range tc.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			noSecrets(t, "error", err.Error())
		})
	}
	// And the right URL works for the other calls.
	c, _ := client.New(client.Config{URL: host + "/v1", APIKey: wfKey})
	for name, call := range calls {
		if err := call(c); err != nil && name != "run" {
			t.Errorf("%s at /v1: %v", name, err)
		}
	}
	if client.KindWrongURL.String() != "wrong_url" {
		t.Errorf("KindWrongURL = %q", client.KindWrongURL)
	}
}

// staticTransport answers every request with one 200 JSON body.
type staticTransport string

func (b staticTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(string(b))), ContentLength: int64(len(b)), Request: req}, nil
}

// benchClient is a client whose every call gets body, for a benchmark of
// decoding it.
func benchClient(b *testing.B, body string) *client.Client {
	c, err := client.New(client.Config{URL: "http://dify.invalid/v1", APIKey: wfKey, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: staticTransport(body)}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	return c
}

// BenchmarkLyingLogsPage measures refusing a page of 28,000 entries (3.6
// MiB, under the body cap) sent for limit 100.
func BenchmarkLyingLogsPage(b *testing.B) {
	body := logsBody(28000, func(i int) string { return logEntry(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)) })
	c := benchClient(b, body)
	for b.Loop() {
		if _, err := c.WorkflowLogs(context.Background(), client.LogsQuery{Limit: 100}); client.KindOf(err) != client.KindBadResponse {
			b.Fatal(err)
		}
	}
}
