//! Credit notes: the one way an issued statement is corrected. The operator's administrators credit an amount on a
//! statement line ([`super::disputes::Line`]) — never more than the line's amount less the credit notes already
//! issued on the same charge (on the API user's or the provider's statement alike) — with a reason and, optionally,
//! the dispute request it settles (a public comment on the request then records it). Each credit note is numbered
//! `KOPIR-CN-YYYYMM-NNNNNN` within the month it corrects, kept as a JSON document with its SHA-256 (the schema refuses
//! any change or delete), and journalled (`billing.credit_note.issued`).
//!
//! Money moves through the operator: a credit on a provider's charge lowers what the API user owes the operator and
//! what the operator owes the provider; a credit on the platform's fee lowers only what the API user owes (the
//! operator's own fee). [`net_after`] applies a month's credit notes to its issued net positions at read time; the
//! statements themselves stay as issued.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::BillingError;
use super::disputes::{self, Key, Line, LineRef, Part};
use crate::audit::{self, Actor, Event, Outcome};

/// The longest reason, in characters.
pub const REASON_MAX: usize = 2000;

/// The webhook event (and inbox notice) of an issued credit note, to the organisations it concerns.
pub const EVENT: &str = "billing.credit_note.issued";

/// An issued credit note, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditNote {
    pub number: String,
    pub month: String,
    pub statement_number: String,
    pub line: i64,
    pub part: Part,
    /// The line's address, `KOPIR-YYYYMM-NNNNNN/N` (or `…/N/fee`).
    pub line_reference: String,
    pub user_organisation_id: i64,
    pub provider_organisation_id: i64,
    pub api_id: i64,
    pub service: String,
    pub amount_tiyn: i64,
    pub reason: String,
    pub request_id: Option<i64>,
    pub sha256: String,
    pub issued_at: String,
    pub issued_by: String,
}

impl CreditNote {
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

    /// Whether an organisation may read it: the API user, and the provider of a credited charge.
    pub fn concerns(&self, organisation: i64) -> bool {
        organisation == self.user_organisation_id
            || (self.part == Part::Charge && organisation == self.provider_organisation_id)
    }
}

const COLUMNS: &str = "number, month, statement_number, line, part, user_organisation_id, provider_organisation_id,
    api_id, service, amount_tiyn, reason, request_id, sha256, issued_at, issued_by";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<CreditNote> {
    let statement_number: String = r.get("statement_number")?;
    let line: i64 = r.get("line")?;
    let part: Part = r.get("part")?;
    let line_reference = LineRef { number: statement_number.clone(), line: usize::try_from(line).unwrap_or(0), part };
    Ok(CreditNote {
        number: r.get("number")?,
        month: r.get("month")?,
        line_reference: line_reference.text(),
        statement_number,
        line,
        part,
        user_organisation_id: r.get("user_organisation_id")?,
        provider_organisation_id: r.get("provider_organisation_id")?,
        api_id: r.get("api_id")?,
        service: r.get("service")?,
        amount_tiyn: r.get("amount_tiyn")?,
        reason: r.get("reason")?,
        request_id: r.get("request_id")?,
        sha256: r.get("sha256")?,
        issued_at: r.get("issued_at")?,
        issued_by: r.get("issued_by")?,
    })
}

/// Which credit notes a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concerning {
    /// Every one (the operator's and the regulator's view).
    All,
    /// Those an organisation may read ([`CreditNote::concerns`]).
    Organisation(i64),
}

/// Credit notes, latest first; `month`: only those correcting it.
pub fn listed(
    conn: &Connection,
    concerning: Concerning,
    month: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<CreditNote>> {
    let organisation = match concerning {
        Concerning::All => None,
        Concerning::Organisation(id) => Some(id),
    };
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM billing_credit_notes
         WHERE (?1 IS NULL OR user_organisation_id = ?1 OR (part = 'charge' AND provider_organisation_id = ?1))
           AND (?2 IS NULL OR month = ?2)
         ORDER BY month DESC, number DESC LIMIT ?3"
    ))?
    .query_map(params![organisation, month, limit], from_row)?
    .collect()
}

/// One credit note with its document as issued.
pub fn by_number(conn: &Connection, number: &str) -> rusqlite::Result<Option<(CreditNote, String)>> {
    conn.query_row(&format!("SELECT {COLUMNS}, document FROM billing_credit_notes WHERE number = ?1"), [number], |r| {
        Ok((from_row(r)?, r.get("document")?))
    })
    .optional()
}

