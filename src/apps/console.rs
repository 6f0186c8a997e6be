//! The operator console's view of the applications (OAuth clients) of every participant.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::Application;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/clients", get(clients))
}

#[derive(Template)]
#[template(path = "console_clients.html")]
struct ClientsPage {
    t: Texts,
    rows: Vec<(Application, String)>,
}

/// Console readers: every registered application with its organisation, kind, client id and status.
async fn clients(State(state): State<AppState>, ConsoleReader(_): ConsoleReader) -> Result<Response, PageError> {
    let rows = state.db.read(|c| super::list_all(c).map_err(StoreError::from)).await?;
    Ok(render(&ClientsPage { t: Texts::current(), rows }))
}
