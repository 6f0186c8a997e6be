//! SLA breaches of bank APIs: owns `sla_breaches`.
//!
//! Every minute the monitoring task reads the production calls of the last [`WINDOW_MINUTES`] from the metered
//! exchanges and takes each API's p95 latency (nearest rank, every call counted — a time-out is a slow call). An API
//! whose p95 is over its `sla_response_ms`, with at least [`MIN_CALLS`] calls in the window, is in breach: the
//! evaluation that first sees it opens a breach row and, in the same transaction, queues a signed `api.sla_breached`
//! webhook to the provider — once per breach, whatever the following minutes show. The breach ends, with an
//! `api.sla_restored`, when the window's p95 is within the SLA again over at least [`MIN_CALLS`] calls, or when the
//! window holds no call at all; a handful of calls decides nothing either way. At most one breach per API is open (a
//! unique index), so two evaluations racing cannot open two. The operator's console lists open and recent breaches.
//!
//! ```text
//! 10:00  p95 812 ms > SLA 500 ms over 240 calls  → breach #7 opens, api.sla_breached
//! 10:01  p95 930 ms                              → breach #7 continues (worst 930 ms), nothing sent
//! 10:30  p95 410 ms over 180 calls               → breach #7 ends, api.sla_restored
//! ```

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

/// The window of calls an API's p95 is read over.
pub const WINDOW_MINUTES: i64 = 60;

/// The fewest calls in the window from which a p95 opens or ends a breach.
pub const MIN_CALLS: i64 = 20;

/// One API's calls in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    pub api_id: i64,
    pub calls: i64,
    pub p95_ms: i64,
}

/// The p95 of `latencies` by nearest rank (sorts them); `None` when there are none.
pub fn p95(latencies: &mut [i64]) -> Option<i64> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort_unstable();
    let rank = (latencies.len() * 95).div_ceil(100);
    latencies.get(rank.saturating_sub(1)).copied()
}

/// Each API's production calls made in `[from, to]`, with their p95 (the `exchanges_at` index serves the range).
pub fn window(conn: &Connection, from: &str, to: &str) -> rusqlite::Result<Vec<WindowStats>> {
    let mut stmt = conn.prepare_cached(
        "SELECT api_id, latency_ms FROM exchanges
         WHERE at >= ?1 AND at <= ?2 AND api_id IS NOT NULL AND environment = 'production'",
    )?;
    let mut by_api: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut rows = stmt.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        by_api.entry(row.get("api_id")?).or_default().push(row.get("latency_ms")?);
    }
    let mut stats: Vec<WindowStats> = by_api
        .into_iter()
        .filter_map(|(api_id, mut latencies)| {
            let calls = latencies.len() as i64;
            p95(&mut latencies).map(|p95_ms| WindowStats { api_id, calls, p95_ms })
        })
        .collect();
    stats.sort_by_key(|s| s.api_id);
    Ok(stats)
}

