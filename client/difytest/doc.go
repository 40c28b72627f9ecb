// Package difytest is a faithful in-memory imitation of Dify's app-key
// ("service") API under /v1, served by net/http/httptest.
//
// It imitates the endpoints a Prometheus exporter reads:
//
//	GET /v1/                          index (no auth): welcome, api_version, server_version
//	GET /v1/info                      app name, description, tags, mode, author_name
//	GET /v1/parameters                a minimal published-app configuration
//	GET /v1/workflows/run/{id}        one workflow run (WorkflowRunDetailApi)
//	GET /v1/workflows/logs            paged workflow app logs (WorkflowAppLogApi)
//	GET /health                       the API server's health probe (outside /v1)
//
// Behaviour, JSON shapes and error bodies follow the project's reference
// /work/shared/dify-api.md (§1 run detail, §2a logs, §3 identity endpoints,
// §4 error envelope), including how they changed across Dify versions: see
// [Era]. The JSON is written the way Dify writes it (for example, a run's
// inputs are a Python json.dumps string, timestamps are Unix seconds or, on
// the oldest servers, RFC-822 strings), independently of the exporter's own
// client package, so that the two can check each other.
//
// Faults ([Fault]) imitate what sits between the exporter and Dify: latency,
// hangs, proxy errors, rate limits, truncated or reset connections and huge
// bodies. A [Simulator] keeps a stream of runs going through their life
// (running, paused, succeeded, failed, stopped, partial-succeeded) for the
// exporter's --demo mode and for tests.
//
// Choices where dify-api.md leaves room (or marks a fact UNVERIFIED):
//
//   - Log rows are written when a run is first put (Dify's newest
//     behaviour: at workflow start), only for apps in mode "workflow" (the
//     advanced-chat pipeline writes none, so a chatflow's logs are empty)
//     and never for debugger runs.
//   - The logs route checks the app mode only in EraNewest; older eras
//     answer any app key.
//   - The all-null run body of eras A–C has every field null, as
//     dify-api.md says (flask_restful's fields.Integer would in fact
//     default total_steps/total_tokens to 0).
//   - In EraA only the run detail uses RFC-822 times; the logs keep Unix
//     seconds (TimestampField).
//   - Eras A and B (flask_restful) write JSON with Python's json.dumps
//     defaults ({"code": "unauthorized", ...}, as Dify 1.0.1 answered in
//     langgenius/dify#15706); later eras write compact JSON.
//   - WWW-Authenticate: Bearer realm="api" is sent on every 401, in every
//     era.
//   - A non-UUID run id (Postgres' uuid input syntax decides) is a 500;
//     upper-case, braced or unhyphenated UUIDs are accepted, as Postgres
//     does.
//
// The package does not import package testing; it is safe for concurrent
// use.
package difytest
