//! The platform's own availability: a layer sees every answer of the public listener and keeps, in memory, whether
//! the platform is down — from its first own 5xx to its next answer that is not one — and a background writer
//! persists each change as a platform outage (`outages`, subject `platform`). Only changes are written, never a row
//! per request; an answer that changes nothing costs one atomic load.
//!
//! **The platform's own 5xx**: any 5xx of the public listener except the gateway's account routes' `502`, `503` and
//! `504` (`/open-banking/v1/aisp/accounts…`), which relay a bank's failure, time-out or delisting and are counted
//! against the bank. Answers given while the server is shutting down are not counted.
//!
//! State kept when the process stops: an outage open in the database at start (the platform stopped while down) is
//! taken up again and closed by the first success.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::outages;
use crate::clock::Clock;
use crate::store::{Db, StoreError};
use crate::web::AppState;

/// Finished outages kept in memory at most while the writer is behind: later ones are merged into the last (the
/// downtime is kept, only the count of separate outages is lost).
const PENDING_MAX: usize = 1000;

/// The routes whose 502/503/504 relay a bank's failure.
const RELAYING_PREFIX: &str = "/open-banking/v1/aisp/accounts";

/// An outage as the watch holds it.
#[derive(Debug, Clone)]
struct Down {
    since: OffsetDateTime,
    status: u16,
    route: String,
}

#[derive(Debug, Default)]
struct Tracked {
    down: Option<Down>,
    /// Outages that ended, not yet written: (outage, ended at).
    finished: Vec<(Down, OffsetDateTime)>,
}

/// The in-memory state of the platform's availability (one per running platform, in its state).
#[derive(Debug, Default)]
pub struct PlatformWatch {
    /// Mirrors `state.down.is_some()`, read on every answer without a lock.
    is_down: AtomicBool,
    state: Mutex<Tracked>,
    changed: Notify,
}

/// Whether an answer is the platform's own failure (`Some(true)`), its own success (`Some(false)`), or says nothing
/// about the platform (a relayed bank failure).
pub fn judge(path: &str, status: u16) -> Option<bool> {
    if !(500..=599).contains(&status) {
        return Some(false);
    }
    if path.starts_with(RELAYING_PREFIX) && matches!(status, 502..=504) {
        return None;
    }
    Some(true)
}

impl PlatformWatch {
    pub fn new() -> Arc<PlatformWatch> {
        Arc::new(PlatformWatch::default())
    }

    /// Notes one answer at `now`.
    pub fn observe(&self, failed: bool, status: u16, route: &str, now: OffsetDateTime) {
        if failed == self.is_down.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut state) = self.state.lock() else { return };
        match (failed, state.down.take()) {
            (true, None) => {
                state.down = Some(Down { since: now, status, route: route.to_string() });
            }
            (false, Some(down)) => {
                if state.finished.len() >= PENDING_MAX {
                    if let Some(last) = state.finished.last_mut() {
                        last.1 = now;
                    }
                } else {
                    state.finished.push((down, now));
                }
            }
            (_, unchanged) => state.down = unchanged,
        }
        self.is_down.store(state.down.is_some(), Ordering::Release);
        drop(state);
        self.changed.notify_one();
    }

    /// Takes up an outage left open by an earlier run.
    fn resume(&self, down: Down) {
        if let Ok(mut state) = self.state.lock()
            && state.down.is_none()
            && state.finished.is_empty()
        {
            state.down = Some(down);
            self.is_down.store(true, Ordering::Release);
        }
    }

    /// What is to be written: the finished outages (taken) and the current one.
    fn take(&self) -> (Vec<(Down, OffsetDateTime)>, Option<Down>) {
        match self.state.lock() {
            Ok(mut state) => (std::mem::take(&mut state.finished), state.down.clone()),
            Err(_) => (Vec::new(), None),
        }
    }

    /// Puts back what could not be written, ahead of anything newer.
    fn give_back(&self, mut finished: Vec<(Down, OffsetDateTime)>) {
        if let Ok(mut state) = self.state.lock() {
            finished.append(&mut state.finished);
            state.finished = finished;
        }
    }
}

