// Package dashboards ships the Grafana dashboard of dify_exporter (dify-overview.json) and
// helpers to inspect its queries, e.g. to run every panel query against a real Prometheus.
package dashboards

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Overview is the Grafana dashboard "Dify overview" (uid dify-overview), import-ready JSON.
//
//go:embed dify-overview.json
var Overview []byte

// Query is one PromQL query of a dashboard panel, with the dashboard variables expanded.
type Query struct {
	PanelID    int
	PanelTitle string
	// RefID is the target's refId ("A", "B", ...).
	RefID string
	Expr  string
	// Instant is true for instant queries (tables), false for range queries.
	Instant bool
}

type panel struct {
	ID      int      `json:"id"`
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Panels  []panel  `json:"panels"` // rows (collapsed ones keep their panels here)
	Targets []target `json:"targets"`
}

type target struct {
	RefID   string `json:"refId"`
	Expr    string `json:"expr"`
	Instant bool   `json:"instant"`
	Range   *bool  `json:"range"`
	Hide    bool   `json:"hide"`
}

// variableRef matches Grafana's variable syntaxes: ${name}, ${name:format}, $name, [[name]].
var variableRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[A-Za-z0-9_]+)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)(?::[A-Za-z0-9_]+)?\]\]`)

// Queries returns the expression of every (non-hidden) target of every panel of a dashboard,
// panels nested in rows included, in dashboard order, with the variables expanded from vars:
// keys are variable names without "$", e.g. {"__rate_interval": "1m", "job": "dify_exporter",
// "app": ".+"}. Values are inserted verbatim (pass regexes for multi-value variables used
// with =~). A variable that vars does not define is an error.
func Queries(dashboardJSON []byte, vars map[string]string) ([]Query, error) {
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard: %w", err)
	}
	var out []Query
	var walk func([]panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Hide || strings.TrimSpace(t.Expr) == "" {
					continue
				}
				expr, err := expand(t.Expr, vars)
				if err != nil {
					return fmt.Errorf("panel %d (%q) target %s: %w", p.ID, p.Title, t.RefID, err)
				}
				out = append(out, Query{
					PanelID:    p.ID,
					PanelTitle: p.Title,
					RefID:      t.RefID,
					Expr:       expr,
					Instant:    t.Instant && (t.Range == nil || !*t.Range),
				})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	return out, nil
}

func expand(expr string, vars map[string]string) (string, error) {
	var missing []string
	res := variableRef.ReplaceAllStringFunc(expr, func(m string) string {
		sm := variableRef.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for variable(s) %s in %q", strings.Join(missing, ", "), expr)
	}
	return res, nil
}
