// dify_exporter's monitoring mixin: recording rules, alerts and the Grafana dashboard.
// Import it and override _config (see config.libsonnet); tools/mixin builds the files the
// repository ships (alerts/dify.rules.yml, dashboards/dify-overview.json) from it.
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
