//! What a connection is doing, for the accept loop's time-outs: the requests in flight (a request counts from its
//! head until its answer's body has been sent), and request bodies a handler left unread.
//!
//! A handler (or an extractor refusing the caller) may answer without reading the body. Dropping an unread HTTP/2
//! body resets the stream, and clients that are still sending then lose the answer ("stream error"); on HTTP/1.1 it
//! ends the keep-alive connection without saying so. So an unread body is read to its end and discarded in the
//! background — up to a byte and time bound, past which it is dropped after all.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::watch;

/// The requests in flight on one connection.
pub struct Activity {
    in_flight: watch::Sender<usize>,
}

impl Activity {
    pub fn new() -> Activity {
        Activity { in_flight: watch::Sender::new(0) }
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.in_flight.send_modify(|n| *n += 1);
        InFlight { in_flight: self.in_flight.clone() }
    }

    /// Resolves once no request has been in flight for `timeout` (counted from the end of the last one).
    pub async fn idle_for(&self, timeout: Duration) {
        let mut in_flight = self.in_flight.subscribe();
        loop {
            let busy = *in_flight.borrow_and_update() > 0;
            if busy {
                // The sender lives as long as `self`; it cannot close while this runs.
                let _ = in_flight.changed().await;
            } else if tokio::time::timeout(timeout, in_flight.changed()).await.is_err() {
                return;
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

/// One request in flight.
pub struct InFlight {
    in_flight: watch::Sender<usize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// An answer's body that keeps its request counted in flight until it has been sent (or abandoned).
pub struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl TrackedBody {
    pub fn new(inner: Body, in_flight: InFlight) -> TrackedBody {
        TrackedBody { inner, _in_flight: in_flight }
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How much of a body nobody read is still read (and discarded) so the answer reaches the client.
#[derive(Debug, Clone, Copy)]
pub struct DrainLimit {
    pub bytes: usize,
    pub time: Duration,
}

/// A request body that, if dropped before its end, is read to its end in the background within `limit`.
pub struct DrainedBody {
    inner: Option<Incoming>,
    limit: DrainLimit,
}

impl DrainedBody {
    pub fn new(inner: Incoming, limit: DrainLimit) -> DrainedBody {
        DrainedBody { inner: Some(inner), limit }
    }
}

impl HttpBody for DrainedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(HttpBody::size_hint).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for DrainedBody {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else { return };
        if body.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, self.limit));
        }
    }
}

/// Reads and discards what is left of `body`, giving up past the byte or time bound (the body is then dropped:
/// HTTP/2 resets the stream, HTTP/1.1 closes the connection).
async fn drain(mut body: Incoming, limit: DrainLimit) {
    let _ = tokio::time::timeout(limit.time, async {
        let mut read = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
            if read > limit.bytes {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_counts_from_the_end_of_the_last_request() {
        let activity = Activity::new();
        let request = activity.begin();
        let idle = activity.idle_for(Duration::from_millis(300));
        tokio::pin!(idle);
        // Busy: never idle, however long.
        assert!(tokio::time::timeout(Duration::from_millis(600), idle.as_mut()).await.is_err());
        drop(request);
        // A timer never fires early, so this holds on a busy machine too.
        assert!(tokio::time::timeout(Duration::from_millis(100), idle.as_mut()).await.is_err());
        assert!(tokio::time::timeout(Duration::from_secs(10), idle.as_mut()).await.is_ok());
    }
}
