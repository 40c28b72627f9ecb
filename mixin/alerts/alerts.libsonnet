local utils = import '../lib/utils.libsonnet';

{
  local config = $._config,
  local sel(matchers=[]) = utils.selector(config, matchers),

  // alert adds the severity label and the runbook_url every alert carries.
  local alert(name, severity, expr, summary, description, forDuration=null) = {
    alert: name,
    expr: expr,
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: config.runbookURLPattern % std.asciiLower(name),
    },
  } + (if forDuration == null then {} else { 'for': forDuration }),

  // runAge: runs in a status for longer than a threshold, by their age (survives restarts).
  local runAge(status, seconds) = |||
    (time() - dify_workflow_run_created_timestamp_seconds%s) > %d
    and on (app, workflow_id, run_id)
    dify_workflow_run_status%s == 1
  ||| % [sel(), seconds, sel(['status="%s"' % status])],

  // magnitude prints the absolute value of $value as a duration, ahead/behind by its sign.
  local magnitude = '{{ reReplaceAll "^-" "" (humanizeDuration $value) }}',

  // burnRate: one window pair of a burn-rate alert, labelled with its windows; its value is
  // the long window's burn rate (1 = spending the budget exactly over the period).
  local budget = '(1 - %g)' % config.runsObjective,
  local burnRate(w) = |||
    label_replace(label_replace(
      app:dify_workflow_runs_errors:ratio_rate%(long)s / %(budget)s > %(factor)g
      and on (job, app)
      app:dify_workflow_runs_errors:ratio_rate%(short)s / %(budget)s > %(factor)g
      and on (job, app)
      app:dify_workflow_runs_finished:increase%(long)s >= %(min)d,
    "long_window", "%(long)s", "", ""), "short_window", "%(short)s", "", "")
  ||| % (w { budget: budget, min: config.burnRateMinRuns }),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'dify.alerts',
        rules: [
          alert(
            'DifyAPIUnreachable', 'critical',
            'dify_up%s == 0' % sel(),
            'The exporter cannot reach the Dify API or its API key is refused.',
            'dify_up is 0 for app {{ $labels.app }} (job {{ $labels.job }}, instance {{ $labels.instance }}) for 5 minutes: the Dify API is unreachable or refuses the key. See dify_exporter_run_errors_total{app="{{ $labels.app }}"} for the reason.',
            '5m',
          ),
          alert(
            'DifyWorkflowRunStuck', 'warning',
            runAge('running', config.runStuckSeconds),
            'A Dify workflow run has been running for longer than %s.' % utils.duration(config.runStuckSeconds),
            'Run {{ $labels.run_id }} of workflow {{ $labels.workflow_id }} (app {{ $labels.app }}) has been running for {{ $value | humanizeDuration }}; its worker may have died.',
            '1m',
          ),
          alert(
            'DifyWorkflowRunPausedTooLong', 'info',
            runAge('paused', config.runPausedSeconds),
            'A Dify workflow run has been paused for human input for longer than %s.' % utils.duration(config.runPausedSeconds),
            'Run {{ $labels.run_id }} of workflow {{ $labels.workflow_id }} (app {{ $labels.app }}) was created {{ $value | humanizeDuration }} ago and is still paused waiting for input.',
            '1m',
          ),
        ] + [
          alert(
            a.alert, a.severity,
            std.join('or on (job, app)\n', [burnRate(w) for w in a.windows]),
            if a.severity == 'critical'
            then 'Dify workflow runs fail fast enough to spend the error budget within days.'
            else 'Dify workflow runs fail faster than the error budget allows.',
            'App {{ $labels.app }} burns its error budget {{ $value | printf "%.3g" }} times as fast as the objective allows (' +
            utils.percent(config.runsObjective) + ' of the finished runs succeed over ' + config.sloPeriod +
            '; at 1 the budget lasts exactly ' + config.sloPeriod +
            '), over both the last {{ $labels.long_window }} and the last {{ $labels.short_window }}, with at least ' +
            config.burnRateMinRuns + ' runs finished in the last {{ $labels.long_window }}.',
            a['for'],
          )
          for a in config.burnRateAlerts
        ] + [
          alert(
            'DifyWorkflowDurationP95High', 'warning',
            'app:dify_workflow_run_duration_seconds:p95_rate1h > %d' % config.durationP95Seconds,
            'Dify workflow runs are slow.',
            'The p95 duration of the runs of app {{ $labels.app }} finished in the last hour is {{ $value | printf "%.0f" }}s (threshold ' + config.durationP95Seconds + 's).',
            '15m',
          ),
          alert(
            'DifyTokenBurnHigh', 'warning',
            'app:dify_workflow_tokens:rate5m * 3600 > %d' % config.tokensPerHour,
            'Dify workflow runs are consuming tokens unusually fast.',
            'App {{ $labels.app }} is consuming {{ $value | humanize }} tokens per hour (threshold {{ %d | humanize }} per hour).' % config.tokensPerHour,
            '15m',
          ),
          alert(
            'DifyHostClockSkew', 'warning',
            |||
              dify_exporter_dify_clock_skew_seconds%(sel)s >= %(t)d
              or
              dify_exporter_dify_clock_skew_seconds%(sel)s <= -%(t)d
            ||| % { sel: sel(), t: config.clockSkewSeconds },
            "The clock of Dify's host is off.",
            "The clock of the host serving Dify's API for app {{ $labels.app }} is " + magnitude +
            ' {{ if gt $value 0.0 }}ahead of{{ else }}behind{{ end }} the exporter' + "'s (threshold " + utils.duration(config.clockSkewSeconds) +
            "). Check NTP on Dify's host: Dify stamps runs and log rows with that clock. The exporter corrects the run times it exports once it has confirmed the skew; Dify's console still shows them off.",
            '15m',
          ),
          alert(
            'DifyLogRowsTimeZone', 'info',
            |||
              dify_exporter_log_rows_offset_seconds%(sel)s >= %(t)d
              or
              dify_exporter_log_rows_offset_seconds%(sel)s <= -%(t)d
            ||| % { sel: sel(), t: config.logRowsOffsetSeconds },
            "Dify's workflow log rows are dated in another time zone than its runs.",
            "Dify's workflow log rows of app {{ $labels.app }} are dated " + magnitude +
            " {{ if gt $value 0.0 }}later{{ else }}earlier{{ end }} than the runs they record: Dify's database session is not in UTC (a MySQL or OceanBase metadb, or PostgreSQL with DB_SESSION_TIMEZONE_OVERRIDE emptied). Run times are not affected and the exporter copes; only Dify's own log list shows shifted times.",
            '30m',
          ),
        ],
      },
      {
        name: 'dify-exporter.alerts',
        rules: [
          alert(
            'DifyExporterDown', 'critical',
            'absent(up%(s)s) or up%(s)s == 0' % { s: sel() },
            'Prometheus cannot scrape dify_exporter.',
            'The dify_exporter target {{ with $labels.instance }}{{ . }}{{ else }}(none discovered){{ end }} of job {{ $labels.job }} has been down or absent for 5 minutes.',
            '5m',
          ),
          alert(
            'DifyExporterRunErrors', 'warning',
            'sum by (job, app, reason) (rate(dify_exporter_run_errors_total%s[5m])) > %g' % [sel(['reason!="timeout"']), config.runErrorsPerSecond],
            'The exporter keeps failing to fetch Dify workflow runs.',
            'App {{ $labels.app }}: {{ $value | printf "%.3g" }} run fetch errors per second with reason {{ $labels.reason }} (threshold ' + ('%g' % config.runErrorsPerSecond) + '/s).',
            '15m',
          ),
          alert(
            'DifyExporterScrapeTimeouts', 'warning',
            |||
              sum by (job, app) (rate(dify_exporter_run_errors_total%s[5m])) > 0
              or
              max by (job, app) (dify_exporter_runs_stale%s) > 0
            ||| % [sel(['reason="timeout"']), sel()],
            'The exporter cannot refresh Dify runs within the scrape timeout.',
            'App {{ $labels.app }}: requests to Dify time out or runs are served from stale values (value {{ $value | printf "%.3g" }}) for 15 minutes.',
            '15m',
          ),
          alert(
            'DifyExporterConfigReloadFailed', 'warning',
            'dify_exporter_config_last_reload_successful%s == 0' % sel(),
            'The dify_exporter configuration could not be reloaded.',
            'The last configuration reload of dify_exporter {{ $labels.instance }} failed; it still runs with the previous configuration.',
            '5m',
          ),
          alert(
            'DifyExporterRefreshFallingBehind', 'warning',
            'max by (job, app) (dify_exporter_refresh_age_seconds%s) > %d' % [sel(), config.refreshAgeSeconds],
            'The exporter falls behind in refreshing unfinished Dify runs.',
            'App {{ $labels.app }}: the least recently refreshed running or paused run was last refreshed {{ $value | humanizeDuration }} ago (threshold ' + utils.duration(config.refreshAgeSeconds) + '): the scrape timeout leaves too little time to refresh them all.',
            '15m',
          ),
        ],
      },
    ],
  },
}
