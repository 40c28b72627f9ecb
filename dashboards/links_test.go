package dashboards

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// rawPanel is what the link and exemplar tests read of a panel.
type rawPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	FieldConfig struct {
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options string `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string          `json:"id"`
				Value json.RawMessage `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			RenameByName map[string]string `json:"renameByName"`
		} `json:"options"`
	} `json:"transformations"`
	Targets []struct {
		RefID    string `json:"refId"`
		Expr     string `json:"expr"`
		Exemplar bool   `json:"exemplar"`
	} `json:"targets"`
}

func rawPanels(t *testing.T) []rawPanel {
	t.Helper()
	var d struct {
		Panels []rawPanel `json:"panels"`
	}
	if err := json.Unmarshal(Overview, &d); err != nil {
		t.Fatal(err)
	}
	return d.Panels
}

func TestExporterURLVariable(t *testing.T) {
	var d struct {
		Templating struct {
			List []json.RawMessage `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(Overview, &d); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, raw := range d.Templating.List {
		var v struct {
			Name    string          `json:"name"`
			Type    string          `json:"type"`
			Query   json.RawMessage `json:"query"`
			Current struct {
				Value any `json:"value"`
			} `json:"current"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		if v.Name != "exporter_url" {
			continue
		}
		found = true
		if v.Type != "textbox" {
			t.Errorf("exporter_url: type %q, want textbox (the user types their exporter's address)", v.Type)
		}
		var def string
		json.Unmarshal(v.Query, &def)
		u, err := url.Parse(def)
		if err != nil || u.Scheme != "http" || u.Host == "" || u.Path != "" {
			t.Errorf("exporter_url default %s: want an http://host:port with no path", v.Query)
		}
		if v.Current.Value != def {
			t.Errorf("exporter_url: current %v, default %q", v.Current.Value, def)
		}
	}
	if !found {
		t.Fatal("no exporter_url variable")
	}
}

// TestRunTablesLinkToRunPage checks that each run table's run ID column
// links to the exporter's run page of the row's run (docs/operator-pages.md).
func TestRunTablesLinkToRunPage(t *testing.T) {
	tables := 0
	for _, p := range rawPanels(t) {
		if p.Type != "table" {
			continue
		}
		tables++
		// The column the override matches is run_id as displayed.
		display := "run_id"
		for _, tr := range p.Transformations {
			if to, ok := tr.Options.RenameByName["run_id"]; ok {
				display = to
			}
		}
		var links []struct {
			URL   string `json:"url"`
			Title string `json:"title"`
		}
		for _, o := range p.FieldConfig.Overrides {
			if o.Matcher.ID != "byName" || o.Matcher.Options != display {
				continue
			}
			for _, prop := range o.Properties {
				if prop.ID == "links" {
					if err := json.Unmarshal(prop.Value, &links); err != nil {
						t.Fatalf("panel %q: links: %v", p.Title, err)
					}
				}
			}
		}
		if len(links) != 1 {
			t.Errorf("panel %q: %d links on column %q, want 1", p.Title, len(links), display)
			continue
		}
		link := links[0].URL
		base, query, ok := strings.Cut(link, "?")
		if base != "${exporter_url}/runs" || !ok {
			t.Errorf("panel %q: link %q, want ${exporter_url}/runs?…", p.Title, link)
			continue
		}
		q, err := url.ParseQuery(query)
		if err != nil || q.Get("run_id") != "${__value.raw}" || q.Get("app") != "${__data.fields.app}" || len(q) != 2 {
			t.Errorf("panel %q: link query %q, want app=${__data.fields.app} and run_id=${__value.raw}", p.Title, query)
		}
	}
	if tables != 4 {
		t.Errorf("%d run tables, want 4", tables)
	}
}

// TestExemplarPanels checks that the duration and finished-runs panels ask
// for exemplars, once per panel, on the histogram's buckets and the
// finished counter.
func TestExemplarPanels(t *testing.T) {
	want := map[string]string{
		"Run duration p50 / p95":             "dify_workflow_run_duration_seconds_bucket",
		"Runs finished by status (per hour)": "dify_workflow_runs_finished_total",
	}
	for _, p := range rawPanels(t) {
		n := 0
		for _, tg := range p.Targets {
			if !tg.Exemplar {
				continue
			}
			n++
			if m, ok := want[p.Title]; !ok || !strings.Contains(tg.Expr, m) {
				t.Errorf("panel %q target %s asks for exemplars of %q", p.Title, tg.RefID, tg.Expr)
			}
		}
		if _, ok := want[p.Title]; ok {
			if n != 1 {
				t.Errorf("panel %q: %d targets ask for exemplars, want 1", p.Title, n)
			}
			delete(want, p.Title)
		}
	}
	for title := range want {
		t.Errorf("no panel %q", title)
	}
}