/// Whether [`evaluate`] may change anything: a breach is open, or an API of `stats` is over its SLA. (Most minutes
/// neither holds, and the writer is left alone.)
pub fn may_change(conn: &Connection, stats: &[WindowStats]) -> rusqlite::Result<bool> {
    let open: i64 = conn.query_row("SELECT count(*) FROM sla_breaches WHERE ended_at IS NULL", [], |r| r.get(0))?;
    if open > 0 {
        return Ok(true);
    }
    let mut sla = conn.prepare_cached("SELECT sla_response_ms FROM apis WHERE id = ?1")?;
    for s in stats.iter().filter(|s| s.calls >= MIN_CALLS) {
        let sla_ms: Option<i64> = sla.query_row([s.api_id], |r| r.get("sla_response_ms")).optional()?;
        if sla_ms.is_some_and(|sla_ms| s.p95_ms > sla_ms) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Began { api_id: i64, breach_id: i64 },
    Ended { api_id: i64, breach_id: i64 },
}

/// An open breach as the evaluation needs it.
struct Open {
    id: i64,
    api_id: i64,
    worst_p95_ms: i64,
}

/// An API's SLA and provider.
struct Sla {
    organisation_id: i64,
    sla_ms: i64,
}

fn sla(tx: &Transaction, api_id: i64) -> rusqlite::Result<Option<Sla>> {
    tx.query_row("SELECT organisation_id, sla_response_ms FROM apis WHERE id = ?1", [api_id], |r| {
        Ok(Sla { organisation_id: r.get("organisation_id")?, sla_ms: r.get("sla_response_ms")? })
    })
    .optional()
}

/// Opens, continues and ends breaches from the window's `stats` at `now`, queueing the provider's webhooks in the
/// same transaction. Returns what began and ended.
pub fn evaluate(tx: &Transaction, stats: &[WindowStats], now: &str) -> rusqlite::Result<Vec<Change>> {
    let open: Vec<Open> = tx
        .prepare_cached("SELECT id, api_id, worst_p95_ms FROM sla_breaches WHERE ended_at IS NULL")?
        .query_map([], |r| {
            Ok(Open { id: r.get("id")?, api_id: r.get("api_id")?, worst_p95_ms: r.get("worst_p95_ms")? })
        })?
        .collect::<Result<_, _>>()?;
    let mut changes = Vec::new();
    for s in stats {
        let Some(sla) = sla(tx, s.api_id)? else { continue };
        let over = s.calls >= MIN_CALLS && s.p95_ms > sla.sla_ms;
        let within = s.calls >= MIN_CALLS && s.p95_ms <= sla.sla_ms;
        match open.iter().find(|o| o.api_id == s.api_id) {
            None if over => {
                tx.execute(
                    "INSERT INTO sla_breaches (api_id, started_at, sla_ms, p95_ms, worst_p95_ms, calls)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                    params![s.api_id, now, sla.sla_ms, s.p95_ms, s.calls],
                )?;
                let breach_id = tx.last_insert_rowid();
                notify(tx, "api.sla_breached", sla.organisation_id, breach_id, s, sla.sla_ms, now)?;
                changes.push(Change::Began { api_id: s.api_id, breach_id });
            }
            Some(breach) if over && s.p95_ms > breach.worst_p95_ms => {
                tx.execute(
                    "UPDATE sla_breaches SET worst_p95_ms = ?2 WHERE id = ?1 AND ended_at IS NULL",
                    params![breach.id, s.p95_ms],
                )?;
            }
            Some(breach) if within => {
                let ended = end(tx, breach.id, now)?;
                if ended {
                    notify(tx, "api.sla_restored", sla.organisation_id, breach.id, s, sla.sla_ms, now)?;
                    changes.push(Change::Ended { api_id: s.api_id, breach_id: breach.id });
                }
            }
            _ => {}
        }
    }
    // No call in the window: nothing is slow any more.
    for breach in open.iter().filter(|o| !stats.iter().any(|s| s.api_id == o.api_id)) {
        let Some(sla) = sla(tx, breach.api_id)? else { continue };
        if end(tx, breach.id, now)? {
            let quiet = WindowStats { api_id: breach.api_id, calls: 0, p95_ms: 0 };
            notify(tx, "api.sla_restored", sla.organisation_id, breach.id, &quiet, sla.sla_ms, now)?;
            changes.push(Change::Ended { api_id: breach.api_id, breach_id: breach.id });
        }
    }
    Ok(changes)
}

/// Ends an open breach (compare-and-set on its being open); false when it already ended.
fn end(tx: &Transaction, id: i64, now: &str) -> rusqlite::Result<bool> {
    Ok(tx.execute("UPDATE sla_breaches SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL", params![id, now])? == 1)
}

/// The provider's webhook: identifiers and figures only.
fn notify(
    tx: &Transaction,
    event: &str,
    organisation_id: i64,
    breach_id: i64,
    stats: &WindowStats,
    sla_ms: i64,
    now: &str,
) -> rusqlite::Result<String> {
    let data = serde_json::json!({
        "ApiId": stats.api_id,
        "BreachId": breach_id,
        "SlaResponseMs": sla_ms,
        "P95Ms": stats.p95_ms,
        "Calls": stats.calls,
        "WindowMinutes": WINDOW_MINUTES,
    });
    let now = crate::clock::parse(now).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    crate::notify::enqueue(tx, organisation_id, event, &data, now)
}

/// A breach as the operator's console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Breach {
    pub id: i64,
    pub api_id: i64,
    pub api_name: String,
    pub api_version: String,
    pub provider_name: String,
    pub provider_bin: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub sla_ms: i64,
    pub p95_ms: i64,
    pub worst_p95_ms: i64,
    pub calls: i64,
}

