//! The audit trail page of the console (`/console/audit`): the journal, filtered, newest first, read-only for
//! everyone who may read the console, in a table of fixed columns whose long values wrap; and its CSV export
//! (`/console/audit.csv`, the same filters, every matching entry up to [`AUDIT_EXPORT_LIMIT`], times in RFC 3339 UTC).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;

use super::{Entry, Filter};
use crate::store::StoreError;
use crate::store::calendar::local_text;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

pub const AUDIT_PAGE_SIZE: u32 = 50;
/// The most entries one CSV export holds (newest first); narrow the filters for older ones.
pub const AUDIT_EXPORT_LIMIT: u32 = 100_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/audit", get(audit_trail)).route("/console/audit.csv", get(audit_csv))
}

/// An entry as the page shows it: its time in the operator's zone, its outcome as a word.
struct Row {
    seq: i64,
    at: String,
    actor: String,
    organisation: Option<String>,
    action: String,
    object: Option<String>,
    outcome: &'static str,
    outcome_key: &'static str,
    source: Option<String>,
    detail: Option<String>,
}

impl Row {
    fn new(entry: Entry, zone: &jiff::tz::TimeZone) -> Row {
        let (outcome, outcome_key) = match entry.outcome.as_str() {
            "success" => ("success", "audit.outcome_success"),
            "denied" => ("denied", "audit.outcome_denied"),
            _ => ("failure", "audit.outcome_failure"),
        };
        Row {
            seq: entry.seq,
            at: local_text(zone, &entry.at),
            actor: entry.actor,
            organisation: entry.organisation,
            action: entry.action,
            object: entry.object,
            outcome,
            outcome_key,
            source: entry.source,
            detail: entry.detail,
        }
    }
}

#[derive(Template)]
#[template(path = "console_audit.html")]
struct AuditPage {
    t: Texts,
    filter: Filter,
    filtered: bool,
    rows: Vec<Row>,
    page: u32,
    more: bool,
    first: u64,
    time_zone: String,
    query_first: String,
    query_prev: String,
    query_next: String,
    query_csv: String,
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The filters as a query string, with `page` when given.
fn query_string(filter: &Filter, page: Option<u32>) -> String {
    let mut query = format!(
        "action={}&actor={}&object={}&from={}&to={}",
        encode(&filter.action),
        encode(&filter.actor),
        encode(&filter.object),
        encode(&filter.from),
        encode(&filter.to)
    );
    if let Some(page) = page {
        query.push_str(&format!("&page={page}"));
    }
    query
}

/// Console readers: the audit journal, filtered, newest first, 50 a page. Read-only.
async fn audit_trail(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    let page = filter.page.unwrap_or(1).max(1);
    let zone = state.config.time_zone.zone().clone();
    let (f, z) = (filter.clone(), zone.clone());
    let (entries, more) =
        state.db.read(move |c| super::search(c, &f, &z, AUDIT_PAGE_SIZE).map_err(StoreError::from)).await?;
    Ok(render(&AuditPage {
        t: Texts::current(),
        filtered: !filter.is_empty(),
        rows: entries.into_iter().map(|e| Row::new(e, &zone)).collect(),
        first: u64::from(page - 1) * u64::from(AUDIT_PAGE_SIZE) + 1,
        time_zone: state.config.time_zone.name().to_string(),
        query_first: query_string(&filter, Some(1)),
        query_prev: query_string(&filter, Some(page.saturating_sub(1).max(1))),
        query_next: query_string(&filter, Some(page + 1)),
        query_csv: query_string(&filter, None),
        filter,
        page,
        more,
    }))
}

/// Console readers: every entry matching the filters as CSV (RFC 4180, times RFC 3339 UTC, newest first).
async fn audit_csv(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    let zone = state.config.time_zone.zone().clone();
    let f = filter.clone();
    let (entries, _) =
        state.db.read(move |c| super::matching(c, &f, &zone, AUDIT_EXPORT_LIMIT).map_err(StoreError::from)).await?;
    let mut csv = String::from("seq,at,actor,organisation,action,object,outcome,source,detail,hash\r\n");
    for e in entries {
        let cells = [
            e.seq.to_string(),
            e.at,
            e.actor,
            e.organisation.unwrap_or_default(),
            e.action,
            e.object.unwrap_or_default(),
            e.outcome,
            e.source.unwrap_or_default(),
            e.detail.unwrap_or_default(),
            e.hash,
        ];
        let line: Vec<String> = cells.into_iter().map(|c| csv_field(&spreadsheet_safe(c))).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    let day = crate::store::calendar::local_day(state.config.time_zone.zone(), state.clock.now().unix_timestamp())
        .unwrap_or_default();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"kopir-audit_{day}.csv\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8; header=present")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

/// RFC 4180: a field with a comma, quote, CR or LF is quoted, its quotes doubled.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A value a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading apostrophe, so
/// opening the export never runs what a participant typed into a name.
fn spreadsheet_safe(value: String) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_query_strings_escaped() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("user:aliya".into()), "user:aliya");
        assert_eq!(csv_field("a \"b\", c"), "\"a \"\"b\"\", c\"");
        let filter = Filter { actor: "a b&c".into(), page: Some(3), ..Default::default() };
        assert_eq!(query_string(&filter, None), "action=&actor=a%20b%26c&object=&from=&to=");
        assert!(query_string(&filter, Some(2)).ends_with("&page=2"));
    }
}
