//! The HTTPS accept loop, shared by the platform and the reference bank: connection limits at accept, TLS handshake
//! with a time-out, then the owner's [`ConnectionSetup`] (the platform judges the client certificate once per
//! connection), HTTP/1.1 or HTTP/2 by ALPN with header and idle time-outs and HTTP/2 stream limits, connections
//! retired gracefully (with a bound) when idle or at their maximum age, and a drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::activity::{Activity, DrainLimit, DrainedBody, TrackedBody};
use super::admission::{Admission, Admitted};
use super::client_cert::ConnectionInfo;
use crate::config::ServerConfig;

/// A TLS connection as accepted.
pub type TlsConnection = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// What the owner of an accept loop decides for each connection once its handshake is done: the router that serves
/// it, and what every request on it carries (the platform: the judged client certificate and the peer's address).
pub trait ConnectionSetup: Clone + Send + Sync + 'static {
    fn setup(&self, tls: &TlsConnection, peer_addr: SocketAddr) -> (Router, Option<Arc<ConnectionInfo>>);

    /// Whether this loop's connections are the platform's, counted in its connection metrics.
    fn metered(&self) -> bool {
        true
    }
}

/// Limits of the accept loop and of each connection (`[server]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub max_connection_age: Duration,
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub graceful_close: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub http2_max_concurrent_streams: u32,
    pub max_header_bytes: usize,
    /// The body limit; bodies a handler left unread are read (and discarded) up to a multiple of it.
    pub max_body_bytes: usize,
}

impl Limits {
    pub fn from_config(server: &ServerConfig) -> Limits {
        Limits {
            handshake_timeout: Duration::from_secs(server.handshake_timeout_secs),
            max_connection_age: Duration::from_secs(server.max_connection_age_secs),
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            graceful_close: Duration::from_secs(server.graceful_close_secs),
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            http2_max_concurrent_streams: server.http2_max_concurrent_streams,
            max_header_bytes: server.max_header_bytes,
            max_body_bytes: server.max_body_bytes,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets in-flight requests finish (up to the grace
/// period) and returns.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    setup: impl ConnectionSetup,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_address, setup.metered());
    loop {
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer_addr) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let slot = match admission.admit(peer_addr.ip()) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        // Closed at once, before any TLS work: a flood costs an accept and a close.
                        tracing::debug!(%peer_addr, reason = refusal.as_str(), "connection refused at accept");
                        super::metrics::record_refused_connection(refusal.as_str());
                        drop(tcp);
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                connections.spawn(connection(
                    tcp,
                    peer_addr,
                    acceptor.clone(),
                    setup.clone(),
                    limits,
                    connection_shutdown.clone(),
                    slot,
                ));
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "draining connections");
    }
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = connections.len(), "grace period over; closing remaining connections");
        connections.abort_all();
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer_addr: SocketAddr,
    acceptor: TlsAcceptor,
    setup: impl ConnectionSetup,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    _slot: Admitted,
) {
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer_addr, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer_addr, "TLS handshake timed out");
            return;
        }
    };
    let (router, info) = setup.setup(&tls, peer_addr);
    serve_http(tls, router, info, limits, shutdown).await;
}

/// Serves HTTP/1.1 or HTTP/2 on one established (TLS) connection: the head of each request must arrive within the
/// header time-out; the connection is retired when it has been idle for the idle time-out, reaches its maximum age
/// or the server shuts down, and closed at the latest `graceful_close` after that. `info` is put into every request.
pub async fn serve_http<I>(
    io: I,
    router: Router,
    info: Option<Arc<ConnectionInfo>>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let drain = DrainLimit { bytes: limits.max_body_bytes.saturating_mul(DRAIN_FACTOR), time: limits.graceful_close };
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = requests.begin();
        if let Some(info) = &info {
            request.extensions_mut().insert(info.clone());
        }
        let answer = router.clone().oneshot(request.map(|body| Body::new(DrainedBody::new(body, drain))));
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper-util's builder has no header-size setting; the read buffer bounds the head (431 beyond it).
        .max_buf_size(limits.max_header_bytes.max(MIN_H1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let age = tokio::time::sleep(limits.max_connection_age);
    tokio::pin!(age);
    let retired = tokio::select! {
        result = conn.as_mut() => {
            ended(result);
            return;
        }
        _ = stopped(&mut shutdown) => "shutdown",
        // Old connections are retired so every certificate is re-judged on a fresh handshake.
        _ = &mut age => "max_age",
        _ = activity.idle_for(limits.idle_timeout) => {
            super::metrics::record_closed_connection("idle");
            "idle"
        }
    };
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(limits.graceful_close, conn.as_mut()).await {
        Ok(result) => ended(result),
        Err(_) => {
            // Dropping the connection closes it, whatever its requests are doing.
            tracing::debug!(retired, "connection did not close in time; closing it");
            super::metrics::record_closed_connection("close_timeout");
        }
    }
}

/// An unread body is read (and discarded) up to this many times the body limit, so a client that sent an oversized
/// body, or one to an endpoint that refused it early, still gets its answer; past it the connection is given up (as
/// nginx's lingering close does, bounded in time too).
const DRAIN_FACTOR: usize = 8;

/// hyper's smallest HTTP/1.1 read buffer.
const MIN_H1_BUFFER: usize = 8192;

fn ended(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    let Err(error) = result else { return };
    if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
        super::metrics::record_closed_connection("header_timeout");
    }
    tracing::debug!(%error, "connection ended with an error");
}

/// Resolves once shutdown has been requested (the watch guard is dropped before returning, keeping futures `Send`).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
