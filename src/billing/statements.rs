//! Statements' pages and downloads. Who may call each route:
//!
//! - `GET /org/billing/statements/{number}` and its `/json`, `/jws`, `/csv` — a member of the statement's own
//!   organisation (`SignedIn` with that organisation), or a console reader (operator staff, administrators, the
//!   regulator) for any statement; anyone else gets "not found" (another organisation's statement is not
//!   distinguishable from a missing one). The JSON is the document as issued; the JWS (`typ`
//!   `kopir-billing-statement+jwt`, the platform's ES256 key, verifiable with `/.well-known/jwks.json`) binds its
//!   SHA-256, number, month and kind; the CSV lists the billable exchanges behind a user's or provider's statement by
//!   interaction id (no customer data).
//!   The page lists, per line, the disputes on it (requests about the line's charge or fee: those the member's
//!   organisation is a party of; every one for a console reader) with their status, a "Dispute" action for members
//!   (the request form with the classifier's billing dispute category and the line prefilled), and the credit notes on
//!   its lines; the operator's statement shows the net positions after the month's credit notes beside the issued
//!   ones, computed at read time.
//! - `GET /org/billing/statements/{number}/print` — the same readers: the statement's printable document
//!   ([`super::print`]), a standalone HTML file in the reader's language under the monthly report's policy (inline
//!   styles only, nothing else loads).
//! - `GET /console/billing/statements` — console readers: every statement with its settlement status, every credit
//!   note, and the API users' statements overdue beyond `billing.suspend_after_days`.
//! - `POST /console/billing/credit-notes` — the operator's administrators (`OperatorAdmin`) only: issue a credit note
//!   on a statement line ([`super::credit::issue`]); staff and the regulator are refused (403), participants too.
//! - `GET /org/billing/credit-notes/{number}/json` and `/jws` — the credit note as issued and its seal (`typ`
//!   `kopir-billing-credit-note+jwt`, the same key and signing as a statement's): the API user it credits, the
//!   provider of a credited charge, and console readers; anyone else "not found".
//! - `POST /console/billing/statements/{number}/status` — operator staff (`OperatorStaff`): marks it invoiced, paid
//!   or overdue (compare-and-set; journalled `billing.statement.marked`). The regulator reads, never marks.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::close::{self, Settlement, Statement};
use super::credit::{self, Concerning, CreditNote, CreditRequest};
use super::disputes::{self, Key, Part};
use super::tenge;
use crate::identity::Role;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, OperatorAdmin, OperatorStaff, SignedIn};

/// The `typ` of a statement's seal.
pub const SEAL_TYPE: &str = "kopir-billing-statement+jwt";
/// The `typ` of a credit note's seal.
pub const CREDIT_SEAL_TYPE: &str = "kopir-billing-credit-note+jwt";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/billing/statements/{number}", get(page))
        .route("/org/billing/statements/{number}/json", get(json_download))
        .route("/org/billing/statements/{number}/jws", get(jws_download))
        .route("/org/billing/statements/{number}/csv", get(csv_download))
        .route("/org/billing/statements/{number}/print", get(print_page))
        .route("/console/billing/statements", get(console_list))
        .route("/console/billing/statements/{number}/status", post(mark))
        .route("/console/billing/credit-notes", post(issue_credit_note))
        .route("/org/billing/credit-notes/{number}/json", get(credit_json_download))
        .route("/org/billing/credit-notes/{number}/jws", get(credit_jws_download))
}

fn console_role(role: Role) -> bool {
    matches!(role, Role::OperatorAdmin | Role::OperatorStaff | Role::Regulator)
}

/// The statement `number` if `who` may read it (its organisation's member, or a console reader), else not found.
async fn readable(state: &AppState, who: &SignedIn, number: String) -> Result<(Statement, String), PageError> {
    let found = state.db.read(move |c| close::by_number(c, &number).map_err(StoreError::from)).await?;
    let (statement, document) = found.ok_or_else(PageError::not_found)?;
    let own = who.organisation.as_ref().is_some_and(|o| Some(o.id) == statement.organisation_id);
    if own || console_role(who.user.role) { Ok((statement, document)) } else { Err(PageError::not_found()) }
}

fn download(content_type: &'static str, filename: &str, body: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response()
}

