#!/bin/sh
# Validate the rules, run their unit tests, check the Alertmanager example and its routing.
# Needs promtool and amtool (apt-get install prometheus prometheus-alertmanager).
set -eu
cd "$(dirname "$0")"
promtool check rules dify.rules.yml
promtool test rules dify.rules.test.yml
amtool check-config alertmanager.yml
route() { # expected-receiver label=value...
	want=$1; shift
	amtool config routes test --config.file=alertmanager.yml --verify.receivers="$want" "$@"
}
route pager  severity=critical alertname=DifyAPIUnreachable app=example
route ticket severity=warning alertname=DifyWorkflowRunStuck app=example
route null   severity=info alertname=DifyWorkflowRunPausedTooLong app=example
echo "alerts: all checks passed"
