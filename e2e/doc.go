// Package e2e holds the end-to-end test of dify_exporter: the exporter binary,
// built from this repository, scrapes an in-memory Dify (client/difytest); a
// real Prometheus scrapes the exporter and evaluates alerts/dify.rules.yml; a
// real Alertmanager delivers the alerts to a webhook inside the test. The test
// runs every panel query of the Grafana dashboard against that Prometheus and
// checks that the alerts arrive with the right labels.
//
// It needs the prometheus and prometheus-alertmanager binaries (Debian:
// apt-get install prometheus prometheus-alertmanager). Without them it is
// skipped, unless the environment variable CI is set, then it fails. It is
// also skipped with go test -short.
package e2e
