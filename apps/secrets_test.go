package apps

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// TestSecretsNeverLeak runs the exporter through every failure it reports
// (Dify's, reloads', the IDs file's, registration's): neither the keys
// nor a run's inputs and outputs reach a log line or an HTTP body.
func TestSecretsNeverLeak(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	srv.AddApp(secretKeyB, difytest.App{Name: "B", Mode: "workflow"})
	ra := putRun(srv, secretKey, "running", 1)
	ra2 := putRun(srv, secretKey, "succeeded", 2)
	rb := putRun(srv, secretKeyB, "running", 3)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "a.key")
	writeFile(t, keyFile, secretKey+"\n")
	ids := filepath.Join(dir, "a.ids")
	writeFile(t, ids, ra2+"\n")
	cfgPath := filepath.Join(dir, "c.yml")
	good := fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_file: a.key\n    run_ids: [%s]\n    run_ids_file: a.ids\n    discovery: {workflow_logs: true}\n  - name: b\n    url: %s\n    api_key_env: KEY_B\n    run_ids: [%s]\n",
		srv.URL(), ra, srv.URL(), rb)
	writeFile(t, cfgPath, good)
	t.Setenv("KEY_B", secretKeyB)
	loader := fileLoader(cfgPath)
	loader.Defaults.Timeout = 2 * time.Second
	e := start(t, loader, wiring{registration: true})

	m := e.scrape()
	m.mustValue(t, "dify_workflow_run_tokens", "app", "a", "run_id", ra)
	m.mustValue(t, "dify_workflow_run_tokens", "app", "b", "run_id", rb)

	badReload := func() {
		t.Helper()
		if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
			t.Errorf("bad reload: %d, want 500", code)
		}
	}
	faults := []struct {
		name string
		do   func()
	}{
		{"401 revoked key", func() { srv.RevokeKey(secretKey) }},
		{"403 disabled app", func() {
			srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
			srv.DisableApp(secretKey, "The app's API service has been disabled.")
		}},
		{"500 on runs", func() {
			srv.DisableApp(secretKey, "")
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 500})
		}},
		{"502 proxy page", func() {
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html"})
		}},
		{"500 on logs", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 500})
		}},
		{"429 rate limited", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: "1"})
		}},
		{"reset connection", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Reset: true})
		}},
		{"truncated body", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Truncate: true})
		}},
		{"garbage body", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: "{not json", ContentType: "application/json"})
		}},
		{"bad reload: unknown key", func() {
			srv.ClearFaults()
			writeFile(t, cfgPath, good+"    timeuot: 1s\n")
			badReload()
		}},
		{"bad reload: missing key env", func() {
			writeFile(t, cfgPath, strings.Replace(good, "KEY_B", "KEY_C", 1))
			badReload()
		}},
		{"bad reload: key file with two lines", func() {
			writeFile(t, cfgPath, good)
			writeFile(t, keyFile, secretKey+"\n"+secretKey+"\n")
			badReload()
			writeFile(t, keyFile, secretKey+"\n")
		}},
		{"bad IDs file", func() {
			writeFile(t, ids, "nonsense line\n")
			touch(t, ids, 5)
		}},
		{"registration errors", func() {
			for _, body := range []string{
				`{"app":"nope","run_id":"` + difytest.NewRunID() + `"}`,
				`{"app":"a","run_id":"nonsense"}`,
				`[{"app":"a","run_id":"` + difytest.NewRunID() + `"},{"app":"x","run_id":"y"}]`,
				`{garbage`,
			} {
				if code, _ := e.post("/api/v1/runs", body); code != http.StatusBadRequest {
					t.Errorf("registration %s: %d, want 400", body, code)
				}
			}
		}},
		{"registered run unknown to Dify", func() {
			if code, _ := e.post("/api/v1/runs", `{"app":"b","run_id":"`+difytest.NewRunID()+`"}`); code != http.StatusAccepted {
				t.Errorf("registration: %d, want 202", code)
			}
		}},
	}
	for _, st := range faults {
		st.do()
		e.scrape()
		e.get("/")
	}
	if !strings.Contains(e.log(), "level=debug") {
		t.Errorf("no debug lines logged")
	}
	e.checkNoSecrets(secretKey, secretKeyB, secretInput, secretOut)
}

