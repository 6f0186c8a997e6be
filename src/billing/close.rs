//! Month close: once a month of the operator's days has ended, [`close`] prices its units (the same pricing as the
//! running totals, [`super::charges`]) and issues numbered statements in one transaction — for each API user its
//! charges per provider, API and service with the platform fee; for each provider what it earns per API user, API
//! and service; for the operator every participant's net position (money moves through the operator: API users owe it
//! their charges and fees, it owes providers their charges). Closing again changes nothing and answers the
//! statements already issued (`billing_closes` is keyed by the month, so two closes racing cannot both issue). The
//! schema keeps statements as issued: a trigger refuses any change but the settlement status, and any delete.
//! Journal: `billing.month.closed` (the month, how many statements, the operator's net).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;
use time::{Date, OffsetDateTime};

use super::charges::{self, Charge, Party, Plans};
use super::{BillingError, day_text, parse_day};
use crate::audit::{self, Actor, Event, Outcome};

/// An issued statement, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub id: i64,
    pub number: String,
    pub month: String,
    pub kind: String,
    pub organisation_id: Option<i64>,
    pub total_tiyn: i64,
    pub sha256: String,
    pub issued_at: String,
    pub status: String,
}

impl Statement {
    /// The text key naming its kind on pages and in its printable document.
    pub fn kind_key(&self) -> &'static str {
        match self.kind.as_str() {
            "user" => "billing.print.kind_user",
            "provider" => "billing.print.kind_provider",
            _ => "billing.print.kind_operator",
        }
    }

    /// The text key naming its settlement status.
    pub fn status_key(&self) -> &'static str {
        self.status.parse::<Settlement>().map_or("billing.print.status_issued", Settlement::text_key)
    }

    /// A statement from a row whose first columns are, in order: id, number, month, kind, organisation_id,
    /// total_tiyn, sha256, issued_at, status.
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Statement> {
        Ok(Statement {
            id: r.get(0)?,
            number: r.get(1)?,
            month: r.get(2)?,
            kind: r.get(3)?,
            organisation_id: r.get(4)?,
            total_tiyn: r.get(5)?,
            sha256: r.get(6)?,
            issued_at: r.get(7)?,
            status: r.get(8)?,
        })
    }
}

/// What a close came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Issued now.
    Issued(Vec<Statement>),
    /// Closed before: the statements issued then, unchanged.
    Already(Vec<Statement>),
    /// The month has not ended (in the operator's days), or is not `YYYY-MM`.
    NotEnded,
    Invalid,
}

/// The first and last day of `month` (`YYYY-MM`).
pub fn month_days(month: &str) -> Option<(Date, Date)> {
    let first = parse_day(&format!("{month}-01"))?;
    let last = first.replace_day(first.month().length(first.year())).ok()?;
    Some((first, last))
}

/// The statements of `month`, by number.
pub fn statements(conn: &Connection, month: &str) -> rusqlite::Result<Vec<Statement>> {
    conn.prepare_cached(
        "SELECT id, number, month, kind, organisation_id, total_tiyn, sha256, issued_at, status
         FROM billing_statements WHERE month = ?1 ORDER BY number",
    )?
    .query_map([month], Statement::from_row)?
    .collect()
}

/// The document of statement `number`, as issued.
pub fn document(conn: &Connection, number: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT document FROM billing_statements WHERE number = ?1", [number], |r| r.get(0)).optional()
}

fn line(c: &Charge, counterparty: i64, key: &str) -> serde_json::Value {
    json!({
        key: counterparty,
        "api_id": c.api_id,
        "service": c.service,
        "exchanges": c.exchanges,
        "units": c.units,
        "free_units": c.free_units,
        "charge_tiyn": c.charge_tiyn,
        "fee_tiyn": c.fee_tiyn,
    })
}

