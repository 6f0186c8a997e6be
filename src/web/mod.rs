//! The HTTPS server: application state, the router that mounts each domain's routes, the cross-cutting layers,
//! and start / shutdown of the listeners.

pub mod activity;
pub mod admission;
pub mod chart;
pub mod client_cert;
pub mod health;
pub mod metrics;
pub mod nav;
pub mod pages;
pub mod rate_limit;
pub mod request_id;
pub mod server;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::pki::{Authority, PkiError, PkiPaths, TlsIdentity};
use crate::standard::error::{ApiError, ObErrorCode};
use crate::store::{Db, StoreError, StoreOptions};

/// What every handler can reach: one shared [`Platform`], so a clone (axum makes several per request) is one
/// reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Platform>);

impl std::ops::Deref for AppState {
    type Target = Platform;

    fn deref(&self) -> &Platform {
        &self.0
    }
}

/// The parts of the running platform.
pub struct Platform {
    pub config: Arc<Config>,
    pub db: Db,
    pub authority: Arc<Authority>,
    pub shutting_down: Arc<AtomicBool>,
    /// `server.public_url` without a trailing slash, with a port of 0 replaced by the port actually bound (tests
    /// and ad-hoc runs listen on port 0). The OAuth issuer and every advertised URL start with it.
    pub public_url: Arc<str>,
    /// Signs tokens, signed headers and webhooks with the platform's active key (keys cached in memory).
    pub signer: crate::pki::signing::Signer,
    /// How one-time codes reach customers, and how they pass biometric verification (`[trust]`).
    pub sms: crate::trust::sms::SmsSender,
    pub biometric: crate::trust::biometric::BiometricVerifier,
    /// The registry of mobile numbers by IIN.
    pub phones: crate::trust::phone::PhoneRegistry,
    /// The data-exchange gateway: the bank client, account-id key, meter and token keys.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// Request rate limits (`[limits]`), checked before anything else.
    pub rate_limits: Arc<rate_limit::RateLimits>,
    /// Password hashing, bounded to a few at once.
    pub passwords: crate::identity::Passwords,
    /// Keys that never leave this server: anonymous forms' CSRF tokens, tags of mistyped user names.
    pub local_keys: Arc<crate::pki::local_keys::LocalKeys>,
    /// Where outgoing calls to participants' URLs may go (bank calls, checks, webhooks).
    pub egress: crate::egress::Egress,
    /// The time: every decision and every stored timestamp reads it (tests move it forward).
    pub clock: crate::clock::Clock,
    /// Whether the platform is answering with its own 5xx (`crate::availability::platform`).
    pub availability: Arc<crate::availability::PlatformWatch>,
    /// The check an API passes before publication and then on a schedule (the sandbox's conformance suite).
    pub publication_check: Arc<dyn crate::catalog::PublicationCheck>,
    /// Whether `kopir demo` runs here with its sample application (`/demo/app`): the home page leads there.
    pub demo_app: bool,
}

impl Platform {
    /// An absolute URL of this platform for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }
}

/// `public_url` with a `:0` port replaced by the bound one.
fn effective_public_url(public_url: &str, bound: SocketAddr) -> String {
    let trimmed = public_url.trim_end_matches('/');
    let authority_end = trimmed[8.min(trimmed.len())..].find('/').map(|i| i + 8).unwrap_or(trimmed.len());
    let (origin, rest) = trimmed.split_at(authority_end);
    match origin.strip_suffix(":0") {
        Some(host) => format!("{host}:{}{rest}", bound.port()),
        None => trimmed.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("gateway: {0}")]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error("{path}: {error}")]
    Key { path: std::path::PathBuf, error: std::io::Error },
    #[error("trust adapters: {0}")]
    Adapter(#[from] crate::trust::AdapterError),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
    #[error("operating documents: {0}")]
    Documents(#[from] crate::docs::agreements::SyncError),
}

/// The whole public application: every domain's routes plus the layers around them.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    // One router per domain; each states who may call each of its routes (see its module).
    Router::new()
        .merge(health::router())
        .merge(pages::router())
        .merge(crate::pki::router())
        .merge(crate::identity::router())
        .merge(crate::participants::router())
        .merge(crate::audit::router())
        .merge(crate::apps::router())
        .merge(crate::catalog::router())
        .merge(crate::oauth::router())
        .merge(crate::consent::router())
        .merge(crate::trust::router())
        .merge(crate::gateway::router())
        .merge(crate::standard::router())
        .merge(crate::sandbox::router())
        .merge(crate::availability::router())
        .merge(crate::reports::router())
        .merge(crate::monitoring::router())
        .merge(crate::docs::router())
        .merge(crate::requests::router())
        .merge(crate::notify::inbox::router())
        .merge(crate::billing::pages::router())
        .merge(crate::billing::statements::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.server.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(config.server.request_timeout_secs),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit::middleware))
        // Outside the time-out, so its 503 gets the endpoint's body too; inside the request id, for the error's Id.
        .layer(middleware::from_fn(standard_error_bodies))
        .layer(middleware::from_fn_with_state(state.clone(), nav::middleware))
        .layer(middleware::from_fn_with_state(state.clone(), language))
        // The platform's own availability: it sees every answer as the caller gets it.
        .layer(middleware::from_fn_with_state(state.clone(), crate::availability::platform::middleware))
        .layer(middleware::from_fn(request_id::middleware))
        .with_state(state)
}

