package collector

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dify-exporter/dify_exporter/client"
)

// Per-run series dominate a scrape (eleven per run), so they are built
// more cheaply than prometheus.MustNewConstMetric does: the label pairs of
// one run are made once and shared by its series, and runs are emitted
// sorted by ID so that the registry's sort finds its input in order.

// gaugeMetric is a gauge with ready-made, sorted label pairs.
type gaugeMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (m *gaugeMetric) Desc() *prometheus.Desc { return m.desc }

func (m *gaugeMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Gauge = &dto.Gauge{Value: &m.value}
	return nil
}

func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}

// statusPairs are the status label pairs of the one-hot gauge, shared by
// every run, in sorted order of value.
var statusPairs = func() []*dto.LabelPair {
	l := slices.Clone(statusLabels)
	slices.Sort(l)
	pairs := make([]*dto.LabelPair, len(l))
	for i, s := range l {
		pairs[i] = labelPair("status", s)
	}
	return pairs
}()

// runEmitter emits the series of an app's runs.
type runEmitter struct {
	app       *dto.LabelPair
	workflows map[string]*dto.LabelPair
}

func newRunEmitter(app string) *runEmitter {
	return &runEmitter{app: labelPair("app", app), workflows: make(map[string]*dto.LabelPair)}
}

// emit sends a run's series, its times moved by offset onto the
// exporter's clock.
func (e *runEmitter) emit(ch chan<- prometheus.Metric, r *client.Run, offset time.Duration) {
	wf, ok := e.workflows[r.WorkflowID]
	if !ok {
		wf = labelPair("workflow_id", r.WorkflowID)
		e.workflows[r.WorkflowID] = wf
	}
	// Label names sort as app, run_id, status, workflow_id.
	base := []*dto.LabelPair{e.app, labelPair("run_id", r.ID), wf}
	n := 3 + len(statusPairs)
	if !r.CreatedAt.IsZero() {
		n++
	}
	if !r.FinishedAt.IsZero() {
		n++
	}
	ms := make([]gaugeMetric, 0, n)
	add := func(d *prometheus.Desc, labels []*dto.LabelPair, v float64) {
		ms = append(ms, gaugeMetric{desc: d, labels: labels, value: v})
		ch <- &ms[len(ms)-1]
	}
	if !r.CreatedAt.IsZero() {
		add(runCreatedDesc, base, unixSeconds(r.CreatedAt.Add(offset)))
	}
	add(runElapsedDesc, base, r.Elapsed.Seconds())
	if !r.FinishedAt.IsZero() {
		add(runFinishedDesc, base, unixSeconds(r.FinishedAt.Add(offset)))
	}
	withStatus := make([]*dto.LabelPair, 4*len(statusPairs))
	for i, sp := range statusPairs {
		l := withStatus[4*i : 4*i+4 : 4*i+4]
		l[0], l[1], l[2], l[3] = base[0], base[1], sp, base[2]
		add(runStatusDesc, l, boolValue(string(r.Status) == sp.GetValue()))
	}
	add(runStepsDesc, base, float64(r.TotalSteps))
	add(runTokensDesc, base, float64(r.TotalTokens))
}
