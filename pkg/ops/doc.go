// Package ops serves the operational HTTP endpoints that every Grantline
// service exposes on its ops port:
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
// MeterProvider rather than using the global ones, so that several services
// in one process (the dev mode runs all five) and parallel tests never
// collide on metric names.
//
// [Server] runs any handler on a listener and shuts it down gracefully when
// its context is cancelled.
package ops
