//! Statement lines as things a request can be about, and the disputes raised on them.
//!
//! A line is addressed as `KOPIR-YYYYMM-NNNNNN/N` — the provider's charge of line N (1-based) of an API user's or a
//! provider's statement — or `KOPIR-YYYYMM-NNNNNN/N/fee`, the platform's fee of line N of an API user's statement.
//! The statement's document as issued is what a line is read from, so a line never changes either.
//!
//! - **Who may name a line:** the organisations of the line — for a charge, the API user and the provider; for a
//!   fee, the API user (the operator is the other side). Anyone else is answered as if the line did not exist.
//! - **Routing** ([`LineParties`]): a dispute of the classifier's `billing.dispute` category (executor
//!   `counterparty`) about a charge goes to the provider the line names, the API user a party and the operator's staff
//!   arbitrating (they see every request); about a fee, to the operator's staff. A provider disputing its own
//!   earnings has no counterparty: the operator's staff take it, the API user a party.
//! - **A charge's key** (month, API user, provider, API, service, part) is the same on the API user's statement and
//!   on the provider's: a dispute or credit note on either line concerns both ([`Line::key`]).
//!
//! The schema's block for disputes and credit notes is migration 24.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::close::{self, Statement};

/// The classifier's code of disputes about a statement line.
pub const DISPUTE_CATEGORY: &str = "billing.dispute";

crate::text_enum! {
    /// Which amount of a line: the provider's charge, or the platform's fee.
    pub enum Part {
        Charge = "charge",
        Fee = "fee",
    }
}

impl Part {
    pub fn text_key(self) -> &'static str {
        match self {
            Part::Charge => "billing_credit.part.charge",
            Part::Fee => "billing_credit.part.fee",
        }
    }
}

/// A line's address: the statement, the line's place in it (1-based), and the part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LineRef {
    pub number: String,
    pub line: usize,
    pub part: Part,
}

impl LineRef {
    /// `KOPIR-YYYYMM-NNNNNN/N` or `KOPIR-YYYYMM-NNNNNN/N/fee`; anything else is `None`.
    pub fn parse(text: &str) -> Option<LineRef> {
        let mut parts = text.trim().split('/');
        let number = parts.next()?;
        let line = parts.next()?;
        let part = match parts.next() {
            None => Part::Charge,
            Some("fee") => Part::Fee,
            Some(_) => return None,
        };
        if parts.next().is_some() || !is_statement_number(number) {
            return None;
        }
        if line.is_empty() || line.len() > 6 || !line.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let line: usize = line.parse().ok()?;
        (line >= 1).then(|| LineRef { number: number.to_string(), line, part })
    }

    pub fn text(&self) -> String {
        match self.part {
            Part::Charge => format!("{}/{}", self.number, self.line),
            Part::Fee => format!("{}/{}/fee", self.number, self.line),
        }
    }
}

/// `KOPIR-YYYYMM-NNNNNN`.
pub fn is_statement_number(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("KOPIR-") else { return false };
    let (month, sequence) = rest.split_once('-').unwrap_or(("", ""));
    month.len() == 6
        && sequence.len() == 6
        && month.bytes().all(|b| b.is_ascii_digit())
        && sequence.bytes().all(|b| b.is_ascii_digit())
}

/// One line's amount as issued, with the key of the charge it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub reference: String,
    pub statement_number: String,
    /// The statement's kind: `user` or `provider`.
    pub statement_kind: String,
    pub line: usize,
    pub part: Part,
    pub month: String,
    pub user_organisation_id: i64,
    pub provider_organisation_id: i64,
    pub api_id: i64,
    pub service: String,
    pub amount_tiyn: i64,
}

/// What identifies a charge (or its fee) across the API user's and the provider's statements.
pub type Key = (String, i64, i64, i64, String, Part);

impl Line {
    pub fn key(&self) -> Key {
        (
            self.month.clone(),
            self.user_organisation_id,
            self.provider_organisation_id,
            self.api_id,
            self.service.clone(),
            self.part,
        )
    }

    /// The organisations of the line: the API user, and the provider for a charge.
    pub fn organisations(&self) -> Vec<i64> {
        match self.part {
            Part::Charge => vec![self.user_organisation_id, self.provider_organisation_id],
            Part::Fee => vec![self.user_organisation_id],
        }
    }
}

