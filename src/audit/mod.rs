//! The audit journal: an append-only, hash-chained record of every security-relevant action.
//!
//! Each row's `hash` is SHA-256 over its own fields and the previous row's hash, so changing, removing or
//! re-ordering any row breaks the chain from that row on; `kopir audit verify` names the first broken row. Entries
//! are appended inside the same transaction as the change they record, so a change and its record land together.
//! Callers pass descriptions and identifiers only — never a key, password, token, OTP or account data.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use thiserror::Error;

use time::OffsetDateTime;

use crate::clock;
use crate::digest::sha256_hex;

pub mod page;

pub use page::router;

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

crate::text_enum! {
    /// How an action ended (stored in `audit_log.outcome`).
    pub enum Outcome {
        Success = "success",
        Failure = "failure",
        Denied = "denied",
    }
}

/// Who acts, for the audit journal: `user:<name>`, `cli:<unix user>` or `system`; the source address or `cli`;
/// and the user's id when a person of the platform acts. Every domain's state changes take one.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub source: String,
    pub user_id: Option<i64>,
}

/// One thing that happened, and when:
///
/// ```ignore
/// audit::append(tx, &Event::new(&actor.name, "catalog.api.created", Outcome::Success).at(now).object("api:7"))?;
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    /// Who did it: `user:<name>`, `cli:<unix user>`, `cert:<serial>`, `system`.
    pub actor: String,
    pub organisation: Option<String>,
    /// Dotted name of the action, e.g. `pki.certificate.revoked`.
    pub action: String,
    /// What it was done to, e.g. `certificate:<serial>`.
    pub object: Option<String>,
    pub outcome: Outcome,
    /// Where the request came from: an IP address or `cli`.
    pub source: Option<String>,
    /// Non-secret detail, as JSON.
    pub detail: Option<serde_json::Value>,
    /// When it happened: the platform's clock as the caller read it (see [`Untimed::at`]).
    pub at: OffsetDateTime,
}

/// An event still without its time: [`Event::new`] gives one and [`Untimed::at`] completes it, so no entry can be
/// journalled without the time the caller read from the platform's clock.
#[derive(Debug, Clone)]
#[must_use = "an event is journalled only once it has its time (`.at(now)`)"]
pub struct Untimed {
    actor: String,
    action: String,
    outcome: Outcome,
}

impl Untimed {
    /// The time of the entry: the caller's `now`, read once from the platform's clock.
    pub fn at(self, now: OffsetDateTime) -> Event {
        Event {
            actor: self.actor,
            organisation: None,
            action: self.action,
            object: None,
            outcome: self.outcome,
            source: None,
            detail: None,
            at: now,
        }
    }
}

impl Event {
    /// An event of `actor` doing `action`; its time comes next ([`Untimed::at`]). (Not yet an `Event` on purpose:
    /// one cannot be journalled without its time.)
    #[allow(clippy::new_ret_no_self)]
    pub fn new(actor: impl Into<String>, action: impl Into<String>, outcome: Outcome) -> Untimed {
        Untimed { actor: actor.into(), action: action.into(), outcome }
    }

    pub fn object(mut self, object: impl Into<String>) -> Event {
        self.object = Some(object.into());
        self
    }

    pub fn source(mut self, source: impl Into<String>) -> Event {
        self.source = Some(source.into());
        self
    }

    pub fn organisation(mut self, organisation: impl Into<String>) -> Event {
        self.organisation = Some(organisation.into());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Event {
        self.detail = Some(detail);
        self
    }
}

/// A stored row, as hashed.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub organisation: Option<String>,
    pub action: String,
    pub object: Option<String>,
    pub outcome: String,
    pub source: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Entry {
    fn computed_hash(&self) -> String {
        // A JSON array is an unambiguous encoding of the fields (no separator can be forged inside a value).
        let canonical = serde_json::json!([
            self.seq,
            self.at,
            self.actor,
            self.organisation,
            self.action,
            self.object,
            self.outcome,
            self.source,
            self.detail,
            self.prev_hash,
        ]);
        sha256_hex(canonical.to_string().as_bytes())
    }
}

/// A row of `seq, at, actor, organisation, action, object, outcome, source, detail, prev_hash, hash`.
fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        organisation: row.get(3)?,
        action: row.get(4)?,
        object: row.get(5)?,
        outcome: row.get(6)?,
        source: row.get(7)?,
        detail: row.get(8)?,
        prev_hash: row.get(9)?,
        hash: row.get(10)?,
    })
}

