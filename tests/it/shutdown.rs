//! Graceful shutdown: what SIGTERM triggers (`Running::begin_shutdown`, the same call the signal handler makes)
//! lets in-flight requests finish and refuses new connections. `tests/it/cli.rs` proves SIGTERM reaches it and the
//! process exits 0.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::Platform;
use axum::Router;
use axum::routing::get;
use kopir::web::AppState;
use tokio::sync::Notify;

/// A deliberately slow route, mounted only by this test: each request tells `started` it is being handled, then
/// takes 1.5 s (the time it takes is the point: shutdown must wait for it, or cut it off).
fn slow_route(started: Arc<Notify>) -> Router<AppState> {
    Router::new().route(
        "/test/slow",
        get(|| async move {
            started.notify_one();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "finished"
        }),
    )
}

/// Waits until the slow route is handling a request.
async fn handling(started: &Notify) {
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the slow request reached its handler");
}

#[tokio::test]
async fn shutdown_during_a_slow_request_lets_it_finish_and_refuses_new_connections() {
    let handler_started = Arc::new(Notify::new());
    let mut platform = Platform::start_with(|_| {}, Some(slow_route(handler_started.clone()))).await;
    let client = platform.client(None);
    let url = platform.url("/test/slow");
    let started = Instant::now();
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    });
    handling(&handler_started).await;
    let running = platform.take_running();
    running.begin_shutdown();

    // New connections are no longer accepted once the listener is closed.
    let fresh = common::client_for(platform.addr, &platform.root_pem(), None, None);
    common::eventually("new connections refused during shutdown", Duration::from_secs(5), async || {
        match fresh.get(platform.url("/healthz")).send().await {
            Err(_) => Ok(()),
            Ok(accepted) => Err(accepted.status()),
        }
    })
    .await;

    assert_eq!(in_flight.await.unwrap(), "finished");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    tokio::time::timeout(Duration::from_secs(10), running.stopped()).await.expect("server stopped after draining");
}

#[tokio::test]
async fn requests_that_outlive_the_grace_period_are_cut_off() {
    let handler_started = Arc::new(Notify::new());
    let mut platform =
        Platform::start_with(|c| c.server.shutdown_grace_secs = 1, Some(slow_route(handler_started.clone()))).await;
    let client = platform.client(None);
    let url = platform.url("/test/slow");
    let slow = tokio::spawn(async move {
        // Three sequential slow requests on one connection: the later ones would outlive the grace period.
        for _ in 0..3 {
            if client.get(&url).send().await.is_err() {
                return false;
            }
        }
        true
    });
    handling(&handler_started).await;
    let running = platform.take_running();
    let started = Instant::now();
    running.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited {:?}", started.elapsed());
    assert!(!slow.await.unwrap(), "all slow requests completed despite the grace period");
}
