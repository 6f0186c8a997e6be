//! The `outages` table: one row per outage of an API (in one environment) or of the platform, opened by the first
//! failure and closed by the first success after it, updated event by event in the transaction that records the
//! event itself (a metering batch, a scheduled run). At most one outage per subject and environment is open.
//!
//! ```text
//! exchange 502 at 10:00:00 ─┐ opens  #7 (api 3, production, bank_failure, traffic)   → api.down to the provider
//! check failed at 10:04:10  │ (already open: nothing)
//! exchange 200 at 10:10:00 ─┘ closes #7 at 10:10:00 (ended_by traffic)                 → api.up
//! ```

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::catalog::{CheckReport, Environment, FindingOutcome};
use crate::gateway::meter::Exchange;

crate::text_enum! {
    /// What an outage is of.
    pub enum SubjectKind {
        Api = "api",
        Platform = "platform",
    }
}

crate::text_enum! {
    /// What opened an outage.
    pub enum Cause {
        /// The bank gave nothing usable: unreachable, TLS, broken or oversized answer, malformed body, a 5xx, or its
        /// refusal of the platform's own credentials (the gateway's 502).
        BankFailure = "bank_failure",
        /// The bank did not answer within the API's time-out (the gateway's 504).
        BankTimeout = "bank_timeout",
        /// A scheduled check of the API failed.
        CheckFailed = "check_failed",
        /// The platform answered with a 5xx of its own.
        PlatformError = "platform_error",
    }
}

impl Cause {
    pub fn text_key(self) -> &'static str {
        match self {
            Cause::BankFailure => "availability.cause.bank_failure",
            Cause::BankTimeout => "availability.cause.bank_timeout",
            Cause::CheckFailed => "availability.cause.check_failed",
            Cause::PlatformError => "availability.cause.platform_error",
        }
    }
}

crate::text_enum! {
    /// Which observations opened or closed an outage.
    pub enum Source {
        /// Metered exchanges of the gateway.
        Traffic = "traffic",
        /// The sandbox's scheduled checks.
        Checks = "checks",
        /// The platform's own answers.
        Platform = "platform",
    }
}

/// The longest `detail` kept (failed case ids, a route).
const DETAIL_MAX: usize = 200;

/// One outage.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    pub id: i64,
    pub subject: SubjectKind,
    pub api_id: Option<i64>,
    pub environment: Environment,
    pub started_at: String,
    /// `None` while the outage lasts.
    pub ended_at: Option<String>,
    /// The first failure's HTTP status as the platform answered it (none for a check).
    pub first_status: Option<i64>,
    pub cause: Cause,
    /// The failed cases of a check, or the route of a platform error.
    pub detail: String,
    pub source: Source,
    pub ended_by: Option<Source>,
}

const COLUMNS: &str =
    "id, subject, api_id, environment, started_at, ended_at, first_status, cause, detail, source, ended_by";

impl Outage {
    fn from_row(row: &Row) -> rusqlite::Result<Outage> {
        Ok(Outage {
            id: row.get("id")?,
            subject: row.get("subject")?,
            api_id: row.get("api_id")?,
            environment: row.get("environment")?,
            started_at: row.get("started_at")?,
            ended_at: row.get("ended_at")?,
            first_status: row.get("first_status")?,
            cause: row.get("cause")?,
            detail: row.get("detail")?,
            source: row.get("source")?,
            ended_by: row.get("ended_by")?,
        })
    }
}

/// What one observed event says about an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Failed { status: Option<u16>, cause: Cause, detail: String },
    Succeeded,
}

/// What a metered bank call says about the bank's API (see the rule in the module above): `None` when it says
/// nothing about the bank.
pub fn classify(status: u16) -> Option<Observation> {
    match status {
        200..=299 => Some(Observation::Succeeded),
        502 => Some(Observation::Failed { status: Some(502), cause: Cause::BankFailure, detail: String::new() }),
        504 => Some(Observation::Failed { status: Some(504), cause: Cause::BankTimeout, detail: String::new() }),
        _ => None,
    }
}

fn short(detail: &str) -> String {
    detail.chars().take(DETAIL_MAX).collect()
}

/// The open outage of an API in an environment: (id, started_at).
fn open_of_api(tx: &Transaction, api_id: i64, environment: Environment) -> rusqlite::Result<Option<(i64, String)>> {
    tx.prepare_cached(
        "SELECT id, started_at FROM outages
         WHERE subject = 'api' AND ifnull(api_id, 0) = ?1 AND environment = ?2 AND ended_at IS NULL",
    )?
    .query_row(params![api_id, environment], |r| Ok((r.get("id")?, r.get("started_at")?)))
    .optional()
}