impl Breach {
    fn from_row(r: &Row) -> rusqlite::Result<Breach> {
        Ok(Breach {
            id: r.get("id")?,
            api_id: r.get("api_id")?,
            api_name: r.get("api_name")?,
            api_version: r.get("api_version")?,
            provider_name: r.get("provider_name")?,
            provider_bin: r.get("provider_bin")?,
            started_at: r.get("started_at")?,
            ended_at: r.get("ended_at")?,
            sla_ms: r.get("sla_ms")?,
            p95_ms: r.get("p95_ms")?,
            worst_p95_ms: r.get("worst_p95_ms")?,
            calls: r.get("calls")?,
        })
    }
}

const BREACH_COLUMNS: &str = "b.id, b.api_id, a.name AS api_name, a.version AS api_version, g.name AS provider_name,
     g.bin AS provider_bin, b.started_at, b.ended_at, b.sla_ms, b.p95_ms, b.worst_p95_ms, b.calls
     FROM sla_breaches b JOIN apis a ON a.id = b.api_id JOIN organisations g ON g.id = a.organisation_id";

/// Breaches open now, longest first.
pub fn open(conn: &Connection) -> rusqlite::Result<Vec<Breach>> {
    let sql = format!("SELECT {BREACH_COLUMNS} WHERE b.ended_at IS NULL ORDER BY b.started_at, b.id");
    conn.prepare(&sql)?.query_map([], Breach::from_row)?.collect()
}

/// Breaches that ended at or after `since`, latest first, at most `limit`.
pub fn ended_since(conn: &Connection, since: &str, limit: usize) -> rusqlite::Result<Vec<Breach>> {
    let sql = format!(
        "SELECT {BREACH_COLUMNS} WHERE b.ended_at IS NOT NULL AND b.ended_at >= ?1 ORDER BY b.ended_at DESC, b.id DESC
         LIMIT ?2"
    );
    conn.prepare(&sql)?.query_map(params![since, limit as i64], Breach::from_row)?.collect()
}

