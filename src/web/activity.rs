//! What a connection is doing, for the accept loop's time-outs: the requests in flight (a request counts from its
//! head until its answer's body has been sent), and request bodies a handler left unread.
//!
//! A handler (or an extractor refusing the caller) may answer without reading the body. Dropping an unread HTTP/2
//! body resets the stream, and clients that are still sending then lose the answer ("stream error"); on HTTP/1.1 it
//! ends the keep-alive connection without saying so. So an unread body is read to its end and discarded in the
//! background — up to a byte and time bound, past which it is dropped after all.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

/// The requests in flight on one connection. Two atomics, read by the idle timer only when it fires: a request costs
/// no wake-up of the timer's task and no timer of its own (the gateway's hot path).
pub struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `started`.
    last_end_ms: AtomicU64,
    started: Instant,
}

impl Activity {
    pub fn new() -> Activity {
        Activity { in_flight: AtomicUsize::new(0), last_end_ms: AtomicU64::new(0), started: Instant::now() }
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { activity: self.clone() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once no request has been in flight for `timeout` (counted from the end of the last one).
    pub async fn idle_for(&self, timeout: Duration) {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::Acquire) > 0 {
                deadline = tokio::time::Instant::now() + timeout;
                continue;
            }
            let idle_ms = self.now_ms().saturating_sub(self.last_end_ms.load(Ordering::Acquire));
            if idle_ms >= timeout_ms {
                return;
            }
            deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms - idle_ms);
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
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The end time first, so the timer never sees no request in flight with an older end.
        self.activity.last_end_ms.store(self.activity.now_ms(), Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
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
        let activity = Arc::new(Activity::new());
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
