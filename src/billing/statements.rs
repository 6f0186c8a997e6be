//! Statements' pages and downloads. Who may call each route:
//!
//! - `GET /org/billing/statements/{number}` and its `/json`, `/jws`, `/csv` — a member of the statement's own
//!   organisation (`SignedIn` with that organisation), or a console reader (operator staff, administrators, the
//!   regulator) for any statement; anyone else gets "not found" (another organisation's statement is not
//!   distinguishable from a missing one). The JSON is the document as issued; the JWS (`typ`
//!   `kopir-billing-statement+jwt`, the platform's ES256 key, verifiable with `/.well-known/jwks.json`) binds its
//!   SHA-256, number, month and kind; the CSV lists the billable exchanges behind a user's or provider's statement by
//!   interaction id (no customer data).
//! - `GET /org/billing/statements/{number}/print` — the same readers: the statement's printable document
//!   ([`super::print`]), a standalone HTML file in the reader's language under the monthly report's policy (inline
//!   styles only, nothing else loads).
//! - `GET /console/billing/statements` — console readers: every statement with its settlement status.
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
use super::tenge;
use crate::identity::Role;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, OperatorStaff, SignedIn};

/// The `typ` of a statement's seal.
pub const SEAL_TYPE: &str = "kopir-billing-statement+jwt";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/billing/statements/{number}", get(page))
        .route("/org/billing/statements/{number}/json", get(json_download))
        .route("/org/billing/statements/{number}/jws", get(jws_download))
        .route("/org/billing/statements/{number}/csv", get(csv_download))
        .route("/org/billing/statements/{number}/print", get(print_page))
        .route("/console/billing/statements", get(console_list))
        .route("/console/billing/statements/{number}/status", post(mark))
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

/// One line of the page's table, from the document.
struct LineRow {
    counterparty: String,
    api: String,
    service: String,
    units: String,
    free_units: String,
    charge: String,
    fee: String,
}

#[derive(Template)]
#[template(path = "billing_statement.html")]
struct StatementPage {
    t: Texts,
    console: bool,
    statement: Statement,
    total: String,
    lines: Vec<LineRow>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn money(v: &Value) -> String {
    v.as_i64().map(tenge).unwrap_or_default()
}

/// The statement's page (printable: the stylesheet hides the navigation in print).
async fn page(State(state): State<AppState>, who: SignedIn, Path(number): Path<String>) -> Result<Response, PageError> {
    let (statement, document) = readable(&state, &who, number).await?;
    let document: Value = serde_json::from_str(&document).map_err(|e| PageError::internal(&e))?;
    let body = &document["body"];
    let lines = if let Some(positions) = body["positions"].as_array() {
        positions
            .iter()
            .map(|p| LineRow {
                counterparty: text(&p["organisation_id"]),
                api: String::new(),
                service: String::new(),
                units: String::new(),
                free_units: String::new(),
                charge: money(&p["owes_operator_tiyn"]),
                fee: money(&p["operator_owes_tiyn"]),
            })
            .collect()
    } else {
        body["lines"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| LineRow {
                        counterparty: text(
                            l.get("provider_organisation_id")
                                .or_else(|| l.get("user_organisation_id"))
                                .unwrap_or(&Value::Null),
                        ),
                        api: text(&l["api_id"]),
                        service: text(&l["service"]),
                        units: text(&l["units"]),
                        free_units: text(&l["free_units"]),
                        charge: money(&l["charge_tiyn"]),
                        fee: money(&l["fee_tiyn"]),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let page = StatementPage {
        t: Texts::current(),
        console: console_role(who.user.role),
        total: tenge(statement.total_tiyn),
        statement,
        lines,
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
    let jws = state.signer.sign(&state.db, SEAL_TYPE, &seal).await.map_err(|e| PageError::internal(&e))?;
    Ok(download("application/jose", &format!("{}.jws", statement.number), jws))
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
    /// API users' statements overdue beyond `billing.suspend_after_days` (a warning, never a suspension).
    overdue: Vec<super::overdue::Overdue>,
    suspend_after_days: u32,
}

impl ListPage<'_> {
    fn money(&self, tiyn: &i64) -> String {
        tenge(*tiyn)
    }

    fn next(&self, status: &str) -> Vec<&'static str> {
        status.parse::<Settlement>().map(|s| s.next().iter().map(|n| n.as_str()).collect()).unwrap_or_default()
    }
}

/// Console readers: every statement (latest month first).
async fn console_list(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Result<Response, PageError> {
    let (limit, now) = (state.config.billing.suspend_after_days, state.clock.now());
    let (statements, overdue) = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            Ok((close::listed(c, None, 500)?, super::overdue::beyond(c, limit, now)?))
        })
        .await?;
    let page = ListPage {
        t: Texts::current(),
        csrf: who.csrf(),
        statements,
        overdue,
        suspend_after_days: limit,
        may_mark: matches!(who.user.role, Role::OperatorAdmin | Role::OperatorStaff),
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