/// One line of the page's table, from the document, with the disputes and credit notes on its charge and fee.
struct LineRow {
    /// What the printable document shows of the line, too.
    cells: super::print::Line,
    /// The addresses of its charge and (an API user's line) its fee, as a request names them.
    charge_ref: Option<String>,
    fee_ref: Option<String>,
    disputes: Vec<DisputeRow>,
    credited: Option<String>,
}

/// A dispute as the statement's page lists it.
struct DisputeRow {
    id: i64,
    reference: String,
    status: crate::requests::Status,
    href: String,
}

impl DisputeRow {
    /// Held until resolved: the request's own statuses.
    fn held(&self) -> bool {
        self.status.is_open()
    }
}

/// A credit note as the pages list it.
pub(super) struct CreditRow {
    pub(super) number: String,
    pub(super) month: String,
    pub(super) statement_number: String,
    pub(super) line_reference: String,
    pub(super) part: Part,
    pub(super) amount: String,
    pub(super) reason: String,
    pub(super) request_id: Option<i64>,
    pub(super) issued_at: String,
}

impl CreditRow {
    pub(super) fn new(note: &CreditNote) -> CreditRow {
        CreditRow {
            number: note.number.clone(),
            month: note.month.clone(),
            statement_number: note.statement_number.clone(),
            line_reference: note.line_reference.clone(),
            part: note.part,
            amount: tenge(note.amount_tiyn),
            reason: note.reason.clone(),
            request_id: note.request_id,
            issued_at: note.issued_at.clone(),
        }
    }

    pub(super) fn part_key(&self) -> &'static str {
        self.part.text_key()
    }
}

/// A net position of the operator's statement, as issued and after the month's credit notes.
struct PositionRow {
    organisation_id: i64,
    organisation: String,
    owes: String,
    owed: String,
    net: String,
    owes_after: String,
    owed_after: String,
    net_after: String,
}

/// A line the operator's administrators may credit, with what is left of it.
struct CreditChoice {
    reference: String,
    remainder: String,
}

#[derive(Template)]
#[template(path = "billing_statement.html")]
struct StatementPage<'a> {
    t: Texts,
    csrf: &'a str,
    console: bool,
    /// A participant's member: may dispute its lines.
    member: bool,
    /// The operator's administrators: may issue credit notes.
    may_credit: bool,
    statement: Statement,
    total: String,
    total_after: Option<String>,
    lines: Vec<LineRow>,
    positions: Vec<PositionRow>,
    credit_notes: Vec<CreditRow>,
    choices: Vec<CreditChoice>,
    dispute_category: &'static str,
}

/// What the statement's page reads besides the statement: its lines' disputes (those `organisation` sees; `None`:
/// all) and credit notes, what is left to credit of each line, and the month's credit notes for the net positions.
struct Around {
    lines: Vec<disputes::Line>,
    disputes: Vec<(Key, disputes::Dispute)>,
    notes: Vec<CreditNote>,
    remainders: Vec<(String, i64)>,
    positions: Vec<credit::Position>,
    names: super::print::Names,
}

fn around(
    conn: &rusqlite::Connection,
    statement: &Statement,
    document: &str,
    organisation: Option<i64>,
) -> rusqlite::Result<Around> {
    let lines = disputes::lines_of(statement, document);
    let keys: Vec<Key> = lines.iter().map(disputes::Line::key).collect();
    let found = disputes::disputes(conn, &statement.month, &keys, organisation)?;
    let notes: Vec<CreditNote> = credit::on_keys(conn, &statement.month, &keys)?
        .into_iter()
        .filter(|n| organisation.is_none_or(|o| n.concerns(o)))
        .collect();
    let mut remainders = Vec::new();
    for line in &lines {
        remainders.push((line.reference.clone(), line.amount_tiyn - credit::credited(conn, &line.key())?));
    }
    let positions = if statement.kind == "operator" {
        let document: Value = serde_json::from_str(document).unwrap_or_default();
        let issued = document["body"]["positions"].as_array().cloned().unwrap_or_default();
        credit::net_after(conn, &statement.month, &issued)?
    } else {
        Vec::new()
    };
    let names = super::print::Names::of(conn, statement, document)?;
    Ok(Around { lines, disputes: found, notes, remainders, positions, names })
}