/// Applies one observation of an API at `at` (RFC 3339): opens an outage on a failure when none is open, closes the
/// open one on a success after its start. Returns whether anything changed.
pub fn observe(
    tx: &Transaction,
    api_id: i64,
    environment: Environment,
    at: &str,
    source: Source,
    observation: &Observation,
) -> rusqlite::Result<bool> {
    let open = open_of_api(tx, api_id, environment)?;
    apply(tx, api_id, environment, at, source, observation, open).map(|(changed, _)| changed)
}

/// [`observe`] given what is open; returns whether anything changed and what is open afterwards.
fn apply(
    tx: &Transaction,
    api_id: i64,
    environment: Environment,
    at: &str,
    source: Source,
    observation: &Observation,
    open: Option<(i64, String)>,
) -> rusqlite::Result<(bool, Option<(i64, String)>)> {
    match (observation, open) {
        (Observation::Failed { status, cause, detail }, None) => {
            tx.prepare_cached(
                "INSERT INTO outages (subject, api_id, environment, started_at, first_status, cause, detail, source)
                 VALUES ('api', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![api_id, environment, at, status, cause, short(detail), source])?;
            let id = tx.last_insert_rowid();
            announce(tx, id)?;
            Ok((true, Some((id, at.to_string()))))
        }
        (Observation::Succeeded, Some((id, started_at))) if started_at.as_str() <= at => {
            tx.prepare_cached(
                "UPDATE outages SET ended_at = ?2, ended_by = ?3 WHERE id = ?1 AND ended_at IS NULL AND started_at <= ?2",
            )?
            .execute(params![id, at, source])?;
            announce(tx, id)?;
            Ok((true, None))
        }
        (_, open) => Ok((false, open)),
    }
}

/// Applies a metering batch (the meter's writer calls this in the batch's transaction): each bank call classified
/// by [`classify`], in the order of its time, production and sandbox calls apart.
pub fn observe_exchanges(tx: &Transaction, batch: &[Exchange]) -> rusqlite::Result<()> {
    let mut events: Vec<(&str, i64, Environment, Observation)> = batch
        .iter()
        .filter_map(|e| {
            let api = e.api_id?;
            let observation = classify(e.status)?;
            let environment = if e.mode.is_sandbox() { Environment::Sandbox } else { Environment::Production };
            Some((e.at.as_str(), api, environment, observation))
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(b.0));
    // What is open per API and environment, read once per batch: only changes are written.
    let mut open: HashMap<(i64, Environment), Option<(i64, String)>> = HashMap::new();
    for (at, api, environment, observation) in events {
        let current = match open.remove(&(api, environment)) {
            Some(known) => known,
            None => open_of_api(tx, api, environment)?,
        };
        let (_, after) = apply(tx, api, environment, at, Source::Traffic, &observation, current)?;
        open.insert((api, environment), after);
    }
    Ok(())
}

/// Applies one scheduled run of an API (each environment's report) at `now`, in the run's transaction: a passing
/// report is a success, a failing one a failure with its failed cases.
pub fn observe_checks(
    tx: &Transaction,
    api_id: i64,
    reports: &[CheckReport],
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let at = crate::clock::rfc3339(now);
    for report in reports {
        let Ok(environment) = report.environment.parse::<Environment>() else { continue };
        let observation = if report.passed {
            Observation::Succeeded
        } else {
            let failed: Vec<&str> =
                report.findings.iter().filter(|f| f.outcome == FindingOutcome::Failed).map(|f| f.id.as_str()).collect();
            Observation::Failed { status: None, cause: Cause::CheckFailed, detail: failed.join(",") }
        };
        observe(tx, api_id, environment, &at, Source::Checks, &observation)?;
    }
    Ok(())
}

/// Tells the provider that its API's production outage opened (`api.down`) or closed (`api.up`).
fn announce(tx: &Transaction, outage_id: i64) -> rusqlite::Result<()> {
    let outage =
        tx.query_row(&format!("SELECT {COLUMNS} FROM outages WHERE id = ?1"), [outage_id], Outage::from_row)?;
    let (Some(api_id), Environment::Production) = (outage.api_id, outage.environment) else { return Ok(()) };
    let Some(api) = crate::catalog::api(tx, api_id)? else { return Ok(()) };
    let bin =
        crate::participants::organisation(tx, api.organisation_id)?.map(|o| o.bin.into_string()).unwrap_or_default();
    let event = if outage.ended_at.is_some() { "api.up" } else { "api.down" };
    let data = json!({
        "ApiId": api.id,
        "Name": api.name,
        "Version": api.version,
        "ProviderBin": bin,
        "Environment": outage.environment,
        "OutageId": outage.id,
        "StartedAt": outage.started_at,
        "EndedAt": outage.ended_at,
        "Cause": outage.cause,
        "Status": outage.first_status,
    });
    // The event is as old as the change it tells of: the outage's start, or its end.
    let at = crate::clock::parse(outage.ended_at.as_deref().unwrap_or(&outage.started_at))
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    crate::notify::enqueue(tx, api.organisation_id, event, &data, at)?;
    Ok(())
}

/// The platform's open outage, if any.
pub fn open_platform(conn: &Connection) -> rusqlite::Result<Option<Outage>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM outages WHERE subject = 'platform' AND ended_at IS NULL"),
        [],
        Outage::from_row,
    )
    .optional()
}

