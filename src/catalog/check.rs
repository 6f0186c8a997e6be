//! The automatic check an API passes before publication — a pluggable step.
//!
//! [`PublicationCheck`] is what publication calls; [`checker`] picks the one in use. The one here now,
//! [`ErrorShapeCheck`], calls `GET {sandbox_base_url}/accounts` with the gateway's HTTP client — over HTTPS with the
//! platform's client certificate, trusting the system's roots, the platform's root CA and `gateway.provider_ca_file`,
//! with no redirects — within the API's time-out, but **without** the signed consent header. A conforming bank
//! refuses that call with `401` and the standard's error body (`{"Code","Id","Message","Errors":[{"ErrorCode",…}]}`),
//! which shows that the endpoint is reachable over TLS, speaks the standard's error shape and refuses unauthenticated
//! calls. The sandbox's conformance suite can take its place later by implementing the same trait.
//!
//! Findings carry a short evidence excerpt that is never a secret and never account data: the status, the content
//! type and size, and of an error body only its `Code` and `ErrorCode` values.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Api;
use crate::clock;
use crate::config::Config;

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckReport> + Send + 'a>>;

/// Which of an API's two base URLs a check calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

    /// The API's base URL for this environment, without a trailing slash.
    pub fn base_url(self, api: &Api) -> &str {
        match self {
            Environment::Sandbox => api.sandbox_base_url.trim_end_matches('/'),
            Environment::Production => api.production_base_url.trim_end_matches('/'),
        }
    }
}

/// A check of an API's endpoint: run before an API is published (against its sandbox) and, once it is published, on
/// a schedule against both environments. It never fails as such: whatever goes wrong is a finding.
pub trait PublicationCheck: Send + Sync {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingOutcome {
    Passed,
    Failed,
    /// Not run, because an earlier finding made it pointless.
    Skipped,
}

impl FindingOutcome {
    pub fn text_key(self) -> &'static str {
        match self {
            FindingOutcome::Passed => "catalog.finding.passed",
            FindingOutcome::Failed => "catalog.finding.failed",
            FindingOutcome::Skipped => "catalog.finding.skipped",
        }
    }

    pub fn badge(self) -> &'static str {
        match self {
            FindingOutcome::Passed => "status-active",
            FindingOutcome::Failed => "status-revoked",
            FindingOutcome::Skipped => "status-suspended",
        }
    }
}

/// One thing a check looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identifier, e.g. `tls.reachable`.
    pub id: String,
    /// What was checked, in English (as recorded).
    pub description: String,
    pub outcome: FindingOutcome,
    /// A short, non-secret excerpt of what was seen.
    pub evidence: String,
}

impl Finding {
    fn new(id: &str, description: &str, outcome: FindingOutcome, evidence: impl Into<String>) -> Finding {
        Finding { id: id.into(), description: description.into(), outcome, evidence: evidence.into() }
    }

    /// The text key of the description, for the findings this platform knows (others show `description`).
    pub fn text_key(&self) -> Option<&'static str> {
        Some(match self.id.as_str() {
            TLS => "catalog.finding.tls",
            REFUSED => "catalog.finding.refused",
            ERROR_SHAPE => "catalog.finding.error_shape",
            SETUP => "catalog.finding.setup",
            _ => return None,
        })
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// `sandbox` (or `production`).
    pub environment: &'static str,
    pub base_url: String,
    /// At least one finding passed and none failed.
    pub passed: bool,
    pub findings: Vec<Finding>,
    /// Time to the answer, when there was one.
    pub latency_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
}

impl CheckReport {
    pub fn new(
        environment: &'static str,
        base_url: &str,
        started_at: String,
        findings: Vec<Finding>,
        latency_ms: Option<i64>,
    ) -> CheckReport {
        let passed = findings.iter().any(|f| f.outcome == FindingOutcome::Passed)
            && !findings.iter().any(|f| f.outcome == FindingOutcome::Failed);
        CheckReport {
            environment,
            base_url: base_url.to_string(),
            passed,
            findings,
            latency_ms,
            started_at,
            finished_at: clock::now_rfc3339(),
        }
    }
}

/// The check publication uses now.
pub fn checker(config: &Config) -> Arc<dyn PublicationCheck> {
    Arc::new(ErrorShapeCheck::new(config))
}

