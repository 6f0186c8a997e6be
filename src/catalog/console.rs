//! The operator console's view of the catalogue: every API with its provider, status, last check and connections.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::ConsoleRow;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/apis", get(apis))
}

#[derive(Template)]
#[template(path = "console_apis.html")]
struct ApisPage {
    t: Texts,
    rows: Vec<ConsoleRow>,
}

/// Console readers: every API of every provider, whatever its status.
async fn apis(State(state): State<AppState>, ConsoleReader(_): ConsoleReader) -> Result<Response, PageError> {
    let check = state.publication_check.clone();
    let rows = state.db.read(move |c| super::console_rows(c, check.as_ref()).map_err(StoreError::from)).await?;
    Ok(render(&ApisPage { t: Texts::current(), rows }))
}
