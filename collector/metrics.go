package collector

import (
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/exposition"
)

const namespace = "dify"

// Every metric family the collector emits is declared here.
var (
	// The per-run families are declared once, in package exposition,
	// which renders them from its cache.
	runTokensDesc   = exposition.RunTokens.Desc()
	runStepsDesc    = exposition.RunSteps.Desc()
	runElapsedDesc  = exposition.RunElapsed.Desc()
	runStatusDesc   = exposition.RunStatus.Desc()
	runCreatedDesc  = exposition.RunCreated.Desc()
	runFinishedDesc = exposition.RunFinished.Desc()

	upDesc = prometheus.NewDesc("dify_up",
		"1 if the last refresh reached the app's Dify API with a valid key.", []string{"app"}, nil)
	appInfoDesc = prometheus.NewDesc("dify_app_info",
		"Dify app as GET /v1/info describes it.", []string{"app", "name", "mode"}, nil)
	serverInfoDesc = prometheus.NewDesc("dify_server_info",
		"Dify server behind the app, as GET /v1/ reports it.", []string{"app", "version"}, nil)
	refreshAgeDesc = prometheus.NewDesc("dify_exporter_refresh_age_seconds",
		"Age of the data of the least recently refreshed unfinished run (0 when none).", []string{"app"}, nil)
	timeOffsetDesc = prometheus.NewDesc("dify_exporter_dify_time_offset_seconds",
		"Correction added to the runs' times Dify serves: its host clock's measured difference (from a minute up), or --dify.time-offset.", []string{"app"}, nil)
	clockSkewDesc = prometheus.NewDesc("dify_exporter_dify_clock_skew_seconds",
		"Dify's API host clock minus the exporter's, from its Date headers when the runs' own times agree, else from those times; absent until measured.", []string{"app"}, nil)
	rowsOffsetDesc = prometheus.NewDesc("dify_exporter_log_rows_offset_seconds",
		"How far Dify's workflow log rows are dated after their runs' own times (a database session not in UTC), to the minute; run times are not affected. Absent until measured.", []string{"app"}, nil)
	runsDesc = prometheus.NewDesc("dify_workflow_runs",
		"Tracked workflow runs in each status.", []string{"app", "status"}, nil)
	scrapeDurationDesc = prometheus.NewDesc("dify_scrape_duration_seconds",
		"Duration of the last refresh of the app.", []string{"app"}, nil)
	trackedRunsDesc = prometheus.NewDesc("dify_exporter_tracked_runs",
		"Runs the exporter tracks for the app, by the source it learnt them from.", []string{"app", "source"}, nil)
	staleRunsDesc = prometheus.NewDesc("dify_exporter_runs_stale",
		"Runs served from their last good values because the last refresh could not fetch them.", []string{"app"}, nil)
)

// counters are the exporter's cumulative metrics, shared by all apps and
// labelled by app.
type counters struct {
	apiRequests  *prometheus.CounterVec
	runErrors    *prometheus.CounterVec
	runsFinished *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
}

// durationBuckets spans quick single-LLM workflows to hour-long pipelines.
var durationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}

func newCounters() *counters {
	return &counters{
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "api_requests_total",
			Help: "Requests sent to the Dify API, by endpoint and HTTP status code (\"error\" when no response arrived).",
		}, []string{"app", "endpoint", "code"}),
		runErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "run_errors_total",
			Help: "Failed Dify API calls and unusable runs, by reason.",
		}, []string{"app", "reason"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "workflow_runs_finished_total",
			Help: "Workflow runs seen reaching a terminal status since the exporter started.",
		}, []string{"app", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "workflow_tokens_total",
			Help: "Tokens of the workflow runs counted in dify_workflow_runs_finished_total.",
		}, []string{"app"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "workflow_run_duration_seconds",
			Help:    "Elapsed time of the workflow runs counted in dify_workflow_runs_finished_total.",
			Buckets: durationBuckets,
		}, []string{"app"}),
	}
}

func (c *counters) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.apiRequests, c.runErrors, c.runsFinished, c.tokens, c.duration}
}

// finish counts one run seen reaching a terminal status. On OpenMetrics
// each series it moves carries the run as an exemplar (exemplarLabels),
// stamped with the exporter's time of counting it.
func (c *counters) finish(app string, run client.Run) {
	finished := c.runsFinished.WithLabelValues(app, string(run.Status))
	tokens := c.tokens.WithLabelValues(app)
	duration := c.duration.WithLabelValues(app)
	ex := exemplarLabels(run)
	if ex == nil {
		finished.Inc()
		tokens.Add(float64(run.TotalTokens))
		duration.Observe(run.Elapsed.Seconds())
		return
	}
	finished.(prometheus.ExemplarAdder).AddWithExemplar(1, ex)
	tokens.(prometheus.ExemplarAdder).AddWithExemplar(float64(run.TotalTokens), ex)
	duration.(prometheus.ExemplarObserver).ObserveWithExemplar(run.Elapsed.Seconds(), ex)
}

// exemplarLabels name a run in an exemplar: its run_id and, when known,
// its workflow_id. Both are UUIDs, 89 runes with the names, within the
// 128 OpenMetrics allows an exemplar's labels (client_golang panics past
// it); an ID that would not fit is left out, and without a run_id there is
// no exemplar (nil).
func exemplarLabels(run client.Run) prometheus.Labels {
	runes := utf8.RuneCountInString
	budget := prometheus.ExemplarMaxRunes - runes("run_id") - runes(run.ID)
	if run.ID == "" || budget < 0 || !utf8.ValidString(run.ID) {
		return nil
	}
	l := prometheus.Labels{"run_id": run.ID}
	if wf := run.WorkflowID; wf != "" && utf8.ValidString(wf) && runes("workflow_id")+runes(wf) <= budget {
		l["workflow_id"] = wf
	}
	return l
}

// initApp makes every series of an app visible at zero from the start, so
// that rate() and increase() see the first event.
func (c *counters) initApp(app string) {
	for _, s := range client.Statuses {
		if s.Terminal() {
			c.runsFinished.WithLabelValues(app, string(s))
		}
	}
	c.tokens.WithLabelValues(app)
	c.duration.WithLabelValues(app)
	// Panels and alerts on errors see the first one as an increase.
	for _, k := range client.Kinds() {
		c.runErrors.WithLabelValues(app, k.String())
	}
	c.runErrors.WithLabelValues(app, "unknown_status")
	c.runErrors.WithLabelValues(app, reasonBadTimestamp)
}

// forgetApp removes a removed app's series.
func (c *counters) forgetApp(app string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{c.apiRequests, c.runErrors, c.runsFinished, c.tokens, c.duration} {
		v.DeletePartialMatch(prometheus.Labels{"app": app})
	}
}

// reasonBadTimestamp counts log rows whose date cannot be believed (out of
// any clock's range, or far from their run's time and Dify's clock).
const reasonBadTimestamp = "bad_timestamp"

// statusLabels are the status label values of the one-hot gauge.
var statusLabels = func() []string {
	l := make([]string, len(client.Statuses))
	for i, s := range client.Statuses {
		l[i] = string(s)
	}
	return l
}()
