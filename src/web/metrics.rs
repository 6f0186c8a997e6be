//! Prometheus metrics, labelled by matched route (a bounded label set), served on the loopback admin listener.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (several in-process servers in tests share it).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("kopir_http_request_duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .ok()?
                .set_buckets_for_metric(Matcher::Full(BANK_CALL_SECONDS.into()), BANK_CALL_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// The `method` label: the standard methods by name, anything else (a client may send any token) as `OTHER`, so
/// callers cannot grow the number of series.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"];
    KNOWN.into_iter().find(|known| *known == method).unwrap_or("OTHER")
}

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels =
        [("method", method_label(method).to_string()), ("route", route.to_string()), ("status", status.to_string())];
    metrics::counter!("kopir_http_requests_total", &labels).increment(1);
    metrics::histogram!("kopir_http_request_duration_seconds", "route" => route.to_string())
        .record(elapsed.as_secs_f64());
}

/// The latency histogram of bank calls per API and endpoint (see [`record_bank_call`]).
pub const BANK_CALL_SECONDS: &str = "kopir_api_request_duration_seconds";

/// Fine where SLAs lie (a quarter of a second to a few seconds), so that the p95 read from the buckets is close
/// enough to compare with an API's `sla_response_ms`.
const BANK_CALL_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0];

/// `2xx`, `4xx`, `5xx` (and `1xx`/`3xx`, which the gateway never answers): the status label stays a handful.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// One call through the gateway to a bank's API. Every label is bounded: `provider` is the bank's BIN and `api` the
/// API's id (both from the catalog, not from the caller), `endpoint` one of the gateway's four, `environment`
/// production or sandbox, the status its class. An error is a 5xx answer: the bank failed, timed out, could not be
/// reached or is delisted.
pub fn record_bank_call(
    provider: &str,
    api: i64,
    endpoint: &'static str,
    environment: &'static str,
    status: u16,
    elapsed: Duration,
) {
    let api = api.to_string();
    let class = status_class(status);
    let labels = [
        ("provider", provider.to_string()),
        ("api", api.clone()),
        ("endpoint", endpoint.to_string()),
        ("environment", environment.to_string()),
    ];
    let mut counted = labels.to_vec();
    counted.push(("status_class", class.to_string()));
    metrics::counter!("kopir_api_requests_total", &counted).increment(1);
    if class == "5xx" {
        metrics::counter!("kopir_api_errors_total", &labels).increment(1);
    }
    metrics::histogram!(BANK_CALL_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// The number of open connections of the public listener.
pub fn record_open_connections(open: usize) {
    metrics::gauge!("kopir_connections_open").set(open as f64);
}

/// A connection closed at accept because a connection limit was reached.
pub fn record_refused_connection(reason: &'static str) {
    metrics::counter!("kopir_connections_refused_total", "reason" => reason).increment(1);
}

/// A connection closed by the platform before the client was done: `idle`, `header_timeout`, `close_timeout`.
pub fn record_closed_connection(reason: &'static str) {
    metrics::counter!("kopir_connections_closed_total", "reason" => reason).increment(1);
}

/// The admin listener's router: `/metrics` and a liveness probe.
pub fn admin_router() -> Router {
    let handle = handle();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    let body = handle.map(|h| h.render()).unwrap_or_default();
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
}

/// Keeps histograms bounded: the exporter needs periodic upkeep when it has no HTTP listener of its own.
pub fn spawn_upkeep() {
    if let Some(handle) = handle() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_fold_into_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("get"), "OTHER");
        assert_eq!(method_label("XYZZY"), "OTHER");
    }

    #[test]
    fn statuses_fold_into_their_class() {
        assert_eq!(
            [status_class(200), status_class(404), status_class(502), status_class(504)],
            ["2xx", "4xx", "5xx", "5xx"]
        );
        assert_eq!(status_class(999), "5xx");
    }
}
