package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// hostileKey is a Dify-shaped key (app- and 24 letters and digits).
const hostileKey = "app-Hq7Tz2Lm9Wx4Rb6Nc1Vd8Kp3"

// leaks6 reports the first 6-byte piece of a secret's random part found in
// text: a key cut short, or a few characters of it, is still a leak.
func leaks6(text string, secrets ...string) string {
	for _, s := range secrets {
		if _, rest, ok := strings.Cut(s, "-"); ok && (strings.HasPrefix(s, "app-") || strings.HasPrefix(s, "sk-")) {
			s = rest
		}
		for i := 0; i+6 <= len(s); i++ {
			if strings.Contains(text, s[i:i+6]) {
				return s[i : i+6]
			}
		}
	}
	return ""
}

// Issue 16: a 302 from Dify's address to another port of the same host got
// the key (Go strips Authorization only when the host name changes).
func TestRedirectNeverFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"name":"Elsewhere","mode":"workflow","server_version":"1.9.2"}`)
	}))
	defer other.Close()
	otherHost := strings.TrimPrefix(other.URL, "http://")

	calls := endpointCalls
	tests := []struct {
		name     string
		status   int
		location string // %s is the other server's host:port
		want     []string
	}{
		{"302 to another port", 302, "http://%s/v1/info", []string{"302 redirect to http://" + otherHost + "/v1/info, not followed"}},
		{"301", 301, "http://%s/v1", []string{"301 redirect to http://" + otherHost + "/v1,"}},
		{"307", 307, "http://%s/v1", []string{"307 redirect"}},
		{"308", 308, "http://%s/v1", []string{"308 redirect"}},
		{"303", 303, "http://%s/v1", []string{"303 redirect"}},
		{"key in query and fragment", 302, "http://%s/v1?token=" + hostileKey + "&k=" + foreignSK + "#" + hostileKey,
			[]string{"http://" + otherHost + "/v1?<redacted>#<redacted>"}},
		{"key as user info", 302, "http://" + hostileKey + ":" + foreignSK + "@%s/v1",
			[]string{"http://<redacted>@" + otherHost + "/v1"}},
		{"relative", 302, "/elsewhere?key=" + hostileKey, []string{"/elsewhere?<redacted>"}},
		{"no Location", 302, "", []string{"302 redirect to nowhere (no Location)"}},
		{"unreadable Location", 302, "http://%zz/" + hostileKey, []string{"redirect to an unreadable Location, not followed"}},
	}
	for _, tc := range tests {
		for name, call := range calls {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				elsewhere.Store(0)
				var here atomic.Int32
				src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					here.Add(1)
					if tc.location != "" {
						loc := tc.location
						if strings.Contains(loc, "%s") {
							loc = fmt.Sprintf(loc, otherHost)
						}
						w.Header()["Location"] = []string{loc} // as sent, even if unreadable
					}
					w.WriteHeader(tc.status)
				}))
				defer src.Close()
				// A caller's client that follows redirects (the Prometheus
				// default) must not make the Dify client follow them.
				follower := &http.Client{}
				c, err := client.New(client.Config{URL: src.URL + "/v1", APIKey: hostileKey, MaxRetries: 3, HTTPClient: follower})
				if err != nil {
					t.Fatal(err)
				}
				err = call(c)
				if n := elsewhere.Load(); n != 0 {
					t.Fatalf("the redirect was followed: %d requests reached the other port", n)
				}
				if n := here.Load(); n != 1 {
					t.Errorf("%d requests to Dify's address, want 1 (a redirect is not retried)", n)
				}
				if k := client.KindOf(err); k != client.KindWrongURL {
					t.Fatalf("kind %v (%v), want wrong_url", k, err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if l := leaks6(err.Error(), hostileKey, foreignSK); l != "" {
					t.Errorf("error leaks %q: %s", l, err)
				}
				if follower.CheckRedirect != nil {
					t.Error("the caller's http.Client was changed")
				}
			})
		}
	}
}

// jsonString writes s as a JSON string byte for byte: invalid UTF-8 is
// sent as it is, as a broken server or proxy would.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// infoServer answers GET /v1/info with name and mode as given.
func infoServer(t *testing.T, name, mode string) *client.Client {
	t.Helper()
	body := `{"name":` + jsonString(name) + `,"mode":` + jsonString(mode) + `}`
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	c, err := client.New(client.Config{URL: s.URL + "/v1", APIKey: oddKey, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue 16: a key echoed by /v1/info as name or mode reached
// dify_app_info and the landing page; a 1 MB name became a 1 MB label.
func TestInfoFieldsBoundedAndKeyFree(t *testing.T) {
	long := strings.Repeat("Übersetzer ", 100_000) // 1.2 MB, 2-byte runes
	tests := []struct {
		name, gotName, gotMode string
		wantName, wantMode     string // "" for the checks below only
	}{
		{"plain", "Translator", "workflow", "Translator", "workflow"},
		{"chatflow", "Support", "advanced-chat", "Support", "advanced-chat"},
		{"newer mode", "Agent", "agent", "Agent", "agent"},
		{"no mode (old Dify)", "Old", "", "Old", ""},
		{"Dify key as name", hostileKey, "workflow", "app-<redacted>", "workflow"},
		{"Dify key as mode", "x", hostileKey, "x", client.Unknown},
		{"short key in name", "prod app-Hq7Tz2Lm9W", "workflow", "prod app-<redacted>", "workflow"},
		{"sk key in name", "gw " + foreignSK, "workflow", "gw sk-<redacted>", "workflow"},
		{"configured key in name", "name " + oddKey, "workflow", "name <redacted>", "workflow"},
		{"Bearer in name", "Bearer " + oddKey, "workflow", "", "workflow"},
		{"URL with query in name", "see https://x.example/?k=" + foreignSK, "workflow", "see https://x.example/?<redacted>", "workflow"},
		{"URL with user info in name", "see https://u:" + foreignSK + "@x.example/v1", "workflow", "see https://<redacted>@x.example/v1", "workflow"},
		{"1 MB name", long, "workflow", "", "workflow"},
		{"1 MB mode", "x", strings.Repeat("workflow", 1<<17), "x", client.Unknown},
		{"mode with capitals", "x", "Workflow", "x", client.Unknown},
		{"mode with a quote", "x", `workflow"}`, "x", client.Unknown},
		{"control characters", "a\nb\x00c\u202e", "workflow", "a b c\u202e", "workflow"},
		{"invalid UTF-8", "a\xffb", "workflow", "", "workflow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := infoServer(t, tc.gotName, tc.gotMode).Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantName != "" && info.Name != tc.wantName {
				t.Errorf("name %.80q, want %q", info.Name, tc.wantName)
			}
			if info.Mode != tc.wantMode {
				t.Errorf("mode %.80q, want %q", info.Mode, tc.wantMode)
			}
			if len(info.Name) > client.MaxAppNameLen || !utf8.ValidString(info.Name) {
				t.Errorf("name is %d bytes (valid UTF-8: %v), want at most %d of valid UTF-8", len(info.Name), utf8.ValidString(info.Name), client.MaxAppNameLen)
			}
			if len(info.Mode) > 32 {
				t.Errorf("mode is %d bytes", len(info.Mode))
			}
			for _, v := range []string{info.Name, info.Mode} {
				if l := leaks6(v, hostileKey, foreignSK, oddKey); l != "" {
					t.Errorf("%q leaks %q", v, l)
				}
			}
		})
	}
}

