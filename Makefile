# Shortcuts for the commands of docs/development.md; each is a plain go command.
GO        ?= go
FUZZTIME  ?= 20s
# The golangci-lint that .ci/run installs, from the Go module proxy and outside go.mod.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(shell $(GO) env GOPATH)/bin/golangci-lint
FUZZ_TARGETS := client:FuzzDecodeRun client:FuzzDecodeLogs config:FuzzParse

.PHONY: help build test lint validate bench e2e fuzz ci

help: ## list the targets
	@grep -E '^[a-z0-9]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-9s %s\n", $$1, $$2}'

build: ## build ./dify_exporter (version from VERSION, revision from git)
	$(GO) build -buildvcs=true -o dify_exporter .

test: ## every test, as CI runs them
	$(GO) test -race -count=1 ./...

lint: $(GOLANGCI_LINT) ## gofmt, go vet and golangci-lint
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

validate: ## the deployment files, checked with the tools that read them
	cd deploy/validate && $(GO) vet ./... && $(GOLANGCI_LINT) run ./... && $(GO) test -count=1 ./...

bench: ## the scrape, fairness and exposition benchmarks
	$(GO) test -run '^$$' -bench 'ScrapeHTTP' -benchmem -benchtime 20x ./collector/
	$(GO) test -run '^$$' -bench 'DetailFairness' -benchtime 1x ./collector/
	$(GO) test -run '^$$' -bench 'Scrape(Before|After)' -benchmem -benchtime 10x ./exposition/

e2e: ## the end-to-end test (real Prometheus and Alertmanager)
	$(GO) test -count=1 -v ./e2e/

fuzz: ## each fuzz target for FUZZTIME
	@set -e; for target in $(FUZZ_TARGETS); do \
	  pkg=$${target%%:*}; fn=$${target##*:}; \
	  $(GO) test -run '^$$' -fuzz "^$${fn}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s "./$$pkg/"; \
	done

ci: ## what CI runs
	bash .ci/run