/// The layer: judges each answer of the public router (mounted outside every other layer but the request id's).
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if let Some(failed) = judge(&path, status)
        && !state.shutting_down.load(Ordering::Relaxed)
    {
        let route = route.as_deref().unwrap_or("unmatched");
        state.availability.observe(failed, status, route, state.clock.now());
    }
    response
}

/// Writes what changed, in one transaction: each finished outage closes the open row (or is recorded whole), then
/// the current one is opened if it is not yet.
fn persist(
    tx: &rusqlite::Transaction,
    finished: &[(Down, OffsetDateTime)],
    current: Option<&Down>,
) -> rusqlite::Result<()> {
    for (down, until) in finished {
        let (since, until) = (crate::clock::rfc3339(down.since), crate::clock::rfc3339(*until));
        outages::close_platform_outage(tx, &since, &until, down.status, &down.route)?;
    }
    if let Some(down) = current {
        outages::open_platform_outage(tx, &crate::clock::rfc3339(down.since), down.status, &down.route)?;
    }
    Ok(())
}

/// Starts the writer: takes up an outage left open, then writes every change until `stop`, and once more after it.
pub fn spawn_writer(
    db: Db,
    watch: Arc<PlatformWatch>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        match db.read(|c| outages::open_platform(c).map_err(StoreError::from)).await {
            Ok(Some(open)) => {
                let since = crate::clock::parse(&open.started_at).unwrap_or_else(|_| clock.now());
                let status = open.first_status.and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
                watch.resume(Down { since, status, route: open.detail });
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "the platform's open outage cannot be read"),
        }
        loop {
            let stopping = tokio::select! {
                () = watch.changed.notified() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            let (finished, current) = watch.take();
            if !finished.is_empty() || current.is_some() {
                let written = {
                    let finished = finished.clone();
                    db.write_bookkeeping(move |tx| persist(tx, &finished, current.as_ref()).map_err(StoreError::from))
                        .await
                };
                if let Err(error) = written {
                    tracing::error!(%error, "the platform's availability could not be recorded");
                    watch.give_back(finished);
                    if !stopping {
                        // Try again shortly rather than on the next change only.
                        clock.sleep(std::time::Duration::from_secs(1)).await;
                        watch.changed.notify_one();
                    }
                }
            }
            if stopping {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relayed_bank_failures_are_not_the_platform_s() {
        assert_eq!(judge("/open-banking/v1/aisp/accounts", 502), None);
        assert_eq!(judge("/open-banking/v1/aisp/accounts/x/balances", 504), None);
        assert_eq!(judge("/open-banking/v1/aisp/accounts", 500), Some(true));
        assert_eq!(judge("/open-banking/v1/aisp/account-access-consents", 503), Some(true));
        assert_eq!(judge("/readyz", 503), Some(true));
        assert_eq!(judge("/org", 404), Some(false));
        assert_eq!(judge("/", 200), Some(false));
    }

    #[test]
    fn only_changes_are_kept_and_a_long_flapping_keeps_its_downtime() {
        let watch = PlatformWatch::default();
        let t0 = time::macros::datetime!(2026-12-03 10:00 UTC);
        watch.observe(false, 200, "/", t0);
        assert!(watch.take().0.is_empty() && watch.take().1.is_none());
        watch.observe(true, 500, "/readyz", t0);
        watch.observe(true, 500, "/readyz", t0 + time::Duration::seconds(5));
        let (finished, current) = watch.take();
        assert!(finished.is_empty());
        assert_eq!(current.unwrap().since, t0, "the first failure starts it");
        watch.observe(false, 200, "/", t0 + time::Duration::seconds(60));
        let (finished, current) = watch.take();
        assert!(current.is_none());
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].1, t0 + time::Duration::seconds(60));
    }
}