// runBody is a run answer with workflow_id and status as given.
func runBody(workflowID, status string) string {
	return fmt.Sprintf(`{"id":%q,"workflow_id":%q,"status":%q,"created_at":1705407629}`, runID, workflowID, status)
}

// Issue 16: a 10 KB workflow_id made every scrape 112 MB instead of
// 1.7 MB. Dify's IDs are UUIDs and its statuses short words: anything else
// is a bad answer.
func TestRunStringsBounded(t *testing.T) {
	tests := []struct {
		name, body string
		wantErr    string // "" for a run
		want       client.Run
	}{
		{"UUID", runBody(wfID, "succeeded"), "", client.Run{ID: runID, WorkflowID: wfID, Status: "succeeded", CreatedAt: t0}},
		{"upper-case UUID", runBody(strings.ToUpper(wfID), "running"), "", client.Run{ID: runID, WorkflowID: wfID, Status: "running", CreatedAt: t0}},
		{"no workflow_id", `{"id":"` + runID + `","workflow_id":null,"status":"succeeded"}`, "", client.Run{ID: runID, Status: "succeeded"}},
		{"a status from a newer Dify", runBody(wfID, "queued_for_review"), "", client.Run{ID: runID, WorkflowID: wfID, Status: "queued_for_review", CreatedAt: t0}},
		{"10 KB workflow_id", runBody(strings.Repeat("a", 10_000), "succeeded"), "invalid workflow_id", client.Run{}},
		{"UUID and more", runBody(wfID+"x", "succeeded"), "invalid workflow_id", client.Run{}},
		{"key as workflow_id", runBody(hostileKey, "succeeded"), "invalid workflow_id", client.Run{}},
		{"1 MB status", runBody(wfID, strings.Repeat("s", 1<<20)), "invalid run status", client.Run{}},
		{"status with spaces", runBody(wfID, "all good"), "invalid run status", client.Run{}},
		{"key as status", runBody(wfID, hostileKey), "invalid run status", client.Run{}},
		{"lower-case key as status", runBody(wfID, strings.ToLower(hostileKey)), "invalid run status", client.Run{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(client.Config{URL: cannedServer(t, answer{200, "application/json", tc.body}), APIKey: oddKey, MaxRetries: 3})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Run(context.Background(), runID)
			if tc.wantErr == "" {
				if err != nil || r != tc.want {
					t.Errorf("got %+v, %v; want %+v", r, err, tc.want)
				}
				return
			}
			if client.KindOf(err) != client.KindBadResponse || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %+v, %v; want a bad_response %q", r, err, tc.wantErr)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes: %.100s…", len(err.Error()), err)
			}
			if l := leaks6(err.Error(), hostileKey); l != "" {
				t.Errorf("error leaks %q: %s", l, err)
			}
		})
	}
}

