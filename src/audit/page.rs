//! The audit trail page of the console (`/console/audit`): the journal, filtered, newest first, read-only for
//! everyone who may read the console.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;

use super::{Entry, Filter};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;

pub const AUDIT_PAGE_SIZE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/audit", get(audit_trail))
}

#[derive(Template)]
#[template(path = "console_audit.html")]
struct AuditPage<'a> {
    t: Texts,
    csrf: &'a str,
    filter: Filter,
    entries: Vec<Entry>,
    page: u32,
    more: bool,
    query_prev: String,
    query_next: String,
}

fn query_string(filter: &Filter, page: u32) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "action={}&actor={}&object={}&from={}&to={}&page={page}",
        enc(&filter.action),
        enc(&filter.actor),
        enc(&filter.object),
        enc(&filter.from),
        enc(&filter.to)
    )
}

/// Console readers: the audit journal, filtered, newest first, 50 a page. Read-only.
async fn audit_trail(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Query(filter): Query<Filter>,
) -> Result<Response, PageError> {
    let page = filter.page.unwrap_or(1).max(1);
    let f = filter.clone();
    let (entries, more) =
        state.db.read(move |c| super::search(c, &f, AUDIT_PAGE_SIZE).map_err(StoreError::from)).await?;
    Ok(render(&AuditPage {
        t: Texts::current(),
        csrf: who.csrf(),
        query_prev: query_string(&filter, page.saturating_sub(1).max(1)),
        query_next: query_string(&filter, page + 1),
        filter,
        entries,
        page,
        more,
    }))
}