/// No route: a page in the visitor's language for a browser (it asks for `text/html`) outside the API, the API's
/// own JSON body otherwise — under the API's prefixes and at the OAuth endpoints always.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|kind| kind.trim().starts_with("text/html")));
    match error_shape(uri.path()) {
        ErrorShape::Page if browser => pages::PageError::not_found().into_response(),
        _ => ApiError::not_found().into_response(),
    }
}

/// Which error body a path answers with: the Open Banking body for the API, RFC 6749 JSON for the OAuth endpoints
/// clients call, an HTML page for everything a person opens in a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorShape {
    OpenBanking,
    Oauth,
    Page,
}

fn error_shape(path: &str) -> ErrorShape {
    const OAUTH: [&str; 4] = [
        crate::oauth::metadata::PAR,
        crate::oauth::metadata::TOKEN,
        crate::oauth::metadata::REVOKE,
        crate::oauth::metadata::INTROSPECT,
    ];
    const API_PREFIXES: [&str; 4] = ["/open-banking/", "/api/", "/.well-known/", "/pki/"];
    if OAUTH.contains(&path) {
        ErrorShape::Oauth
    } else if API_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) || matches!(path, "/healthz" | "/readyz") {
        ErrorShape::OpenBanking
    } else {
        ErrorShape::Page
    }
}

/// Makes the language the request asks for its context: pages, error pages and refusals below read it with
/// [`crate::i18n::current`]; and the operator's time zone, in which pages show times ([`crate::i18n::Texts::time`]).
async fn language(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let lang = crate::i18n::Lang::of(request.headers());
    crate::i18n::scope_with_zone(lang, state.config.time_zone.zone().clone(), next.run(request)).await
}

/// Gives the error responses made by the framework rather than by a handler — 405, the extractors' refusals (a body
/// over the limit, a malformed form, JSON or query), 503 on time-out — the body of the endpoint's own kind, with a
/// fixed message: the framework's text may quote the input and is not for the caller.
async fn standard_error_bodies(request: Request, next: Next) -> Response {
    let shape = error_shape(request.uri().path());
    let http1 = request.version() < axum::http::Version::HTTP_2;
    let response = next.run(request).await;
    let status = response.status();
    let mut answer = if !(status.is_client_error() || status.is_server_error()) || !made_by_framework(&response) {
        response
    } else {
        standard_body(shape, status)
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE && http1 {
        // The rest of an oversized body is not wanted, whoever refused it: say the connection ends (the unread rest is
        // drained in the background so this answer reaches the client first; see `activity`).
        answer.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    answer
}

/// The endpoint's own error body for a refusal the framework made.
fn standard_body(shape: ErrorShape, status: StatusCode) -> Response {
    match shape {
        ErrorShape::OpenBanking => {
            let code = match status {
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    ObErrorCode::ResourceInvalidFormat
                }
                s if s.is_server_error() => ObErrorCode::UnexpectedError,
                _ => ObErrorCode::FieldInvalid,
            };
            let message = status.canonical_reason().unwrap_or("Request refused");
            ApiError::new(status, code, message).into_response()
        }
        ErrorShape::Oauth => {
            let (error, description) = match status {
                StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request", "The request body is too large"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    ("invalid_request", "The body must be application/x-www-form-urlencoded")
                }
                StatusCode::METHOD_NOT_ALLOWED => ("invalid_request", "This endpoint takes POST only"),
                StatusCode::SERVICE_UNAVAILABLE => {
                    ("temporarily_unavailable", "The platform is temporarily unable to handle the request")
                }
                s if s.is_server_error() => ("server_error", "The platform could not complete the request"),
                _ => ("invalid_request", "The request is malformed"),
            };
            crate::oauth::error::OauthError::new(status, error, description).into_response()
        }
        ErrorShape::Page => {
            let key = match status {
                StatusCode::PAYLOAD_TOO_LARGE => "error.too_large",
                s if s.is_server_error() => "error.internal",
                _ => "error.bad_form",
            };
            pages::PageError::new(status, key).into_response()
        }
    }
}

