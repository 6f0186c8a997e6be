//! Calling a bank: one pooled keep-alive HTTPS client presenting the platform's client certificate, a signed
//! consent header per call (`x-kopir-consent`, ES256, verifiable with the platform's JWKS), the caller's
//! `x-fapi-interaction-id`, and the API's own time-out. A bank's failure becomes a standard error that names the
//! bank and never the bank's own words (they may hold anything).
//!
//! The base URL is chosen here by the application's mode: a sandbox application's calls go to the API's
//! `sandbox_base_url` (the bank's sandbox) and never to production; a production application's to the
//! `production_base_url`. Before any call, the consent's customer is judged against the mode once more
//! (`apps::customer_refusal`): the journey already refused the wrong ones, this makes sure no other path leads there.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde_json::Value;

use super::grant::{Grant, Route};
use crate::config::Config;
use crate::egress::{Guard, GuardedConnector, Outbound, OutboundError};
use crate::standard::error::{ApiError, ObErrorCode};
use crate::web::AppState;

pub const CONSENT_HEADER: &str = "x-kopir-consent";
pub const CONSENT_HEADER_TYPE: &str = "kopir-consent+jwt";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: {error}")]
    File { path: std::path::PathBuf, error: std::io::Error },
    #[error("HTTP client: {0}")]
    Build(String),
}

/// The HTTP client for banks: hyper's pooled keep-alive client over rustls, HTTP/1.1, HTTPS only, connecting only
/// where the egress guard permits (`gateway.allowed_networks`). (Not reqwest: its redirect, retry and URL layers
/// cost a tenth of the gateway's CPU per call and the gateway needs none of them.)
pub type BankClient = Client<HttpsConnector<GuardedConnector<HttpConnector<Guard>>>, Empty<Bytes>>;

/// The most of a bank's answer the gateway reads: a page of transactions is far smaller.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Builds the bank client once at start: the platform's client certificate; trusting the system's roots, the
/// platform's root and `gateway.provider_ca_file`; names resolved, and addresses judged, by `guard`.
pub fn client(config: &Config, guard: Guard) -> Result<BankClient, ClientError> {
    let outbound = |e: OutboundError| match e {
        OutboundError::File { path, error } => ClientError::File { path, error },
        invalid => ClientError::Build(invalid.to_string()),
    };
    // The TLS set-up is the egress builder's; the client stays hyper's (the gateway's hot path).
    let tls = Outbound::new()
        .platform_identity(config)
        .map_err(outbound)?
        .trust_platform_and_providers(config)
        .map_err(outbound)?
        .rustls_config()
        .map_err(outbound)?;
    let mut http = HttpConnector::new_with_resolver(guard.clone());
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(GuardedConnector::new(http, guard));
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(config.gateway.max_idle_per_bank)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// The claims of the signed consent header: what the bank needs to answer for this customer and no more.
#[derive(Debug, Serialize)]
struct ConsentHeader<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    consent_id: &'a str,
    permissions: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_to: Option<&'a str>,
    interaction_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A bank's answer, as far as the gateway cares: its body read as `T`.
pub struct Answer<T> {
    pub body: T,
    pub bytes: u64,
}

/// What the gateway reads of a bank's successful answer: a type that knows whether it has the standard's shape.
pub trait BankBody: serde::de::DeserializeOwned {
    fn well_formed(&self) -> bool;

    /// How many transaction lines the answer holds (billing counts pages of them); none but a transactions page's.
    fn transaction_lines(&self) -> u32 {
        0
    }
}

/// Any answer with a `Data` object.
impl BankBody for Value {
    fn well_formed(&self) -> bool {
        self.get("Data").is_some_and(Value::is_object)
    }

    fn transaction_lines(&self) -> u32 {
        self["Data"]["Transaction"].as_array().map_or(0, |lines| u32::try_from(lines.len()).unwrap_or(u32::MAX))
    }
}

/// Why a bank call gave nothing usable.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub code: ObErrorCode,
    pub message: String,
}

