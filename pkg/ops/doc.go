// Package ops is the skeleton every Grantline service runs in: one way from a configuration to a
// running process, and the operational endpoints every service exposes.
//
// A service package (services/<name>/<name>d) provides New, which builds the service's [Service]
// (its API routes, readiness checks, consumers and what to close) from its configuration and a
// [Host] (its own broker connection, the process's metrics, a logger). [Run] runs one service as a
// process of its own: dial NATS with a bounded retry, build, serve through [Process.Serve], close.
// `grantline dev` builds every service with the same New functions and serves them together
// through the same [Process.Serve], on one HTTP origin. [Main] is a binary's whole main: the
// signal context, configuration from the environment, --help, the logger, Run, the exit code. [RunAll] is the one fan-out of a service's consumers: the first to fail stops all.
//
// The operational endpoints, on the same server as the API:
//
//   - GET /livez: 200 "ok" for as long as the process can serve HTTP. It runs
//     no checks, so a dependency outage never gets a healthy process
//     restarted.
//   - GET /readyz: runs every registered readiness [Check] concurrently,
//     each bounded by a short timeout, and answers 200 when all pass or 503
//     when any fails, with a JSON body naming each check and its outcome.
//   - GET /metrics: Prometheus exposition of the service's OpenTelemetry
//     metrics plus Go runtime and process metrics.
//
// Each [Handler] owns a private Prometheus registry and OpenTelemetry
// MeterProvider rather than using the global ones, so that parallel tests
// never collide on metric names.
//
// [Server] runs any handler on a listener and shuts it down gracefully when
// its context is cancelled.
package ops