/// A refusal by the framework: no body type, or axum's plain-text rejection. Handlers answer errors in one of the
/// three shapes, never as plain text.
fn made_by_framework(response: &Response) -> bool {
    match response.headers().get(axum::http::header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.as_bytes().starts_with(b"text/plain"),
    }
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub state: AppState,
    server_cert: Arc<tls::ServerCert>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Asks the listeners to stop; in-flight requests may finish within the grace period.
    pub fn begin_shutdown(&self) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
    }

    /// Re-reads the server certificate and key from the data directory (SIGHUP). A broken file leaves the current
    /// certificate in place.
    pub fn reload_certificate(&self) -> Result<(), ServeError> {
        let paths = PkiPaths::new(&self.state.config);
        let identity = TlsIdentity::load(&paths.server_cert(), &paths.server_key())?;
        self.server_cert.replace(identity)?;
        Ok(())
    }

    /// Waits until every listener has drained and stopped.
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }

    pub async fn shutdown(self) {
        self.begin_shutdown();
        self.stopped().await;
    }
}

/// What the meter's writer updates with each batch of exchanges, in its transaction and in this order: the usage
/// rollups (reports), the outages seen in the answers (availability) and the billable units (billing).
pub const METER_OBSERVERS: &[crate::gateway::meter::Observer] =
    &[crate::reports::rollup::add, crate::availability::outages::observe_exchanges, crate::billing::units::observe];

/// Opens the store and the CA and starts the HTTPS and admin listeners. `extra` routes are merged into the public
/// router (the in-process test harness uses it; `kopir serve` passes none).
pub async fn start(config: Config, extra: Option<Router<AppState>>) -> Result<Running, ServeError> {
    start_with_lookup(config, extra, Arc::new(crate::egress::SystemLookup)).await
}

