//! What the conformance suite says about what it saw: the outcome and severity of a case, and the short, non-secret
//! evidence excerpts (error bodies, transport failures).
//!
//! The outcome and severity are the catalogue's ([`crate::catalog::FindingOutcome`], [`crate::catalog::Severity`]):
//! a case's result becomes a finding of the catalogue's publication check.

pub use crate::catalog::{FindingOutcome, Severity};

/// At most `max` characters of `s`, without control characters.
pub fn excerpt(s: &str, max: usize) -> String {
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

/// [`describe`] for a request through the egress guard: a refused address is named as such, without the address
/// (the provider is told its URL is not reachable from the platform; the operator's log has the detail).
pub fn describe_send(error: &crate::egress::SendError, timeout_ms: i64) -> String {
    if let Some(refused) = error.refusal() {
        if !refused.is_refusal() {
            return "connection failed: the host name does not resolve".into();
        }
        tracing::warn!(%refused, "a check's call was refused by the egress guard");
        return "connection failed: the address is not one the platform may call".into();
    }
    match error {
        crate::egress::SendError::Http(error) => describe(error, timeout_ms),
        crate::egress::SendError::Refused(refused) => refused.to_string(),
    }
}

/// A transport failure in a few words: time-out, TLS (rustls' own description), connection (the I/O error kind).
pub fn describe(error: &reqwest::Error, timeout_ms: i64) -> String {
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
    fn excerpts_are_short_and_clean() {
        assert_eq!(excerpt("a\nb", 10), "ab");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
