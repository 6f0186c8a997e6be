//! The overdue warning (`billing.suspend_after_days`): an API user's statement that the operator marked overdue and
//! that has stayed overdue for more than that many days — counted from the moment it was marked overdue — makes the
//! platform warn, and only warn: nothing is refused and no access is suspended. The operator's console (the
//! statements page and its home page) lists such statements with the days overdue and the amount; once per
//! statement (`billing_overdue_warnings`, keyed by the statement, migration 26) the API user gets a signed
//! `billing.statement.overdue` webhook and a notice in its inbox, and the journal records
//! `billing.statement.overdue_warned`. [`warn`] runs with the month close in the billing schedule, on the platform's
//! clock. 0 turns the warning off.

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Actor, Event, Outcome};

/// The webhook event (and inbox notice) sent once per statement.
pub const EVENT: &str = "billing.statement.overdue";

/// An API user's statement overdue beyond the limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overdue {
    pub statement_id: i64,
    pub number: String,
    pub month: String,
    pub organisation_id: i64,
    pub organisation_name: String,
    pub organisation_bin: String,
    pub total_tiyn: i64,
    /// When the operator marked it overdue (RFC 3339, UTC).
    pub overdue_since: String,
    /// Whole days since then.
    pub days_overdue: i64,
    /// When the participant was warned, if it was.
    pub warned_at: Option<String>,
}

/// The API users' statements overdue for more than `limit_days` at `now`, longest overdue first (none when the
/// limit is 0).
pub fn beyond(conn: &Connection, limit_days: u32, now: OffsetDateTime) -> rusqlite::Result<Vec<Overdue>> {
    if limit_days == 0 {
        return Ok(vec![]);
    }
    let cutoff = crate::clock::rfc3339(now - time::Duration::days(i64::from(limit_days)));
    let mut query = conn.prepare_cached(
        "SELECT s.id, s.number, s.month, s.organisation_id, o.name, o.bin, s.total_tiyn, s.status_changed_at,
                w.warned_at
         FROM billing_statements s
         JOIN organisations o ON o.id = s.organisation_id
         LEFT JOIN billing_overdue_warnings w ON w.statement_id = s.id
         WHERE s.status = 'overdue' AND s.kind = 'user' AND s.status_changed_at < ?1
         ORDER BY s.status_changed_at, s.number",
    )?;
    let rows = query.query_map([cutoff], |r| {
        let since: String = r.get(7)?;
        let days = crate::clock::parse(&since).map(|at| (now - at).whole_days()).unwrap_or(0);
        Ok(Overdue {
            statement_id: r.get(0)?,
            number: r.get(1)?,
            month: r.get(2)?,
            organisation_id: r.get(3)?,
            organisation_name: r.get(4)?,
            organisation_bin: r.get(5)?,
            total_tiyn: r.get(6)?,
            overdue_since: since,
            days_overdue: days,
            warned_at: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Warns every API user whose statement is overdue beyond `limit_days` and has not been warned for it yet: the
/// webhook, the inbox notice (the webhook event is an inbox event) and the journal, in the caller's transaction.
/// Returns the statements warned now; running it again warns nobody twice.
pub fn warn(tx: &Transaction, limit_days: u32, now: OffsetDateTime) -> rusqlite::Result<Vec<Overdue>> {
    let at = crate::clock::rfc3339(now);
    let actor = Actor { name: "system".into(), source: "schedule".into(), user_id: None };
    let mut warned = Vec::new();
    for o in beyond(tx, limit_days, now)?.into_iter().filter(|o| o.warned_at.is_none()) {
        let inserted = tx.execute(
            "INSERT INTO billing_overdue_warnings (statement_id, warned_at, days_overdue) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![o.statement_id, at, o.days_overdue],
        )?;
        if inserted == 0 {
            continue;
        }
        let data = json!({
            "statement": o.number,
            "month": o.month,
            "total_tiyn": o.total_tiyn,
            "overdue_since": o.overdue_since,
            "days_overdue": o.days_overdue,
        });
        crate::notify::enqueue(tx, o.organisation_id, EVENT, &data, now)?;
        audit::append(
            tx,
            &Event::new(&actor.name, "billing.statement.overdue_warned", Outcome::Success)
                .at(now)
                .source(&actor.source)
                .organisation(&o.organisation_bin)
                .object(format!("billing_statement:{}", o.number))
                .detail(json!({ "days_overdue": o.days_overdue, "limit_days": limit_days })),
        )?;
        warned.push(Overdue { warned_at: Some(at.clone()), ..o });
    }
    Ok(warned)
}
