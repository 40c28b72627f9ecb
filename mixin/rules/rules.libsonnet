local utils = import '../lib/utils.libsonnet';

{
  prometheusRules+:: {
    local config = $._config,
    local sel = utils.selector(config),
    // The ratio of two increases equals that of two rates and is exact where the runs are
    // (rates divide both by the window's seconds).
    local finished(window, matchers=[]) =
      'sum by (job, app) (increase(dify_workflow_runs_finished_total%s[%s]))' % [utils.selector(config, matchers), window],

    // Every window a burn-rate alert reads, shortest first.
    local windows = std.sort(
      std.set(std.flattenArrays([[w.long, w.short] for a in config.burnRateAlerts for w in a.windows])),
      utils.seconds,
    ),
    local longWindows = std.sort(std.set([w.long for a in config.burnRateAlerts for w in a.windows]), utils.seconds),

    groups+: [
      {
        name: 'dify.rules',
        rules: [
          {
            record: 'app:dify_workflow_runs_finished:rate5m',
            expr: 'sum by (job, app, status) (rate(dify_workflow_runs_finished_total%s[5m]))' % sel,
          },
          {
            record: 'app:dify_workflow_tokens:rate5m',
            expr: 'sum by (job, app) (rate(dify_workflow_tokens_total%s[5m]))' % sel,
          },
          {
            record: 'app:dify_workflow_run_duration_seconds:p50_rate1h',
            expr: 'histogram_quantile(0.5, sum by (job, app, le) (rate(dify_workflow_run_duration_seconds_bucket%s[1h])))' % sel,
          },
          {
            record: 'app:dify_workflow_run_duration_seconds:p95_rate1h',
            expr: 'histogram_quantile(0.95, sum by (job, app, le) (rate(dify_workflow_run_duration_seconds_bucket%s[1h])))' % sel,
          },
        ],
      },
      {
        // The run objective: the share of finished runs with an error status over each window
        // the burn-rate alerts read, the finished runs of each long window (their volume
        // guard), and the error and finished runs of the whole period for the dashboard's
        // error budget (per instance, so that it can filter and sum replicas).
        name: 'dify.slo.rules',
        rules: [
          {
            record: 'app:dify_workflow_runs_errors:ratio_rate%s' % w,
            expr: '%s\n/\n%s\n' % [finished(w, ['status=~"%s"' % config.errorStatuses]), finished(w)],
          }
          for w in windows
        ] + [
          {
            record: 'app:dify_workflow_runs_finished:increase%s' % w,
            expr: 'sum by (job, app) (increase(dify_workflow_runs_finished_total%s[%s]))' % [sel, w],
          }
          for w in longWindows
        ] + [
          {
            record: 'instance_app:dify_workflow_runs_errors:increase%s' % config.sloPeriod,
            expr: 'sum by (job, instance, app) (increase(dify_workflow_runs_finished_total%s[%s]))' % [
              utils.selector(config, ['status=~"%s"' % config.errorStatuses]),
              config.sloPeriod,
            ],
          },
          {
            record: 'instance_app:dify_workflow_runs_finished:increase%s' % config.sloPeriod,
            expr: 'sum by (job, instance, app) (increase(dify_workflow_runs_finished_total%s[%s]))' % [sel, config.sloPeriod],
          },
        ],
      },
    ],
  },
}
