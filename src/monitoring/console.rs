//! The operator's console page of SLA breaches.
//!
//! - `GET /console/sla` — console readers (operator staff and administrators, the regulator read-only): the breaches
//!   open now and those that ended in the last 30 days. Nothing here changes anything.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::sla::{self, Breach};
use crate::clock;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::ConsoleReader;

/// How far back ended breaches are listed, and at most how many.
const ENDED_DAYS: i64 = 30;
const ENDED_MAX: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/sla", get(console_sla))
}

#[derive(Template)]
#[template(path = "console_sla.html")]
struct SlaPage {
    t: Texts,
    open: Vec<Breach>,
    ended: Vec<Breach>,
}

/// Console readers: open and recent SLA breaches.
async fn console_sla(State(state): State<AppState>, ConsoleReader(_): ConsoleReader) -> Result<Response, PageError> {
    let since = clock::rfc3339(state.clock.now() - time::Duration::days(ENDED_DAYS));
    let (open, ended) = state
        .db
        .read(move |c| -> Result<_, StoreError> { Ok((sla::open(c)?, sla::ended_since(c, &since, ENDED_MAX)?)) })
        .await?;
    Ok(render_status(StatusCode::OK, &SlaPage { t: Texts::current(), open, ended }))
}