const SETUP: &str = "platform.setup";
const TLS: &str = "tls.reachable";
const REFUSED: &str = "auth.refused";
const ERROR_SHAPE: &str = "error.shape";
const TLS_TEXT: &str = "The sandbox endpoint answers over TLS with a trusted certificate, within the time-out";
const REFUSED_TEXT: &str = "A call without the platform's signed consent header is refused with 401";
const SHAPE_TEXT: &str = "The refusal carries the standard's error body: Code, Id, Message and Errors[].ErrorCode";
/// Most of an answer's body read.
const BODY_MAX: usize = 64 * 1024;

/// The default publication check (see the module's description).
#[derive(Debug, Clone)]
pub struct ErrorShapeCheck {
    config: Config,
}

impl ErrorShapeCheck {
    pub fn new(config: &Config) -> ErrorShapeCheck {
        ErrorShapeCheck { config: config.clone() }
    }

    /// The HTTP client: the gateway's (the platform's client certificate; the system's roots, the platform root and
    /// `gateway.provider_ca_file`; https only; no redirects), made per run — publication is rare, and a renewed
    /// certificate or CA file is then always used.
    fn client(&self) -> Result<reqwest::Client, String> {
        crate::gateway::provider::client(&self.config).map_err(|e| e.to_string())
    }

    async fn run(&self, api: &Api, environment: Environment) -> CheckReport {
        let started_at = clock::now_rfc3339();
        let base = environment.base_url(api);
        let report =
            |findings, latency| CheckReport::new(environment.as_str(), base, started_at.clone(), findings, latency);
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, api = api.id, "the publication check cannot call providers");
                let setup = "The platform can call providers (its client certificate and trusted CAs load)";
                let evidence = "the platform is not set up to call providers; the operator has been told in the log";
                return report(vec![Finding::new(SETUP, setup, FindingOutcome::Failed, evidence)], None);
            }
        };
        let timeout = Duration::from_millis(u64::try_from(api.timeout_ms).unwrap_or(5000));
        let url = format!("{base}/accounts");
        let started = Instant::now();
        let sent = client
            .get(&url)
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("x-fapi-interaction-id", uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                let latency = elapsed_ms(started);
                let findings = vec![
                    Finding::new(TLS, TLS_TEXT, FindingOutcome::Failed, describe(&error, api.timeout_ms)),
                    Finding::new(REFUSED, REFUSED_TEXT, FindingOutcome::Skipped, ""),
                    Finding::new(ERROR_SHAPE, SHAPE_TEXT, FindingOutcome::Skipped, ""),
                ];
                return report(findings, error.is_timeout().then_some(latency));
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| excerpt(v, 60))
            .unwrap_or_else(|| "no content type".into());
        let mut body = Vec::new();
        let mut body_error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > BODY_MAX {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    body_error = Some(describe(&error, api.timeout_ms));
                    break;
                }
            }
        }
        let latency = elapsed_ms(started);
        let answered = format!("HTTP {status} ({content_type}, {} bytes)", body.len());
        let mut findings = Vec::new();
        if let Some(why) = body_error {
            findings.push(Finding::new(TLS, TLS_TEXT, FindingOutcome::Failed, format!("{answered}; body: {why}")));
            findings.push(Finding::new(REFUSED, REFUSED_TEXT, FindingOutcome::Skipped, ""));
            findings.push(Finding::new(ERROR_SHAPE, SHAPE_TEXT, FindingOutcome::Skipped, ""));
            return report(findings, Some(latency));
        }
        findings.push(Finding::new(TLS, TLS_TEXT, FindingOutcome::Passed, format!("{answered} in {latency} ms")));
        if status == 401 {
            findings.push(Finding::new(REFUSED, REFUSED_TEXT, FindingOutcome::Passed, format!("HTTP {status}")));
        } else {
            // The body of an answer that was not a refusal may hold account data: only its size is kept.
            findings.push(Finding::new(REFUSED, REFUSED_TEXT, FindingOutcome::Failed, answered.clone()));
        }
        let shape = match error_shape(&body) {
            Ok(seen) => Finding::new(ERROR_SHAPE, SHAPE_TEXT, FindingOutcome::Passed, seen),
            Err(why) if status == 401 => Finding::new(ERROR_SHAPE, SHAPE_TEXT, FindingOutcome::Failed, why),
            Err(_) => Finding::new(ERROR_SHAPE, SHAPE_TEXT, FindingOutcome::Failed, "not an error body"),
        };
        findings.push(shape);
        report(findings, Some(latency))
    }
}

