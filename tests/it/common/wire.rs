//! Connections to the platform below reqwest: a TLS stream with the ALPN of one's choice, and hyper's own HTTP/1.1 or
//! HTTP/2 client on it, so a test can hold a connection, see when the server closes it, and see an HTTP/2 stream
//! reset that a pooled client would hide.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Identity, Platform, tls_config};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

impl Version {
    pub const BOTH: [Version; 2] = [Version::Http1, Version::Http2];

    fn alpn(self) -> &'static [u8] {
        match self {
            Version::Http1 => b"http/1.1",
            Version::Http2 => b"h2",
        }
    }
}

/// A TLS connection to the platform offering only `alpn` (none: no ALPN at all).
pub async fn tls(platform: &Platform, identity: Option<&Identity>, alpn: Option<&[u8]>) -> TlsStream<TcpStream> {
    try_tls(platform, identity, alpn).await.expect("TLS handshake")
}

pub async fn try_tls(
    platform: &Platform,
    identity: Option<&Identity>,
    alpn: Option<&[u8]>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = tls_config(&platform.root_pem(), identity, None);
    config.alpn_protocols = alpn.map(|p| vec![p.to_vec()]).unwrap_or_default();
    let tcp = TcpStream::connect(platform.addr).await?;
    TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One HTTP connection; `closed` ends when the server has closed it.
pub struct Connection {
    sender: Sender,
    pub version: Version,
    pub closed: JoinHandle<()>,
    port: u16,
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").map(|v| v.to_str().unwrap()).unwrap_or("")
    }
}

pub async fn connect(platform: &Platform, identity: Option<&Identity>, version: Version) -> Connection {
    let stream = tls(platform, identity, Some(version.alpn())).await;
    let io = TokioIo::new(stream);
    let (sender, closed) = match version {
        Version::Http1 => {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            (
                Sender::Http1(sender),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        }
        Version::Http2 => {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
            (
                Sender::Http2(sender),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        }
    };
    Connection { sender, version, closed, port: platform.addr.port() }
}

impl Connection {
    /// Sends a request; an error is what the client saw (e.g. an HTTP/2 stream reset).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer, hyper::Error> {
        let uri = match self.version {
            Version::Http1 => path.to_string(),
            Version::Http2 => format!("https://localhost:{}{path}", self.port),
        };
        let mut builder = Request::builder().method(method).uri(uri);
        if self.version == Version::Http1 {
            builder = builder.header("host", format!("localhost:{}", self.port));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).unwrap();
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }

    /// Whether the server closes the connection within `bound`.
    pub async fn closed_within(self, bound: Duration) -> bool {
        // Keep the sender alive: dropping it would let the client close the connection itself.
        let _sender = self.sender;
        tokio::time::timeout(bound, self.closed).await.is_ok()
    }
}

/// What an HTTP/2 client saw when the server answered a request whose body was still being sent.
#[derive(Debug)]
pub struct EarlyAnswer {
    pub status: StatusCode,
    pub body: Bytes,
    /// The server reset the stream (e.g. `RST_STREAM(NO_ERROR)` after the answer) instead of taking the body: some
    /// clients (curl) then drop the answer and report a framing error.
    pub reset: Option<h2::Reason>,
}

/// Sends the head of a POST over HTTP/2 (`h2` directly, to see stream resets that hyper's client hides), waits for
/// the answer before sending any of the body — as a client does whose body is slow or large — then sends the body.
pub async fn h2_answer_before_body(
    platform: &Platform,
    identity: Option<&Identity>,
    path: &str,
    content_type: &str,
    body: &'static [u8],
) -> EarlyAnswer {
    let stream = tls(platform, identity, Some(b"h2")).await;
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = Request::post(format!("https://localhost:{}{path}", platform.addr.port()))
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(())
        .unwrap();
    let (response, mut body_tx) = client.send_request(request, false).unwrap();
    let response = response.await.unwrap();
    let status = response.status();
    let mut answer_body = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = answer_body.data().await {
        let chunk = chunk.unwrap();
        let _ = answer_body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    // A reset follows the answer at once; give it a moment to arrive before sending the body.
    let reset = tokio::time::timeout(Duration::from_millis(500), std::future::poll_fn(|cx| body_tx.poll_reset(cx)))
        .await
        .ok()
        .and_then(Result::ok);
    if reset.is_none() {
        body_tx.send_data(Bytes::from_static(body), true).unwrap();
    }
    EarlyAnswer { status, body: Bytes::from(received), reset }
}