/// Appends `event` in the caller's transaction and returns its sequence number.
pub fn append(tx: &Transaction, event: &Event) -> Result<i64, rusqlite::Error> {
    let head: Option<(i64, String)> = tx
        .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = Entry {
        seq,
        at: clock::rfc3339(event.at),
        actor: event.actor.clone(),
        organisation: event.organisation.clone(),
        action: event.action.clone(),
        object: event.object.clone(),
        outcome: event.outcome.as_str().to_string(),
        source: event.source.clone(),
        detail: event.detail.as_ref().map(|d| d.to_string()),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.computed_hash();
    tx.execute(
        "INSERT INTO audit_log (seq, at, actor, organisation, action, object, outcome, source, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            entry.seq,
            entry.at,
            entry.actor,
            entry.organisation,
            entry.action,
            entry.object,
            entry.outcome,
            entry.source,
            entry.detail,
            entry.prev_hash,
            entry.hash
        ],
    )?;
    Ok(seq)
}

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit chain broken at row {seq}: {reason}")]
    Broken { seq: i64, reason: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    pub rows: i64,
    pub last_seq: i64,
    pub head_hash: String,
}

/// Walks the whole chain in order and reports the first row whose hash, link or numbering is wrong.
pub fn verify(conn: &Connection) -> Result<ChainHead, AuditError> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, organisation, action, object, outcome, source, detail, prev_hash, hash
         FROM audit_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected_prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut count = 0i64;
    while let Some(row) = rows.next()? {
        let entry = entry_from_row(row)?;
        if entry.seq != expected_seq {
            return Err(AuditError::Broken { seq: entry.seq, reason: format!("row {expected_seq} is missing") });
        }
        if entry.prev_hash != expected_prev {
            return Err(AuditError::Broken { seq: entry.seq, reason: "it does not link to the previous row".into() });
        }
        if entry.computed_hash() != entry.hash {
            return Err(AuditError::Broken { seq: entry.seq, reason: "its content does not match its hash".into() });
        }
        expected_prev = entry.hash;
        expected_seq += 1;
        count += 1;
    }
    Ok(ChainHead { rows: count, last_seq: expected_seq - 1, head_hash: expected_prev })
}

/// Filters of the console's audit search; empty fields do not filter.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    /// Actions starting with this, e.g. `participants.` or `identity.login`.
    #[serde(default)]
    pub action: String,
    /// Actors containing this.
    #[serde(default)]
    pub actor: String,
    /// Objects containing this.
    #[serde(default)]
    pub object: String,
    /// First day (YYYY-MM-DD, the operator's local day), inclusive.
    #[serde(default)]
    pub from: String,
    /// Last day (YYYY-MM-DD, the operator's local day), inclusive.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page: Option<u32>,
}

impl Filter {
    /// Whether any field filters.
    pub fn is_empty(&self) -> bool {
        [&self.action, &self.actor, &self.object].iter().all(|f| f.trim().is_empty())
            && !is_day(&self.from)
            && !is_day(&self.to)
    }
}

/// The first instant of a local day, as the journal writes instants (RFC 3339, UTC).
fn day_start_utc(zone: &jiff::tz::TimeZone, day: &str, days_later: i64) -> Option<String> {
    let date: jiff::civil::Date = day.trim().parse().ok()?;
    let date = date.checked_add(jiff::Span::new().days(days_later)).ok()?;
    let seconds = crate::store::calendar::day_start(zone, date).ok()?;
    let at = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    Some(clock::rfc3339(at))
}

/// The `WHERE` clause and its values for `filter`; days are the operator's local days in `zone`.
fn filter_clause(filter: &Filter, zone: &jiff::tz::TimeZone) -> (String, Vec<String>) {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let mut add = |clause: &'static str, value: String| {
        clauses.push(clause);
        values.push(value);
    };
    if !filter.action.trim().is_empty() {
        add("substr(action, 1, length(?N)) = ?N", filter.action.trim().to_string());
    }
    if !filter.actor.trim().is_empty() {
        add("instr(actor, ?N) > 0", filter.actor.trim().to_string());
    }
    if !filter.object.trim().is_empty() {
        add("instr(coalesce(object, ''), ?N) > 0", filter.object.trim().to_string());
    }
    if is_day(&filter.from)
        && let Some(start) = day_start_utc(zone, &filter.from, 0)
    {
        add("at >= ?N", start);
    }
    if is_day(&filter.to)
        && let Some(end) = day_start_utc(zone, &filter.to, 1)
    {
        add("at < ?N", end);
    }
    let mut sql = String::new();
    for (i, clause) in clauses.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        sql.push_str(&clause.replace("?N", &format!("?{}", i + 1)));
    }
    (sql, values)
}

const ENTRY_COLUMNS: &str = "seq, at, actor, organisation, action, object, outcome, source, detail, prev_hash, hash";