impl PublicationCheck for ErrorShapeCheck {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a> {
        Box::pin(self.run(api, environment))
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// At most `max` characters of `s`, without control characters.
fn excerpt(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(max + 1).collect();
    if clean.chars().count() > max { format!("{}…", clean.chars().take(max).collect::<String>()) } else { clean }
}

/// Whether `body` is an OBIE error body; `Ok` with its `Code` and `ErrorCode`s, `Err` with what is wrong.
pub fn error_shape(body: &[u8]) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_string())?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str());
    for key in ["Code", "Id", "Message"] {
        if text(key).is_none_or(str::is_empty) {
            return Err(format!("no {key} (a non-empty string)"));
        }
    }
    let errors = value
        .get("Errors")
        .and_then(|v| v.as_array())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| "no Errors (a non-empty array)".to_string())?;
    let mut codes = Vec::new();
    for (i, error) in errors.iter().enumerate() {
        match error.get("ErrorCode").and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
            Some(code) => codes.push(excerpt(code, 60)),
            None => return Err(format!("no Errors[{i}].ErrorCode")),
        }
        if i >= 4 {
            break;
        }
    }
    Ok(format!("Code \"{}\", ErrorCode {}", excerpt(text("Code").unwrap_or_default(), 40), codes.join(", ")))
}

/// The rustls error in `error`, looking through I/O errors wrapped in I/O errors (as the HTTP client wraps them).
fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

/// A transport failure in a few words: time-out, TLS (rustls' own description), connection (the I/O error kind).
fn describe(error: &reqwest::Error, timeout_ms: i64) -> String {
    if error.is_timeout() {
        return format!("no answer within the time-out of {timeout_ms} ms");
    }
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(tls) = tls_error(current) {
            return format!("TLS: {tls}");
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        source = current.source();
    }
    match (error.is_connect(), io_kind) {
        (true, Some(kind)) => format!("connection failed: {kind}"),
        (true, None) => "connection failed".into(),
        _ if error.is_redirect() => "redirects are not followed".into(),
        _ if error.is_builder() => "the sandbox URL cannot be used".into(),
        (false, Some(kind)) => format!("request failed: {kind}"),
        (false, None) => "request failed".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_bodies_are_recognised_and_excerpted() {
        let good = br#"{"Code":"401 Unauthorized","Id":"r1","Message":"no","Errors":[{"ErrorCode":"UK.OBIE.Header.Missing","Message":"m"}]}"#;
        assert_eq!(error_shape(good).unwrap(), "Code \"401 Unauthorized\", ErrorCode UK.OBIE.Header.Missing");
        assert_eq!(error_shape(b"<html>").unwrap_err(), "the body is not JSON");
        assert_eq!(
            error_shape(br#"{"Code":"x","Id":"1","Message":"m","Errors":[]}"#).unwrap_err(),
            "no Errors (a non-empty array)"
        );
        assert_eq!(
            error_shape(br#"{"Code":"x","Id":"1","Message":"m","Errors":[{}]}"#).unwrap_err(),
            "no Errors[0].ErrorCode"
        );
        assert_eq!(error_shape(br#"{"error":"unauthorized"}"#).unwrap_err(), "no Code (a non-empty string)");
    }

    #[test]
    fn a_report_passes_only_with_no_failure_and_something_passed() {
        let f = |o| Finding::new("x", "x", o, "");
        let at = || clock::now_rfc3339();
        assert!(CheckReport::new("sandbox", "u", at(), vec![f(FindingOutcome::Passed)], None).passed);
        assert!(!CheckReport::new("sandbox", "u", at(), vec![], None).passed);
        assert!(!CheckReport::new("sandbox", "u", at(), vec![f(FindingOutcome::Skipped)], None).passed);
        assert!(
            !CheckReport::new("sandbox", "u", at(), vec![f(FindingOutcome::Passed), f(FindingOutcome::Failed)], None)
                .passed
        );
    }

    #[test]
    fn excerpts_are_short_and_clean() {
        assert_eq!(excerpt("a\nb", 10), "ab");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
