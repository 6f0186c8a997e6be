//! The SLA clocks' job: one task per platform wakes every [`TICK`] on the platform's clock (tests move it) and, for
//! each open request,
//! - warns its executor once `requests.warning_percent` of the resolution target has passed (`warning` in the
//!   history, `request.updated` to the organisations);
//! - records a breach of the first response when its deadline passed without one;
//! - at the resolution deadline, records the breach and escalates the request to the operator's supervisors: one
//!   the operator's team executes passes to the operator administrators' team, and every escalated request is on
//!   the console's "escalated" list (`escalated` in the history, `requests.request.escalated` in the journal).
//!
//! A request waiting for its requester has no resolution deadline (its clock is paused), so it is never warned or
//! escalated while it waits. Breaches are kept in `request_sla_breaches`, one per request and clock, and counted by
//! [`breach_counts`] for the reports.

use std::time::Duration;

use rusqlite::{Connection, Transaction, params};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::audit::{self, Event, Outcome};
use crate::clock::{self, Clock};
use crate::store::{Db, StoreError};

/// How often the clocks are judged.
pub const TICK: Duration = Duration::from_secs(60);

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub warned: usize,
    pub first_response_breaches: usize,
    pub escalated: usize,
}

fn due(conn: &Connection, sql: &str, now: &str) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(sql)?;
    stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

fn history(tx: &Transaction, id: i64, kind: &str, body: &str, now: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO request_events (request_id, at, actor, kind, status, body)
         SELECT id, ?2, 'system', ?3, status, ?4 FROM requests WHERE id = ?1",
        params![id, now, kind, body],
    )?;
    Ok(())
}

fn announce(tx: &Transaction, id: i64, change: &str, now: OffsetDateTime) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "SELECT p.organisation_id, r.status, c.code FROM request_parties p JOIN requests r ON r.id = p.request_id
         JOIN request_categories c ON c.id = r.category_id WHERE p.request_id = ?1",
    )?;
    let rows = stmt
        .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (org, status, category) in rows {
        crate::notify::enqueue(
            tx,
            org,
            "request.updated",
            &json!({"request_id": id, "status": status, "category": category, "change": change}),
            now,
        )?;
    }
    Ok(())
}

/// Judges every open request's clocks at `now`, in one transaction.
pub fn judge(tx: &Transaction, now: OffsetDateTime) -> rusqlite::Result<Round> {
    let at = clock::rfc3339(now);
    let mut round = Round::default();
    let open = "status IN ('assigned', 'in_progress')";
    for (id, _) in due(
        tx,
        &format!(
            "SELECT id, resolution_warn_at FROM requests WHERE {open} AND warned_at IS NULL AND resolution_warn_at <= ?1"
        ),
        &at,
    )? {
        tx.execute("UPDATE requests SET warned_at = ?1 WHERE id = ?2 AND warned_at IS NULL", params![at, id])?;
        history(tx, id, "warning", "", &at)?;
        audit::append(
            tx,
            &Event::new("system", "requests.request.warned", Outcome::Success).at(now).object(format!("request:{id}")),
        )?;
        announce(tx, id, "warning", now)?;
        round.warned += 1;
    }
    for (id, due_at) in due(
        tx,
        "SELECT r.id, r.first_response_due_at FROM requests r WHERE r.first_responded_at IS NULL
           AND r.status NOT IN ('resolved', 'closed') AND r.first_response_due_at <= ?1
           AND NOT EXISTS (SELECT 1 FROM request_sla_breaches b WHERE b.request_id = r.id AND b.clock = 'first_response')",
        &at,
    )? {
        tx.execute(
            "INSERT INTO request_sla_breaches (request_id, clock, due_at, breached_at) VALUES (?1, 'first_response', ?2, ?3)",
            params![id, due_at, at],
        )?;
        history(tx, id, "breach", "first_response", &at)?;
        audit::append(
            tx,
            &Event::new("system", "requests.request.breached", Outcome::Failure)
                .at(now)
                .object(format!("request:{id}"))
                .detail(json!({"clock": "first_response", "due_at": due_at})),
        )?;
        round.first_response_breaches += 1;
    }
    for (id, due_at) in due(
        tx,
        &format!(
            "SELECT id, resolution_due_at FROM requests WHERE {open} AND escalated_at IS NULL AND resolution_due_at <= ?1"
        ),
        &at,
    )? {
        // A request the operator's staff execute passes to the supervisors; one a participant executes stays with it
        // and is on the supervisors' escalated list.
        tx.execute(
            "UPDATE requests SET escalated_at = ?1,
                 assignee_team = CASE WHEN assignee_team IS NULL THEN NULL ELSE 'operator_admin' END
             WHERE id = ?2 AND escalated_at IS NULL",
            params![at, id],
        )?;
        tx.execute(
            "INSERT INTO request_sla_breaches (request_id, clock, due_at, breached_at) VALUES (?1, 'resolution', ?2, ?3)
             ON CONFLICT (request_id, clock) DO NOTHING",
            params![id, due_at, at],
        )?;
        history(tx, id, "escalated", "operator_admin", &at)?;
        audit::append(
            tx,
            &Event::new("system", "requests.request.escalated", Outcome::Failure)
                .at(now)
                .object(format!("request:{id}"))
                .detail(json!({"clock": "resolution", "due_at": due_at, "to": "operator_admin"})),
        )?;
        announce(tx, id, "escalated", now)?;
        round.escalated += 1;
    }
    Ok(round)
}

