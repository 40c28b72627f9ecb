{
  _config+:: {
    // Selects dify_exporter's series in every rule and alert. With kube-prometheus the job
    // is the name of the Service the ServiceMonitor selects, e.g. 'job="dify-exporter"'; add
    // more matchers as needed ('job="dify-exporter", namespace="ai"').
    difyExporterSelector: 'job="dify_exporter"',

    // The objective: the share of finished runs that must succeed over sloPeriod. Its error
    // budget is 1 - runsObjective (1% of the runs for 0.99).
    runsObjective: 0.99,
    sloPeriod: '30d',
    // The terminal statuses that spend the error budget, a regex on the status label.
    // `stopped` (a user or moderation stopped the run) and `partial-succeeded` (a node
    // failed and the workflow's own error handling took over) are outcomes the workflow
    // chose, not failures of the service; add them here if your users see them as failures.
    errorStatuses: 'failed',
    // Burn-rate alerts, after the SRE workbook's multi-window, multi-burn-rate alerts: each
    // fires when both its long and its short window burn the budget `factor` times as fast
    // as the objective allows (factor 1 spends the budget in exactly sloPeriod). The long
    // window must also hold at least burnRateMinRuns finished runs, so that a few failures
    // of a quiet app page nobody.
    burnRateMinRuns: 20,
    burnRateAlerts: [
      {
        alert: 'DifyWorkflowErrorBudgetBurnFast',
        severity: 'critical',
        'for': '2m',
        windows: [
          { long: '1h', short: '5m', factor: 14.4 },  // 2% of a 30d budget in 1h
          { long: '6h', short: '30m', factor: 6 },  // 5% in 6h
        ],
      },
      {
        alert: 'DifyWorkflowErrorBudgetBurnSlow',
        severity: 'warning',
        'for': '15m',
        windows: [
          { long: '1d', short: '2h', factor: 3 },  // 10% in 1d
          { long: '3d', short: '6h', factor: 1 },  // 10% in 3d
        ],
      },
    ],

    // Alert thresholds (seconds where a duration).
    runStuckSeconds: 3600,
    runPausedSeconds: 86400,
    durationP95Seconds: 600,
    tokensPerHour: 1000000,
    runErrorsPerSecond: 0.01,
    refreshAgeSeconds: 600,
    clockSkewSeconds: 60,
    logRowsOffsetSeconds: 900,

    // Where each alert's runbook_url points: formatted with the alert's name in lower case.
    runbookURLPattern: 'https://github.com/dify-exporter/dify_exporter/blob/main/alerts/runbook.md#%s',

    // The dashboard.
    dashboardUID: 'dify-overview',
    dashboardTitle: 'Dify overview',
    dashboardTags: ['dify', 'dify_exporter', 'llm'],
    dashboardRefresh: '1m',
    dashboardFrom: 'now-6h',
    // The exporter's address as a browser reaches it: the default of the dashboard's
    // exporter_url variable, which the run tables' run ID links open (/runs?app=…&run_id=…).
    exporterURL: 'http://localhost:9866',
  },
}