/// Sums a month's daily charges into one line per (counterparty, API, service), prices per unit dropped (a month may
/// hold several).
fn lines(charges: &[&Charge], counterparty: impl Fn(&Charge) -> i64) -> Vec<Charge> {
    let mut out: BTreeMap<(i64, i64, &str), Charge> = BTreeMap::new();
    for c in charges {
        let entry = out.entry((counterparty(c), c.api_id, c.service.as_str())).or_insert_with(|| Charge {
            units: 0,
            exchanges: 0,
            free_units: 0,
            charge_tiyn: 0,
            fee_tiyn: 0,
            ..(*c).clone()
        });
        entry.exchanges += c.exchanges;
        entry.units += c.units;
        entry.free_units += c.free_units;
        entry.charge_tiyn += c.charge_tiyn;
        entry.fee_tiyn += c.fee_tiyn;
    }
    out.into_values().collect()
}

fn bin_of(tx: &Transaction, id: i64) -> rusqlite::Result<String> {
    Ok(tx
        .query_row("SELECT bin FROM organisations WHERE id = ?1", [id], |r| r.get::<_, String>(0))
        .optional()?
        .unwrap_or_default())
}

/// Closes `month` if it has ended by `today` (the operator's day): issues its statements, journalled. Idempotent.
pub fn close(
    tx: &Transaction,
    month: &str,
    today: Date,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<Closed, BillingError> {
    let Some((first, last)) = month_days(month) else { return Ok(Closed::Invalid) };
    if last >= today {
        return Ok(Closed::NotEnded);
    }
    let at = crate::clock::rfc3339(now);
    let inserted = tx.execute(
        "INSERT INTO billing_closes (month, closed_at, closed_by) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![month, at, actor.name],
    )?;
    if inserted == 0 {
        return Ok(Closed::Already(statements(tx, month)?));
    }
    let plans = Plans::load(tx)?;
    let charges = charges::price(&plans, &charges::units(tx, Party::Everyone, first, last)?);
    let mut by_user: BTreeMap<i64, Vec<&Charge>> = BTreeMap::new();
    let mut by_provider: BTreeMap<i64, Vec<&Charge>> = BTreeMap::new();
    for c in &charges {
        by_user.entry(c.user_organisation_id).or_default().push(c);
        by_provider.entry(c.provider_organisation_id).or_default().push(c);
    }
    // Net positions: positive, the participant owes the operator; negative, the operator owes it.
    let mut net: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut sequence = 0;
    let mut issue = |tx: &Transaction,
                     kind: &str,
                     organisation: Option<i64>,
                     total: i64,
                     body: serde_json::Value|
     -> rusqlite::Result<()> {
        sequence += 1;
        let number = format!("KOPIR-{}-{sequence:06}", month.replace('-', ""));
        let document = json!({
            "statement": number,
            "kind": kind,
            "month": month,
            "from": day_text(first),
            "to": day_text(last),
            "currency": "KZT",
            "issued_at": at,
            "organisation_bin": match organisation { Some(id) => Some(bin_of(tx, id)?), None => None },
            "total_tiyn": total,
            "body": body,
        })
        .to_string();
        let sha256 = crate::digest::sha256_hex(document.as_bytes());
        tx.execute(
            "INSERT INTO billing_statements (number, month, kind, organisation_id, total_tiyn, document, sha256, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![number, month, kind, organisation, total, document, sha256, at],
        )?;
        Ok(())
    };
    for (user, list) in &by_user {
        let lines = lines(list, |c| c.provider_organisation_id);
        let charge: i64 = lines.iter().map(|l| l.charge_tiyn).sum();
        let fee: i64 = lines.iter().map(|l| l.fee_tiyn).sum();
        net.entry(*user).or_default().0 += charge + fee;
        let body = json!({
            "charge_tiyn": charge,
            "fee_tiyn": fee,
            "lines": lines.iter().map(|l| line(l, l.provider_organisation_id, "provider_organisation_id"))
                .collect::<Vec<_>>(),
        });
        issue(tx, "user", Some(*user), charge + fee, body)?;
    }
    for (provider, list) in &by_provider {
        let lines = lines(list, |c| c.user_organisation_id);
        let earned: i64 = lines.iter().map(|l| l.charge_tiyn).sum();
        net.entry(*provider).or_default().1 += earned;
        let body = json!({
            "earned_tiyn": earned,
            "lines": lines.iter().map(|l| {
                let mut v = line(l, l.user_organisation_id, "user_organisation_id");
                if let Some(o) = v.as_object_mut() { o.remove("fee_tiyn"); }
                v
            }).collect::<Vec<_>>(),
        });
        issue(tx, "provider", Some(*provider), earned, body)?;
    }
    let positions: Vec<serde_json::Value> = net
        .iter()
        .map(|(id, (owes, owed))| {
            json!({ "organisation_id": id, "owes_operator_tiyn": owes, "operator_owes_tiyn": owed, "net_tiyn": owes - owed })
        })
        .collect();
    let operator_net: i64 = net.values().map(|(owes, owed)| owes - owed).sum();
    issue(tx, "operator", None, operator_net, json!({ "positions": positions }))?;
    let issued = statements(tx, month)?;
    audit::append(
        tx,
        &Event::new(&actor.name, "billing.month.closed", Outcome::Success)
            .at(now)
            .source(&actor.source)
            .object(format!("billing_month:{month}"))
            .detail(json!({ "statements": issued.len(), "operator_net_tiyn": operator_net })),
    )?;
    Ok(Closed::Issued(issued))
}

/// Closes `month` as `kopir billing close` does: the operator's today read from `now` (the caller's clock), one
/// write transaction on `db`. Safe to run while the platform serves and beside any other close.
pub async fn close_at(
    db: &crate::store::Db,
    zone: &jiff::tz::TimeZone,
    month: &str,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<Closed, BillingError> {
    let Some(today) = super::today(zone, now) else { return Ok(Closed::Invalid) };
    let month = month.to_string();
    db.write(move |tx| close(tx, &month, today, &actor, now)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn months_have_their_days() {
        let (first, last) = month_days("2028-02").unwrap();
        assert_eq!((day_text(first), day_text(last)), ("2028-02-01".into(), "2028-02-29".into()));
        assert_eq!(month_days("2028-13"), None);
    }
}

crate::text_enum! {
    /// Where a statement's settlement stands (the operator marks it).
    pub enum Settlement {
        Issued = "issued",
        Invoiced = "invoiced",
        Paid = "paid",
        Overdue = "overdue",
    }
}

impl Settlement {
    pub fn text_key(self) -> &'static str {
        match self {
            Settlement::Issued => "billing.print.status_issued",
            Settlement::Invoiced => "billing.print.status_invoiced",
            Settlement::Paid => "billing.print.status_paid",
            Settlement::Overdue => "billing.print.status_overdue",
        }
    }

    /// The statuses a statement in `self` may move to.
    pub fn next(self) -> &'static [Settlement] {
        match self {
            Settlement::Issued => &[Settlement::Invoiced],
            Settlement::Invoiced => &[Settlement::Paid, Settlement::Overdue],
            Settlement::Overdue => &[Settlement::Paid],
            Settlement::Paid => &[],
        }
    }
}

/// One statement with its document, by number.
pub fn by_number(conn: &Connection, number: &str) -> rusqlite::Result<Option<(Statement, String)>> {
    conn.query_row(
        "SELECT id, number, month, kind, organisation_id, total_tiyn, sha256, issued_at, status, document
         FROM billing_statements WHERE number = ?1",
        [number],
        |r| Ok((Statement::from_row(r)?, r.get(9)?)),
    )
    .optional()
}

/// The statements of one organisation (`None`: every one), latest month first.
pub fn listed(conn: &Connection, organisation: Option<i64>, limit: u32) -> rusqlite::Result<Vec<Statement>> {
    conn.prepare_cached(
        "SELECT id, number, month, kind, organisation_id, total_tiyn, sha256, issued_at, status
         FROM billing_statements WHERE ?1 IS NULL OR organisation_id = ?1 ORDER BY month DESC, number LIMIT ?2",
    )?
    .query_map(params![organisation, limit], Statement::from_row)?
    .collect()
}

/// Moves a statement's settlement on (compare-and-set from `from`), journalled; `false` when it was not in `from` or
/// the move is not one [`Settlement::next`] allows.
pub fn mark(
    tx: &Transaction,
    number: &str,
    from: Settlement,
    to: Settlement,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<bool> {
    if !from.next().contains(&to) {
        return Ok(false);
    }
    let at = crate::clock::rfc3339(now);
    let changed = tx.execute(
        "UPDATE billing_statements SET status = ?3, status_changed_at = ?4 WHERE number = ?1 AND status = ?2",
        params![number, from, to, at],
    )?;
    if changed == 1 {
        audit::append(
            tx,
            &Event::new(&actor.name, "billing.statement.marked", Outcome::Success)
                .at(now)
                .source(&actor.source)
                .object(format!("billing_statement:{number}"))
                .detail(json!({ "from": from, "to": to })),
        )?;
    }
    Ok(changed == 1)
}

/// A line item of a statement: one billable exchange of its month, traced by its interaction id (no customer data).
#[derive(Debug, Clone, Serialize)]
pub struct LineItem {
    pub at: String,
    pub interaction_id: String,
    pub user_organisation_id: i64,
    pub provider_organisation_id: i64,
    pub api_id: i64,
    pub service: &'static str,
    pub units: i64,
}

/// The billable exchanges behind a user's or provider's statement (as long as the raw exchanges are kept,
/// `reports.raw_retention_days`): the month's successful production exchanges with a bank, in time order.
pub fn line_items(
    conn: &Connection,
    statement: &Statement,
    bounds: (String, String),
) -> rusqlite::Result<Vec<LineItem>> {
    let column = match statement.kind.as_str() {
        "user" => "user_organisation_id",
        "provider" => "provider_organisation_id",
        _ => return Ok(vec![]),
    };
    let (from, to) = bounds;
    let mut out = Vec::new();
    let mut query = conn.prepare(&format!(
        "SELECT at, interaction_id, user_organisation_id, provider_organisation_id, api_id, endpoint, transaction_lines
         FROM exchanges
         WHERE {column} = ?1 AND at >= ?2 AND at < ?3 AND environment = 'production' AND status BETWEEN 200 AND 299
           AND api_id IS NOT NULL AND provider_organisation_id IS NOT NULL
         ORDER BY at, id"
    ))?;
    let mut rows = query.query(params![statement.organisation_id, from, to])?;
    while let Some(r) = rows.next()? {
        let endpoint: String = r.get(5)?;
        let Some(service) = super::Service::of_endpoint(&endpoint) else { continue };
        let lines: i64 = r.get(6)?;
        out.push(LineItem {
            at: r.get(0)?,
            interaction_id: r.get(1)?,
            user_organisation_id: r.get(2)?,
            provider_organisation_id: r.get(3)?,
            api_id: r.get(4)?,
            service: service.as_str(),
            units: service.units(u32::try_from(lines).unwrap_or(u32::MAX)),
        });
    }
    Ok(out)
}

/// The instants (RFC 3339, UTC) a month of the operator's days starts and ends at.
pub fn month_bounds(zone: &jiff::tz::TimeZone, month: &str) -> Option<(String, String)> {
    let (first, last) = month_days(month)?;
    let civil =
        |d: Date| jiff::civil::Date::new(i16::try_from(d.year()).ok()?, u8::from(d.month()) as i8, d.day() as i8).ok();
    let start = crate::store::calendar::day_start(zone, civil(first)?).ok()?;
    let end = crate::store::calendar::day_start(zone, civil(last.next_day()?)?).ok()?;
    let instant = |unix: i64| OffsetDateTime::from_unix_timestamp(unix).ok().map(crate::clock::rfc3339);
    Some((instant(start)?, instant(end)?))
}