/// The ids of the APIs in breach now (for the `kopir_api_sla_breached` gauge).
pub fn open_api_ids(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached("SELECT api_id FROM sla_breaches WHERE ended_at IS NULL ORDER BY api_id")?
        .query_map([], |r| r.get("api_id"))?
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn p95_is_the_nearest_rank() {
        let mut hundred: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(p95(&mut hundred), Some(95));
        assert_eq!(p95(&mut [7]), Some(7));
        let mut twenty: Vec<i64> = (1..=20).collect();
        assert_eq!(p95(&mut twenty), Some(19));
        assert_eq!(p95(&mut []), None);
    }

    fn store() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, status, is_provider,
                                        created_at, updated_at)
                 VALUES (1, '990340000014', 'Altyn Bank', 'L-1', 'a@b.kz', '+7', 'accredited', 1, 'x', 'x');
             INSERT INTO apis (id, organisation_id, name, version, standard, sla_response_ms, status, created_at,
                               updated_at)
                 VALUES (5, 1, 'Accounts', '1.0', 'kopir-ais-v1', 500, 'published', 'x', 'x');",
        )
        .unwrap();
        conn
    }

    fn events(conn: &rusqlite::Connection) -> Vec<String> {
        conn.prepare("SELECT event_type FROM webhook_outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn run(conn: &mut rusqlite::Connection, stats: &[WindowStats], now: &str) -> Vec<Change> {
        let tx = conn.transaction().unwrap();
        let changes = evaluate(&tx, stats, now).unwrap();
        tx.commit().unwrap();
        changes
    }

    #[test]
    fn a_breach_is_announced_once_and_its_end_once() {
        let mut conn = store();
        let slow = |p95_ms| [WindowStats { api_id: 5, calls: 40, p95_ms }];
        let began = run(&mut conn, &slow(812), "2026-12-03T10:00:00Z");
        assert!(matches!(began[..], [Change::Began { api_id: 5, .. }]), "{began:?}");
        assert!(run(&mut conn, &slow(930), "2026-12-03T10:01:00Z").is_empty());
        assert!(run(&mut conn, &slow(700), "2026-12-03T10:02:00Z").is_empty());
        assert_eq!(events(&conn), ["api.sla_breached"], "once per breach, not every minute");
        let worst: i64 = conn.query_row("SELECT worst_p95_ms FROM sla_breaches", [], |r| r.get(0)).unwrap();
        assert_eq!(worst, 930);
        assert_eq!(open(&conn).unwrap().len(), 1);

        // A few fast calls decide nothing; enough of them end the breach.
        assert!(run(&mut conn, &[WindowStats { api_id: 5, calls: 3, p95_ms: 100 }], "2026-12-03T10:03:00Z").is_empty());
        let ended = run(&mut conn, &slow(500), "2026-12-03T10:04:00Z");
        assert!(matches!(ended[..], [Change::Ended { api_id: 5, .. }]), "{ended:?}");
        assert_eq!(events(&conn), ["api.sla_breached", "api.sla_restored"]);
        assert!(open(&conn).unwrap().is_empty());
        assert_eq!(ended_since(&conn, "2026-12-03T00:00:00Z", 10).unwrap()[0].worst_p95_ms, 930);

        // A new breach is a new row and a new announcement; silence ends it.
        run(&mut conn, &slow(600), "2026-12-03T11:00:00Z");
        let quiet = run(&mut conn, &[], "2026-12-03T12:30:00Z");
        assert!(matches!(quiet[..], [Change::Ended { .. }]), "{quiet:?}");
        assert_eq!(events(&conn), ["api.sla_breached", "api.sla_restored", "api.sla_breached", "api.sla_restored"]);
        let payload: String =
            conn.query_row("SELECT payload FROM webhook_outbox ORDER BY id LIMIT 1", [], |r| r.get(0)).unwrap();
        let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(payload["SlaResponseMs"], 500);
        assert_eq!(payload["P95Ms"], 812);
        assert_eq!(payload["Calls"], 40);
    }

    #[test]
    fn the_writer_is_needed_only_when_an_api_is_over_its_sla_or_a_breach_is_open() {
        let mut conn = store();
        let fast = [WindowStats { api_id: 5, calls: 40, p95_ms: 200 }];
        let slow = [WindowStats { api_id: 5, calls: 40, p95_ms: 800 }];
        let few = [WindowStats { api_id: 5, calls: 2, p95_ms: 800 }];
        assert!(!may_change(&conn, &fast).unwrap());
        assert!(!may_change(&conn, &few).unwrap());
        assert!(!may_change(&conn, &[]).unwrap());
        assert!(may_change(&conn, &slow).unwrap());
        run(&mut conn, &slow, "2026-12-03T10:00:00Z");
        assert!(may_change(&conn, &fast).unwrap(), "an open breach may end");
        assert!(may_change(&conn, &[]).unwrap());
    }

    #[test]
    fn too_few_calls_never_open_a_breach() {
        let mut conn = store();
        assert!(run(&mut conn, &[WindowStats { api_id: 5, calls: MIN_CALLS - 1, p95_ms: 9000 }], "t").is_empty());
        assert!(events(&conn).is_empty());
    }

    #[test]
    fn the_window_reads_production_calls_of_the_range_only() {
        let conn = store();
        let mut insert = conn
            .prepare(
                "INSERT INTO exchanges (at, application_id, user_organisation_id, provider_organisation_id, api_id,
                     endpoint, status, latency_ms, bytes, interaction_id, environment)
                 VALUES (?1, 1, 1, 1, ?2, 'accounts', 200, ?3, 0, 'i', ?4)",
            )
            .unwrap();
        for ms in 1..=100 {
            insert.execute(params!["2026-12-03T10:30:00Z", 5, ms, "production"]).unwrap();
        }
        insert.execute(params!["2026-12-03T10:30:00Z", 5, 99_999, "sandbox"]).unwrap();
        insert.execute(params!["2026-12-03T08:00:00Z", 5, 99_999, "production"]).unwrap();
        let stats = window(&conn, "2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z").unwrap();
        assert_eq!(stats, [WindowStats { api_id: 5, calls: 100, p95_ms: 95 }]);
    }
}
