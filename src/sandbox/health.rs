//! The health of published APIs, as the scheduled checks see it: one run's results recorded in one transaction
//! together with what follows from them (delisting after `sandbox.delist_after_failures` failing runs in a row,
//! relisting after `sandbox.relist_after_passes` passing runs, webhooks to the provider and connected API users, the
//! audit entry), the operator's override, the figures and series the health pages draw, and the pruning of old runs.
//!
//! **A run** checks both of an API's environments. It fails when either fails: a failing production breaks live
//! traffic at once, and a failing sandbox means API users cannot build against the API the marketplace advertises
//! (and the bank's claim to implement the standard no longer holds). Delisting takes the API off the marketplace
//! (status `suspended`; its connections are kept) and the gateway refuses its calls with a 503 that says why.
//!
//! **Storage** (see migration 9 in `schema.sql`): a compact summary row per check in `api_runs`; the full findings in
//! `api_checks` only when the outcome or the failed cases change (or a failure's evidence is over an hour old); an
//! hourly rollup per environment in `api_health_hourly`; runs older than `sandbox.keep_runs_days` pruned.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::audit::{self, Actor, Event, Outcome};
use crate::catalog::{self, Api, ApiStatus, CheckReport, FindingOutcome};
use crate::clock;
use crate::store::{Db, StoreError};
use time::OffsetDateTime;

/// Full findings of a failing environment are kept again when the last kept ones are older than this.
const EVIDENCE_REFRESH_MS: i64 = 3_600_000;
/// Hourly rollups are kept this many days.
const ROLLUP_DAYS: i64 = 366;
/// Longest operator reason.
pub const REASON_MAX: usize = 500;
/// Who the scheduled checks are in the journal.
pub const SYSTEM_ACTOR: &str = "system";
const SYSTEM_SOURCE: &str = "sandbox";

/// When the checks take an API off the marketplace and put it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub delist_after_failures: u32,
    pub relist_after_passes: u32,
}

impl Policy {
    pub fn from_config(config: &crate::config::Config) -> Policy {
        Policy {
            delist_after_failures: config.sandbox.delist_after_failures,
            relist_after_passes: config.sandbox.relist_after_passes,
        }
    }
}

crate::text_enum! {
    /// The operator's override of the checks' decision.
    pub enum Override {
        /// The checks decide.
        Automatic = "automatic",
        /// Pinned off the marketplace until the operator returns the API to automatic.
        Delisted = "delisted",
        /// Pinned on the marketplace, whatever the checks find.
        Listed = "listed",
    }
}

impl Override {
    pub fn text_key(self) -> &'static str {
        match self {
            Override::Automatic => "health.override.automatic",
            Override::Delisted => "health.override.delisted",
            Override::Listed => "health.override.listed",
        }
    }
}

/// One API's health state (a default, automatic state when no run was recorded yet).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub api_id: i64,
    pub consecutive_failures: i64,
    pub consecutive_passes: i64,
    pub last_run_at: Option<String>,
    pub last_passed: Option<bool>,
    pub delisted_at: Option<String>,
    /// `checks` or `operator`.
    pub delisted_by: Option<String>,
    pub mode: Override,
    pub override_reason: Option<String>,
    pub override_by: Option<String>,
    pub override_at: Option<String>,
}

impl Health {
    fn new(api_id: i64) -> Health {
        Health {
            api_id,
            consecutive_failures: 0,
            consecutive_passes: 0,
            last_run_at: None,
            last_passed: None,
            delisted_at: None,
            delisted_by: None,
            mode: Override::Automatic,
            override_reason: None,
            override_by: None,
            override_at: None,
        }
    }
}

