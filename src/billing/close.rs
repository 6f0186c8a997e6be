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
    .query_map([month], |r| {
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
    })?
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