impl Failure {
    fn new(status: StatusCode, code: ObErrorCode, message: String) -> Failure {
        Failure { status, code, message }
    }

    pub fn into_error(self) -> ApiError {
        ApiError::new(self.status, self.code, self.message)
    }
}

/// The answer for a bank whose API the sandbox's checks (or the operator) took off the marketplace: 503, a standard
/// error body, and the reason — in the fan-out, the bank's `Meta.MissingProviders` entry carries the same message.
pub fn delisted(bank: &str) -> Failure {
    Failure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ObErrorCode::UnexpectedError,
        format!("{bank}: the bank's API is temporarily delisted by the platform's checks"),
    )
}

/// One call to one bank: `path` after the API's base URL (with its query). Metered whatever happens.
pub async fn call<T: BankBody>(
    state: &AppState,
    grant: &Grant,
    route: &Route,
    endpoint: &'static str,
    path: &str,
    interaction_id: &str,
) -> Result<Answer<T>, Failure> {
    let started = Instant::now();
    let outcome = call_unmetered::<T>(state, grant, route, path, interaction_id).await;
    let (status, bytes, error_code, transaction_lines) = match &outcome {
        Ok(answer) => (200, answer.bytes, None, answer.body.transaction_lines()),
        Err(failure) => (failure.status.as_u16(), 0, Some(failure.code), 0),
    };
    state.gateway.meter.record(super::meter::Exchange {
        at: state.clock.now_rfc3339(),
        application_id: grant.client.app.id,
        user_organisation_id: grant.client.organisation.id,
        provider_organisation_id: Some(route.provider),
        api_id: route.api.as_ref().map(|a| a.id),
        consent_id: Some(grant.consent.id.to_string()),
        endpoint,
        status,
        latency_ms: started.elapsed().as_millis() as u64,
        bytes,
        interaction_id: interaction_id.to_string(),
        error_code,
        mode: grant.client.app.mode,
        transaction_lines,
    });
    metrics::histogram!("kopir_gateway_bank_seconds", "endpoint" => endpoint).record(started.elapsed().as_secs_f64());
    if let Some(api) = &route.api {
        let environment = grant.client.app.mode.as_str();
        crate::web::metrics::record_bank_call(&route.bin, api.id, endpoint, environment, status, started.elapsed());
    }
    outcome
}

