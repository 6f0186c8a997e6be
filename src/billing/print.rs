//! A statement's printable document: one standalone HTML file (inline A4 print styles, no navigation, nothing
//! loaded from elsewhere — the monthly report's approach), in English, Russian or Kazakh, rendered from the statement
//! as issued. It names the issuer (the operator) and the addressee (the participant's name and BIN), the number, the
//! month, the issue time in the operator's zone, every line with its amounts in tenge (from integer tiyn, never
//! through floating point), the totals, the settlement status, and the SHA-256 of the JSON as issued with where its
//! signature (JWS) and the platform's keys are published, so that a printed copy can be checked against them.
//!
//! The same function renders `/org/billing/statements/{number}/print`, `kopir billing statements --print` and the
//! HTML of `kopir billing export`, so the three are one document.

use std::collections::HashMap;

use askama::Template;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::close::{self, Statement};
use super::credit::{self, CreditNote};
use super::{Service, tenge};
use crate::i18n::{Lang, Texts};

/// Who issues every statement: the operator, as configured.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// `pki.organization`: the operator's name as its certificates carry it.
    pub name: String,
    /// `server.public_url`, without a trailing slash.
    pub url: String,
    /// The operator's time zone (IANA name) and the zone itself.
    pub zone_name: String,
    pub zone: jiff::tz::TimeZone,
}

impl Issuer {
    pub fn of(config: &crate::config::Config, public_url: &str) -> Issuer {
        Issuer {
            name: config.pki.organization.clone(),
            url: public_url.trim_end_matches('/').to_string(),
            zone_name: config.time_zone.name().to_string(),
            zone: config.time_zone.zone().clone(),
        }
    }
}

/// A statement with what its document needs besides itself: the names of the organisations and APIs it names.
#[derive(Debug, Clone)]
pub struct Printable {
    pub statement: Statement,
    /// The JSON as issued.
    pub document: String,
    names: Names,
    /// The credit notes issued on its lines so far (the operator's statement: on the month's), oldest first.
    credit_notes: Vec<CreditNote>,
}

/// Statement `number` and the names it needs, or `None`.
pub fn load(conn: &Connection, number: &str) -> rusqlite::Result<Option<Printable>> {
    let Some((statement, document)) = close::by_number(conn, number)? else { return Ok(None) };
    let names = Names::of(conn, &statement, &document)?;
    let mut credit_notes = if statement.kind == "operator" {
        credit::listed(conn, credit::Concerning::All, Some(&statement.month), u32::MAX)?
    } else {
        let keys: Vec<_> =
            super::disputes::lines_of(&statement, &document).iter().map(super::disputes::Line::key).collect();
        credit::on_keys(conn, &statement.month, &keys)?
    };
    credit_notes.reverse();
    Ok(Some(Printable { statement, document, names, credit_notes }))
}

/// The names a statement's lines need, read when it is shown (the document as issued holds ids only): its
/// organisations' names and BINs, its APIs' names and versions.
#[derive(Debug, Clone, Default)]
pub struct Names {
    organisations: HashMap<i64, (String, String)>,
    apis: HashMap<i64, String>,
}

impl Names {
    pub fn of(conn: &Connection, statement: &Statement, document: &str) -> rusqlite::Result<Names> {
        let parsed: Value = serde_json::from_str(document).unwrap_or(Value::Null);
        let mut organisation_ids: Vec<i64> = statement.organisation_id.into_iter().collect();
        let mut api_ids = Vec::new();
        for key in ["lines", "positions"] {
            for item in parsed["body"][key].as_array().into_iter().flatten() {
                for field in ["provider_organisation_id", "user_organisation_id", "organisation_id"] {
                    organisation_ids.extend(item[field].as_i64());
                }
                api_ids.extend(item["api_id"].as_i64());
            }
        }
        let mut names = Names::default();
        for id in organisation_ids {
            if let Some(row) = conn
                .query_row("SELECT name, bin FROM organisations WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            {
                names.organisations.insert(id, row);
            }
        }
        for id in api_ids {
            if let Some(name) = conn
                .query_row("SELECT name || ' ' || version FROM apis WHERE id = ?1", [id], |r| r.get::<_, String>(0))
                .optional()?
            {
                names.apis.insert(id, name);
            }
        }
        Ok(names)
    }

