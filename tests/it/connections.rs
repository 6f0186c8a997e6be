//! The public listener's connection limits over real TLS: idle connections and clients that trickle their headers
//! are closed, a retired connection is closed within its bound even with a request hanging, connections over the
//! global or per-address limit are closed at accept (and counted), and unknown HTTP methods cannot grow the metrics.

use std::time::Duration;

use crate::common::wire::{self, Version};
use crate::common::{self, Platform};
use axum::Router;
use axum::routing::get;
use kopir::web::AppState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Long enough for any closing the test waits for on a busy machine; the limits under test are 1–2 s.
const BOUND: Duration = Duration::from_secs(15);

/// A route that never answers within a test's lifetime (mounted only here, outside the request time-out).
fn hanging_route() -> Router<AppState> {
    Router::new().route(
        "/test/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    )
}

async fn admin_metrics(platform: &Platform) -> String {
    let admin = platform.admin_addr.expect("admin listener");
    reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap()
}

/// Whether the platform answers a fresh client, trying for a while (freed connection slots come back when the
/// server has noticed the close).
async fn serves(platform: &Platform) -> bool {
    let answered = common::eventually("the platform to answer a fresh client", Duration::from_secs(5), async || {
        platform.client(None).get(platform.url("/healthz")).send().await
    })
    .await;
    answered.status() == 200
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_on_both_http_versions() {
    let platform = Platform::start_with(
        |c| {
            c.server.idle_timeout_secs = 1;
            // Far away, so what closes the connection is the idle time-out.
            c.server.header_read_timeout_secs = 120;
        },
        None,
    )
    .await;
    for version in Version::BOTH {
        let mut connection = wire::connect(&platform, None, version).await;
        let answer = connection.send("GET", "/healthz", &[], "").await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(connection.closed_within(BOUND).await, "{version:?}: an idle connection stayed open");
    }
    assert!(serves(&platform).await);
    assert!(admin_metrics(&platform).await.contains("kopir_connections_closed_total{reason=\"idle\"}"));
}

#[tokio::test]
async fn a_connection_trickling_its_headers_is_closed_after_the_header_timeout() {
    let platform = Platform::start_with(
        |c| {
            c.server.header_read_timeout_secs = 1;
            // Far away, so what closes the connection is the header time-out.
            c.server.idle_timeout_secs = 120;
        },
        None,
    )
    .await;
    let stream = wire::tls(&platform, None, Some(b"http/1.1")).await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let trickle = async {
        // One header line every 200 ms, as long as the server takes it: a real slow client against the server's
        // header time-out.
        for n in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(format!("X-Trickle-{n}: a\r\n").as_bytes()).await.is_err() {
                break;
            }
            let _ = writer.flush().await;
        }
    };
    let closed = async {
        let mut buf = [0u8; 512];
        // The server's 408 (if any) and then the end of the stream.
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let outcome = tokio::time::timeout(BOUND, async {
        tokio::select! {
            _ = closed => true,
            _ = trickle => true,
        }
    })
    .await;
    assert!(outcome.is_ok(), "a client trickling one header line each 200 ms kept its connection open");
    assert!(serves(&platform).await);
}

#[tokio::test]
async fn a_retired_connection_is_closed_within_its_bound_even_with_a_request_hanging() {
    let platform = Platform::start_with(
        |c| {
            c.server.max_connection_age_secs = 1;
            c.server.graceful_close_secs = 1;
        },
        Some(hanging_route()),
    )
    .await;
    for version in Version::BOTH {
        let mut connection = wire::connect(&platform, None, version).await;
        let hanging = connection.send("GET", "/test/hang", &[], "");
        // The request never answers; the connection must end anyway, failing the request.
        let outcome = tokio::time::timeout(BOUND, hanging).await;
        assert!(
            matches!(outcome, Ok(Err(_))),
            "{version:?}: the retired connection was kept open for its hanging request"
        );
    }
    assert!(serves(&platform).await);
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_closed_at_accept_and_counted() {
    let platform = Platform::start_with(
        |c| {
            c.server.max_connections_per_address = 3;
            c.server.max_connections = 100;
        },
        None,
    )
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(wire::tls(&platform, None, Some(b"http/1.1")).await);
    }
    // The 4th from 127.0.0.1 is closed before the handshake completes.
    assert!(wire::try_tls(&platform, None, Some(b"http/1.1")).await.is_err(), "a 4th connection was let in");
    let metrics = admin_metrics(&platform).await;
    assert!(metrics.contains("kopir_connections_refused_total{reason=\"per_address\"}"), "{metrics}");
    // The three held connections still work.
    for stream in open.iter_mut() {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    }
    drop(open);
    assert!(serves(&platform).await, "the platform does not serve after the held connections closed");
}

#[tokio::test]
async fn connections_over_the_global_limit_are_closed_at_accept_and_counted() {
    let platform = Platform::start_with(
        |c| {
            c.server.max_connections = 2;
            c.server.max_connections_per_address = 2;
        },
        None,
    )
    .await;
    let held = [wire::tls(&platform, None, None).await, wire::tls(&platform, None, None).await];
    assert!(wire::try_tls(&platform, None, None).await.is_err(), "a 3rd connection was let in");
    let metrics = admin_metrics(&platform).await;
    assert!(metrics.contains("kopir_connections_refused_total{reason=\"max_connections\"}"), "{metrics}");
    drop(held);
    assert!(serves(&platform).await);
}

#[tokio::test]
async fn unknown_http_methods_do_not_grow_the_metric_series() {
    let platform = Platform::start().await;
    let client = platform.client(None);
    for n in 0..60 {
        let method = reqwest::Method::from_bytes(format!("XMETHOD{n}").as_bytes()).unwrap();
        let response = client.request(method, platform.url("/healthz")).send().await.unwrap();
        assert!(response.status().is_client_error());
    }
    let metrics = admin_metrics(&platform).await;
    let methods: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("kopir_http_requests_total{"))
        .filter_map(|line| line.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.contains("OTHER"), "{methods:?}");
    let known = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "OTHER"];
    assert!(methods.iter().all(|m| known.contains(m)), "method labels beyond the standard ones: {methods:?}");
}

#[tokio::test]
async fn http2_streams_and_request_heads_are_held_to_the_configured_limits() {
    let platform = Platform::start_with(
        |c| {
            c.server.http2_max_concurrent_streams = 7;
            c.server.max_header_bytes = 8192;
        },
        None,
    )
    .await;
    // The server's SETTINGS announce the stream limit.
    let stream = wire::tls(&platform, None, Some(b"h2")).await;
    let (client, mut connection) = h2::client::handshake(stream).await.unwrap();
    let request = hyper::Request::get(format!("https://localhost:{}/healthz", platform.addr.port())).body(()).unwrap();
    let answered = async {
        let mut client = client.ready().await.unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        response.await.unwrap().status()
    };
    let status = tokio::select! {
        status = answered => status,
        _ = &mut connection => panic!("the connection ended"),
    };
    assert_eq!(status, 200);
    assert_eq!(connection.max_concurrent_send_streams(), 7);

    // A head over the limit is refused on both versions; the platform goes on serving.
    let big = "a".repeat(12_000);
    for version in Version::BOTH {
        let mut connection = wire::connect(&platform, None, version).await;
        let outcome = connection.send("GET", "/healthz", &[("x-padding", big.as_str())], "").await;
        match outcome {
            Ok(answer) => assert_eq!(answer.status, 431, "{version:?}"),
            Err(error) => assert_eq!(version, Version::Http2, "{version:?}: {error:?}"),
        }
    }
    assert!(serves(&platform).await);
}
