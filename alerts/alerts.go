// Package alerts ships the Prometheus recording and alerting rules for dify_exporter
// (dify.rules.yml), their promtool unit tests, a runbook and an example Alertmanager
// configuration. The files are embedded so that tools and tests can use them without
// knowing the repository layout.
package alerts

import _ "embed"

// Rules is the content of dify.rules.yml, a Prometheus rule file.
//
//go:embed dify.rules.yml
var Rules []byte

// AlertmanagerConfig is the content of alertmanager.yml, an example Alertmanager configuration.
//
//go:embed alertmanager.yml
var AlertmanagerConfig []byte