    /// "Name (BIN …)" of the organisation `id` names, or the id itself if it is gone.
    pub fn organisation(&self, id: &Value) -> String {
        id.as_i64()
            .map(|id| self.organisations.get(&id).map_or_else(|| id.to_string(), |(n, bin)| format!("{n} (BIN {bin})")))
            .unwrap_or_default()
    }
}

/// One row of a statement's table, as the page and the printable document show it: a line (counterparty, API,
/// service, units, charge, fee) or, on the operator's statement, a participant's position (what it owes the operator
/// as the charge, what the operator owes it as the fee).
pub struct Line {
    pub counterparty: String,
    pub api: String,
    pub service: String,
    pub units: String,
    pub free_units: String,
    pub charge: String,
    pub fee: String,
}

/// The rows of the statement whose document's body is `body`, in the body's order; amounts in tenge from integer
/// tiyn followed by `unit` (empty where the document has none).
pub fn lines(body: &Value, names: &Names, t: Texts, unit: &str) -> Vec<Line> {
    let money = |v: &Value| v.as_i64().map(|tiyn| format!("{}{unit}", tenge(tiyn))).unwrap_or_default();
    if let Some(positions) = body["positions"].as_array() {
        return positions
            .iter()
            .map(|pos| Line {
                counterparty: names.organisation(&pos["organisation_id"]),
                api: String::new(),
                service: String::new(),
                units: String::new(),
                free_units: String::new(),
                charge: money(&pos["owes_operator_tiyn"]),
                fee: money(&pos["operator_owes_tiyn"]),
            })
            .collect();
    }
    body["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| Line {
            counterparty: names.organisation(
                l.get("provider_organisation_id").or_else(|| l.get("user_organisation_id")).unwrap_or(&Value::Null),
            ),
            api: l["api_id"]
                .as_i64()
                .map(|id| names.apis.get(&id).cloned().unwrap_or_else(|| format!("API {id}")))
                .unwrap_or_default(),
            service: l["service"]
                .as_str()
                .and_then(|s| s.parse::<Service>().ok())
                .map(|s| t.get(s.text_key()).to_string())
                .unwrap_or_default(),
            units: count(&l["units"]),
            free_units: count(&l["free_units"]),
            charge: money(&l["charge_tiyn"]),
            fee: money(&l["fee_tiyn"]),
        })
        .collect()
}

/// A credit note as the document lists it.
struct CreditLine {
    number: String,
    line: String,
    part_key: &'static str,
    amount: String,
    issued_at: String,
}

/// One total under the table.
struct Total {
    key: &'static str,
    amount: String,
}

#[derive(Template)]
#[template(path = "billing_print.html")]
struct Document<'a> {
    t: Texts,
    issuer: &'a Issuer,
    s: &'a Statement,
    addressee: Option<(String, String)>,
    issued_at: String,
    operator: bool,
    lines: Vec<Line>,
    totals: Vec<Total>,
    credit_notes: Vec<CreditLine>,
    /// The total after the credit notes, when there are any.
    total_after: Option<String>,
    jws_url: String,
    jwks_url: String,
}

fn money(v: &Value) -> String {
    v.as_i64().map(|t| format!("{} ₸", tenge(t))).unwrap_or_default()
}

fn count(v: &Value) -> String {
    v.as_i64().map(|n| n.to_string()).unwrap_or_default()
}

/// The printable HTML of a statement in `lang`.
pub fn render(p: &Printable, issuer: &Issuer, lang: Lang) -> Result<String, askama::Error> {
    let t = Texts { lang };
    let document: Value = serde_json::from_str(&p.document).unwrap_or(Value::Null);
    let body = &document["body"];
    let s = &p.statement;
    let operator = s.kind == "operator";
    let lines = lines(body, &p.names, t, " ₸");
    let mut totals = Vec::new();
    match s.kind.as_str() {
        "user" => {
            totals.push(Total { key: "billing.print.total_charges", amount: money(&body["charge_tiyn"]) });
            totals.push(Total { key: "billing.print.total_fees", amount: money(&body["fee_tiyn"]) });
            totals.push(Total { key: "billing.print.total_due", amount: format!("{} ₸", tenge(s.total_tiyn)) });
        }
        "provider" => {
            totals.push(Total { key: "billing.print.total_earned", amount: format!("{} ₸", tenge(s.total_tiyn)) });
        }
        _ => {
            totals.push(Total { key: "billing.print.total_net", amount: format!("{} ₸", tenge(s.total_tiyn)) });
        }
    }
    let credit_notes: Vec<CreditLine> = p
        .credit_notes
        .iter()
        .map(|n| CreditLine {
            number: n.number.clone(),
            line: n.line_reference.clone(),
            part_key: n.part.text_key(),
            amount: format!("−{} ₸", tenge(n.amount_tiyn)),
            issued_at: crate::store::calendar::local_text(&issuer.zone, &n.issued_at),
        })
        .collect();
    let total_after =
        (!p.credit_notes.is_empty()).then(|| format!("{} ₸", tenge(credit::total_after(s, &p.credit_notes))));
    Document {
        t,
        issuer,
        s,
        addressee: s.organisation_id.and_then(|id| p.names.organisations.get(&id).cloned()),
        issued_at: crate::store::calendar::local_text(&issuer.zone, &s.issued_at),
        operator,
        lines,
        totals,
        credit_notes,
        total_after,
        jws_url: format!("{}/org/billing/statements/{}/jws", issuer.url, s.number),
        jwks_url: format!("{}/.well-known/jwks.json", issuer.url),
    }
    .render()
}

