//! The HTTPS accept loop: TLS handshake with a time-out, the client certificate judged once per connection, HTTP/1.1
//! or HTTP/2 by ALPN, connections closed gracefully when they reach their maximum age, and a drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::client_cert::ConnectionInfo;
use super::tls::ClientVerifier;

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub max_connection_age: Duration,
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets in-flight requests finish (up to the grace
/// period) and returns.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    verifier: ClientVerifier,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
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
                let _ = tcp.set_nodelay(true);
                connections.spawn(connection(
                    tcp,
                    peer_addr,
                    acceptor.clone(),
                    verifier.clone(),
                    router.clone(),
                    limits,
                    connection_shutdown.clone(),
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
    verifier: ClientVerifier,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
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
    let peer_cert = verifier.judge(tls.get_ref().1.peer_certificates());
    let info = Arc::new(ConnectionInfo { peer_addr, peer_cert });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(info.clone());
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let age = tokio::time::sleep(limits.max_connection_age);
    tokio::pin!(age);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = &mut age => {
            // Old connections are retired so every certificate is re-judged on a fresh handshake.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer_addr, %error, "connection ended with an error");
    }
}

/// Resolves once shutdown has been requested (the watch guard is dropped before returning, keeping futures `Send`).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
