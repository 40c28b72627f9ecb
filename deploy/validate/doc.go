// Package validate checks the deployment files of dify_exporter with the tools that will read
// them: the compose file (deploy/compose) with the compose-spec loader, its Prometheus and
// Alertmanager configs with promtool and amtool, its Grafana provisioning files; the Helm chart
// (deploy/helm) rendered with Helm's engine and every object decoded strictly into the
// Kubernetes and Prometheus Operator types; the Dockerfile and .dockerignore.
//
// It is a module of its own so that Helm, Kubernetes and compose stay out of the exporter's
// go.mod. Run it from this directory:
//
//	go test -count=1 ./...
//
// With CI set, a missing promtool or amtool fails the tests instead of skipping them.
package validate