pub fn health(conn: &Connection, api_id: i64) -> rusqlite::Result<Health> {
    let found = conn
        .query_row(
            "SELECT consecutive_failures, consecutive_passes, last_run_at, last_passed, delisted_at, delisted_by,
                    override, override_reason, override_by, override_at
             FROM api_health WHERE api_id = ?1",
            [api_id],
            |r| {
                let mode: String = r.get(6)?;
                Ok(Health {
                    api_id,
                    consecutive_failures: r.get(0)?,
                    consecutive_passes: r.get(1)?,
                    last_run_at: r.get(2)?,
                    last_passed: r.get(3)?,
                    delisted_at: r.get(4)?,
                    delisted_by: r.get(5)?,
                    mode: mode.parse::<Override>().ok().unwrap_or(Override::Automatic),
                    override_reason: r.get(7)?,
                    override_by: r.get(8)?,
                    override_at: r.get(9)?,
                })
            },
        )
        .optional()?;
    Ok(found.unwrap_or_else(|| Health::new(api_id)))
}

/// The APIs the scheduled checks look at — listed ones and those they (or the operator) took off the marketplace —
/// by id: what the scheduler reads every second, kept to one small query.
pub fn scheduled_ids(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached("SELECT id FROM apis WHERE status IN ('published', 'deprecated', 'suspended') ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// The APIs the scheduled checks look at, in full.
pub fn scheduled_apis(conn: &Connection) -> rusqlite::Result<Vec<Api>> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM apis WHERE status IN ('published', 'deprecated', 'suspended') ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(api) = catalog::api(conn, id)? {
            out.push(api);
        }
    }
    Ok(out)
}

/// What a run (or an override) changed in the API's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Delisted,
    Relisted,
}

fn failed_ids(report: &CheckReport) -> Option<String> {
    let ids: Vec<&str> =
        report.findings.iter().filter(|f| f.outcome == FindingOutcome::Failed).map(|f| f.id.as_str()).collect();
    if ids.is_empty() {
        // A report that failed without a failed finding (nothing passed either) still names why.
        (!report.passed).then(|| "none.passed".to_string())
    } else {
        Some(ids.join(","))
    }
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The 95th percentile (nearest rank) of `values`, or 0 for none.
pub fn p95(values: &mut [i64]) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (values.len() * 95).div_ceil(100).max(1);
    values[rank - 1]
}

/// Records one environment's check: its summary, its findings when they tell something new, its hour's rollup.
fn record_check(tx: &Transaction, api_id: i64, report: &CheckReport, now: OffsetDateTime) -> Result<(), StoreError> {
    // (A report's start is always a time the platform wrote; `now` stands in should one ever not parse.)
    let at_ms = unix_ms(clock::parse(&report.started_at).unwrap_or(now));
    let env = report.environment;
    let failed = failed_ids(report);
    let previous: Option<(bool, Option<String>)> = tx
        .prepare_cached(
            "SELECT passed, failed FROM api_runs WHERE api_id = ?1 AND environment = ?2 ORDER BY at_ms DESC LIMIT 1",
        )?
        .query_row(params![api_id, env], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let changed = previous.as_ref().is_none_or(|(passed, ids)| *passed != report.passed || *ids != failed);
    let stale_evidence = !report.passed && {
        let recent: i64 = tx
            .prepare_cached(
                "SELECT count(*) FROM api_runs WHERE api_id = ?1 AND environment = ?2 AND at_ms > ?3
                   AND check_id IS NOT NULL",
            )?
            .query_row(params![api_id, env, at_ms - EVIDENCE_REFRESH_MS], |r| r.get(0))?;
        recent == 0
    };
    let check_id = if changed || stale_evidence {
        let findings = serde_json::to_string(&report.findings).map_err(|e| StoreError::Schema(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO api_checks (api_id, purpose, environment, base_url, passed, findings, latency_ms, started_at,
                                     finished_at)
             VALUES (?1, 'scheduled', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            api_id,
            env,
            report.base_url,
            report.passed,
            findings,
            report.latency_ms,
            report.started_at,
            report.finished_at
        ])?;
        Some(tx.last_insert_rowid())
    } else {
        None
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO api_runs (api_id, at_ms, environment, passed, latency_ms, failed, check_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![api_id, at_ms, env, report.passed, report.latency_ms, failed, check_id])?;
    // The hour's rollup, recomputed from its (at most a few hundred) summaries.
    let hour = at_ms.div_euclid(3_600_000) * 3600;
    let mut runs = 0i64;
    let mut passes = 0i64;
    let mut latencies = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT passed, latency_ms FROM api_runs WHERE api_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
               AND environment = ?4",
        )?;
        let mut rows = stmt.query(params![api_id, hour * 1000, (hour + 3600) * 1000, env])?;
        while let Some(row) = rows.next()? {
            runs += 1;
            if row.get::<_, bool>(0)? {
                passes += 1;
            }
            if let Some(ms) = row.get::<_, Option<i64>>(1)? {
                latencies.push(ms);
            }
        }
    }
    let sum: i64 = latencies.iter().sum();
    let max = latencies.iter().copied().max().unwrap_or(0);
    let count = latencies.len() as i64;
    let p95 = p95(&mut latencies);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO api_health_hourly (api_id, hour, environment, runs, passes, latency_sum, latency_count,
                                                   latency_max, latency_p95)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![api_id, hour, env, runs, passes, sum, count, max, p95])?;
    Ok(())
}

