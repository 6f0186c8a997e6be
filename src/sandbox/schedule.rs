//! The scheduler of the sandbox's checks: a background task started with the server (`kopir serve`, `kopir demo`,
//! the tests) that checks every published, deprecated and delisted API against its sandbox and its production base
//! URL every `sandbox.check_interval_secs` (each run moved at random by up to half of `sandbox.check_jitter_secs`
//! either way, so the mean stays the interval, and a random first offset within the interval, so the runs of many
//! APIs spread out instead of arriving together).
//!
//! At most `sandbox.max_concurrent_checks` checks are in flight at once (a semaphore), so checks never crowd out live
//! traffic; a run of an API never overlaps its previous one. Each finished run is recorded with its consequences in
//! one write transaction ([`health::record_run`]). Runs older than `sandbox.keep_runs_days` are pruned once an hour.
//! On shutdown the scheduler stops at once: runs in flight are abandoned before they record anything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::health::{self, Policy, Transition};
use crate::catalog::{Environment, PublicationCheck};
use crate::store::StoreError;
use crate::web::AppState;

/// How often the scheduler looks for runs that are due.
const TICK: Duration = Duration::from_secs(1);
/// How often old runs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The timing of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub interval: Duration,
    pub jitter: Duration,
    pub concurrency: usize,
    pub keep_runs_days: u32,
}

impl Timing {
    pub fn from_config(config: &crate::config::Config) -> Timing {
        let s = &config.sandbox;
        Timing {
            interval: Duration::from_secs(s.check_interval_secs),
            jitter: Duration::from_secs(s.check_jitter_secs),
            concurrency: s.max_concurrent_checks,
            keep_runs_days: s.keep_runs_days,
        }
    }
}

/// A random duration in `[0, max]` (millisecond steps).
fn random_up_to(max: Duration) -> Duration {
    let ms = max.as_millis() as u64;
    if ms == 0 { Duration::ZERO } else { Duration::from_millis(rand::random::<u64>() % (ms + 1)) }
}

/// Starts the scheduler with the configured timing and policy.
pub fn spawn(state: AppState, check: Arc<dyn PublicationCheck>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let timing = Timing::from_config(&state.config);
    let policy = Policy::from_config(&state.config);
    tokio::spawn(run(state, check, timing, policy, stop))
}

/// The scheduler's loop (see the module's description).
pub async fn run(
    state: AppState,
    check: Arc<dyn PublicationCheck>,
    timing: Timing,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(timing.concurrency.max(1)));
    // Due times are on the platform's clock, so tests that move it forward make runs due.
    let clock = state.clock.clone();
    let mut due: HashMap<i64, OffsetDateTime> = HashMap::new();
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut running: JoinSet<i64> = JoinSet::new();
    let tick = TICK.min(timing.interval);
    let mut wait = Duration::ZERO;
    let mut next_prune = clock.now();
    tracing::info!(
        interval_secs = timing.interval.as_secs(),
        jitter_secs = timing.jitter.as_secs(),
        concurrency = timing.concurrency,
        "sandbox checks scheduled"
    );
    loop {
        tokio::select! {
            () = clock.sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        wait = tick;
        while let Some(done) = running.try_join_next() {
            if let Ok(api_id) = done {
                in_flight.remove(&api_id);
            }
        }
        let apis = match state.db.read(|c| health::scheduled_ids(c).map_err(StoreError::from)).await {
            Ok(apis) => apis,
            Err(error) => {
                tracing::error!(%error, "the sandbox scheduler cannot list APIs");
                continue;
            }
        };
        let now = clock.now();
        let listed: HashSet<i64> = apis.iter().copied().collect();
        due.retain(|id, _| listed.contains(id));
        for api in apis {
            let when = due.entry(api).or_insert_with(|| now + random_up_to(timing.interval));
            if *when > now || in_flight.contains(&api) {
                continue;
            }
            *when = now + timing.interval.saturating_sub(timing.jitter / 2) + random_up_to(timing.jitter);
            in_flight.insert(api);
            running.spawn(run_api(state.clone(), check.clone(), permits.clone(), api, policy));
        }
        if now >= next_prune {
            next_prune = now + PRUNE_EVERY;
            prune(&state, timing.keep_runs_days).await;
        }
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
    tracing::info!("sandbox checks stopped");
}

/// One run of one API: both environments (each under a permit, concurrently), then one transaction.
async fn run_api(
    state: AppState,
    check: Arc<dyn PublicationCheck>,
    permits: Arc<Semaphore>,
    api_id: i64,
    policy: Policy,
) -> i64 {
    let api = match state.db.read(move |c| crate::catalog::api(c, api_id).map_err(StoreError::from)).await {
        Ok(Some(api)) => api,
        Ok(None) => return api_id,
        Err(error) => {
            tracing::error!(%error, api = api_id, "the sandbox scheduler cannot read an API");
            return api_id;
        }
    };
    let one = |environment: Environment| {
        let (check, permits, api) = (&check, &permits, &api);
        async move {
            let _permit = permits.acquire().await.ok();
            check.check(api, environment).await
        }
    };
    let (sandbox, production) = tokio::join!(one(Environment::Sandbox), one(Environment::Production));
    let now = state.clock.now();
    let reports = vec![sandbox, production];
    let recorded = state
        .db
        .write(move |tx| -> Result<Transition, StoreError> { health::record_run(tx, api_id, &reports, policy, now) })
        .await;
    match recorded {
        Ok(Transition::Delisted) => tracing::warn!(api = api_id, "API delisted by the sandbox's checks"),
        Ok(Transition::Relisted) => tracing::info!(api = api_id, "API relisted by the sandbox's checks"),
        Ok(Transition::None) => {}
        Err(error) => tracing::error!(%error, api = api_id, "recording a scheduled check failed"),
    }
    api_id
}

/// Prunes old runs, one small transaction per API (the writer is never held long).
async fn prune(state: &AppState, keep_days: u32) {
    let now = state.clock.now();
    let ids = match state.db.read(|c| health::apis_with_runs(c).map_err(StoreError::from)).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::error!(%error, "pruning scheduled checks: cannot list APIs");
            return;
        }
    };
    let mut deleted = 0;
    for id in ids {
        match state.db.write(move |tx| health::prune(tx, id, keep_days, now).map_err(StoreError::from)).await {
            Ok(n) => deleted += n,
            Err(error) => tracing::error!(%error, api = id, "pruning scheduled checks failed"),
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "old scheduled checks pruned");
    }
}