/// The statement's page (printable: the stylesheet hides the navigation in print).
async fn page(State(state): State<AppState>, who: SignedIn, Path(number): Path<String>) -> Result<Response, PageError> {
    let (statement, document) = readable(&state, &who, number).await?;
    let console = console_role(who.user.role);
    let organisation = if console { None } else { who.organisation.as_ref().map(|o| o.id) };
    let (for_read, document_for_read) = (statement.clone(), document.clone());
    let around = state
        .db
        .read(move |c| around(c, &for_read, &document_for_read, organisation).map_err(StoreError::from))
        .await?;
    let document: Value = serde_json::from_str(&document).map_err(|e| PageError::internal(&e))?;
    let body = &document["body"];
    let request_link =
        |id: i64| if console { format!("/console/requests/{id}") } else { format!("/org/requests/{id}") };
    let cells = super::print::lines(body, &around.names, Texts::current(), "");
    let operator_statement = body["positions"].is_array();
    let lines = cells
        .into_iter()
        .enumerate()
        .map(|(i, cells)| {
            let of_part = |part: Part| around.lines.iter().find(|x| x.line == i + 1 && x.part == part);
            let (charge_line, fee_line) =
                if operator_statement { (None, None) } else { (of_part(Part::Charge), of_part(Part::Fee)) };
            let keys: Vec<Key> = [charge_line, fee_line].into_iter().flatten().map(disputes::Line::key).collect();
            let disputes = around
                .disputes
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(_, d)| DisputeRow {
                    id: d.id,
                    reference: d.reference.clone(),
                    status: d.status,
                    href: request_link(d.id),
                })
                .collect();
            let credited: i64 = around.notes.iter().filter(|n| keys.contains(&n.key())).map(|n| n.amount_tiyn).sum();
            LineRow {
                cells,
                charge_ref: charge_line.map(|x| x.reference.clone()),
                fee_ref: fee_line.map(|x| x.reference.clone()),
                disputes,
                credited: (credited > 0).then(|| tenge(credited)),
            }
        })
        .collect();
    let may_credit = who.user.role == Role::OperatorAdmin && statement.kind != "operator";
    let month_notes = if statement.kind == "operator" {
        let month = statement.month.clone();
        state
            .db
            .read(move |c| credit::listed(c, Concerning::All, Some(month.as_str()), 1000).map_err(StoreError::from))
            .await?
    } else {
        around.notes.clone()
    };
    let total_after = (!month_notes.is_empty()).then(|| tenge(credit::total_after(&statement, &month_notes)));
    let page = StatementPage {
        t: Texts::current(),
        csrf: who.csrf(),
        console,
        member: !console && who.organisation.is_some(),
        may_credit,
        total: tenge(statement.total_tiyn),
        total_after,
        lines,
        positions: around
            .positions
            .iter()
            .map(|p| PositionRow {
                organisation_id: p.organisation_id,
                organisation: around.names.organisation(&Value::from(p.organisation_id)),
                owes: tenge(p.owes_operator_tiyn),
                owed: tenge(p.operator_owes_tiyn),
                net: tenge(p.net_tiyn),
                owes_after: tenge(p.owes_operator_after_tiyn),
                owed_after: tenge(p.operator_owes_after_tiyn),
                net_after: tenge(p.net_after_tiyn),
            })
            .collect(),
        credit_notes: month_notes.iter().map(CreditRow::new).collect(),
        choices: if may_credit {
            around
                .remainders
                .iter()
                .filter(|(_, left)| *left > 0)
                .map(|(reference, left)| CreditChoice { reference: reference.clone(), remainder: tenge(*left) })
                .collect()
        } else {
            Vec::new()
        },
        dispute_category: disputes::DISPUTE_CATEGORY,
        statement,
    };
    Ok(render_status(StatusCode::OK, &page))
}

async fn json_download(
    State(state): State<AppState>,
    who: SignedIn,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let (statement, document) = readable(&state, &who, number).await?;
    Ok(download("application/json", &format!("{}.json", statement.number), document))
}

/// What a statement's seal binds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Seal {
    pub iss: String,
    pub statement: String,
    pub month: String,
    pub kind: String,
    pub sha256: String,
    pub issued_at: String,
}