/// Records one scheduled run of `api` (a report per environment) and what follows from it, in the caller's one
/// transaction: summaries, findings, rollups, the health counters, and a delisting or relisting with its webhooks
/// and audit entry. An API that left the schedule meanwhile (withdrawn and retired, back to draft) records nothing.
pub fn record_run(
    tx: &Transaction,
    api_id: i64,
    reports: &[CheckReport],
    policy: Policy,
    now: OffsetDateTime,
) -> Result<Transition, StoreError> {
    let Some(api) = catalog::api(tx, api_id)? else { return Ok(Transition::None) };
    if !matches!(api.status, ApiStatus::Published | ApiStatus::Deprecated | ApiStatus::Suspended) || reports.is_empty()
    {
        return Ok(Transition::None);
    }
    for report in reports {
        record_check(tx, api_id, report, now)?;
    }
    crate::availability::outages::observe_checks(tx, api_id, reports, now)?;
    let passed = reports.iter().all(|r| r.passed);
    let finished = reports.iter().map(|r| r.finished_at.as_str()).max().unwrap_or_default().to_string();
    tx.prepare_cached("INSERT OR IGNORE INTO api_health (api_id) VALUES (?1)")?.execute([api_id])?;
    tx.prepare_cached(
        "UPDATE api_health SET
            consecutive_failures = CASE WHEN ?2 THEN 0 ELSE consecutive_failures + 1 END,
            consecutive_passes = CASE WHEN ?2 THEN consecutive_passes + 1 ELSE 0 END,
            last_run_at = ?3, last_passed = ?2
         WHERE api_id = ?1",
    )?
    .execute(params![api_id, passed, finished])?;
    let state = health(tx, api_id)?;
    let listed = api.status != ApiStatus::Suspended;
    let failing_runs = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| serde_json::json!({ "environment": r.environment, "failed": failed_ids(r) }))
        .collect::<Vec<_>>();
    match state.mode {
        Override::Automatic if listed && state.consecutive_failures >= i64::from(policy.delist_after_failures) => {
            delist(
                tx,
                &api,
                "checks",
                &system_actor(),
                None,
                serde_json::json!({
                    "consecutive_failures": state.consecutive_failures,
                    "failing": failing_runs,
                }),
                now,
            )?;
            Ok(Transition::Delisted)
        }
        Override::Automatic if !listed && state.consecutive_passes >= i64::from(policy.relist_after_passes) => {
            relist(
                tx,
                &api,
                "checks",
                &system_actor(),
                None,
                serde_json::json!({
                    "consecutive_passes": state.consecutive_passes,
                }),
                now,
            )?;
            Ok(Transition::Relisted)
        }
        // A pin holds even when something else moved the API meanwhile (a provider withdrawing a pinned API).
        Override::Delisted if listed => {
            delist(
                tx,
                &api,
                "operator",
                &system_actor(),
                state.override_reason.as_deref(),
                serde_json::json!({
                    "override": "delisted",
                }),
                now,
            )?;
            Ok(Transition::Delisted)
        }
        Override::Listed if !listed => {
            relist(
                tx,
                &api,
                "operator",
                &system_actor(),
                state.override_reason.as_deref(),
                serde_json::json!({
                    "override": "listed",
                }),
                now,
            )?;
            Ok(Transition::Relisted)
        }
        _ => Ok(Transition::None),
    }
}