// A log row with a workflow_id or version in no real shape is skipped and
// counted like any undecodable row; the rest of its page is kept.
func TestLogEntryStringsBounded(t *testing.T) {
	row := func(i int, fields string) string {
		return fmt.Sprintf(`{"workflow_run":{"id":"00000000-0000-4000-8000-%012d","status":"succeeded",%s"created_at":1705407629},"created_at":1705407629}`, i, fields)
	}
	tests := []struct {
		name, fields string
		skip         string // the reason, "" if the row is kept
		version      string
	}{
		{"draft", `"version":"draft",`, "", "draft"},
		{"published", `"version":"2025-01-16 12:00:00.123456",`, "", "2025-01-16 12:00:00.123456"},
		{"no version", ``, "", ""},
		{"null version", `"version":null,`, "", ""},
		{"with a workflow_id", `"workflow_id":"` + wfID + `",`, "", ""},
		{"10 KB workflow_id", `"workflow_id":"` + strings.Repeat("w", 10_000) + `",`, "invalid workflow_id", ""},
		{"1 MB version", `"version":"` + strings.Repeat("9", 1<<20) + `",`, "invalid workflow version", ""},
		{"65-byte version", `"version":"` + strings.Repeat("9", 65) + `",`, "invalid workflow version", ""},
		{"version with a newline", `"version":"draft\nx",`, "invalid workflow version", ""},
		{"key as version", `"version":"` + hostileKey + `",`, "invalid workflow version", ""},
		{"10 KB status", `"status":"` + strings.Repeat("r", 10_000) + `",`, "invalid run status", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := logsBody(3, func(i int) string {
				if i == 1 {
					return strings.Replace(row(i, tc.fields), `"status":"succeeded",`, "", strings.Count(tc.fields, `"status"`))
				}
				return row(i, "")
			})
			c, err := client.New(client.Config{URL: cannedServer(t, answer{200, "application/json", body}), APIKey: oddKey, MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.WorkflowLogs(context.Background(), client.LogsQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if tc.skip == "" {
				if len(p.Entries) != 3 || p.Skipped != 0 || p.Entries[1].Version != tc.version {
					t.Fatalf("%d entries, %d skipped (%v); want 3 and 0, version %q", len(p.Entries), p.Skipped, p.SkipErr, tc.version)
				}
				return
			}
			if len(p.Entries) != 2 || p.Skipped != 1 {
				t.Fatalf("%d entries, %d skipped; want 2 and 1", len(p.Entries), p.Skipped)
			}
			if client.KindOf(p.SkipErr) != client.KindBadResponse || !strings.Contains(p.SkipErr.Error(), tc.skip) {
				t.Errorf("SkipErr %v, want a bad_response %q", p.SkipErr, tc.skip)
			}
			if n := len(p.SkipErr.Error()); n > 300 {
				t.Errorf("SkipErr is %d bytes", n)
			}
			if l := leaks6(p.SkipErr.Error(), hostileKey); l != "" {
				t.Errorf("SkipErr leaks %q: %s", l, p.SkipErr)
			}
		})
	}
}

// indexServer answers GET /v1/ with body and an X-Version header (none if
// header is "").
func indexServer(t *testing.T, body, header string) *client.Client {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if header != "" {
			w.Header().Set("X-Version", header)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	c, err := client.New(client.Config{URL: s.URL + "/v1", APIKey: oddKey, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue 16: a 1 MB server_version became a 1 MB label, log line and
// landing page; and the release can be read from X-Version where the body
// does not say it.
func TestServerVersionBounded(t *testing.T) {
	index := func(v string) string {
		return `{"welcome":"Dify OpenAPI","api_version":"v1","server_version":"` + v + `"}`
	}
	huge := strings.Repeat("1.", 1<<19) + "1"
	tests := []struct {
		name, body, header string
		want               string
		bad                bool
		seen               string
	}{
		{"body and header", index("1.9.2"), "1.9.2", "1.9.2", false, "1.9.2"},
		{"suffix", index("0.15.3-fix1"), "", "0.15.3-fix1", false, ""},
		{"pre-release", index("1.0.0-beta.1"), "", "1.0.0-beta.1", false, ""},
		{"v prefix", index("v1.13.0"), "", "v1.13.0", false, ""},
		{"body without version: the header's", `{"welcome":"Dify OpenAPI"}`, "1.14.1", "1.14.1", false, "1.14.1"},
		{"neither", `{"welcome":"Dify OpenAPI"}`, "", "", false, ""},
		{"1 MB server_version", index(huge), "", client.Unknown, true, ""},
		{"1 MB both", index(huge), huge, client.Unknown, true, ""},
		{"33 bytes", index("1.2.3-" + strings.Repeat("a", 27)), "", client.Unknown, true, ""},
		{"not a version", index("latest"), "", client.Unknown, true, ""},
		{"two parts", index("1.9"), "", client.Unknown, true, ""},
		{"key as version", index(hostileKey), "", client.Unknown, true, ""},
		{"key after a version", index("1.2.3-" + hostileKey[:20]), "", client.Unknown, true, ""},
		{"bad body, good header", index("<script>"), "1.9.2", "1.9.2", true, "1.9.2"},
		{"no body version, bad header", `{}`, "1.9.2 (patched)", client.Unknown, true, ""},
		{"good body, bad header", index("1.9.2"), huge, "1.9.2", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := indexServer(t, tc.body, tc.header)
			s, err := c.Server(context.Background())
			if s.ServerVersion != tc.want {
				t.Errorf("version %.60q, want %q", s.ServerVersion, tc.want)
			}
			if tc.bad != (err != nil) || tc.bad && client.KindOf(err) != client.KindBadResponse {
				t.Errorf("error %v, want a bad_response: %v", err, tc.bad)
			}
			if tc.bad && s.Date.IsZero() {
				t.Error("the Date is lost with a bad version")
			}
			if err != nil {
				if n := len(err.Error()); n > 300 {
					t.Errorf("error is %d bytes", n)
				}
				if l := leaks6(err.Error(), hostileKey); l != "" {
					t.Errorf("error leaks %q: %s", l, err)
				}
			}
			if got := c.SeenVersion(); got != tc.seen {
				t.Errorf("SeenVersion %.60q, want %q", got, tc.seen)
			}
		})
	}
}

// Every Dify answer carries X-Version, so the release is known where a
// proxy hides GET /v1/, and from answers that are errors.
func TestSeenVersion(t *testing.T) {
	s := newServer(t)
	s.SetServerVersion("1.11.0")
	s.SetFault(difytest.EndpointIndex, difytest.Fault{Status: 404, ContentType: "text/html", Body: "<html>hidden</html>"})
	c, _ := newClient(t, s, wfKey, nil)
	if v := c.SeenVersion(); v != "" {
		t.Errorf("SeenVersion before any call = %q, want empty", v)
	}
	if _, err := c.Server(context.Background()); client.KindOf(err) != client.KindWrongURL {
		t.Fatalf("GET /v1/ hidden: %v", err)
	}
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := c.SeenVersion(); v != "1.11.0" {
		t.Errorf("SeenVersion after /info = %q, want 1.11.0", v)
	}

	// An upgrade shows in the next answer, even a refusal.
	s.SetServerVersion("1.13.0")
	s.RevokeKey(wfKey)
	if _, err := c.Info(context.Background()); client.KindOf(err) != client.KindUnauthorized {
		t.Fatalf("revoked key: %v", err)
	}
	if v := c.SeenVersion(); v != "1.13.0" {
		t.Errorf("SeenVersion after a 401 = %q, want 1.13.0", v)
	}

	// A header in no release's shape leaves the last good one.
	s.SetServerVersion(strings.Repeat("x", 4096))
	c.Info(context.Background())
	if v := c.SeenVersion(); v != "1.13.0" {
		t.Errorf("SeenVersion after a garbage X-Version = %.40q, want 1.13.0", v)
	}
}

func TestSeenVersionConcurrent(t *testing.T) {
	s := newServer(t)
	c, _ := newClient(t, s, wfKey, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if i%2 == 0 {
					c.Info(context.Background())
				} else {
					_ = c.SeenVersion()
				}
			}
		}()
	}
	wg.Wait()
	if v := c.SeenVersion(); v != difytest.DefaultVersion {
		t.Errorf("SeenVersion = %q, want %q", v, difytest.DefaultVersion)
	}
}

// Issue 16: a 429 without a usable Retry-After was tried three times per
// call (123 calls a scrape instead of 41).
func TestRateLimitedTriesOnce(t *testing.T) {
	serverDate := time.Date(2024, 1, 16, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, retryAfter string
		deadline         time.Duration // 0: none
		requests         int
		wait             time.Duration
		usable           bool
	}{
		{"no Retry-After", "", 0, 1, 0, false},
		{"unparsable", "soon", 0, 1, 0, false},
		{"negative", "-5", 0, 1, 0, false},
		{"zero", "0", 0, 1, 0, false},
		{"past date", serverDate.Add(-time.Minute).Format(http.TimeFormat), 0, 1, 0, false},
		{"beyond the deadline", "5", 2 * time.Second, 1, 5 * time.Second, true},
		{"beyond what a call waits", "31", 0, 1, 31 * time.Second, true},
		{"an hour", "3600", 0, 1, time.Hour, true},
		{"absurd: capped", "99999999999999999999999", 0, 1, time.Hour, true},
		{"a day: capped", "86400", 0, 1, time.Hour, true},
		{"date, against the server's clock", serverDate.Add(90 * time.Second).Format(http.TimeFormat), 0, 1, 90 * time.Second, true},
		{"date a year on: capped", serverDate.AddDate(1, 0, 0).Format(http.TimeFormat), 0, 1, time.Hour, true},
		{"short: waited out within the call", "1", 0, 3, time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				// Dify's clock is a year behind: a date is read against it.
				w.Header().Set("Date", serverDate.Format(http.TimeFormat))
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(429)
				fmt.Fprint(w, `{"code":"too_many_requests","message":"Too many requests.","status":429}`)
			}))
			defer s.Close()
			c, err := client.New(client.Config{URL: s.URL + "/v1", APIKey: hostileKey})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			_, err = c.Run(ctx, runID)
			if k := client.KindOf(err); k != client.KindRateLimited {
				t.Fatalf("kind %v (%v), want rate_limited", k, err)
			}
			if got := int(n.Load()); got != tc.requests {
				t.Errorf("%d requests, want %d (default retries)", got, tc.requests)
			}
			wait, ok := client.RetryAfter(err)
			if ok != tc.usable || wait != tc.wait {
				t.Errorf("RetryAfter = %v, %v; want %v, %v", wait, ok, tc.wait, tc.usable)
			}
		})
	}
	if _, ok := client.RetryAfter(fmt.Errorf("not a client error")); ok {
		t.Error("RetryAfter of a plain error is usable")
	}
}