// TestSecretsInRegistrationErrors posts a key where an app name or run ID
// belongs (a caller's mistake): neither the 400 body nor the debug log may
// repeat it.
func TestSecretsInRegistrationErrors(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	t.Setenv("DIFY_API_KEY", secretKey)
	e := start(t, flagsLoader(srv.URL()), wiring{registration: true})
	tests := []struct{ name, body string }{
		{"key as app", `{"app":"` + secretKey + `","run_id":"` + difytest.NewRunID() + `"}`},
		{"key as run ID", `{"app":"default","run_id":"` + secretKey + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.post("/api/v1/runs", tc.body); code != http.StatusBadRequest {
				t.Errorf("%d %q, want 400", code, body)
			}
		})
	}
	e.checkNoSecrets(secretKey)
}

// TestSecretsInConfigErrors writes the key where it does not belong in the
// config and IDs files: the errors (IDs file, reloads) must not repeat it.
// Start-up's are main's TestStartupFailures.
func TestSecretsInConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yml")
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	ids := filepath.Join(dir, "ids")
	writeFile(t, ids, secretKey+"\n")
	good := fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids_file: ids\n", srv.URL())
	writeFile(t, cfgPath, good)
	t.Setenv("KEY_A", secretKey)
	e := start(t, fileLoader(cfgPath), wiring{})
	e.scrape()
	if !strings.Contains(e.log(), "Bad run IDs file") {
		t.Errorf("the IDs file holding a key was not refused; log:\n%s", e.log())
	}
	writeFile(t, cfgPath, good+"    api_key: "+secretKey+"\n")
	if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
		t.Errorf("reload with an inline key: %d, want 500", code)
	}
	writeFile(t, cfgPath, strings.Replace(good, "KEY_A", secretKey, 1))
	if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
		t.Errorf("reload with the key as api_key_env: %d, want 500", code)
	}
	e.checkNoSecrets(secretKey)
}

// TestSecretsInDifyErrorMessages has Dify (or a proxy in front of it) echo
// the key in its error messages: the exporter shows Dify's message on the
// landing page and must clean the secrets out first.
func TestSecretsInDifyErrorMessages(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	id := putRun(srv, secretKey, "running", 1)
	t.Setenv("DIFY_API_KEY", secretKey)
	e := start(t, flagsLoader(srv.URL(), id), wiring{})
	e.scrape()
	tests := []struct {
		name  string
		fault difytest.Fault
	}{
		{"401 echoing the key", difytest.Fault{Status: 401, ContentType: "application/json",
			Body: `{"code":"unauthorized","message":"Access token is invalid: Bearer ` + secretKey + `","status":401}`}},
		{"500 echoing the key", difytest.Fault{Status: 500, ContentType: "text/plain",
			Body: "upstream error; request headers: Authorization: Bearer " + secretKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetFault(difytest.EndpointRun, tc.fault)
			m := e.scrape()
			if v := m.mustValue(t, "dify_up", "app", "default"); tc.fault.Status == 401 && v != 0 {
				t.Errorf("dify_up = %v, want 0", v)
			}
			code, page := e.get("/")
			if code != http.StatusOK {
				t.Fatalf("GET /: %d", code)
			}
			if tc.fault.Status == 401 && !strings.Contains(page, "Access token is invalid") {
				t.Errorf("landing page does not show Dify's message:\n%s", grepLines(page, "<tr><td>default"))
			}
			if !strings.Contains(page, "down") && tc.fault.Status == 401 {
				t.Errorf("landing page does not show the app down")
			}
			srv.ClearFaults()
		})
	}
	e.checkNoSecrets(secretKey)
}