/// [`start`], with outgoing calls' names resolved by `lookup` (tests give their own, so that the egress guard's
/// refusals are proven without a packet leaving the machine).
pub async fn start_with_lookup(
    config: Config,
    extra: Option<Router<AppState>>,
    lookup: Arc<dyn crate::egress::Lookup>,
) -> Result<Running, ServeError> {
    let options = StoreOptions {
        readers: config.store.readers,
        busy_timeout: Duration::from_millis(config.store.busy_timeout_ms),
        time_zone: config.time_zone.zone().clone(),
    };
    let (db, _) = Db::open(&config.db_path(), options, false)?;
    let authority = Arc::new(Authority::load(&config)?);
    let paths = PkiPaths::new(&config);
    let identity = TlsIdentity::load(&paths.server_cert(), &paths.server_key())?;
    let uncovered = identity.uncovered_names(&config.server.hostnames, &config.server.ip_addresses);
    if !uncovered.is_empty() {
        tracing::warn!(names = ?uncovered, "the server certificate does not cover these configured names; run `kopir ca renew-server`");
    }
    let verifier = tls::ClientVerifier::new(&authority)?;
    let server_cert = tls::ServerCert::new(identity)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(server_cert.clone(), &verifier)?);

    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|error| ServeError::Bind { addr: config.server.listen, error })?;
    let addr = listener.local_addr().map_err(|error| ServeError::Bind { addr: config.server.listen, error })?;

    let public_url: Arc<str> = effective_public_url(&config.server.public_url, addr).into();
    let sms = crate::trust::sms::SmsSender::from_config(&config, &db).map_err(ServeError::Adapter)?;
    let biometric = crate::trust::biometric::BiometricVerifier::from_config(&config).map_err(ServeError::Adapter)?;
    let phones = crate::trust::phone::PhoneRegistry::from_config(&config).map_err(ServeError::Adapter)?;
    let local_keys_path = crate::pki::local_keys::LocalKeys::path(&config);
    let local_keys = crate::pki::local_keys::LocalKeys::load_or_create(&local_keys_path)
        .map_err(|error| ServeError::Key { path: local_keys_path, error })?;
    // Banks recognise the platform by the policy in its client certificate; an older data directory gets one now.
    let clock = crate::clock::Clock::system();
    crate::pki::lifecycle::ensure_platform_client_marked(&db, authority.clone(), &config, clock.now()).await?;
    // The accession agreements' versions this binary carries (a new one asks participants to accept it).
    let now = clock.now();
    db.write(move |tx| crate::docs::agreements::sync(tx, now)).await?;
    let egress = crate::egress::Egress::new(&config, lookup);
    let (gateway, metered) = crate::gateway::Gateway::new(&config, egress.banks.clone())?;
    let config = Arc::new(config);
    let signer = crate::pki::signing::Signer::new(config.clone());
    let publication_check = Arc::new(crate::sandbox::check::ConformanceCheck::new(
        config.clone(),
        db.clone(),
        signer.clone(),
        // The OAuth issuer (`oauth::metadata::issuer`): the public URL.
        public_url.to_string(),
        egress.banks.clone(),
        clock.clone(),
    ));
    let state = AppState(Arc::new(Platform {
        config: config.clone(),
        db,
        authority,
        shutting_down: Arc::new(AtomicBool::new(false)),
        public_url,
        signer,
        sms,
        biometric,
        phones,
        gateway,
        rate_limits: rate_limit::RateLimits::new(&config.limits),
        passwords: crate::identity::Passwords::new(config.limits.max_concurrent_password_hashes),
        local_keys: Arc::new(local_keys),
        egress,
        clock,
        availability: crate::availability::PlatformWatch::new(),
        publication_check,
        demo_app: config.mode == crate::config::Mode::Demo && extra.is_some(),
    }));
    let mut app = router(state.clone());
    if let Some(extra) = extra {
        app = app.merge(router_with_layers(extra, state.clone()));
    }
    let (shutdown, receiver) = watch::channel(false);
    let limits = server::Limits::from_config(&config.server);
    metrics::spawn_upkeep();
    let connections = PlatformConnections { router: app, verifier };
    let mut tasks = vec![tokio::spawn(server::serve(listener, acceptor, connections, limits, receiver.clone()))];
    tasks.push(crate::notify::spawn_worker(state.clone(), receiver.clone()));
    tasks.push(crate::gateway::meter::spawn_writer(
        state.db.clone(),
        metered,
        config.gateway.meter_batch,
        Duration::from_millis(config.gateway.meter_flush_ms),
        METER_OBSERVERS,
        receiver.clone(),
    ));
    tasks.push(crate::reports::retention::spawn(
        state.db.clone(),
        state.clock.clone(),
        config.time_zone.zone().clone(),
        config.reports.clone(),
        receiver.clone(),
    ));
    tasks.push(crate::billing::schedule::spawn(
        state.db.clone(),
        state.clock.clone(),
        config.time_zone.zone().clone(),
        config.billing.suspend_after_days,
        receiver.clone(),
    ));
    tasks.push(crate::availability::platform::spawn_writer(
        state.db.clone(),
        state.availability.clone(),
        state.clock.clone(),
        receiver.clone(),
    ));
    tasks.push(crate::sandbox::schedule::spawn(state.clone(), state.publication_check.clone(), receiver.clone()));
    tasks.push(crate::monitoring::spawn(
        state.db.clone(),
        state.clock.clone(),
        crate::monitoring::Sources::from_config(&config),
        receiver.clone(),
    ));
    tasks.push(crate::requests::spawn(state.db.clone(), state.clock.clone(), receiver.clone()));
    tasks.push(crate::consent::spawn_expiry_sweep(
        state.db.clone(),
        state.clock.clone(),
        Duration::from_secs(config.oauth.expiry_sweep_secs),
        receiver.clone(),
    ));

    let mut admin_addr = None;
    if config.admin.enabled {
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .map_err(|error| ServeError::Bind { addr: config.admin.listen, error })?;
        admin_addr = Some(admin.local_addr().map_err(|error| ServeError::Bind { addr: config.admin.listen, error })?);
        let mut stop = receiver;
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(admin, metrics::admin_router())
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "admin listener failed");
            }
        }));
    }
    tracing::info!(%addr, admin = ?admin_addr, "kopir is serving");
    Ok(Running { addr, admin_addr, state, server_cert, shutdown, tasks })
}

/// The platform's connections: the client certificate judged once, and with the peer's address put into every
/// request of the connection.
#[derive(Clone)]
struct PlatformConnections {
    router: Router,
    verifier: tls::ClientVerifier,
}

impl server::ConnectionSetup for PlatformConnections {
    fn setup(
        &self,
        tls: &server::TlsConnection,
        peer_addr: SocketAddr,
    ) -> (Router, Option<Arc<client_cert::ConnectionInfo>>) {
        let peer_cert = self.verifier.judge(tls.get_ref().1.peer_certificates());
        (self.router.clone(), Some(Arc::new(client_cert::ConnectionInfo { peer_addr, peer_cert })))
    }
}

fn router_with_layers(extra: Router<AppState>, state: AppState) -> Router {
    extra.layer(middleware::from_fn(request_id::middleware)).with_state(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn port_zero_in_the_public_url_becomes_the_bound_port() {
        let bound: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(effective_public_url("https://localhost:0", bound), "https://localhost:40123");
        assert_eq!(effective_public_url("https://localhost:0/", bound), "https://localhost:40123");
        assert_eq!(effective_public_url("https://openbanking.kz/", bound), "https://openbanking.kz");
        assert_eq!(effective_public_url("https://h:8443/base", bound), "https://h:8443/base");
        assert_eq!(effective_public_url("https://h:0/base", bound), "https://h:40123/base");
    }
}