/// The file name of a statement's printable document.
pub fn filename(number: &str) -> String {
    format!("{number}.html")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_document_names_both_parties_and_prints_tiyn_as_tenge_in_the_reader_s_language() {
        let document = serde_json::json!({
            "statement": "KOPIR-202611-000001", "kind": "user", "month": "2026-11", "total_tiyn": 1_234_505,
            "body": { "charge_tiyn": 1_234_500, "fee_tiyn": 5, "lines": [{ "provider_organisation_id": 2, "api_id": 7,
                "service": "transactions_page", "exchanges": 3, "units": 4, "free_units": 1,
                "charge_tiyn": 1_234_500, "fee_tiyn": 5 }] },
        });
        let printable = Printable {
            statement: Statement {
                id: 1,
                number: "KOPIR-202611-000001".into(),
                month: "2026-11".into(),
                kind: "user".into(),
                organisation_id: Some(1),
                total_tiyn: 1_234_505,
                sha256: "ab".repeat(32),
                issued_at: "2026-11-30T19:30:00Z".into(),
                status: "overdue".into(),
            },
            document: document.to_string(),
            names: Names {
                organisations: HashMap::from([
                    (1, ("Fintech One".to_string(), "990341000011".to_string())),
                    (2, ("Altyn Bank".to_string(), "990340000420".to_string())),
                ]),
                apis: HashMap::from([(7, "Current accounts 1.0".to_string())]),
            },
            credit_notes: vec![CreditNote {
                number: "KOPIR-CN-202611-000001".into(),
                month: "2026-11".into(),
                statement_number: "KOPIR-202611-000001".into(),
                line: 1,
                part: super::super::disputes::Part::Charge,
                line_reference: "KOPIR-202611-000001/1".into(),
                user_organisation_id: 1,
                provider_organisation_id: 2,
                api_id: 7,
                service: "transactions_page".into(),
                amount_tiyn: 500,
                reason: "Abandoned page".into(),
                request_id: None,
                sha256: "cd".repeat(32),
                issued_at: "2026-12-02T05:00:00Z".into(),
                issued_by: "admin".into(),
            }],
        };
        let issuer = Issuer {
            name: "kopir Open Banking platform".into(),
            url: "https://obp.example.kz".into(),
            zone_name: "Asia/Almaty".into(),
            zone: crate::store::calendar::default_time_zone(),
        };
        let html = render(&printable, &issuer, Lang::Ru).unwrap();
        for text in [
            "<html lang=\"ru\">",
            "Fintech One",
            "БИН 990341000011",
            "Altyn Bank (BIN 990340000420)",
            "Current accounts 1.0",
            "12345.05 ₸",
            "12345.00 ₸",
            "0.05 ₸",
            "Просрочена",
            "https://obp.example.kz/org/billing/statements/KOPIR-202611-000001/jws",
            // The credit note issued since, and the total after it (12345.05 − 5.00); the statement itself unchanged.
            "Кредит-ноты по этим строкам",
            "KOPIR-CN-202611-000001",
            "−5.00 ₸",
            "12340.05 ₸",
            "2026-12-02 10:00:00",
        ] {
            assert!(html.contains(text), "{text}: {html}");
        }
        // Issued at 19:30 UTC on the 30th: the 1st of December in Almaty (UTC+5).
        assert!(html.contains("2026-12-01 00:30:00"), "{html}");
        assert!(!html.contains("<nav") && !html.contains("<script"));
    }
}
