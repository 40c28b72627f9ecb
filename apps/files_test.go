package apps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// TestRunIDsFile edits the watched run-ID file between scrapes, each of
// which re-reads it if it changed.
func TestRunIDsFile(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "T", Mode: "workflow"})
	r1 := putRun(srv, secretKey, "succeeded", 1)
	r2 := putRun(srv, secretKey, "succeeded", 2)
	r3 := putRun(srv, secretKey, "failed", 3)
	ids := filepath.Join(t.TempDir(), "ids")
	writeFile(t, ids, "# runs\n"+r1+"\n")
	t.Setenv("DIFY_API_KEY", secretKey)
	loader := flagsLoader(srv.URL())
	loader.RunIDsFile = ids
	e := start(t, loader, wiring{})

	steps := []struct {
		name    string
		content string // "" keeps the file as is
		want    []string
		notWant []string
	}{
		{"initial", "", []string{r1}, []string{r2, r3}},
		{"add", r1 + "\n" + strings.ToUpper(r2) + "  # upper case\n\n", []string{r1, r2}, []string{r3}},
		{"remove", r2 + "\n", []string{r2}, []string{r1, r3}},
		{"bad line keeps the last good IDs", r3 + "\nnot-a-uuid\n", []string{r2}, []string{r1, r3}},
		{"fixed", r3 + "\n" + r1 + "\n", []string{r1, r3}, []string{r2}},
		{"emptied", "# nothing\n", nil, []string{r1, r2, r3}},
	}
	for i, st := range steps {
		if st.content != "" {
			writeFile(t, ids, st.content)
			touch(t, ids, i)
		}
		m := e.scrape()
		if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "default", "source", "file"); v != float64(len(st.want)) {
			t.Errorf("%s: tracked_runs{source=file} = %v, want %d", st.name, v, len(st.want))
		}
		for _, id := range st.want {
			if len(m.find("dify_workflow_run_tokens", "run_id", id)) != 1 {
				t.Errorf("%s: run %s not exported", st.name, id)
			}
		}
		for _, id := range st.notWant {
			if len(m.find("dify_workflow_run_tokens", "run_id", id)) != 0 {
				t.Errorf("%s: run %s exported", st.name, id)
			}
		}
	}
	if !strings.Contains(e.log(), "not-a-uuid") || !strings.Contains(e.log(), ids+":2") {
		t.Errorf("the bad line should be logged with file and line; log:\n%s", e.log())
	}
	if n := strings.Count(e.log(), "not-a-uuid"); n != 1 {
		t.Errorf("the bad file was logged %d times, want once", n)
	}

	// A deleted file keeps its last IDs and is logged once, not on every
	// sync; when it comes back it is read again.
	writeFile(t, ids, r2+"\n")
	touch(t, ids, 20)
	e.state.SyncFiles()
	if err := os.Remove(ids); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.state.SyncFiles()
		m := e.scrape()
		if len(m.find("dify_workflow_run_tokens", "run_id", r2)) != 1 {
			t.Errorf("deleted file: run %s no longer exported", r2)
		}
	}
	if n := strings.Count(e.log(), "Cannot read run IDs file"); n != 1 {
		t.Errorf("the missing file was logged %d times in 3 scrapes, want once; log:\n%s", n, grepLines(e.log(), "Cannot read"))
	}
	writeFile(t, ids, r1+"\n")
	touch(t, ids, 30)
	e.state.SyncFiles()
	m := e.scrape()
	if len(m.find("dify_workflow_run_tokens", "run_id", r1)) != 1 || len(m.find("dify_workflow_run_tokens", "run_id", r2)) != 0 {
		t.Errorf("restored file not read again:\n%s", grepLines(m.raw, "dify_workflow_run_tokens"))
	}
}
