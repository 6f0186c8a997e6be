//! The Open Banking error body every API route answers with:
//! `{"Code","Id","Message","Errors":[{"ErrorCode","Message","Path"}]}` (OBIE v3.1 `OBErrorResponse1`).
//!
//! What the caller reads is fixed and non-revealing; the cause goes to the log under the same request id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::logging;

/// The longest piece of a caller's input an error message quotes, in characters.
pub const QUOTE_CHARS: usize = 64;

/// The longest `Message` or `Path` an error body carries, in characters (OBIE `OBError1` allows 500).
const MESSAGE_CHARS: usize = 500;

/// A caller's value as an error message may quote it: at most [`QUOTE_CHARS`] characters, then `…`. Answers never
/// reflect unbounded input.
pub fn quote(input: &str) -> String {
    truncate(input, QUOTE_CHARS)
}

/// `text` cut to at most `max` characters (on a character boundary), `…` marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => {
            let keep = text[..end].char_indices().nth(max.saturating_sub(1)).map_or(end, |(i, _)| i);
            format!("{}…", &text[..keep])
        }
    }
}

/// OBIE v3.1 error codes (`OBError1.ErrorCode`) used by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObErrorCode {
    FieldExpected,
    FieldInvalid,
    FieldInvalidDate,
    FieldMissing,
    FieldUnexpected,
    HeaderInvalid,
    HeaderMissing,
    Reauthenticate,
    ResourceConsentMismatch,
    ResourceInvalidConsentStatus,
    ResourceInvalidFormat,
    ResourceNotFound,
    SignatureInvalid,
    SignatureMissing,
    UnexpectedError,
}

impl ObErrorCode {
    pub const ALL: [ObErrorCode; 15] = [
        ObErrorCode::FieldExpected,
        ObErrorCode::FieldInvalid,
        ObErrorCode::FieldInvalidDate,
        ObErrorCode::FieldMissing,
        ObErrorCode::FieldUnexpected,
        ObErrorCode::HeaderInvalid,
        ObErrorCode::HeaderMissing,
        ObErrorCode::Reauthenticate,
        ObErrorCode::ResourceConsentMismatch,
        ObErrorCode::ResourceInvalidConsentStatus,
        ObErrorCode::ResourceInvalidFormat,
        ObErrorCode::ResourceNotFound,
        ObErrorCode::SignatureInvalid,
        ObErrorCode::SignatureMissing,
        ObErrorCode::UnexpectedError,
    ];

    /// The code named by an OBIE error code string (e.g. from a bank's answer), if it is one the platform uses.
    pub fn parse(code: &str) -> Option<ObErrorCode> {
        ObErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObErrorCode::FieldExpected => "UK.OBIE.Field.Expected",
            ObErrorCode::FieldInvalid => "UK.OBIE.Field.Invalid",
            ObErrorCode::FieldInvalidDate => "UK.OBIE.Field.InvalidDate",
            ObErrorCode::FieldMissing => "UK.OBIE.Field.Missing",
            ObErrorCode::FieldUnexpected => "UK.OBIE.Field.Unexpected",
            ObErrorCode::HeaderInvalid => "UK.OBIE.Header.Invalid",
            ObErrorCode::HeaderMissing => "UK.OBIE.Header.Missing",
            ObErrorCode::Reauthenticate => "UK.OBIE.Reauthenticate",
            ObErrorCode::ResourceConsentMismatch => "UK.OBIE.Resource.ConsentMismatch",
            ObErrorCode::ResourceInvalidConsentStatus => "UK.OBIE.Resource.InvalidConsentStatus",
            ObErrorCode::ResourceInvalidFormat => "UK.OBIE.Resource.InvalidFormat",
            ObErrorCode::ResourceNotFound => "UK.OBIE.Resource.NotFound",
            ObErrorCode::SignatureInvalid => "UK.OBIE.Signature.Invalid",
            ObErrorCode::SignatureMissing => "UK.OBIE.Signature.Missing",
            ObErrorCode::UnexpectedError => "UK.OBIE.UnexpectedError",
        }
    }
}

/// An error answered to an API caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ObErrorCode,
    pub message: String,
    pub path: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ObErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), path: None }
    }

    pub fn at(mut self, path: impl Into<String>) -> ApiError {
        self.path = Some(path.into());
        self
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ObErrorCode::ResourceNotFound, "No resource exists at this path")
    }

    /// An internal failure: the cause is logged under the request id; the caller learns only that id.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ObErrorCode::UnexpectedError,
            "The platform could not complete the request; quote the error Id to the operator",
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    code: String,
    id: String,
    message: &'a str,
    errors: [Detail<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Detail<'a> {
    error_code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

/// The high-level `Code`: the status and its reason, e.g. `401 Unauthorized`.
fn summary(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {}", status.as_u16(), reason.replace(' ', "")),
        None => status.as_u16().to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = summary_message(self.status);
        // A last guard: whatever a message quotes, the body stays within the schema's lengths.
        let detail = truncate(&self.message, MESSAGE_CHARS);
        // An empty `Path` is left out: the standard's `Path` has at least one character.
        let path = self.path.as_deref().filter(|p| !p.is_empty()).map(|p| truncate(p, MESSAGE_CHARS));
        let body = Body {
            code: summary(self.status),
            id: logging::current_request_id().unwrap_or_else(|| "unknown".into()),
            message,
            errors: [Detail { error_code: self.code.as_str(), message: &detail, path: path.as_deref() }],
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names how to authenticate. Here: with a client certificate (mutual TLS).
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("MutualTLS"));
        }
        response
    }
}

/// The brief, fixed top-level message for each class of error.
fn summary_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "There is something wrong with the request parameters provided",
        401 => "The request could not be authenticated",
        403 => "The caller is not allowed to do this",
        404 => "The requested resource was not found",
        405 => "The method is not allowed on this resource",
        406 => "The requested representation is not available",
        413 => "The request body is too large",
        415 => "The request body has an unsupported media type",
        429 => "Too many requests; slow down",
        503 => "The platform is temporarily unable to handle the request",
        _ => "The platform could not complete the request",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quotes_are_bounded_on_character_boundaries() {
        assert_eq!(quote("short"), "short");
        let long = "ж".repeat(50_000);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), QUOTE_CHARS);
        assert!(quoted.ends_with('…'));
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdefg", 6), "abcde…");
    }

    #[tokio::test]
    async fn body_has_the_obie_shape() {
        let response = logging::request_id_scope("req-1".into(), async {
            ApiError::new(StatusCode::BAD_REQUEST, ObErrorCode::FieldInvalid, "bad date")
                .at("Data.Date")
                .into_response()
        })
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["Code"], "400 BadRequest");
        assert_eq!(v["Id"], "req-1");
        assert_eq!(v["Errors"][0]["ErrorCode"], "UK.OBIE.Field.Invalid");
        assert_eq!(v["Errors"][0]["Message"], "bad date");
        assert_eq!(v["Errors"][0]["Path"], "Data.Date");
        assert!(v["Message"].as_str().unwrap().len() > 10);
    }

    #[tokio::test]
    async fn an_empty_path_is_left_out() {
        let response =
            ApiError::new(StatusCode::BAD_REQUEST, ObErrorCode::FieldUnexpected, "no name").at("").into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v["Errors"][0].get("Path").is_none(), "{v}");
        assert_eq!(crate::standard::validate("ErrorResponse", &v), Ok(()));
    }
}