async fn call_unmetered<T: BankBody>(
    state: &AppState,
    grant: &Grant,
    route: &Route,
    path: &str,
    interaction_id: &str,
) -> Result<Answer<T>, Failure> {
    let bank = &route.name;
    let Some(api) = &route.api else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            ObErrorCode::ResourceConsentMismatch,
            format!("The application is not connected to a published API of {bank}"),
        ));
    };
    if api.delisted {
        return Err(delisted(bank));
    }
    let mode = grant.client.app.mode;
    if crate::apps::customer_refusal(mode, state.config.mode, &grant.customer_iin).is_some() {
        let message = if mode.is_sandbox() {
            "A sandbox application's consent may be for the standard's test customers only"
        } else {
            "The standard's test customers exist only in the sandbox; a production application cannot reach them"
        };
        return Err(Failure::new(StatusCode::FORBIDDEN, ObErrorCode::ResourceConsentMismatch, message.to_string()));
    }
    if api.base_url.is_empty() {
        // Only a sandbox URL may be missing (a production one is required to publish).
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            ObErrorCode::ResourceConsentMismatch,
            format!("{bank} publishes no sandbox for this API"),
        ));
    }
    let issuer = crate::oauth::metadata::issuer(state);
    let now = state.clock.now().unix_timestamp();
    let consent = &grant.consent;
    let claims = ConsentHeader {
        iss: &issuer,
        aud: &route.bin,
        sub: &grant.customer_iin,
        consent_id: consent.id.as_str(),
        permissions: consent.permissions.iter().map(|p| p.as_str()).collect(),
        transaction_from: consent.transaction_from.as_deref(),
        transaction_to: consent.transaction_to.as_deref(),
        interaction_id,
        iat: now,
        exp: now + state.config.gateway.signed_header_secs as i64,
        jti: crate::random::uuid_v4().to_string(),
    };
    let header = state.signer.sign(&state.db, CONSENT_HEADER_TYPE, &claims).await.map_err(|e| {
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, ObErrorCode::UnexpectedError, {
            tracing::error!(error = %e, "signing the consent header failed");
            "The platform could not sign its call to the bank".to_string()
        })
    })?;
    let unreachable =
        || Failure::new(StatusCode::BAD_GATEWAY, ObErrorCode::UnexpectedError, format!("{bank} could not be reached"));
    let request = format!("{}{path}", api.base_url.trim_end_matches('/'))
        .parse::<Uri>()
        .ok()
        .and_then(|uri| {
            Request::get(uri)
                .header(CONSENT_HEADER, header)
                .header(crate::web::request_id::X_FAPI_INTERACTION_ID, interaction_id)
                .header(axum::http::header::ACCEPT, "application/json")
                .body(Empty::new())
                .ok()
        })
        .ok_or_else(unreachable)?;
    // The API's time-out covers the whole exchange, the answer's body included.
    let exchange = async {
        let response = state.gateway.client.request(request).await.map_err(|e| {
            let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
            match crate::egress::refusal(&e) {
                Some(refused) if refused.is_refusal() => {
                    tracing::warn!(bank = %route.bin, %refused, "bank call refused by the egress guard")
                }
                _ => tracing::warn!(bank = %route.bin, error = %e, %cause, "bank unreachable"),
            }
            unreachable()
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map_err(|e| {
            let message = if e.is::<LengthLimitError>() {
                format!("{bank} answered with more than {} MiB", MAX_ANSWER_BYTES >> 20)
            } else {
                format!("{bank} broke off its answer")
            };
            Failure::new(StatusCode::BAD_GATEWAY, ObErrorCode::UnexpectedError, message)
        })?;
        Ok::<_, Failure>((status, body.to_bytes()))
    };
    let (status, body) =
        tokio::time::timeout(Duration::from_millis(api.timeout_ms), exchange).await.map_err(|_| {
            Failure::new(
                StatusCode::GATEWAY_TIMEOUT,
                ObErrorCode::UnexpectedError,
                format!("{bank} did not answer within {} ms", api.timeout_ms),
            )
        })??;
    let bytes = body.len() as u64;
    if status.is_success() {
        return match serde_json::from_slice::<T>(&body) {
            Ok(body) if body.well_formed() => Ok(Answer { body, bytes }),
            _ => Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                ObErrorCode::UnexpectedError,
                format!("{bank} answered with a malformed body"),
            )),
        };
    }
    // The bank's error code is passed on when it is the customer's or the caller's business (not found, bad
    // date); its refusal of the platform's own credentials, or its failure, is the platform's problem to report.
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let bank_code = parsed.as_ref().and_then(|b| b["Errors"][0]["ErrorCode"].as_str()).and_then(ObErrorCode::parse);
    let failure = match status {
        StatusCode::NOT_FOUND => {
            Failure::new(StatusCode::NOT_FOUND, ObErrorCode::ResourceNotFound, format!("{bank} has no such resource"))
        }
        StatusCode::BAD_REQUEST => Failure::new(
            StatusCode::BAD_REQUEST,
            bank_code.unwrap_or(ObErrorCode::FieldInvalid),
            format!("{bank} refused the request's parameters"),
        ),
        s if s.is_server_error() => Failure::new(
            StatusCode::BAD_GATEWAY,
            ObErrorCode::UnexpectedError,
            format!("{bank} answered with an error"),
        ),
        _ => {
            tracing::warn!(bank = %route.bin, status = status.as_u16(), "bank refused the platform's call");
            Failure::new(
                StatusCode::BAD_GATEWAY,
                ObErrorCode::UnexpectedError,
                format!("{bank} refused the platform's call"),
            )
        }
    };
    Err(failure)
}