/// The credit notes of a month whose charge has one of `keys` (a statement's lines).
pub fn on_keys(conn: &Connection, month: &str, keys: &[Key]) -> rusqlite::Result<Vec<CreditNote>> {
    Ok(listed(conn, Concerning::All, Some(month), u32::MAX)?.into_iter().filter(|n| keys.contains(&n.key())).collect())
}

/// What has been credited on a charge (or fee) so far.
pub fn credited(conn: &Connection, key: &Key) -> rusqlite::Result<i64> {
    let (month, user, provider, api, service, part) = key;
    conn.query_row(
        "SELECT coalesce(sum(amount_tiyn), 0) FROM billing_credit_notes
         WHERE month = ?1 AND user_organisation_id = ?2 AND provider_organisation_id = ?3 AND api_id = ?4
           AND service = ?5 AND part = ?6",
        params![month, user, provider, api, service, part],
        |r| r.get(0),
    )
}

/// A credit note as asked for.
#[derive(Debug, Clone)]
pub struct CreditRequest {
    pub line: String,
    pub amount_tiyn: i64,
    pub reason: String,
    /// The dispute it settles.
    pub request_id: Option<i64>,
}

/// Why a credit note was refused (a text key); nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownLine,
    Amount,
    AboveRemainder,
    Reason,
    /// The request does not exist or is not about this line's charge.
    Request,
}

impl Refusal {
    pub fn text_key(self) -> &'static str {
        match self {
            Refusal::UnknownLine => "billing_credit.error.line",
            Refusal::Amount => "billing_credit.error.amount",
            Refusal::AboveRemainder => "billing_credit.error.remainder",
            Refusal::Reason => "billing_credit.error.reason",
            Refusal::Request => "billing_credit.error.request",
        }
    }
}

fn bin_of(conn: &Connection, id: i64) -> rusqlite::Result<String> {
    Ok(conn
        .query_row("SELECT bin FROM organisations WHERE id = ?1", [id], |r| r.get::<_, String>(0))
        .optional()?
        .unwrap_or_default())
}

/// Issues a credit note (the caller's guard says who may), journalled, and records it on the request it settles.
/// A refusal writes nothing.
pub fn issue(
    tx: &Transaction,
    clocks: &crate::requests::case::Clocks,
    request: &CreditRequest,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<Result<CreditNote, Refusal>, BillingError> {
    let Some(reference) = LineRef::parse(&request.line) else { return Ok(Err(Refusal::UnknownLine)) };
    let Some(line) = disputes::line(tx, &reference)? else { return Ok(Err(Refusal::UnknownLine)) };
    if request.amount_tiyn <= 0 {
        return Ok(Err(Refusal::Amount));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_MAX {
        return Ok(Err(Refusal::Reason));
    }
    let remainder = line.amount_tiyn - credited(tx, &line.key())?;
    if request.amount_tiyn > remainder {
        return Ok(Err(Refusal::AboveRemainder));
    }
    if let Some(id) = request.request_id {
        let settles = disputes::line_of_request(tx, id)?.is_some_and(|l: Line| l.key() == line.key());
        if !settles {
            return Ok(Err(Refusal::Request));
        }
    }
    let sequence: i64 =
        tx.query_row("SELECT count(*) + 1 FROM billing_credit_notes WHERE month = ?1", [&line.month], |r| r.get(0))?;
    let number = format!("KOPIR-CN-{}-{sequence:06}", line.month.replace('-', ""));
    let at = crate::clock::rfc3339(now);
    let document = json!({
        "credit_note": number,
        "month": line.month,
        "currency": "KZT",
        "issued_at": at,
        "statement": line.statement_number,
        "line": line.line,
        "line_reference": line.reference,
        "part": line.part,
        "user_organisation_bin": bin_of(tx, line.user_organisation_id)?,
        "provider_organisation_bin": bin_of(tx, line.provider_organisation_id)?,
        "api_id": line.api_id,
        "service": line.service,
        "line_amount_tiyn": line.amount_tiyn,
        "amount_tiyn": request.amount_tiyn,
        "reason": reason,
        "request_id": request.request_id,
    })
    .to_string();
    let sha256 = crate::digest::sha256_hex(document.as_bytes());
    tx.execute(
        "INSERT INTO billing_credit_notes (number, month, statement_number, line, part, user_organisation_id,
             provider_organisation_id, api_id, service, amount_tiyn, reason, request_id, document, sha256, issued_at,
             issued_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            number,
            line.month,
            line.statement_number,
            line.line as i64,
            line.part,
            line.user_organisation_id,
            line.provider_organisation_id,
            line.api_id,
            line.service,
            request.amount_tiyn,
            reason,
            request.request_id,
            document,
            sha256,
            at,
            actor.name,
        ],
    )?;
    audit::append(
        tx,
        &Event::new(&actor.name, "billing.credit_note.issued", Outcome::Success)
            .at(now)
            .source(&actor.source)
            .object(format!("billing_credit_note:{number}"))
            .detail(json!({ "line": line.reference, "part": line.part, "amount_tiyn": request.amount_tiyn,
                            "remainder_tiyn": remainder - request.amount_tiyn, "request_id": request.request_id })),
    )?;
    // Both sides are told (a signed webhook and an inbox notice): the API user whose bill it lowers and, for a
    // provider's charge, the provider whose earnings it lowers. Identifiers and amounts only; the reason stays on
    // the pages.
    let told = json!({
        "credit_note": number,
        "statement": line.statement_number,
        "line": line.reference,
        "part": line.part,
        "month": line.month,
        "amount_tiyn": request.amount_tiyn,
        "dispute_request_id": request.request_id,
    });
    crate::notify::enqueue(tx, line.user_organisation_id, EVENT, &told, now)?;
    if line.part == Part::Charge {
        crate::notify::enqueue(tx, line.provider_organisation_id, EVENT, &told, now)?;
    }
    if let Some(id) = request.request_id {
        let body = format!(
            "Credit note {number}: {} ₸ on {} ({}).",
            super::tenge(request.amount_tiyn),
            line.reference,
            line.part.as_str()
        );
        let acting = crate::requests::case::Acting::operator(actor.clone());
        match crate::requests::case::comment(tx, clocks, id, &acting, &body, false, now) {
            Ok(()) => {}
            // The operator may comment on every request; should the request be gone, nothing is issued.
            Err(crate::requests::RequestsError::Refused(_)) => return Err(BillingError::NotFound),
            Err(e) => return Err(BillingError::Requests(Box::new(e))),
        }
    }
    let (note, _) = by_number(tx, &number)?.ok_or(BillingError::NotFound)?;
    Ok(Ok(note))
}

/// One participant's net position: what it owes the operator and what the operator owes it, as issued and after the
/// month's credit notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub organisation_id: i64,
    pub owes_operator_tiyn: i64,
    pub operator_owes_tiyn: i64,
    pub net_tiyn: i64,
    pub owes_operator_after_tiyn: i64,
    pub operator_owes_after_tiyn: i64,
    pub net_after_tiyn: i64,
}