/// Every line of a statement as issued, each charge followed by its fee (an API user's statement), in document order.
/// The operator's statement has positions, not lines: none.
pub fn lines_of(statement: &Statement, document: &str) -> Vec<Line> {
    let Ok(document) = serde_json::from_str::<Value>(document) else { return Vec::new() };
    let Some(owner) = statement.organisation_id else { return Vec::new() };
    let Some(lines) = document["body"]["lines"].as_array() else { return Vec::new() };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let counterparty = |key: &str| l[key].as_i64();
        let (user, provider, parts): (Option<i64>, Option<i64>, &[Part]) = match statement.kind.as_str() {
            "user" => (Some(owner), counterparty("provider_organisation_id"), &[Part::Charge, Part::Fee]),
            "provider" => (counterparty("user_organisation_id"), Some(owner), &[Part::Charge]),
            _ => return Vec::new(),
        };
        let (Some(user), Some(provider), Some(api_id), Some(service)) =
            (user, provider, l["api_id"].as_i64(), l["service"].as_str())
        else {
            continue;
        };
        for &part in parts {
            let amount = match part {
                Part::Charge => l["charge_tiyn"].as_i64(),
                Part::Fee => l["fee_tiyn"].as_i64(),
            };
            let reference = LineRef { number: statement.number.clone(), line: i + 1, part };
            out.push(Line {
                reference: reference.text(),
                statement_number: statement.number.clone(),
                statement_kind: statement.kind.clone(),
                line: i + 1,
                part,
                month: statement.month.clone(),
                user_organisation_id: user,
                provider_organisation_id: provider,
                api_id,
                service: service.to_string(),
                amount_tiyn: amount.unwrap_or(0),
            });
        }
    }
    out
}

/// The line `reference` addresses, if it exists.
pub fn line(conn: &Connection, reference: &LineRef) -> rusqlite::Result<Option<Line>> {
    let Some((statement, document)) = close::by_number(conn, &reference.number)? else { return Ok(None) };
    Ok(lines_of(&statement, &document).into_iter().find(|l| l.line == reference.line && l.part == reference.part))
}

/// Who a request naming a line concerns, seen from its requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineParties {
    /// Who executes a counterparty category's request: the provider of a charge the requester is not.
    pub counterparty: Option<i64>,
    /// The line's other organisations.
    pub others: Vec<i64>,
}

/// The parties of the line `reference` names for `requester`, or `None` when the requester may not name it: no such
/// line, or not one of its organisations (answered alike).
pub fn line_parties(conn: &Connection, requester: i64, reference: &str) -> rusqlite::Result<Option<LineParties>> {
    let Some(reference) = LineRef::parse(reference) else { return Ok(None) };
    let Some(line) = line(conn, &reference)? else { return Ok(None) };
    let organisations = line.organisations();
    if !organisations.contains(&requester) {
        return Ok(None);
    }
    let counterparty = (line.part == Part::Charge && line.provider_organisation_id != requester)
        .then_some(line.provider_organisation_id);
    let others = organisations.into_iter().filter(|o| *o != requester).collect();
    Ok(Some(LineParties { counterparty, others }))
}

/// A request about a statement line, as the statement's page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Dispute {
    pub id: i64,
    pub reference: String,
    pub status: crate::requests::Status,
    pub subject: String,
    pub created_at: String,
}

/// Reads every statement a month's line references name, once each.
#[derive(Default)]
struct Statements(HashMap<String, Option<Vec<Line>>>);

impl Statements {
    fn line(&mut self, conn: &Connection, reference: &LineRef) -> rusqlite::Result<Option<Line>> {
        if !self.0.contains_key(&reference.number) {
            let lines = close::by_number(conn, &reference.number)?.map(|(s, d)| lines_of(&s, &d));
            self.0.insert(reference.number.clone(), lines);
        }
        Ok(self.0[&reference.number]
            .as_ref()
            .and_then(|lines| lines.iter().find(|l| l.line == reference.line && l.part == reference.part).cloned()))
    }
}