fn system_actor() -> Actor {
    Actor { name: SYSTEM_ACTOR.into(), source: SYSTEM_SOURCE.into(), user_id: None }
}

fn provider_bin(tx: &Transaction, organisation_id: i64) -> rusqlite::Result<String> {
    tx.query_row("SELECT bin FROM organisations WHERE id = ?1", [organisation_id], |r| r.get(0))
}

/// The provider and every organisation with an application actively connected to the API: who hears of a change.
fn recipients(tx: &Transaction, api: &Api) -> rusqlite::Result<Vec<i64>> {
    let mut ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT DISTINCT ap.organisation_id FROM api_connections c JOIN applications ap ON ap.id = c.application_id
             WHERE c.api_id = ?1 AND c.status = 'active' ORDER BY ap.organisation_id",
        )?
        .query_map([api.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !ids.contains(&api.organisation_id) {
        ids.insert(0, api.organisation_id);
    }
    Ok(ids)
}

fn notify(
    tx: &Transaction,
    api: &Api,
    event: &str,
    by: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> rusqlite::Result<usize> {
    let bin = provider_bin(tx, api.organisation_id)?;
    let data = serde_json::json!({
        "ApiId": api.id,
        "Name": api.name,
        "Version": api.version,
        "ProviderBin": bin,
        // `checks` (the sandbox's scheduled checks) or `operator`.
        "By": by,
        "Reason": reason,
    });
    let to = recipients(tx, api)?;
    for organisation in &to {
        crate::notify::enqueue(tx, *organisation, event, &data, now)?;
    }
    Ok(to.len())
}

fn delist(
    tx: &Transaction,
    api: &Api,
    by: &str,
    actor: &Actor,
    reason: Option<&str>,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let at = clock::rfc3339(now);
    tx.execute("UPDATE apis SET status = 'suspended', updated_at = ?2 WHERE id = ?1", params![api.id, at])?;
    tx.execute("INSERT OR IGNORE INTO api_health (api_id) VALUES (?1)", [api.id])?;
    let restore = if api.status == ApiStatus::Deprecated { "deprecated" } else { "published" };
    tx.execute(
        "UPDATE api_health SET delisted_at = ?2, delisted_by = ?3, restore_status = ?4 WHERE api_id = ?1",
        params![api.id, at, by, restore],
    )?;
    let mut detail = detail;
    detail["from"] = api.status.as_str().into();
    announce(tx, api, Transition::Delisted, by, actor, reason, detail, now)
}

/// What follows a delisting or a relisting in the same transaction: the marketplace's index, the webhooks to the
/// provider and the connected API users, and the audit entry.
#[allow(clippy::too_many_arguments)]
fn announce(
    tx: &Transaction,
    api: &Api,
    transition: Transition,
    by: &str,
    actor: &Actor,
    reason: Option<&str>,
    mut detail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let (event, action) = match transition {
        Transition::Relisted => ("api.relisted", "sandbox.api.relisted"),
        _ => ("api.delisted", "sandbox.api.delisted"),
    };
    catalog::reindex(tx, api.id)?;
    let told = notify(tx, api, event, by, reason, now)?;
    let bin = provider_bin(tx, api.organisation_id)?;
    detail["by"] = by.into();
    detail["notified"] = told.into();
    audit::append(
        tx,
        &Event::new(&actor.name, action, Outcome::Success)
            .at(now)
            .organisation(bin)
            .source(&actor.source)
            .object(format!("api:{}", api.id))
            .detail(detail),
    )?;
    Ok(())
}

fn relist(
    tx: &Transaction,
    api: &Api,
    by: &str,
    actor: &Actor,
    reason: Option<&str>,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let at = clock::rfc3339(now);
    let restore: Option<String> = tx
        .query_row("SELECT restore_status FROM api_health WHERE api_id = ?1", [api.id], |r| r.get(0))
        .optional()?
        .flatten();
    let to = match restore.as_deref() {
        Some("deprecated") => "deprecated",
        _ => "published",
    };
    tx.execute("UPDATE apis SET status = ?2, updated_at = ?3 WHERE id = ?1", params![api.id, to, at])?;
    tx.execute(
        "UPDATE api_health SET delisted_at = NULL, delisted_by = NULL, restore_status = NULL WHERE api_id = ?1",
        [api.id],
    )?;
    let mut detail = detail;
    detail["to"] = to.into();
    announce(tx, api, Transition::Relisted, by, actor, reason, detail, now)
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// A refusal the person can act on (a text key).
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for HealthError {
    fn from(e: rusqlite::Error) -> Self {
        HealthError::Store(e.into())
    }
}

/// The operator pins an API delisted or listed, or returns it to the checks, with a mandatory reason: one
/// transaction with its audit entry (and, when the pin changes the listing now, the change, its webhooks and its own
/// audit entry). Only APIs on the schedule (published, deprecated, suspended) may be overridden.
pub async fn set_override(
    db: &Db,
    api_id: i64,
    mode: Override,
    reason: String,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<Transition, HealthError> {
    let reason = reason.trim().replace(['\r', '\n'], " ");
    if reason.chars().count() < 3 || reason.chars().count() > REASON_MAX || reason.chars().any(char::is_control) {
        return Err(HealthError::Refused("health.error.reason"));
    }
    db.write(move |tx| -> Result<Transition, HealthError> {
        let api = catalog::api(tx, api_id)?.ok_or(HealthError::NotFound)?;
        if !matches!(api.status, ApiStatus::Published | ApiStatus::Deprecated | ApiStatus::Suspended) {
            return Err(HealthError::Refused("health.error.not_scheduled"));
        }
        tx.execute("INSERT OR IGNORE INTO api_health (api_id) VALUES (?1)", [api_id])?;
        let before = health(tx, api_id)?;
        tx.execute(
            "UPDATE api_health SET override = ?2, override_reason = ?3, override_by = ?4, override_at = ?5
             WHERE api_id = ?1",
            params![api_id, mode, reason, actor.name, clock::rfc3339(now)],
        )?;
        let bin = provider_bin(tx, api.organisation_id)?;
        audit::append(
            tx,
            &Event::new(&actor.name, "sandbox.api.override", Outcome::Success)
                .at(now)
                .organisation(&bin)
                .source(&actor.source)
                .object(format!("api:{api_id}"))
                .detail(serde_json::json!({
                    "from": before.mode.as_str(),
                    "to": mode.as_str(),
                    "reason": reason,
                    "status": api.status.as_str(),
                })),
        )?;
        let listed = api.status != ApiStatus::Suspended;
        let detail = serde_json::json!({ "override": mode.as_str(), "reason": reason });
        Ok(match mode {
            Override::Delisted if listed => {
                delist(tx, &api, "operator", &actor, Some(&reason), detail, now)?;
                Transition::Delisted
            }
            Override::Listed if !listed => {
                relist(tx, &api, "operator", &actor, Some(&reason), detail, now)?;
                Transition::Relisted
            }
            _ => Transition::None,
        })
    })
    .await
}

/// Deletes one API's runs older than `keep_days` (summaries and scheduled findings) and its rollups older than a
/// year. Returns the summaries deleted.
pub fn prune(tx: &Transaction, api_id: i64, keep_days: u32, now: OffsetDateTime) -> rusqlite::Result<usize> {
    let cutoff = now - time::Duration::days(i64::from(keep_days));
    let cutoff_ms = (cutoff.unix_timestamp_nanos() / 1_000_000) as i64;
    let deleted = tx.execute("DELETE FROM api_runs WHERE api_id = ?1 AND at_ms < ?2", params![api_id, cutoff_ms])?;
    tx.execute(
        "DELETE FROM api_checks WHERE api_id = ?1 AND purpose = 'scheduled' AND started_at < ?2",
        params![api_id, clock::rfc3339(cutoff)],
    )?;
    let rollup_cutoff = (now - time::Duration::days(ROLLUP_DAYS)).unix_timestamp();
    tx.execute("DELETE FROM api_health_hourly WHERE api_id = ?1 AND hour < ?2", params![api_id, rollup_cutoff])?;
    Ok(deleted)
}

/// Ids of every API with recorded health (what the pruning walks).
pub fn apis_with_runs(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare("SELECT api_id FROM api_health ORDER BY api_id")?.query_map([], |r| r.get(0))?.collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Figures and series for the pages

/// One hour of one API (both environments added up).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HourPoint {
    /// Start of the hour, unix seconds.
    pub hour: i64,
    pub runs: i64,
    pub passes: i64,
    /// Mean latency of the hour, ms (0 when none was measured).
    pub mean_ms: i64,
    pub p95_ms: i64,
}

impl HourPoint {
    pub fn availability(&self) -> f64 {
        if self.runs == 0 { 0.0 } else { self.passes as f64 * 100.0 / self.runs as f64 }
    }

    pub fn label(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.hour).map(clock::rfc3339).unwrap_or_default()
    }
}

/// The hourly series of an API since `since_hour` (unix seconds), oldest first.
pub fn hourly(conn: &Connection, api_id: i64, since_hour: i64) -> rusqlite::Result<Vec<HourPoint>> {
    let mut stmt = conn.prepare_cached(
        "SELECT hour, sum(runs), sum(passes), sum(latency_sum), sum(latency_count), max(latency_p95)
         FROM api_health_hourly WHERE api_id = ?1 AND hour >= ?2 GROUP BY hour ORDER BY hour",
    )?;
    let rows = stmt.query_map(params![api_id, since_hour], |r| {
        let sum: i64 = r.get(3)?;
        let count: i64 = r.get(4)?;
        Ok(HourPoint {
            hour: r.get(0)?,
            runs: r.get(1)?,
            passes: r.get(2)?,
            mean_ms: if count > 0 { sum / count } else { 0 },
            p95_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Availability (% of passing checks) over the `hours` up to `now`, from the rollups; `None` without runs.
pub fn availability(conn: &Connection, api_id: i64, hours: i64, now: OffsetDateTime) -> rusqlite::Result<Option<f64>> {
    let since = now.unix_timestamp().div_euclid(3600) * 3600 - (hours - 1) * 3600;
    let (runs, passes): (i64, i64) = conn.prepare_cached(
        "SELECT coalesce(sum(runs), 0), coalesce(sum(passes), 0) FROM api_health_hourly WHERE api_id = ?1 AND hour >= ?2",
    )?
    .query_row(params![api_id, since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((runs > 0).then(|| passes as f64 * 100.0 / runs as f64))
}

/// The 95th-percentile latency of the last 24 hours' checks, from the summaries; `None` without measurements.
pub fn p95_24h(conn: &Connection, api_id: i64, now: OffsetDateTime) -> rusqlite::Result<Option<i64>> {
    let since = unix_ms(now) - 24 * 3_600_000;
    let mut values: Vec<i64> = conn
        .prepare_cached("SELECT latency_ms FROM api_runs WHERE api_id = ?1 AND at_ms >= ?2 AND latency_ms IS NOT NULL")?
        .query_map(params![api_id, since], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok((!values.is_empty()).then(|| p95(&mut values)))
}

/// One scheduled check as the health page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub at: String,
    pub environment: String,
    pub passed: bool,
    pub latency_ms: Option<i64>,
    /// Failed case ids.
    pub failed: Vec<String>,
    /// The kept findings, when this run's were kept.
    pub check_id: Option<i64>,
}

/// The latest scheduled checks of an API, newest first.
pub fn recent_runs(conn: &Connection, api_id: i64, limit: u32) -> rusqlite::Result<Vec<RunRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, environment, passed, latency_ms, failed, check_id FROM api_runs WHERE api_id = ?1
         ORDER BY at_ms DESC, environment LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![api_id, limit], |r| {
        let at_ms: i64 = r.get(0)?;
        let failed: Option<String> = r.get(4)?;
        Ok(RunRow {
            at: time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
                .map(clock::rfc3339)
                .unwrap_or_default(),
            environment: r.get(1)?,
            passed: r.get(2)?,
            latency_ms: r.get(3)?,
            failed: failed.map(|f| f.split(',').map(str::to_string).collect()).unwrap_or_default(),
            check_id: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The latest kept failing runs of an API (full findings: the evidence), newest first, one per environment at most.
pub fn latest_failures(conn: &Connection, api_id: i64) -> rusqlite::Result<Vec<catalog::CheckRun>> {
    let runs = catalog::checks(conn, api_id, 50)?;
    let mut out: Vec<catalog::CheckRun> = Vec::new();
    for run in runs {
        if run.purpose == "scheduled" && !run.passed && !out.iter().any(|r| r.environment == run.environment) {
            out.push(run);
        }
    }
    Ok(out)
}

/// One API as the operator's health overview shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub api: Api,
    pub provider_name: String,
    pub health: Health,
    /// The last check, as every page means it ([`crate::catalog::LastCheck`]).
    pub last_check: Option<crate::catalog::LastCheck>,
    pub availability_24h: Option<f64>,
    pub p95_ms: Option<i64>,
    /// Availability per hour, last 24 hours (oldest first).
    pub spark: Vec<HourPoint>,
}

/// The API's last check, one meaning on every page ([`crate::catalog::LastCheck`]): per environment the newer of
/// its latest scheduled run (every run is summarised in `api_runs`) and its latest publication check.
pub fn last_check(conn: &Connection, api_id: i64) -> rusqlite::Result<Option<crate::catalog::LastCheck>> {
    use crate::catalog::{LastCheck, LatestRun};
    let latest = |environment: &str| -> rusqlite::Result<Option<LatestRun>> {
        let scheduled: Option<(i64, bool)> = conn
            .prepare_cached(
                "SELECT at_ms, passed FROM api_runs WHERE api_id = ?1 AND environment = ?2 ORDER BY at_ms DESC LIMIT 1",
            )?
            .query_row(params![api_id, environment], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let publication: Option<(String, bool)> = conn
            .prepare_cached(
                "SELECT started_at, passed FROM api_checks WHERE api_id = ?1 AND environment = ?2
                   AND purpose = 'publication' ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![api_id, environment], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let scheduled = scheduled.and_then(|(ms, passed)| {
            let at = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
            Some(LatestRun { purpose: "scheduled", passed, at: clock::rfc3339(at) })
        });
        let publication = publication.map(|(at, passed)| LatestRun { purpose: "publication", passed, at });
        Ok(match (scheduled, publication) {
            (Some(s), Some(p)) => Some(if p.at > s.at { p } else { s }),
            (s, p) => s.or(p),
        })
    };
    let (sandbox, production) = (latest("sandbox")?, latest("production")?);
    Ok(LastCheck::of(sandbox, production))
}

/// Every API on the schedule, by provider and name.
pub fn overview(conn: &Connection, now: OffsetDateTime) -> rusqlite::Result<Vec<Overview>> {
    let apis = scheduled_apis(conn)?;
    let since = now.unix_timestamp().div_euclid(3600) * 3600 - 23 * 3600;
    let mut out = Vec::with_capacity(apis.len());
    for api in apis {
        let provider_name: String =
            conn.query_row("SELECT name FROM organisations WHERE id = ?1", [api.organisation_id], |r| r.get(0))?;
        let health = health(conn, api.id)?;
        out.push(Overview {
            last_check: last_check(conn, api.id)?,
            availability_24h: availability(conn, api.id, 24, now)?,
            p95_ms: p95_24h(conn, api.id, now)?,
            spark: hourly(conn, api.id, since)?,
            provider_name,
            health,
            api,
        });
    }
    out.sort_by(|a, b| (&a.provider_name, &a.api.name).cmp(&(&b.provider_name, &b.api.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_95th_percentile_is_the_nearest_rank() {
        assert_eq!(p95(&mut []), 0);
        assert_eq!(p95(&mut [7]), 7);
        let mut v: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(p95(&mut v), 95);
        let mut v: Vec<i64> = (1..=20).collect();
        assert_eq!(p95(&mut v), 19);
    }

    #[test]
    fn overrides_round_trip() {
        for o in [Override::Automatic, Override::Delisted, Override::Listed] {
            assert_eq!(o.as_str().parse::<Override>().ok(), Some(o));
        }
        assert_eq!("pinned".parse::<Override>().ok(), None);
    }
}