/// The operator's statement's net positions of `month` (from its document, `positions`) with the month's credit notes
/// applied at read time: a charge's credit lowers the API user's debt and the provider's due, a fee's the API user's
/// debt only.
pub fn net_after(conn: &Connection, month: &str, positions: &[serde_json::Value]) -> rusqlite::Result<Vec<Position>> {
    let mut owes_less: BTreeMap<i64, i64> = BTreeMap::new();
    let mut owed_less: BTreeMap<i64, i64> = BTreeMap::new();
    for note in listed(conn, Concerning::All, Some(month), u32::MAX)? {
        *owes_less.entry(note.user_organisation_id).or_default() += note.amount_tiyn;
        if note.part == Part::Charge {
            *owed_less.entry(note.provider_organisation_id).or_default() += note.amount_tiyn;
        }
    }
    Ok(positions
        .iter()
        .filter_map(|p| {
            let id = p["organisation_id"].as_i64()?;
            let owes = p["owes_operator_tiyn"].as_i64().unwrap_or(0);
            let owed = p["operator_owes_tiyn"].as_i64().unwrap_or(0);
            let owes_after = owes - owes_less.get(&id).copied().unwrap_or(0);
            let owed_after = owed - owed_less.get(&id).copied().unwrap_or(0);
            Some(Position {
                organisation_id: id,
                owes_operator_tiyn: owes,
                operator_owes_tiyn: owed,
                net_tiyn: owes - owed,
                owes_operator_after_tiyn: owes_after,
                operator_owes_after_tiyn: owed_after,
                net_after_tiyn: owes_after - owed_after,
            })
        })
        .collect())
}

/// A user's or provider's statement total after the credit notes on its lines.
pub fn total_after(statement: &super::close::Statement, notes: &[CreditNote]) -> i64 {
    let credited: i64 = notes
        .iter()
        .filter(|n| match statement.kind.as_str() {
            "user" => Some(n.user_organisation_id) == statement.organisation_id,
            "provider" => n.part == Part::Charge && Some(n.provider_organisation_id) == statement.organisation_id,
            // The operator's net: a charge's credit lowers what it is owed and what it owes alike; a fee's, its own.
            _ => n.part == Part::Fee,
        })
        .map(|n| n.amount_tiyn)
        .sum();
    statement.total_tiyn - credited
}