/// The requests about the lines of `month` whose charge has one of `keys`, each with the key it concerns;
/// `organisation`: only those it sees (`None`: the operator's view, all).
pub fn disputes(
    conn: &Connection,
    month: &str,
    keys: &[Key],
    organisation: Option<i64>,
) -> rusqlite::Result<Vec<(Key, Dispute)>> {
    let prefix = format!("KOPIR-{}-", month.replace('-', ""));
    let mut stmt = conn.prepare(
        "SELECT r.id, r.object_ref, r.status, r.subject, r.created_at FROM requests r
         WHERE r.object_kind = 'statement_line' AND substr(r.object_ref, 1, length(?1)) = ?1
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM request_parties p WHERE p.request_id = r.id
                                        AND p.organisation_id = ?2))
         ORDER BY r.id",
    )?;
    let rows = stmt
        .query_map(params![prefix, organisation], |r| {
            Ok(Dispute {
                id: r.get(0)?,
                reference: r.get(1)?,
                status: r.get(2)?,
                subject: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut statements = Statements::default();
    let mut out = Vec::new();
    for dispute in rows {
        let Some(reference) = LineRef::parse(&dispute.reference) else { continue };
        let Some(line) = statements.line(conn, &reference)? else { continue };
        let key = line.key();
        if keys.contains(&key) {
            out.push((key, dispute));
        }
    }
    Ok(out)
}

/// The line a request is about, if it names one.
pub fn line_of_request(conn: &Connection, request: i64) -> rusqlite::Result<Option<Line>> {
    let found: Option<(String, String)> = conn
        .query_row("SELECT object_kind, object_ref FROM requests WHERE id = ?1", [request], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match found {
        Some((kind, reference)) if kind == crate::requests::ObjectKind::StatementLine.as_str() => {
            match LineRef::parse(&reference) {
                Some(reference) => line(conn, &reference),
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn line_references_name_a_statement_a_line_and_a_part() {
        let charge = LineRef::parse("KOPIR-202611-000001/3").unwrap();
        assert_eq!((charge.number.as_str(), charge.line, charge.part), ("KOPIR-202611-000001", 3, Part::Charge));
        assert_eq!(charge.text(), "KOPIR-202611-000001/3");
        let fee = LineRef::parse(" KOPIR-202611-000001/12/fee ").unwrap();
        assert_eq!((fee.line, fee.part), (12, Part::Fee));
        assert_eq!(fee.text(), "KOPIR-202611-000001/12/fee");
        for bad in [
            "KOPIR-202611-000001",
            "KOPIR-202611-000001/0",
            "KOPIR-202611-000001/-1",
            "KOPIR-202611-000001/1/charge",
            "KOPIR-202611-000001/1/fee/x",
            "KOPIR-2026-000001/1",
            "KOPIR-CN-202611-000001/1",
            "x/1",
        ] {
            assert_eq!(LineRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_api_user_s_line_has_a_charge_and_a_fee_a_provider_s_only_the_charge() {
        let statement = |kind: &str| Statement {
            id: 1,
            number: "KOPIR-202611-000001".into(),
            month: "2026-11".into(),
            kind: kind.into(),
            organisation_id: Some(7),
            total_tiyn: 0,
            sha256: String::new(),
            issued_at: String::new(),
            status: "issued".into(),
        };
        let user = r#"{"body":{"lines":[{"provider_organisation_id":9,"api_id":4,"service":"balances","charge_tiyn":300,"fee_tiyn":20}]}}"#;
        let lines = lines_of(&statement("user"), user);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].reference.as_str(), lines[0].amount_tiyn), ("KOPIR-202611-000001/1", 300));
        assert_eq!((lines[1].reference.as_str(), lines[1].amount_tiyn), ("KOPIR-202611-000001/1/fee", 20));
        assert_eq!((lines[0].user_organisation_id, lines[0].provider_organisation_id), (7, 9));
        let provider =
            r#"{"body":{"lines":[{"user_organisation_id":8,"api_id":4,"service":"balances","charge_tiyn":300}]}}"#;
        let lines_p = lines_of(&statement("provider"), provider);
        assert_eq!(lines_p.len(), 1);
        assert_eq!((lines_p[0].user_organisation_id, lines_p[0].provider_organisation_id), (8, 7));
        let operator = r#"{"body":{"positions":[]}}"#;
        assert!(lines_of(&statement("operator"), operator).is_empty());
    }

    #[test]
    fn requests_rebuilt_to_take_statement_lines_keep_their_rows_and_the_rows_referring_to_them() {
        use crate::store::migrate::{SCHEMA, migrate};
        // Everything before the migration that rebuilds `requests` (found by its title, whatever its number).
        let title = SCHEMA.find("billing disputes and credit notes").unwrap();
        let before = &SCHEMA[..SCHEMA[..title].rfind("-- migration ").unwrap()];
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn, before).unwrap();
        let request = "INSERT INTO requests (id, category_id, category_version, requester_organisation_id, subject,
                description, priority, object_kind, object_ref, status, assignee_team, created_at, updated_at,
                first_response_due_at, resolution_target_minutes, resolution_due_at)
             VALUES (?1, 1, 1, 7, 'Question', 'How?', 'normal', ?2, ?3, 'assigned', 'operator_staff', 't', 't', 't',
                     60, 't')";
        conn.execute_batch(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, status,
                                        created_at, updated_at)
             VALUES (7, '990140000661', 'Old Fintech LLP', '1', 'a@b.kz', '+77272500000', 'accredited', 't', 't');",
        )
        .unwrap();
        conn.execute(request, params![3, "api", "12"]).unwrap();
        assert!(conn.execute(request, params![4, "statement_line", "KOPIR-202611-000001/1"]).is_err());
        conn.execute_batch(
            "INSERT INTO request_parties (request_id, organisation_id, role) VALUES (3, 7, 'requester');
             INSERT INTO request_events (request_id, at, actor, kind, status) VALUES (3, 't', 'user:a', 'created', 'new');",
        )
        .unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        let kept: (String, String, String) = conn
            .query_row("SELECT subject, object_kind, object_ref FROM requests WHERE id = 3", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(kept, ("Question".into(), "api".into(), "12".into()));
        let broken: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(broken, 0);
        conn.execute(request, params![4, "statement_line", "KOPIR-202611-000001/1"]).unwrap();
        assert!(conn.execute("DELETE FROM requests WHERE id = 3", []).is_err(), "references still hold");
        let dispute: (String, i64) = conn
            .query_row(
                "SELECT executor, (SELECT count(*) FROM request_category_versions v WHERE v.category_id = c.id)
                 FROM request_categories c WHERE code = ?1",
                [DISPUTE_CATEGORY],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(dispute, ("counterparty".into(), 1));
    }
}
