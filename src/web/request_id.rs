//! Request ids and the cross-cutting response headers.
//!
//! Every request gets a fresh id (never the caller's: ids in the log must be unique). It is in the tracing span
//! of the request, so on every log line, in the `x-request-id` response header, and in the `Id` of an error body.
//! `x-fapi-interaction-id` is echoed when the caller sent a well-formed one and made up otherwise (FAPI).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub use crate::standard::X_FAPI_INTERACTION_ID;

pub use crate::logging::{current_request_id as current, request_id_scope as scope};

/// The interaction id of a request as the middleware answers it: the caller's when well-formed, else the request id.
pub fn interaction_id(headers: &axum::http::HeaderMap) -> String {
    headers.get(&X_FAPI_INTERACTION_ID).and_then(well_formed_interaction_id).or_else(current).unwrap_or_default()
}

fn well_formed_interaction_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then(|| s.to_string())
}

/// The outermost middleware: id, span, security headers, access log line and metrics.
pub async fn middleware(request: Request, next: Next) -> Response {
    let id = crate::random::uuid_v4().to_string();
    let interaction_id = request
        .headers()
        .get(&X_FAPI_INTERACTION_ID)
        .and_then(well_formed_interaction_id)
        .unwrap_or_else(|| id.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    // The span carries the matched route, never the raw URI: a query string may hold codes or tokens.
    let span =
        tracing::info_span!("request", request_id = %id, %method, route = %route, interaction_id = %interaction_id);
    let started = Instant::now();
    let mut response = scope(id.clone(), next.run(request).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1000.0, "served");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1000.0, "served");
        }
    });
    super::metrics::record_request(method.as_str(), &route, status.as_u16(), elapsed);

    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&interaction_id) {
        headers.insert(X_FAPI_INTERACTION_ID, v);
    }
    let defaults: [(HeaderName, &'static str); 6] = [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // API answers embed nothing; pages set their own, stricter-than-default policy.
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