/// The seal of `statement`, issued by `iss` (the platform's public URL).
pub fn seal(iss: &str, statement: &Statement) -> Seal {
    Seal {
        iss: iss.to_string(),
        statement: statement.number.clone(),
        month: statement.month.clone(),
        kind: statement.kind.clone(),
        sha256: statement.sha256.clone(),
        issued_at: statement.issued_at.clone(),
    }
}

async fn jws_download(
    State(state): State<AppState>,
    who: SignedIn,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let (statement, _) = readable(&state, &who, number).await?;
    let seal = seal(&crate::oauth::metadata::issuer(&state), &statement);
    sealed(&state, SEAL_TYPE, &format!("{}.jws", statement.number), &seal).await
}

/// Signs `claims` with the platform's key under `typ` (a statement's or a credit note's seal), as a download.
async fn sealed<T: Serialize>(state: &AppState, typ: &str, filename: &str, claims: &T) -> Result<Response, PageError> {
    let jws = state.signer.sign(&state.db, typ, claims).await.map_err(|e| PageError::internal(&e))?;
    Ok(download("application/jose", filename, jws))
}

async fn csv_download(
    State(state): State<AppState>,
    who: SignedIn,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let (statement, _) = readable(&state, &who, number).await?;
    let bounds = close::month_bounds(state.config.time_zone.zone(), &statement.month)
        .ok_or_else(|| PageError::internal(&"the statement's month could not be read"))?;
    let for_read = statement.clone();
    let items = state.db.read(move |c| close::line_items(c, &for_read, bounds).map_err(StoreError::from)).await?;
    Ok(download("text/csv; charset=utf-8; header=present", &format!("{}.csv", statement.number), csv(&items)))
}

/// A statement's line items as CSV (the download's and `kopir billing export`'s).
pub fn csv(items: &[close::LineItem]) -> String {
    let mut csv =
        String::from("at,interaction_id,user_organisation_id,provider_organisation_id,api_id,service,units\r\n");
    for i in items {
        // Interaction ids are the callers' (`x-fapi-interaction-id`): quoted, quotes doubled, so no value breaks a row.
        csv.push_str(&format!(
            "{},\"{}\",{},{},{},{},{}\r\n",
            i.at,
            i.interaction_id.replace('"', "\"\""),
            i.user_organisation_id,
            i.provider_organisation_id,
            i.api_id,
            i.service,
            i.units
        ));
    }
    csv
}

/// The printable document, in the reader's language.
async fn print_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let (statement, _) = readable(&state, &who, number).await?;
    let number = statement.number;
    let printable = state
        .db
        .read(move |c| super::print::load(c, &number).map_err(StoreError::from))
        .await?
        .ok_or_else(PageError::not_found)?;
    let issuer = super::print::Issuer::of(&state.config, &state.public_url);
    let html = super::print::render(&printable, &issuer, Texts::current().lang).map_err(|e| PageError::internal(&e))?;
    let mut response = html.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Ok(crate::reports::monthly_page::with_report_policy(response))
}

#[derive(Template)]
#[template(path = "billing_statements.html")]
struct ListPage<'a> {
    t: Texts,
    csrf: &'a str,
    statements: Vec<Statement>,
    may_mark: bool,
    credit_notes: Vec<CreditRow>,
    /// API users' statements overdue beyond `billing.suspend_after_days` (a warning, never a suspension).
    overdue: Vec<super::overdue::Overdue>,
    suspend_after_days: u32,
}

impl ListPage<'_> {
    fn money(&self, tiyn: &i64) -> String {
        tenge(*tiyn)
    }

    fn next(&self, status: &str) -> Vec<Settlement> {
        status.parse::<Settlement>().map(|s| s.next().to_vec()).unwrap_or_default()
    }
}