/// Breaches recorded after `from` and up to `to` (included: "the 30 days up to now" counts a breach of this very
/// second), RFC 3339: (first response, resolution).
pub fn breach_counts(conn: &Connection, from: &str, to: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT coalesce(sum(clock = 'first_response'), 0), coalesce(sum(clock = 'resolution'), 0)
         FROM request_sla_breaches WHERE breached_at > ?1 AND breached_at <= ?2",
        params![from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// One category's and priority's request SLA breaches in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryBreaches {
    /// The classifier's code (stable) and its names (en, ru, kk) as they are now.
    pub category: String,
    pub names: [String; 3],
    pub priority: super::Priority,
    pub first_response: i64,
    pub resolution: i64,
}

/// Breaches recorded from `from` (included) to `to` (excluded), RFC 3339 — the reports' periods of local days — by
/// the request's category and priority: categories by code, priorities from the most urgent.
pub fn breaches_by_category(conn: &Connection, from: &str, to: &str) -> rusqlite::Result<Vec<CategoryBreaches>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.code, c.name_en, c.name_ru, c.name_kk, r.priority,
                sum(b.clock = 'first_response'), sum(b.clock = 'resolution')
         FROM request_sla_breaches b JOIN requests r ON r.id = b.request_id
         JOIN request_categories c ON c.id = r.category_id
         WHERE b.breached_at >= ?1 AND b.breached_at < ?2
         GROUP BY c.code, r.priority
         ORDER BY c.code, CASE r.priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END",
    )?;
    stmt.query_map(params![from, to], |r| {
        Ok(CategoryBreaches {
            category: r.get(0)?,
            names: [r.get(1)?, r.get(2)?, r.get(3)?],
            priority: r.get(4)?,
            first_response: r.get(5)?,
            resolution: r.get(6)?,
        })
    })?
    .collect()
}

/// Starts the task: a round at once, then one every [`TICK`] until `stop`.
pub fn spawn(db: Db, clock: Clock, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = clock.now();
            match db.write(move |tx| judge(tx, now).map_err(StoreError::from)).await {
                Ok(round) if round != Round::default() => tracing::info!(?round, "request SLA clocks judged"),
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "judging the requests' SLA clocks failed"),
            }
            tokio::select! {
                () = clock.sleep(TICK) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
