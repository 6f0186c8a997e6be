//! Graceful shutdown: what SIGTERM triggers (`Running::begin_shutdown`, the same call the signal handler makes)
//! lets in-flight requests finish and refuses new connections. `tests/cli.rs` proves SIGTERM reaches it and the
//! process exits 0.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::Platform;
use axum::Router;
use axum::routing::get;
use kopir::web::AppState;

/// A deliberately slow route, mounted only by this test.
fn slow_route() -> Router<AppState> {
    Router::new().route(
        "/test/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "finished"
        }),
    )
}

#[tokio::test]
async fn shutdown_during_a_slow_request_lets_it_finish_and_refuses_new_connections() {
    let mut platform = Platform::start_with(|_| {}, Some(slow_route())).await;
    let client = platform.client(None);
    let url = platform.url("/test/slow");
    let started = Instant::now();
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = platform.take_running();
    running.begin_shutdown();

    // New connections are no longer accepted once the listener is closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = common::client_for(platform.addr, &platform.root_pem(), None, None);
    assert!(fresh.get(platform.url("/healthz")).send().await.is_err(), "a new connection was accepted during shutdown");

    assert_eq!(in_flight.await.unwrap(), "finished");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    tokio::time::timeout(Duration::from_secs(10), running.stopped()).await.expect("server stopped after draining");
}

#[tokio::test]
async fn requests_that_outlive_the_grace_period_are_cut_off() {
    let mut platform = Platform::start_with(|c| c.server.shutdown_grace_secs = 1, Some(slow_route())).await;
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    let running = platform.take_running();
    let started = Instant::now();
    running.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited {:?}", started.elapsed());
    assert!(!slow.await.unwrap(), "all slow requests completed despite the grace period");
}