/// A page of journal entries matching `filter` (days in `zone`), newest first, and whether more follow.
pub fn search(
    conn: &Connection,
    filter: &Filter,
    zone: &jiff::tz::TimeZone,
    per_page: u32,
) -> Result<(Vec<Entry>, bool), rusqlite::Error> {
    let (clause, values) = filter_clause(filter, zone);
    let page = filter.page.unwrap_or(1).max(1);
    let offset = i64::from(page - 1) * i64::from(per_page);
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_log{clause} ORDER BY seq DESC LIMIT {} OFFSET {offset}",
        per_page + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values.iter()), entry_from_row)?;
    let mut entries = rows.collect::<Result<Vec<_>, _>>()?;
    let more = entries.len() > per_page as usize;
    entries.truncate(per_page as usize);
    Ok((entries, more))
}

/// Every entry matching `filter` (days in `zone`), newest first, at most `limit`, and whether more matched.
pub fn matching(
    conn: &Connection,
    filter: &Filter,
    zone: &jiff::tz::TimeZone,
    limit: u32,
) -> Result<(Vec<Entry>, bool), rusqlite::Error> {
    let whole = Filter { page: None, ..filter.clone() };
    search(conn, &whole, zone, limit)
}

fn is_day(s: &str) -> bool {
    let s = s.trim();
    s.len() == 10 && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::migrate::{SCHEMA, migrate};

    fn journal(n: usize) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            let event = Event::new("cli:root", "test.event", Outcome::Success)
                .at(time::macros::datetime!(2026-11-25 12:00 UTC))
                .object(format!("thing:{i}"))
                .source("cli")
                .detail(serde_json::json!({ "i": i }));
            append(&tx, &event).unwrap();
        }
        tx.commit().unwrap();
        conn
    }

    #[test]
    fn search_filters_and_pages_newest_first() {
        let conn = journal(7);
        let filter = Filter { action: "test.".into(), object: "thing:".into(), ..Default::default() };
        let (first, more) = search(&conn, &filter, &utc(), 5).unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 6, 5, 4, 3]);
        assert!(more);
        let (second, more) = search(&conn, &Filter { page: Some(2), ..filter.clone() }, &utc(), 5).unwrap();
        assert_eq!(second.len(), 2);
        assert!(!more);
        let (none, _) = search(&conn, &Filter { action: "pki.".into(), ..Default::default() }, &utc(), 5).unwrap();
        assert!(none.is_empty());
        let (one, _) = search(
            &conn,
            &Filter { object: "thing:3".into(), to: "2999-01-01".into(), ..Default::default() },
            &utc(),
            5,
        )
        .unwrap();
        assert_eq!(one.len(), 1);
    }

    fn utc() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::UTC
    }

    /// The days of the filter are the operator's: 2026-11-25 12:00 UTC is 17:00 on the 25th in Almaty, but an entry
    /// at 20:00 UTC is already on the 26th there.
    #[test]
    fn days_filter_in_the_operators_zone() {
        let mut conn = journal(2);
        let tx = conn.transaction().unwrap();
        let late =
            Event::new("cli:root", "test.late", Outcome::Success).at(time::macros::datetime!(2026-11-25 20:00 UTC));
        append(&tx, &late).unwrap();
        tx.commit().unwrap();
        let almaty = crate::store::calendar::default_time_zone();
        let day = |d: &str| Filter { from: d.into(), to: d.into(), ..Default::default() };
        let actions = |f: &Filter, zone: &jiff::tz::TimeZone| -> Vec<String> {
            matching(&conn, f, zone, 100).unwrap().0.into_iter().map(|e| e.action).collect()
        };
        assert_eq!(actions(&day("2026-11-26"), &almaty), ["test.late"]);
        assert_eq!(actions(&day("2026-11-25"), &almaty), ["test.event", "test.event"]);
        assert_eq!(actions(&day("2026-11-25"), &utc()).len(), 3);
        assert!(!day("2026-11-25").is_empty() && Filter::default().is_empty());
    }

    #[test]
    fn intact_chain_verifies() {
        let conn = journal(5);
        let head = verify(&conn).unwrap();
        assert_eq!(head.rows, 5);
        assert_eq!(head.last_seq, 5);
        assert_eq!(head.head_hash.len(), 64);
    }

    #[test]
    fn journal_refuses_update_and_delete() {
        let conn = journal(2);
        assert!(conn.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 1", []).is_err());
        assert!(conn.execute("DELETE FROM audit_log WHERE seq = 2", []).is_err());
    }

    #[test]
    fn altered_row_is_named() {
        let conn = journal(4);
        conn.execute_batch("DROP TRIGGER audit_log_no_update").unwrap();
        conn.execute("UPDATE audit_log SET object = 'thing:99' WHERE seq = 3", []).unwrap();
        match verify(&conn) {
            Err(AuditError::Broken { seq, .. }) => assert_eq!(seq, 3),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn deleted_row_is_named() {
        let conn = journal(4);
        conn.execute_batch("DROP TRIGGER audit_log_no_delete").unwrap();
        conn.execute("DELETE FROM audit_log WHERE seq = 2", []).unwrap();
        match verify(&conn) {
            Err(AuditError::Broken { seq, .. }) => assert_eq!(seq, 3),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }
}