/// Console readers: every statement (latest month first).
async fn console_list(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Result<Response, PageError> {
    let (limit, now) = (state.config.billing.suspend_after_days, state.clock.now());
    let (statements, notes, overdue) = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            Ok((
                close::listed(c, None, 500)?,
                credit::listed(c, Concerning::All, None, 500)?,
                super::overdue::beyond(c, limit, now)?,
            ))
        })
        .await?;
    let page = ListPage {
        t: Texts::current(),
        csrf: who.csrf(),
        statements,
        overdue,
        suspend_after_days: limit,
        may_mark: matches!(who.user.role, Role::OperatorAdmin | Role::OperatorStaff),
        credit_notes: notes.iter().map(CreditRow::new).collect(),
    };
    Ok(render_status(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
struct MarkForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Operator staff: move a statement's settlement on.
async fn mark(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<MarkForm>,
) -> Result<Response, PageError> {
    let (Ok(from), Ok(to)) = (form.from.parse::<Settlement>(), form.to.parse::<Settlement>()) else {
        return Err(PageError::new(StatusCode::UNPROCESSABLE_ENTITY, "billing.error.status"));
    };
    let (actor, now) = (who.audit_actor(), state.clock.now());
    let marked =
        state.db.write(move |tx| close::mark(tx, &number, from, to, &actor, now).map_err(StoreError::from)).await?;
    if marked {
        Ok(Redirect::to("/console/billing/statements").into_response())
    } else {
        Err(PageError::new(StatusCode::CONFLICT, "billing.error.status"))
    }
}

#[derive(Debug, Deserialize)]
struct CreditForm {
    #[serde(default)]
    line: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    /// The dispute request it settles (its number), if any.
    #[serde(default)]
    request: String,
}

/// The operator's administrators: issue a credit note on a statement line. Every refusal writes nothing.
async fn issue_credit_note(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    CsrfForm(form): CsrfForm<CreditForm>,
) -> Result<Response, PageError> {
    let refused = |key: &'static str| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, key);
    let amount_tiyn = super::pages::parse_tenge(&form.amount).ok_or_else(|| refused("billing_credit.error.amount"))?;
    let request_id = match form.request.trim() {
        "" => None,
        id => Some(id.trim_start_matches('#').parse::<i64>().map_err(|_| refused("billing_credit.error.request"))?),
    };
    let request = CreditRequest { line: form.line.trim().to_string(), amount_tiyn, reason: form.reason, request_id };
    let clocks = crate::requests::case::Clocks::from_config(&state.config)?;
    let (actor, now) = (who.audit_actor(), state.clock.now());
    match state.db.write(move |tx| credit::issue(tx, &clocks, &request, &actor, now)).await? {
        Ok(note) => Ok(Redirect::to(&format!("/org/billing/statements/{}", note.statement_number)).into_response()),
        Err(refusal) => Err(refused(refusal.text_key())),
    }
}

/// The credit note `number` if `who` may read it (the API user it credits, the provider of a credited charge, or a
/// console reader), else not found.
async fn readable_credit(state: &AppState, who: &SignedIn, number: String) -> Result<(CreditNote, String), PageError> {
    let found = state.db.read(move |c| credit::by_number(c, &number).map_err(StoreError::from)).await?;
    let (note, document) = found.ok_or_else(PageError::not_found)?;
    let concerns = who.organisation.as_ref().is_some_and(|o| note.concerns(o.id));
    if concerns || console_role(who.user.role) { Ok((note, document)) } else { Err(PageError::not_found()) }
}

async fn credit_json_download(
    State(state): State<AppState>,
    who: SignedIn,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let (note, document) = readable_credit(&state, &who, number).await?;
    Ok(download("application/json", &format!("{}.json", note.number), document))
}

/// What a credit note's seal binds.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreditSeal {
    pub iss: String,
    pub credit_note: String,
    pub statement: String,
    pub line: String,
    pub month: String,
    pub amount_tiyn: i64,
    pub sha256: String,
    pub issued_at: String,
}

/// The seal of credit note `note` issued by `iss` (the page's download and the accountants' export sign the same).
pub fn credit_seal(iss: &str, note: &CreditNote) -> CreditSeal {
    CreditSeal {
        iss: iss.to_string(),
        credit_note: note.number.clone(),
        statement: note.statement_number.clone(),
        line: note.line_reference.clone(),
        month: note.month.clone(),
        amount_tiyn: note.amount_tiyn,
        sha256: note.sha256.clone(),
        issued_at: note.issued_at.clone(),
    }
}

async fn credit_jws_download(
    State(state): State<AppState>,
    who: SignedIn,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let (note, _) = readable_credit(&state, &who, number).await?;
    let seal = credit_seal(&crate::oauth::metadata::issuer(&state), &note);
    sealed(&state, CREDIT_SEAL_TYPE, &format!("{}.jws", note.number), &seal).await
}
