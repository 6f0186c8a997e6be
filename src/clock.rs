//! Time: UTC, RFC 3339 on the wire and in the database, whole seconds (so text order is time order).
//!
//! Every reading of the time goes through the platform's [`Clock`] (owned by the platform state, handed to
//! background work), read once where a request or a job starts and passed down as `now`. Its time flows with the
//! system's; tests move it forward with [`Clock::advance`] — a code's expiry, a session's idle time-out, the next
//! scheduled check — and whatever waits on [`Clock::sleep`] wakes as if that time had passed, so no test sleeps.
//!
//! ```
//! # tokio_test_block_on(async {
//! let clock = kopir::clock::Clock::system();
//! let before = clock.now();
//! clock.advance(time::Duration::minutes(31)); // a test: the session's idle time-out has passed
//! assert!(clock.now() - before >= time::Duration::minutes(31));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

/// The platform's clock: the system's time plus however far it was moved forward (only tests move it).
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// How far the clock is ahead of the system's, in milliseconds.
    ahead_ms: AtomicI64,
    /// Tells sleepers the clock moved.
    moved: watch::Sender<i64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The system's time.
    pub fn system() -> Clock {
        Clock { inner: Arc::new(Inner { ahead_ms: AtomicI64::new(0), moved: watch::Sender::new(0) }) }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::milliseconds(self.inner.ahead_ms.load(Ordering::Relaxed))
    }

    /// `now` as stored and sent: `2026-11-25T14:24:56Z`.
    pub fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }

    /// Moves the clock forward by `by` (tests), waking everything that sleeps on it.
    pub fn advance(&self, by: time::Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(i64::MAX).max(0);
        let ahead = self.inner.ahead_ms.fetch_add(ms, Ordering::Relaxed) + ms;
        self.inner.moved.send_replace(ahead);
    }

    /// Waits until `by` has passed on this clock: in real time, or sooner when the clock is moved forward.
    pub async fn sleep(&self, by: std::time::Duration) {
        let deadline = self.now() + by;
        let mut moved = self.inner.moved.subscribe();
        loop {
            let left = deadline - self.now();
            if left <= time::Duration::ZERO {
                return;
            }
            let left = std::time::Duration::try_from(left).unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                changed = moved.changed() => {
                    if changed.is_err() {
                        // The clock is gone (the platform stopped): real time only from here.
                        tokio::time::sleep(left).await;
                    }
                }
            }
        }
    }
}

/// `2026-11-25T14:24:56Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A date for people: the day of a stored time, in UTC (`2026-11-25`).
pub fn day(rfc3339: &str) -> String {
    rfc3339.get(..10).unwrap_or(rfc3339).to_string()
}

pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

/// Unix seconds of RFC 3339 times that come in runs of the same text (a meter batch: many exchanges in one second),
/// each run parsed once.
#[derive(Debug, Default)]
pub struct RunsOfTimes<'a> {
    last: Option<(&'a str, i64)>,
}

impl<'a> RunsOfTimes<'a> {
    pub fn unix(&mut self, text: &'a str) -> Result<i64, time::error::Parse> {
        match self.last {
            Some((last, unix)) if last == text => Ok(unix),
            _ => {
                let unix = parse(text)?.unix_timestamp();
                self.last = Some((text, unix));
                Ok(unix)
            }
        }
    }
}

/// The system's time, for what runs outside the platform's state (the command line, the reference bank, the
/// benchmark). Everything the platform decides reads its [`Clock`] instead.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// [`now`] as stored and sent.
pub fn now_rfc3339() -> String {
    rfc3339(now())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc_and_parses_back() {
        let t = time::macros::datetime!(2026-11-25 14:24:56.789 +05:00);
        let s = rfc3339(t);
        assert_eq!(s, "2026-11-25T09:24:56Z");
        assert_eq!(parse(&s).unwrap().unix_timestamp(), t.unix_timestamp());
    }

    #[tokio::test]
    async fn moving_the_clock_wakes_its_sleepers_at_once() {
        let clock = Clock::system();
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(std::time::Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        let before = clock.now();
        clock.advance(time::Duration::minutes(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "half the time has passed");
        clock.advance(time::Duration::minutes(31));
        // Woken by the move, not by an hour of real time (the test would time out).
        tokio::time::timeout(std::time::Duration::from_secs(10), sleeper).await.unwrap().unwrap();
        assert!(clock.now() - before >= time::Duration::minutes(61));
    }
}