/// Opens a platform outage at `at` (nothing when one is open).
pub fn open_platform_outage(tx: &Transaction, at: &str, status: u16, route: &str) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "INSERT INTO outages (subject, environment, started_at, first_status, cause, detail, source)
         SELECT 'platform', 'production', ?1, ?2, 'platform_error', ?3, 'platform'
         WHERE NOT EXISTS (SELECT 1 FROM outages WHERE subject = 'platform' AND ended_at IS NULL)",
        params![at, status, short(route)],
    )?;
    Ok(changed > 0)
}

/// Closes the platform's open outage at `at`; with none open, records the whole outage `[since, at)` at once (an
/// outage that began and ended between two writes).
pub fn close_platform_outage(
    tx: &Transaction,
    since: &str,
    at: &str,
    status: u16,
    route: &str,
) -> rusqlite::Result<()> {
    let closed = tx.execute(
        "UPDATE outages SET ended_at = max(?1, started_at), ended_by = 'platform'
         WHERE subject = 'platform' AND ended_at IS NULL",
        [at],
    )?;
    if closed == 0 {
        tx.execute(
            "INSERT INTO outages (subject, environment, started_at, ended_at, first_status, cause, detail, source,
                                  ended_by)
             VALUES ('platform', 'production', ?1, max(?1, ?2), ?3, 'platform_error', ?4, 'platform', 'platform')",
            params![since, at, status, short(route)],
        )?;
    }
    Ok(())
}

/// Outages of `apis` in `environment` that overlap `[from, to)` (open ones included), oldest first.
pub fn for_apis(
    conn: &Connection,
    apis: &[i64],
    environment: Environment,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> rusqlite::Result<Vec<Outage>> {
    let (from, to) = (crate::clock::rfc3339(from), crate::clock::rfc3339(to));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outages
         WHERE subject = 'api' AND api_id = ?1 AND environment = ?2 AND started_at < ?4
           AND (ended_at IS NULL OR ended_at >= ?3)
         ORDER BY started_at, id"
    ))?;
    let mut out = Vec::new();
    for api in apis {
        let rows = stmt.query_map(params![api, environment, from, to], Outage::from_row)?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// The platform's outages that overlap `[from, to)`.
pub fn for_platform(
    conn: &Connection,
    environment: Environment,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> rusqlite::Result<Vec<Outage>> {
    let (from, to) = (crate::clock::rfc3339(from), crate::clock::rfc3339(to));
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outages
         WHERE subject = 'platform' AND environment = ?1 AND started_at < ?3 AND (ended_at IS NULL OR ended_at >= ?2)
         ORDER BY started_at, id"
    ))?
    .query_map(params![environment, from, to], Outage::from_row)?
    .collect()
}

/// An open outage as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenOutage {
    pub outage: Outage,
    /// The API's name and version, and its provider's name (empty for the platform).
    pub api: String,
    pub provider: String,
}

/// Every open outage, newest first: the platform's and the APIs' in production.
pub fn open_list(conn: &Connection) -> rusqlite::Result<Vec<OpenOutage>> {
    conn.prepare(
        "SELECT o.id, o.subject, o.api_id, o.environment, o.started_at, o.ended_at, o.first_status, o.cause,
                o.detail, o.source, o.ended_by,
                ifnull(a.name || ' ' || a.version, '') AS api_label, ifnull(g.name, '') AS provider
         FROM outages o LEFT JOIN apis a ON a.id = o.api_id LEFT JOIN organisations g ON g.id = a.organisation_id
         WHERE o.ended_at IS NULL AND o.environment = 'production'
         ORDER BY o.started_at DESC, o.id DESC",
    )?
    .query_map([], |r| {
        Ok(OpenOutage { outage: Outage::from_row(r)?, api: r.get("api_label")?, provider: r.get("provider")? })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_bank_s_failures_and_usable_answers_say_something() {
        assert_eq!(classify(200), Some(Observation::Succeeded));
        assert!(matches!(classify(502), Some(Observation::Failed { cause: Cause::BankFailure, .. })));
        assert!(matches!(classify(504), Some(Observation::Failed { cause: Cause::BankTimeout, .. })));
        // Passed-on refusals, refusals before any call, delisting and the platform's own error say nothing.
        for status in [400, 403, 404, 429, 500, 503] {
            assert_eq!(classify(status), None, "{status}");
        }
    }
}
