package collector

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/exposition"
)

// The exposition the run cache serves equals the one client_golang makes
// from Collect for the same state, through runs that change, finish,
// vanish from Dify, expire and are evicted, and an app removed.
func TestRunCacheMatchesCollect(t *testing.T) {
	f := newFixture(t, withDiscovery(5))
	cache := exposition.NewCache()
	cached := New(nil, WithClock(f.now), WithRunCache(cache))
	cached.SetApps([]AppConfig{f.exp.App("translator").cfg})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cached)

	compare := func(step string) {
		t.Helper()
		f.refresh(t)
		ctx := t.Context()
		cached.Refresh(ctx)
		want := gatherText(t, f.reg)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := cache.Write(&b, expfmt.NewFormat(expfmt.TypeTextPlain), mfs); err != nil {
			t.Fatal(err)
		}
		if got := parseText(t, b.String()); got != want {
			t.Errorf("%s: the cache's exposition differs from Collect's:\n--- cache\n%s\n--- collect\n%s", step, got, want)
		}
	}
	listed := runID(1)
	f.srv.PutRun(testKey, finishedRun(listed, "stopped"))
	for _, e := range []*Exporter{f.exp, cached} {
		e.App("translator").SetRunIDs(SourceStatic, []string{listed})
	}
	ids := putLoggedRuns(f.srv, f.now(), 4, "succeeded")
	going := difytest.NewRunID()
	f.srv.PutRun(testKey, difytest.Run{ID: going, WorkflowID: wfID, Status: "paused", TotalTokens: 9, CreatedAt: f.now()})
	compare("first refresh")
	f.advance(15 * time.Second)
	r, _ := f.srv.Run(testKey, going)
	r.Status, r.FinishedAt, r.TotalTokens = "weird-new-status", f.now(), 30
	f.srv.PutRun(testKey, r)
	compare("a run changed to an unknown status")
	f.srv.DeleteRun(testKey, listed)
	for _, e := range []*Exporter{f.exp, cached} {
		e.App("translator").SetRunIDs(SourceStatic, nil)
		e.App("translator").SetRunIDs(SourceStatic, []string{listed, ids[0]})
	}
	compare("a listed run gone from Dify")
	for range 3 {
		f.advance(15 * time.Second)
		f.srv.PutRun(testKey, difytest.Run{ID: difytest.NewRunID(), WorkflowID: wfID, Status: "failed", CreatedAt: f.now(), FinishedAt: f.now()})
	}
	compare("runs evicted at the cap")
	f.advance(2 * time.Hour)
	compare("runs expired")
	for _, e := range []*Exporter{f.exp, cached} {
		e.SetApps(nil)
	}
	compare("app removed")
}

// gatherText is the registry's exposition, normalised.
func gatherText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return parseText(t, b.String())
}

// parseText parses an exposition and prints its samples sorted, one per
// line, so that two expositions of the same state compare equal.
func parseText(t *testing.T, text string) string {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("unparsable exposition: %v", err)
	}
	var lines []string
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			lines = append(lines, name+" "+mf.GetType().String()+" "+labelsOf(m)+" "+valueOf(m))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func labelsOf(m *dto.Metric) string {
	var l []string
	for _, lp := range m.GetLabel() {
		l = append(l, lp.GetName()+"="+lp.GetValue())
	}
	slices.Sort(l)
	return strings.Join(l, ",")
}

func valueOf(m *dto.Metric) string {
	switch {
	case m.Gauge != nil:
		return model.SampleValue(m.GetGauge().GetValue()).String()
	case m.Counter != nil:
		return model.SampleValue(m.GetCounter().GetValue()).String()
	case m.Histogram != nil:
		return model.SampleValue(m.GetHistogram().GetSampleSum()).String()
	}
	return "?"
}