// A huge answer is cut before it is redacted (redaction reads about 2 MB
// a second), at a space, so that no key or URL across the cut escapes.
func TestHugeTextCutWithoutLeaks(t *testing.T) {
	pad := strings.Repeat("word ", 30) // 150 bytes: the key starts inside the 200 shown
	tests := []struct{ name, message string }{
		{"key then a megabyte", pad + hostileKey + strings.Repeat("x", 1<<20)},
		{"key near the cut", pad + strings.Repeat("y", 1000) + " " + hostileKey + " z"},
		{"user info across the cut", pad + "http://user:" + strings.Repeat("p", 2000) + foreignSK + "@h/v1 tail"},
		{"query across the cut", pad + "http://h/v1?k=" + strings.Repeat("q", 900) + hostileKey + " tail"},
		{"one huge word", hostileKey + strings.Repeat("k", 1<<21)},
		{"Bearer across the cut", pad + strings.Repeat("b", 40) + " Bearer " + strings.Repeat("T", 1100) + oddKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"code":"invalid_param","message":` + jsonString(tc.message) + `,"status":400}`
			c, err := client.New(client.Config{URL: cannedServer(t, answer{400, "application/json", body}), APIKey: hostileKey, MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Run(context.Background(), runID)
			if client.KindOf(err) != client.KindOther {
				t.Fatalf("kind %v: %v", client.KindOf(err), err)
			}
			if n := len(err.Error()); n > 400 {
				t.Errorf("error is %d bytes", n)
			}
			if l := leaks6(err.Error(), hostileKey, foreignSK, oddKey); l != "" {
				t.Errorf("error leaks %q: %s", l, err)
			}
		})
	}
}

// BenchmarkHugeServerVersion measures refusing a 1 MB server_version in
// GET /v1/, the same in X-Version: once 1.6 s of regular expressions.
func BenchmarkHugeServerVersion(b *testing.B) {
	huge := strings.Repeat("1.", 1<<19) + "1"
	body := `{"welcome":"Dify OpenAPI","api_version":"v1","server_version":"` + huge + `"}`
	c := benchClient(b, body)
	for b.Loop() {
		if s, err := c.Server(context.Background()); s.ServerVersion != client.Unknown || client.KindOf(err) != client.KindBadResponse {
			b.Fatal(s.ServerVersion, err)
		}
	}
}

// BenchmarkWorkflowLogsPage measures decoding a full page of 100 log rows,
// each with the strings the client checks (workflow_id, status, version).
func BenchmarkWorkflowLogsPage(b *testing.B) {
	body := logsBody(100, func(i int) string {
		return fmt.Sprintf(`{"workflow_run":{"id":"00000000-0000-4000-8000-%012d","workflow_id":%q,"version":"2025-01-16 12:00:00.000000","status":"partial-succeeded","total_tokens":1,"created_at":1705407629},"created_at":1705407629}`, i, wfID)
	})
	c := benchClient(b, body)
	for b.Loop() {
		if p, err := c.WorkflowLogs(context.Background(), client.LogsQuery{Limit: 100}); err != nil || len(p.Entries) != 100 {
			b.Fatal(len(p.Entries), p.SkipErr, err)
		}
	}
}
