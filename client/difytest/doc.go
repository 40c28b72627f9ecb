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
// docs/dify-releases.md, as read from Dify's source at each release tag, release by
// release: [Server.SetServerVersion] selects a Dify version (default
// [DefaultVersion]), which GET /v1/ and X-Version report; [Era] names a
// representative release of each stretch of the run-detail endpoint. The
// JSON is written the way Dify writes it (a run's inputs are a Python
// json.dumps string, timestamps Unix seconds or RFC-822 strings),
// independently of the exporter's client package, so that the two can
// check each other.
//
// What changes by release:
//
//	release            unknown run            times    outputs  lookup
//	0.6.15–1.1.3  (A)  200, every field null  RFC-822  string   any run; workflow keys only
//	1.2.0–1.6.0   (B)  200, every field null  int      string   any run; advanced-chat from 1.3.1
//	1.7.0–1.12.1  (C)  200, every field null  int      string   the key's app
//	1.13.0             500 (uncaught)         int      object   the key's app
//	1.13.1–1.13.3 (D)  404 not_found          int      object   the key's app
//	1.14.0–       (E)  404 not_found          int      object   the key's app
//
// And:
//
//   - The all-null body has total_steps/total_tokens 0 in 1.0.0–1.7.x
//     (flask_restful's fields.Integer), null otherwise.
//   - flask_restful releases (before 1.7.0 here) write JSON with Python's
//     json.dumps spacing ({"code": "unauthorized", ...}); later ones
//     compact JSON. WWW-Authenticate: Bearer realm="api" comes with a
//     401 from 1.8.0 (flask-restx), and so does "status" in the unhandled
//     500 body {"message":"Internal Server Error","code":"unknown"} (also
//     the answer to a run id that is not a UUID).
//   - /info has only name and description before 1.2.0.
//   - GET /workflows/logs exists from 0.8.2 (before, Flask's JSON 404);
//     created_at__before/__after are ignored before 1.0.1 (the whole
//     history, newest first), the session and account filters before
//     1.5.0; exceptions_count from 0.14.0; triggered_from and details
//     from 1.10.0; created_by_end_user.type is "service_api" before
//     1.10.0. No release checks the app mode: a chat or chatflow key gets
//     200 and an empty list.
//   - Log rows are written at a run's finish up to 1.10.1 (dated then; a
//     running or paused run is not listed; [Run.NoLogRow] loses one, as a
//     streaming client that disconnects early does), at its first start
//     from 1.11.0; never for debugger runs or apps whose mode is not
//     "workflow". [Server.DeleteRunKeepLog] leaves a row whose
//     workflow_run is null.
//   - The run row gets its numbers only at a pause or the end: a running
//     run reads 0 tokens, 0 steps, elapsed_time 0.0 and finished_at null
//     (or the tokens and steps of its last pause); a paused run its
//     tokens and steps, elapsed_time 0 and outputs {}. Log entries and
//     the run detail read the row live. [Server.Run] returns what was put.
//   - Rows with equal created_at come in a random order in every answer
//     ([Server.SetSeed]), as Postgres may return them.
//   - Runs pause (the Simulator pauses them) only from 1.13.0; the status
//     "paused" exists from 1.9.2.
//
// Time follows Dify's mechanisms: its processes are forced to UTC, so a
// run's own times are right unless the host's clock is off
// ([Server.SetClock]: the Date header, default run times, rows logged at
// finish); a log row's created_at is the database's time in its session
// zone ([Server.SetDatabase]: PostgreSQL or MySQL, and the zone), and the
// logs filter compares as that database does; [Server.SetFrontEndClock]
// puts a proxy that dates the Date header itself; [Run.LogCreatedAt]
// breaks one row's date.
//
// Faults ([Fault]) imitate what sits between the exporter and Dify: latency,
// hangs, proxy errors, rate limits, truncated or reset connections and huge
// bodies. A [Simulator] keeps a stream of runs going through their life
// (running, paused, succeeded, failed, stopped, partial-succeeded) for the
// exporter's --demo mode and for tests.
//
// Choices where Dify's source leaves room:
//
//   - Log rows, once written, follow the release they were written under;
//     the release decides only how later puts write them.
//   - A put with a status other than running, scheduled or paused
//     (including unknown statuses) counts as the end of the run.
//   - In releases before 1.2.0 only the run detail uses RFC-822 times; the
//     logs keep Unix seconds (TimestampField).
//   - A non-UUID run id (Postgres' uuid input syntax decides) is the
//     unhandled 500; upper-case, braced or unhyphenated UUIDs are
//     accepted, as Postgres does.
//   - Filtering the logs by status or keyword joins the run rows, so a row
//     whose run is gone is listed only without those filters.
//
// The package does not import package testing; it is safe for concurrent
// use.
package difytest
